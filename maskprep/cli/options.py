"""Option groups, each defined once, and the one function that maps each onto the library.

Every option's destination is the library's name for the value (the
dataclass field or keyword argument), and its default is read from there
(:func:`default_of`), so nothing here restates a default.

* class weights -> :class:`ClassWeightConfig` (:func:`class_weight_config`)
* dataset and build options -> :class:`BuildConfig` (:func:`build_config`),
  with a recipe underneath when ``--recipe`` is given
* scheduler -> the ``scheduler``/``workers`` arguments (:func:`scheduler_kwargs`)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from maskprep.config import BORDER_REGIONS, VOID_BORDER_MODES, BuildConfig
from maskprep.ingest import BUILTIN_LAYOUTS as LAYOUTS
from maskprep.pipeline import SCHEDULERS
from maskprep.weighting import NORMALIZATIONS, SCHEMES, ClassWeightConfig

__all__ = [
    "CLASS_WEIGHT_PARAMS",
    "DATASET_PARAMS",
    "apply_options",
    "build_config",
    "class_weight_config",
    "class_weight_options",
    "comma_list",
    "dataset_options",
    "default_of",
    "field_option",
    "field_options",
    "given",
    "option",
    "quiet_option",
    "required_class_weight_options",
    "scheduler_kwargs",
    "scheduler_options",
    "shard_options",
]

F = TypeVar("F", bound=Callable[..., Any])

CLASS_WEIGHT_PARAMS = tuple(f.name for f in dataclasses.fields(ClassWeightConfig))
"""Destinations of the class-weight options: the fields of ClassWeightConfig."""

DATASET_PARAMS = (
    *("layout", "recipe", "void_label", "unlabeled_value", *CLASS_WEIGHT_PARAMS),
    *("w0", "sigma", "border_region", "spacing"),
    *("targets", "boundary_width", "rays", "affinity_offsets", "void_border", "void_border_mode"),
)
"""Destinations of :func:`dataset_options`, in help order."""

# BuildConfig fields an option may set directly (class_weights comes from its group).
_BUILD_FIELDS = frozenset(f.name for f in dataclasses.fields(BuildConfig)) - {"class_weights"}


def default_of(owner: Any, name: str) -> Any:
    """Default of the dataclass field or keyword parameter ``name`` of ``owner``.

    Examples
    --------
    >>> default_of(BuildConfig, "w0"), default_of(ClassWeightConfig, "scheme")
    (10.0, 'balanced')
    >>> from maskprep.pipeline import build_weights
    >>> default_of(build_weights, "scheduler")
    'threads'
    """
    if dataclasses.is_dataclass(owner):
        for f in dataclasses.fields(owner):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
                break
    else:
        param = inspect.signature(owner).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise LookupError(f"{getattr(owner, '__name__', owner)} has no default for {name!r}")


def option(owner: Any, name: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option for ``owner``'s ``name``, with ``owner``'s default.

    The default is shown in the help unless it is None (the help then says
    what None means).
    """
    default = default_of(owner, name)
    kwargs.setdefault("show_default", default is not None)
    return click.option(*decls, name, default=default, **kwargs)


def field_option(owner: Any, name: str, *short: str, **kwargs: Any) -> Callable[[F], F]:
    """:func:`option` with the flag spelt from ``name`` (``max_pixels`` -> ``--max-pixels``).

    ``short`` are extra declarations before the flag, such as ``-n``.
    """
    return option(owner, name, *short, "--" + name.replace("_", "-"), **kwargs)


def field_options(owner: Any, table: list[tuple[str, Any, str]]) -> list[Callable[[F], F]]:
    """One :func:`field_option` per ``(name, type, help)`` row of ``table``."""
    return [field_option(owner, name, type=kind, help=text) for name, kind, text in table]


def quiet_option(f: F) -> F:
    """``-q/--quiet``: no progress output (the commands that take a while)."""
    return click.option("-q", "--quiet", is_flag=True, help="No progress output.")(f)


