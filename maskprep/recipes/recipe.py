"""Recipes: declarative descriptions of dataset layouts, in TOML.

A recipe says where a dataset's images and masks are, what the mask values
mean (classes, void), where instance ids come from, how the data is split, and
optionally default build options. maskprep ships recipes for common layouts
in ``pipelines/`` (``maskprep/pipelines`` in an installed wheel)::

    maskprep build-weights data/camvid -o camvid.zarr --recipe camvid
    maskprep build-weights data/camvid -o camvid.zarr --recipe my/camvid.toml

A bare name is looked up among the bundled recipes; anything containing a
``/`` or ending in ``.toml`` is a file. Options given explicitly on the command
line override the recipe's ``[build]`` defaults.

Keys (unknown keys are an error naming the key and the file):

``layout`` (required)
    ``instances`` or ``dsb2018`` (the built-in layouts, classes background and
    object), ``semantic`` (class-index masks), ``cityscapes``
    (``*_gtFine_instanceIds.png``) or ``coco`` (instance annotation JSON).
``description``
    Free text.
``images``, ``labels``
    Path patterns relative to the dataset directory, with ``{field}``
    placeholders, each standing for part of one path component:
    ``images = "images/{stem}.png"``, ``labels = "labels/{stem}_P.png"``.
    ``{stem}`` is the sample id; ``{split}`` is the split directory (see
    ``split``); other fields (``{city}``) only have to agree between image and
    mask. Every image needs its mask and every mask its image. For ``coco``,
    ``images`` is filled in from the annotation file's fields and each image's
    ``{file_name}`` (e.g. ``"{split}/{file_name}"``).
``annotations``
    coco: pattern of the annotation files, e.g.
    ``"annotations/instances_{split}.json"``.
``class_names`` or ``codes_file``
    The class list: names, or a text file in the dataset with one name a
    line (CamVid's ``codes.txt``). Without ``label_map``, mask value ``i``
    is the ``i``-th name. coco takes its classes from the categories:
    ``background`` then each category, in category id order.
``void_classes``
    Names in the class list whose mask values mean void (CamVid's ``Void``).
    They are left out of the classes, and the remaining classes keep their
    order, so the class indices after a void class shift down by one (the
    store's ``config.source.label_map`` records the mapping).
``label_map``
    Table source value -> class (index into the class list, or name), e.g.
    Cityscapes label id -> train id. With it, only listed values and
    ``void_values`` are allowed. Source values go up to 65535.
``void_values``
    Source values that mean void (Cityscapes' label ids with train id 255).
``unlabeled_value``
    A mask value meaning "not annotated" (void); the ``--unlabeled-value``
    option overrides it. For ``semantic`` it may be 0.
``instances``
    ``"layout"`` (Cityscapes ids, COCO annotations; default for those),
    ``"connected-components"`` (default for ``semantic``) or ``"none"``.
``instance_classes``
    With ``connected-components``: class names whose connected components
    are instances (default: every class but class 0). Other classes are
    "stuff": instance 0, background for the border term.
``split``
    ``"valid.txt"`` (default; any file name: validation stems or file names,
    one a line; absent file = everything is train), ``"directory"`` (the
    ``{split}`` field, mapped by ``splits``; default for coco) or ``"none"``.
``splits``
    Table ``{split}`` value -> ``"train"`` or ``"valid"``; samples under
    other values (Cityscapes ``test``) are left out.
``image_mode``
    Pillow mode images are converted to, e.g. ``"RGB"`` (COCO has some
    greyscale images).
``[build]``
    Default build options: ``void_label``, ``class_weights`` (a scheme name
    or a table of :class:`~maskprep.ClassWeightConfig` fields), ``w0``,
    ``sigma``, ``border_region``, ``tolerance``, ``spacing``, ``shard_size``,
    ``zstd_level``, ``max_pixels``.

Mask values that the recipe declares neither as a class nor as void are an
error naming the file and the value; a value equal to the void label gets its
own message (declare it void, or choose another void label). How each layout
is read, and how instance ids are numbered, is described in
:mod:`maskprep.ingest`.

A recipe is only a description: the build stores the resolved classes and
mapping (:class:`~maskprep.ingest.SourceSpec`) in its metadata, so a store
built with ``--recipe camvid`` equals one built with the same recipe given by
path.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from maskprep.config import BuildConfig
from maskprep.errors import DataError
from maskprep.ingest import RECIPE_LAYOUTS, SourceSpec, coco_categories
from maskprep.weighting import ClassWeightConfig

__all__ = [
    "BUILD_KEYS",
    "RECIPE_LAYOUTS_ALL",
    "Recipe",
    "RecipeError",
    "available_recipes",
    "load_recipe",
    "read_recipe",
    "recipe_dir",
]

RECIPE_LAYOUTS_ALL = ("instances", "dsb2018", *RECIPE_LAYOUTS)
BUILD_KEYS = (
    "void_label",
    "class_weights",
    "w0",
    "sigma",
    "border_region",
    "tolerance",
    "spacing",
    "shard_size",
    "zstd_level",
    "max_pixels",
)
_FLOAT_KEYS = ("w0", "sigma", "tolerance")
_STRING_KEYS = frozenset(
    {"layout", "description", "images", "labels", "annotations", "codes_file"}
    | {"instances", "split", "image_mode"}
)
_SEMANTIC_KEYS = frozenset(
    {
        "images",
        "labels",
        "class_names",
        "codes_file",
        "void_classes",
        "label_map",
        "void_values",
        "unlabeled_value",
        "instances",
        "instance_classes",
        "split",
        "splits",
        "image_mode",
    }
)
# Keys each layout accepts besides layout, description and build.
_LAYOUT_KEYS = {
    "instances": frozenset({"class_names", "unlabeled_value"}),
    "dsb2018": frozenset({"class_names"}),
    "semantic": _SEMANTIC_KEYS,
    "cityscapes": _SEMANTIC_KEYS,
    "coco": frozenset(
        {"images", "annotations", "instances", "instance_classes", "split", "splits", "image_mode"}
    ),
}
_DEFAULT_INSTANCES = {"semantic": "connected-components", "cityscapes": "layout", "coco": "layout"}
_DEFAULT_SPLIT = {"semantic": "valid.txt", "cityscapes": "valid.txt", "coco": "directory"}


class RecipeError(DataError):
    """A recipe file is invalid (the message names the file and the key)."""


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated recipe; the keys are described in the module docstring.

    ``origin`` (the file it came from) is used in messages and is not part of
    equality. :meth:`build_config` resolves it against a dataset into a
    :class:`~maskprep.BuildConfig`.

    Examples
    --------
    >>> r = Recipe.from_dict({"layout": "semantic", "images": "img/{stem}.png",
    ...                       "labels": "lab/{stem}.png", "class_names": ["sky", "road"],
    ...                       "build": {"class_weights": "median-frequency"}})
    >>> r.instances, r.split
    ('connected-components', 'valid.txt')
    >>> Recipe.from_dict(r.to_dict()) == r
    True
    >>> Recipe.from_dict({"layout": "semantic", "lables": "x"}, origin="my.toml")
    Traceback (most recent call last):
    ...
    maskprep.recipes.recipe.RecipeError: my.toml: unknown key 'lables' (did you mean 'labels'?)
    """

    layout: str
    description: str = ""
    images: str | None = None
    labels: str | None = None
    annotations: str | None = None
    class_names: tuple[str, ...] | None = None
    codes_file: str | None = None
    void_classes: tuple[str, ...] = ()
    label_map: tuple[tuple[int, int | str], ...] = ()
    void_values: tuple[int, ...] = ()
    unlabeled_value: int | None = None
    instances: str | None = None
    instance_classes: tuple[str, ...] | None = None
    split: str | None = None
    splits: tuple[tuple[str, str], ...] = ()
    image_mode: str | None = None
    build: tuple[tuple[str, Any], ...] = ()
    origin: str = field(default="<recipe>", compare=False)

    def _fail(self, message: str) -> RecipeError:
        return RecipeError(f"{self.origin}: {message}")

    def __post_init__(self) -> None:
        if self.layout not in RECIPE_LAYOUTS_ALL:
            raise self._fail(
                f"layout must be one of {', '.join(RECIPE_LAYOUTS_ALL)}, got {self.layout!r}"
            )
        allowed = _LAYOUT_KEYS[self.layout]
        for f in fields(self):
            if f.name in ("layout", "description", "build", "origin"):
                continue
            if getattr(self, f.name) != f.default and f.name not in allowed:
                raise self._fail(f"key {f.name!r} does not apply to the {self.layout} layout")
        if self.layout in RECIPE_LAYOUTS:
            if self.instances is None:
                object.__setattr__(self, "instances", _DEFAULT_INSTANCES[self.layout])
            if self.split is None:
                object.__setattr__(self, "split", _DEFAULT_SPLIT[self.layout])
        self._check_classes()
        if self.layout in RECIPE_LAYOUTS:
            self._check_source()
        self._check_build()

    def _check_classes(self) -> None:
        names = self.class_names
        if names is not None and (not names or len(set(names)) != len(names)):
            raise self._fail(f"class_names must be distinct and non-empty, got {list(names)}")
        if self.layout in ("instances", "dsb2018"):
            if names is not None and len(names) != 2:
                raise self._fail(
                    f"the {self.layout} layout has two classes (background, object); "
                    f"class_names has {len(names)}"
                )
            return
        if self.layout == "coco":
            return
        if (names is None) == (self.codes_file is None):
            raise self._fail(f"the {self.layout} layout needs class_names or codes_file (one)")
        if self.codes_file is not None:
            _relative(self.codes_file, "codes_file", self)
        if self.void_classes and self.label_map:
            raise self._fail(
                "void_classes works with the class list order; with label_map, list the "
                "void source values in void_values"
            )
        if names is not None:
            unknown = [n for n in self.void_classes if n not in names]
            unknown += [v for _, v in self.label_map if isinstance(v, str) and v not in names]
            if unknown:
                raise self._fail(f"{unknown[0]!r} is not in class_names")
            too_big = [v for _, v in self.label_map if isinstance(v, int) and v >= len(names)]
            if too_big:
                raise self._fail(
                    f"label_map class index {too_big[0]} is out of range for {len(names)} classes"
                )
            void = set(self.void_classes)
            for n in self.instance_classes or ():
                if n not in names or n in void:
                    raise self._fail(f"instance_classes: {n!r} is not a (non-void) class")

    def _check_source(self) -> None:
        try:
            # Class names are resolved later; check the source values now.
            self._spec(tuple((k, 0) for k, _ in self.label_map), ())
        except ValueError as exc:
            raise self._fail(str(exc)) from None
        if self.instance_classes is not None and self.instances != "connected-components":
            raise self._fail("instance_classes only applies to instances = 'connected-components'")

    def _spec(
        self,
        label_map: tuple[tuple[int, int], ...],
        instance_classes: tuple[int, ...],
        void_values: tuple[int, ...] | None = None,
    ) -> SourceSpec:
        assert self.images is not None and self.instances is not None and self.split is not None
        return SourceSpec(
            layout=self.layout,
            images=self.images,
            labels=self.labels,
            annotations=self.annotations,
            split=self.split,
            splits=self.splits,
            label_map=label_map,
            void_values=self.void_values if void_values is None else void_values,
            instances=self.instances,
            instance_classes=instance_classes,
            image_mode=self.image_mode,
        )

    def _check_build(self) -> None:
        kwargs = dict(self.build)
        unknown = sorted(set(kwargs) - set(BUILD_KEYS))
        if unknown:
            raise self._fail(_unknown_key(unknown[0], BUILD_KEYS, "[build] "))
        trial = {k: v for k, v in kwargs.items() if k != "void_label"}
        void_label = kwargs.get("void_label")
        if void_label is not None and (
            isinstance(void_label, bool) or not isinstance(void_label, int) or void_label < 1
        ):
            raise self._fail(f"[build] void_label must be a positive integer, got {void_label!r}")
        try:
            BuildConfig(**trial, class_names=("a",))
        except (TypeError, ValueError) as exc:
            raise self._fail(f"[build] {exc}") from None

    @property
    def defaults(self) -> dict[str, Any]:
        """The ``[build]`` defaults as :class:`~maskprep.BuildConfig` keyword arguments."""
        out = dict(self.build)
        if self.unlabeled_value is not None:
            out["unlabeled_value"] = self.unlabeled_value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "<recipe>") -> Recipe:
        """A recipe from parsed TOML (or :meth:`to_dict` output).

        Raises
        ------
        RecipeError
            Naming ``origin`` and the key, for unknown keys and bad values.
        """

        def fail(message: str) -> RecipeError:
            return RecipeError(f"{origin}: {message}")

        if not isinstance(data, dict):
            raise fail("a recipe is a table of keys")
        known = [f.name for f in fields(cls) if f.name != "origin"]
        for key in data:
            if key not in known:
                raise fail(_unknown_key(key, known))
        if "layout" not in data:
            raise fail(f"missing key 'layout' ({', '.join(RECIPE_LAYOUTS_ALL)})")
        kwargs: dict[str, Any] = {"origin": origin}
        for key, value in data.items():
            if key in _STRING_KEYS:
                kwargs[key] = _typed(value, str, key, fail)
            elif key in ("class_names", "void_classes", "instance_classes"):
                kwargs[key] = tuple(
                    _typed(v, str, key, fail) for v in _typed(value, list, key, fail)
                )
            elif key == "void_values":
                kwargs[key] = tuple(_int(v, key, fail) for v in _typed(value, list, key, fail))
            elif key == "unlabeled_value":
                kwargs[key] = _int(value, key, fail)
            elif key == "label_map":
                pairs: list[tuple[int, int | str]] = []
                for k, v in _typed(value, dict, key, fail).items():
                    src = _int_key(k, key, fail)
                    if isinstance(v, str):
                        pairs.append((src, v))
                    else:
                        pairs.append((src, _int(v, f"{key}.{k}", fail)))
                kwargs[key] = tuple(sorted(pairs, key=lambda p: p[0]))
            elif key == "splits":
                table = _typed(value, dict, key, fail)
                kwargs[key] = tuple(
                    sorted((str(k), _typed(v, str, f"{key}.{k}", fail)) for k, v in table.items())
                )
            elif key == "build":
                kwargs[key] = _build_pairs(_typed(value, dict, key, fail), fail)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """TOML-shaped dictionary of the keys that differ from their defaults."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "origin" or (value == f.default and f.name != "layout"):
                continue
            if f.name == "label_map":
                value = {str(k): v for k, v in value}
            elif f.name == "splits":
                value = dict(value)
            elif f.name == "build":
                value = {k: _toml_value(v) for k, v in value}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def build_config(self, dataset_dir: str | os.PathLike[str], **overrides: Any) -> BuildConfig:
        """The :class:`~maskprep.BuildConfig` for building ``dataset_dir`` with this recipe.

        ``overrides`` (BuildConfig fields) win over the recipe's ``[build]``
        defaults and ``unlabeled_value``; ``layout``, ``class_names`` and
        ``source`` come from the recipe and cannot be overridden.

        Raises
        ------
        DataError
            If the dataset's codes file or COCO annotations cannot be used.
        ValueError
            If the resulting options are invalid (e.g. a void label below the
            number of classes).
        """
        fixed = sorted({"layout", "class_names", "source"} & set(overrides))
        if fixed:
            raise ValueError(f"{fixed[0]} is set by the recipe {self.origin}")
        root = Path(dataset_dir)
        kwargs: dict[str, Any] = {**self.defaults, **overrides, "layout": self.layout}
        for key in _FLOAT_KEYS:
            if isinstance(kwargs.get(key), int):
                kwargs[key] = float(kwargs[key])
        if self.layout in RECIPE_LAYOUTS:
            if not root.is_dir():
                raise DataError(f"{root}: dataset directory does not exist")
            names, spec = self._resolve(root)
            kwargs["class_names"] = names
            kwargs["source"] = spec
        elif self.class_names is not None:
            kwargs["class_names"] = self.class_names
        try:
            return BuildConfig(**kwargs)
        except ValueError as exc:
            raise ValueError(f"{exc} (with recipe {self.origin})") from None

    def _resolve(self, root: Path) -> tuple[tuple[str, ...], SourceSpec]:
        if self.layout == "coco":
            cats = coco_categories(root, self._spec((), ()))
            names = ("background", *(name for _, name in cats))
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise DataError(
                    f"{root}: COCO class name {dup[0]!r} is used twice (categories, "
                    "plus background for class 0)"
                )
            label_map = tuple((cid, k) for k, (cid, _) in enumerate(cats, start=1))
            return names, self._spec(label_map, self._instance_classes(names, "categories"))
        where = "class_names"
        if self.class_names is not None:
            listed = list(self.class_names)
        else:
            assert self.codes_file is not None
            listed = _read_codes(root, self.codes_file)
            where = str(root / self.codes_file)
        if self.label_map:
            pairs = []
            for src, cls in self.label_map:
                if isinstance(cls, str):
                    if cls not in listed:
                        raise self._fail(f"label_map: {cls!r} is not a class ({where})")
                    cls = listed.index(cls)
                elif cls >= len(listed):
                    raise self._fail(
                        f"label_map: class index {cls} is out of range for {len(listed)} "
                        f"classes ({where})"
                    )
                pairs.append((src, cls))
            names = tuple(listed)
            label_map = tuple(pairs)
            void_values = self.void_values
        else:
            void = set(self.void_classes)
            missing = sorted(void - set(listed))
            if missing:
                raise self._fail(f"void_classes: {missing[0]!r} is not a class ({where})")
            names = tuple(n for n in listed if n not in void)
            label_map = tuple((i, names.index(n)) for i, n in enumerate(listed) if n not in void)
            clash = sorted(set(self.void_values) & {i for i, _ in label_map})
            if clash:
                raise self._fail(
                    f"void_values: {clash[0]} is the value of class {listed[clash[0]]!r} ({where})"
                )
            void_values = tuple(
                sorted({*self.void_values, *(i for i, n in enumerate(listed) if n in void)})
            )
        return names, self._spec(label_map, self._instance_classes(names, where), void_values)

    def _instance_classes(self, names: tuple[str, ...], where: str) -> tuple[int, ...]:
        if self.instances != "connected-components":
            return ()
        if self.instance_classes is None:
            return tuple(range(1, len(names)))
        out = []
        for n in self.instance_classes:
            if n not in names:
                raise self._fail(f"instance_classes: {n!r} is not a (non-void) class ({where})")
            out.append(names.index(n))
        return tuple(out)


def _toml_value(value: Any) -> Any:
    if isinstance(value, ClassWeightConfig):
        # TOML has no null: unset parameters are left out (from_dict restores them).
        return {k: v for k, v in value.to_dict().items() if v is not None}
    return list(value) if isinstance(value, tuple) else value


def _unknown_key(key: str, known: Any, prefix: str = "") -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return f"unknown key {prefix}{key!r}{hint}"


def _typed(value: Any, kind: type, key: str, fail: Any) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise fail(f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def _int(value: Any, key: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _int_key(key: str, where: str, fail: Any) -> int:
    try:
        value = int(key)
    except ValueError:
        raise fail(f"{where}: key {key!r} is not an integer source value") from None
    if value < 0:
        raise fail(f"{where}: key {key!r} is negative")
    return value


def _build_pairs(table: dict[str, Any], fail: Any) -> tuple[tuple[str, Any], ...]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in BUILD_KEYS:
            raise fail(_unknown_key(key, BUILD_KEYS, "[build] "))
        if key == "class_weights":
            try:
                if isinstance(value, str):
                    value = ClassWeightConfig(scheme=value)
                elif isinstance(value, dict):
                    value = ClassWeightConfig.from_dict(value)
                else:
                    raise fail("[build] class_weights must be a scheme name or a table")
            except ValueError as exc:
                if isinstance(exc, RecipeError):
                    raise
                raise fail(f"[build] class_weights: {exc}") from None
        elif key == "spacing":
            if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                raise fail(f"[build] spacing must be a list of numbers, got {value!r}")
            value = tuple(float(v) for v in value)
        elif key in _FLOAT_KEYS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail(f"[build] {key} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise fail(f"[build] {key} must be finite, got {value!r}")
        elif key == "border_region":
            value = _typed(value, str, f"[build] {key}", fail)
        elif key == "zstd_level":
            value = _typed(value, int, f"[build] {key}", fail)
        else:
            value = _int(value, f"[build] {key}", fail)
        out[key] = value
    return tuple(sorted(out.items()))


def _relative(path: str, key: str, recipe: Recipe) -> None:
    p = Path(path)
    if p.is_absolute() or ".." in p.parts:
        raise recipe._fail(f"{key} must be a path inside the dataset, got {path!r}")


def _read_codes(root: Path, name: str) -> list[str]:
    path = root / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: the recipe's codes_file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the class names: {exc}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: lists no class names")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{path}: class name {dup[0]!r} appears twice")
    return names


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
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{p}: recipe file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{p}: cannot read the recipe: {exc}") from None
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
    ['camvid', 'cityscapes', 'coco', 'dsb2018', 'partial']
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
