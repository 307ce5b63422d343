"""Finding recipes: bundled ones by name, or TOML files by path."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from maskprep.recipes.fields import RecipeError, read_text
from maskprep.recipes.recipe import Recipe

__all__ = ["available_recipes", "load_recipe", "read_recipe", "recipe_dir"]


def recipe_dir() -> Path:
    """The folder of the bundled recipes.

    ``maskprep/pipelines`` in an installed wheel, ``<repo>/pipelines`` in a
    source checkout or editable install.
    """
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "pipelines", package.parent / "pipelines"):
        if candidate.is_dir():
            return candidate
    return package / "pipelines"


def available_recipes() -> dict[str, Path]:
    """Bundled recipes by name (file stem)."""
    folder = recipe_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml")) if not p.name.startswith(".")}


def read_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Parse and validate one recipe file.

    Raises
    ------
    RecipeError
        Naming the file, if it is missing, not TOML, or not a valid recipe.
    """
    p = Path(path)
    text = read_text(p, "the recipe", "recipe file does not exist", RecipeError)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{p}: not valid TOML: {exc}") from None
    return Recipe.from_dict(data, origin=str(p))


def load_recipe(ref: str | os.PathLike[str] | Recipe) -> Recipe:
    """A recipe by bundled name (``"camvid"``) or by path (``"my/camvid.toml"``).

    A string containing ``/`` (or the OS separator) or ending in ``.toml`` is
    a path; anything else a name.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the bundled recipes).
    RecipeError
        For a missing or invalid recipe file.

    Examples
    --------
    >>> sorted(available_recipes())
    ['camvid', 'cityscapes', 'coco', 'cremi', 'dsb2018', 'partial']
    >>> load_recipe("camvid").layout
    'semantic'
    >>> load_recipe("camvd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown recipe 'camvd'; bundled recipes: camvid, cityscapes, ...
    """
    if isinstance(ref, Recipe):
        return ref
    text = os.fspath(ref)
    if isinstance(ref, os.PathLike) or "/" in text or os.sep in text or text.endswith(".toml"):
        return read_recipe(text)
    table = available_recipes()
    if text not in table:
        raise ValueError(
            f"unknown recipe {text!r}; bundled recipes: {', '.join(sorted(table)) or 'none'} "
            "(or give the path of a .toml file)"
        )
    return read_recipe(table[text])