def given(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was given (command line, environment), not defaulted."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def apply_options(options: list[Callable[[Any], Any]]) -> Callable[[F], F]:
    """Decorator: the click options ``options``, the first one listed first in the help."""
    return lambda f: _apply(f, options)


def _apply(f: F, options: list[Callable[[Any], Any]]) -> F:
    for decorate in reversed(options):  # the first one listed comes first in the help
        f = decorate(f)
    return f


def comma_list(
    kind: Callable[[str], Any], example: str, what: str = "numbers"
) -> Callable[[click.Context, click.Parameter, str | None], tuple[Any, ...] | None]:
    """A click callback parsing ``1,0.5,0.5`` into a tuple of ``kind`` (None stays None)."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return tuple(kind(v) for v in value.split(","))
        except ValueError:
            raise click.BadParameter(
                f"expected comma-separated {what} such as {example}, got {value!r}", ctx, param
            ) from None

    return parse


class _Names(click.ParamType):
    """Comma-separated names -> a tuple of names (a tuple default passes through)."""

    name = "names"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        names = tuple(v.strip() for v in str(value).split(",") if v.strip())
        if not names:
            self.fail("expected target names such as weights,boundary", param, ctx)
        return names


class _Tile(click.ParamType):
    """``auto``, ``none`` (one chunk per sample) or a positive number of pixels."""

    name = "tile"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in ("auto", "none"):
            return None if text == "none" else "auto"
        try:
            tile = int(text)
        except ValueError:
            tile = 0
        if tile < 1:
            self.fail(
                f"expected auto, none or a positive number of pixels, got {value!r}", param, ctx
            )
        return tile


def _parse_offsets(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[tuple[int, ...], ...] | None:
    if value is None:
        return None
    try:
        return tuple(tuple(int(v) for v in part.split(",")) for part in value.split(";"))
    except ValueError:
        raise click.BadParameter(
            f"expected offsets such as -1,0;0,-1;0,-3 (one per channel), got {value!r}", ctx, param
        ) from None


# --------------------------------------------------------------------------- #
# class weights -> ClassWeightConfig
# --------------------------------------------------------------------------- #


def _scheme_option(required: bool) -> Callable[[F], F]:
    decls = ("--class-weights", "scheme")
    kwargs: dict[str, Any] = {"type": click.Choice(SCHEMES), "metavar": "SCHEME"}
    text = f"Class-weight scheme: {', '.join(SCHEMES)}."
    if required:
        return click.option(*decls, required=True, help=text, **kwargs)
    return option(ClassWeightConfig, "scheme", *decls[:1], help=text, **kwargs)


def _class_weight_options(f: F, *, required: bool) -> F:
    cw = ClassWeightConfig
    return _apply(
        f,
        [
            _scheme_option(required),
            *field_options(
                cw,
                [
                    (
                        "mu",
                        float,
                        "mu of log-ratio and clamped (default: number of present classes).",
                    ),
                    ("enet_c", float, "c of the enet scheme."),
                    ("beta", float, "beta of effective-number (default: chosen from the data)."),
                ],
            ),
            option(
                cw,
                "normalize",
                "--class-weights-normalize",
                type=click.Choice(NORMALIZATIONS),
                help="Rescale class weights after the scheme.",
            ),
            option(
                cw,
                "max_weight",
                "--class-weights-max",
                type=float,
                help="Cap class weights at this value.",
            ),
        ],
    )


def class_weight_options(f: F) -> F:
    """The options of :class:`ClassWeightConfig` (build-weights, preview), with its defaults."""
    return _class_weight_options(f, required=False)


def required_class_weight_options(f: F) -> F:
    """The same, ``--class-weights`` required (reweight: no silent switch to a default)."""
    return _class_weight_options(f, required=True)


def class_weight_config(
    ctx: click.Context, base: ClassWeightConfig | None = None
) -> ClassWeightConfig:
    """The class weights the options ask for.

    Without ``base``, every option counts (defaults included); on top of
    ``base`` (a recipe's scheme), only the options given on the command line.
    """
    if base is None:
        return ClassWeightConfig(**{n: ctx.params[n] for n in CLASS_WEIGHT_PARAMS})
    return dataclasses.replace(
        base, **{n: ctx.params[n] for n in CLASS_WEIGHT_PARAMS if given(ctx, n)}
    )


# --------------------------------------------------------------------------- #
# dataset and build options -> BuildConfig
# --------------------------------------------------------------------------- #


def dataset_options(f: F) -> F:
    """How a dataset directory is read and weighted (build-weights, preview)."""
    bc = BuildConfig
    return _apply(
        f,
        [
            field_option(
                bc,
                "layout",
                type=click.Choice(LAYOUTS),
                help="Dataset layout; auto detects instances or dsb2018.",
            ),
            click.option(
                "--recipe",
                default=None,
                metavar="NAME|FILE.toml",
                help="Dataset recipe: a bundled name (camvid, cityscapes, coco, cremi, "
                "dsb2018, partial) or a TOML file; gives layout, classes and defaults, which "
                "options given here override.",
            ),
            *field_options(
                bc,
                [
                    (
                        "void_label",
                        int,
                        "Label given to unannotated pixels (the trainer's ignore_index).",
                    ),
                    (
                        "unlabeled_value",
                        int,
                        "Mask value that means 'not annotated' (in addition to unlabeled/ masks).",
                    ),
                ],
            ),
            class_weight_options,
            *field_options(
                bc,
                [
                    ("w0", float, "Border term amplitude."),
                    ("sigma", float, "Border term width (pixels, or spacing units)."),
                    (
                        "border_region",
                        click.Choice(BORDER_REGIONS),
                        "Apply the border term to background pixels only, or all.",
                    ),
                ],
            ),
            field_option(
                bc,
                "spacing",
                callback=comma_list(float, "1,0.5,0.5"),
                help="Voxel size per axis, e.g. 1,0.5,0.5.",
            ),
            target_options,
        ],
    )


def target_options(f: F) -> F:
    """Which training targets are stored, and their parameters (BuildConfig fields)."""
    bc = BuildConfig
    return _apply(
        f,
        [
            field_option(
                bc,
                "targets",
                type=_Names(),
                show_default=",".join(default_of(bc, "targets")),
                metavar="NAME[,NAME...]",
                help="Training targets to store: weights, boundary, distance, stardist, "
                "hover, affinities, cellpose (or a plugin's).",
            ),
            *field_options(
                bc,
                [
                    ("boundary_width", int, "boundary target: border thickness, inwards (pixels)."),
                    ("rays", int, "stardist target: number of rays."),
                ],
            ),
            field_option(
                bc,
                "affinity_offsets",
                callback=_parse_offsets,
                help="affinities target: offsets, e.g. -1,0;0,-1;0,-3 (default: -1 per axis).",
            ),
            *field_options(
                bc,
                [
                    (
                        "void_border",
                        float,
                        "Make pixels within this distance of instance borders void.",
                    ),
                    (
                        "void_border_mode",
                        click.Choice(VOID_BORDER_MODES),
                        "between: borders between instances; around: every instance's.",
                    ),
                ],
            ),
        ],
    )


def shard_options(f: F) -> F:
    """BuildConfig options of a build that a preview has no use for."""
    bc = BuildConfig
    return _apply(
        f,
        [
            field_option(bc, "shard_size", type=int, help="Samples per shard."),
            field_option(
                bc,
                "tile",
                type=_Tile(),
                metavar="T|auto|none",
                help="Chunk arrays in tiles of T pixels per spatial axis (store format 3): "
                "small samples of mixed sizes and patches read fast, big samples build in "
                "blocks. auto: 256 in 2D, 64 in 3D; none: one chunk per sample (format 1).",
            ),
            field_option(
                bc,
                "block",
                type=int,
                metavar="B",
                help="Tiled stores: a sample longer than B pixels along an axis is built "
                "block by block, one task a block, so memory is bounded by the block "
                "(rounded up to whole tiles; default 2048 in 2D, 256 in 3D).",
            ),
            field_option(
                bc,
                "max_pixels",
                type=int,
                help="Refuse images with more pixel values than this (decompression bombs).",
            ),
            field_option(
                bc,
                "class_locations",
                type=int,
                metavar="K",
                help="Record up to K pixel locations per class and sample, for class-aware "
                "patch sampling (0: none).",
            ),
            option(
                bc,
                "intensity_stats",
                "--intensity-stats/--no-intensity-stats",
                help="Record per-channel intensity statistics of the train split "
                "(mean, std, percentiles; for normalisation).",
            ),
        ],
    )


def build_config(ctx: click.Context, dataset_dir: Path) -> BuildConfig:
    """The BuildConfig of the command's dataset and build options.

    Without ``--recipe``, every option counts (an option not given has the
    BuildConfig default). With a recipe, the recipe's config is the base and
    only the options given on the command line override it.
    """
    params = ctx.params
    names = [n for n in params if n in _BUILD_FIELDS]
    if params.get("recipe") is None:
        return BuildConfig(**{n: params[n] for n in names}, class_weights=class_weight_config(ctx))
    from maskprep.recipes import load_recipe

    recipe = load_recipe(params["recipe"])
    # "auto" (detect the layout) agrees with any recipe.
    if given(ctx, "layout") and params["layout"] not in ("auto", recipe.layout):
        raise click.UsageError(
            f"--layout {params['layout']} conflicts with the {recipe.layout} layout of "
            f"recipe {recipe.origin}"
        )
    overrides: dict[str, Any] = {n: params[n] for n in names if n != "layout" and given(ctx, n)}
    if any(given(ctx, n) for n in CLASS_WEIGHT_PARAMS):
        base = recipe.defaults.get("class_weights", ClassWeightConfig())
        overrides["class_weights"] = class_weight_config(ctx, base)
    return recipe.build_config(dataset_dir, **overrides)


# --------------------------------------------------------------------------- #
# scheduler -> scheduler, workers
# --------------------------------------------------------------------------- #


def scheduler_options(run: Callable[..., Any]) -> Callable[[F], F]:
    """Where the Dask work of ``run`` (build_weights, reweight) goes, with its defaults."""

    def decorate(f: F) -> F:
        return _apply(
            f,
            [
                field_option(
                    run,
                    "scheduler",
                    help=f"Dask scheduler: {', '.join(SCHEDULERS)}, or tcp://HOST:PORT.",
                ),
                field_option(run, "workers", type=int, help="Number of local workers."),
            ],
        )

    return decorate


def scheduler_kwargs(ctx: click.Context) -> dict[str, Any]:
    """The ``scheduler`` and ``workers`` arguments of build_weights and reweight."""
    return {"scheduler": ctx.params["scheduler"], "workers": ctx.params["workers"]}
