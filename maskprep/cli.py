"""Command line interface: parses arguments and delegates to the library.

Exit codes: 0 success, 1 bad data or store (the message names the file),
2 usage errors (bad options).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from maskprep._version import __version__
from maskprep.config import BORDER_REGIONS, BuildConfig
from maskprep.errors import MaskprepError
from maskprep.ingest import BUILTIN_LAYOUTS as LAYOUTS
from maskprep.pipeline import ON_ERROR, SCHEDULERS, BuildSummary, build_weights
from maskprep.pipeline.reweight import reweight
from maskprep.tools.inspect import inspect_store
from maskprep.tools.inspect_text import format_inspection
from maskprep.tools.preview import preview
from maskprep.tools.sample_data import make_sample
from maskprep.tools.verify import verify_store
from maskprep.weighting import NORMALIZATIONS, SCHEMES, ClassWeightConfig

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn library errors into one clear line and the documented exit code."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except MaskprepError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        finally:
            for w in caught:
                click.echo(f"Warning: {w.message}", err=True)


def _progress_lines(stage: str, done: int, total: int) -> None:
    if done == 0:
        click.echo(stage, err=True)


def _parse_spacing(value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers such as 1,0.5,0.5, got {value!r}"
        ) from None


def _class_weight_options(f: F) -> F:
    """The options of :class:`ClassWeightConfig`, shared by build-weights and reweight."""
    f = click.option(
        "--class-weights-max",
        "max_weight",
        type=float,
        default=None,
        help="Cap class weights at this value.",
    )(f)
    f = click.option(
        "--class-weights-normalize",
        "normalize",
        type=click.Choice(NORMALIZATIONS),
        default="none",
        show_default=True,
        help="Rescale class weights after the scheme.",
    )(f)
    f = click.option(
        "--beta",
        type=float,
        default=None,
        help="beta of effective-number (default: chosen from the data).",
    )(f)
    f = click.option(
        "--enet-c", type=float, default=1.02, show_default=True, help="c of the enet scheme."
    )(f)
    f = click.option(
        "--mu",
        type=float,
        default=None,
        help="mu of log-ratio and clamped (default: number of present classes).",
    )(f)
    f = click.option(
        "--class-weights",
        "scheme",
        type=click.Choice(SCHEMES),
        default="balanced",
        show_default=True,
        help="Class weighting scheme.",
    )(f)
    return f


def _class_weight_config(
    scheme: str,
    mu: float | None,
    enet_c: float,
    beta: float | None,
    normalize: str,
    max_weight: float | None,
) -> ClassWeightConfig:
    return ClassWeightConfig(
        scheme=scheme, mu=mu, enet_c=enet_c, beta=beta, normalize=normalize, max_weight=max_weight
    )


def _recipe_option(f: F) -> F:
    return click.option(
        "--recipe",
        default=None,
        metavar="NAME|FILE.toml",
        help="Dataset recipe: a bundled name (camvid, cityscapes, coco, dsb2018, partial) or a "
        "TOML file; gives layout, classes and defaults, which options given here override.",
    )(f)


def _dataset_options(f: F) -> F:
    """How a dataset directory is read and weighted: shared by build-weights and preview."""
    f = click.option("--spacing", default=None, help="Voxel size per axis, e.g. 1,0.5,0.5.")(f)
    f = click.option(
        "--border-region",
        type=click.Choice(BORDER_REGIONS),
        default="background",
        show_default=True,
        help="Apply the border term to background pixels only, or all.",
    )(f)
    f = click.option(
        "--sigma",
        type=float,
        default=5.0,
        show_default=True,
        help="Border term width (pixels, or spacing units).",
    )(f)
    f = click.option(
        "--w0", type=float, default=10.0, show_default=True, help="Border term amplitude."
    )(f)
    f = _class_weight_options(f)
    f = click.option(
        "--unlabeled-value",
        type=int,
        default=None,
        help="Mask value that means 'not annotated' (in addition to unlabeled/ masks).",
    )(f)
    f = click.option(
        "--void-label",
        type=int,
        default=255,
        show_default=True,
        help="Label given to unannotated pixels (the trainer's ignore_index).",
    )(f)
    f = _recipe_option(f)
    f = click.option(
        "--layout",
        type=click.Choice(LAYOUTS),
        default="auto",
        show_default=True,
        help="Dataset layout; auto detects instances or dsb2018.",
    )(f)
    return f


def _scheduler_options(f: F) -> F:
    """Where the Dask work runs."""
    f = click.option("--workers", type=int, default=None, help="Number of local workers.")(f)
    f = click.option(
        "--scheduler",
        default="threads",
        show_default=True,
        help=f"Dask scheduler: {', '.join(SCHEDULERS)}, or tcp://HOST:PORT.",
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maskprep")
def main() -> None:
    """Training-ready segmentation data: void fill, class weights, border weight maps.

    \b
    Example:
        maskprep make-sample sample_data
        maskprep build-weights sample_data -o sample.zarr
    """


@main.command("build-weights")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    required=True,
    help="Output zarr v3 store: a new directory (train.zarr) or a URL (s3://bucket/train.zarr).",
)
@_dataset_options
@click.option("--shard-size", type=int, default=64, show_default=True, help="Samples per shard.")
@_scheduler_options
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Retries of a failed task on a dask-distributed cluster (a lost worker, say).",
)
@click.option(
    "--on-error",
    type=click.Choice(ON_ERROR),
    default="fail",
    show_default=True,
    help="fail: stop at bad input; skip: build without bad samples and list them.",
)
@click.option(
    "--max-pixels",
    type=int,
    default=2**28,
    show_default=True,
    help="Refuse images with more pixel values than this (decompression bombs).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing maskprep store at --out.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def build_weights_cmd(
    ctx: click.Context,
    dataset_dir: Path,
    out: str,
    layout: str,
    recipe: str | None,
    void_label: int,
    unlabeled_value: int | None,
    scheme: str,
    mu: float | None,
    enet_c: float,
    beta: float | None,
    normalize: str,
    max_weight: float | None,
    w0: float,
    sigma: float,
    border_region: str,
    spacing: str | None,
    shard_size: int,
    scheduler: str,
    workers: int | None,
    retries: int,
    on_error: str,
    max_pixels: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Build training shards with void fill, class weights and border weight maps.

    Re-running the same command on an interrupted build completes it, writing
    only the missing shards.

    \b
    Example:
        maskprep build-weights data/nuclei -o nuclei.zarr --class-weights clamped --w0 10 --sigma 5
        maskprep build-weights data/nuclei -o s3://bucket/nuclei.zarr --scheduler tcp://head:8786
        maskprep build-weights data/camvid -o camvid.zarr --recipe camvid
    """
    with _user_errors():
        if recipe is not None:
            config = _recipe_config(ctx, recipe, dataset_dir)
        else:
            config = BuildConfig(
                layout=layout,
                void_label=void_label,
                unlabeled_value=unlabeled_value,
                class_weights=_class_weight_config(scheme, mu, enet_c, beta, normalize, max_weight),
                w0=w0,
                sigma=sigma,
                border_region=border_region,
                spacing=_parse_spacing(spacing),
                shard_size=shard_size,
                max_pixels=max_pixels,
            )
        summary = build_weights(
            dataset_dir,
            out,
            config,
            scheduler=scheduler,
            workers=workers,
            overwrite=overwrite,
            progress=None if quiet else _progress_lines,
            on_error=on_error,
            retries=retries,
        )
        click.echo(_format_summary(summary))


# build-weights options that override a recipe's defaults when given explicitly.
_RECIPE_OVERRIDES = (
    *("void_label", "unlabeled_value", "w0", "sigma", "border_region", "spacing"),
    *("shard_size", "max_pixels"),
)
_CLASS_WEIGHT_PARAMS = ("scheme", "mu", "enet_c", "beta", "normalize", "max_weight")


def _recipe_config(ctx: click.Context, ref: str, dataset_dir: Path) -> BuildConfig:
    """BuildConfig from a recipe, with the options given on the command line on top."""
    from maskprep.recipes.recipe import load_recipe

    recipe = load_recipe(ref)
    params = ctx.params

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)

    if given("layout") and params["layout"] not in ("auto", recipe.layout):
        raise click.UsageError(
            f"--layout {params['layout']} conflicts with the {recipe.layout} layout of "
            f"recipe {recipe.origin}"
        )
    overrides: dict[str, Any] = {n: params[n] for n in _RECIPE_OVERRIDES if given(n)}
    if "spacing" in overrides:
        overrides["spacing"] = _parse_spacing(overrides["spacing"])
    weights = {n: params[n] for n in _CLASS_WEIGHT_PARAMS if given(n)}
    if weights:
        base = recipe.defaults.get("class_weights", ClassWeightConfig())
        overrides["class_weights"] = dataclasses.replace(base, **weights)
    return recipe.build_config(dataset_dir, **overrides)


def _format_summary(s: BuildSummary) -> str:
    total = sum(s.class_counts)
    lines = [
        f"Wrote {s.out}: {s.n_samples} samples ({s.n_train} train, {s.n_valid} valid), "
        f"{s.bytes_on_disk / 1e6:.1f} MB in {s.seconds:.1f} s",
        f"{'class':<16}{'pixels (train)':>16}{'fraction':>10}{'weight':>10}",
    ]
    for name, n, w in zip(s.class_names, s.class_counts, s.class_weights, strict=True):
        frac = n / total if total else 0.0
        lines.append(f"{name:<16}{n:>16,}{frac:>10.4f}{w:>10.4f}")
    lines.append(f"void pixels (all splits): {s.void_pixels:,}")
    lines.append(f"shards written: {s.shards_written}, already complete: {s.shards_skipped}")
    for note in s.notes:
        lines.append(f"note: {note['note']}")
    if s.quarantined:
        lines.append(f"{len(s.quarantined)} sample(s) quarantined (left out, listed in metadata):")
        lines.extend(f"  {q['error']}" for q in s.quarantined)
    return "\n".join(lines)


@main.command("make-sample")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-n", "--n-images", type=int, default=24, show_default=True)
@click.option(
    "--size",
    default="256,256",
    show_default=True,
    help="Spatial shape, 2 or 3 comma-separated values (3 writes TIFF stacks).",
)
@click.option(
    "--layout", type=click.Choice(["instances", "dsb2018"]), default="instances", show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True)
def make_sample_cmd(directory: Path, n_images: int, size: str, layout: str, seed: int) -> None:
    """Write a small synthetic dataset of touching nuclei (deterministic).

    \b
    Example:
        maskprep make-sample sample_data -n 24 --size 256,256
    """
    with _user_errors():
        try:
            shape = tuple(int(v) for v in size.split(","))
        except ValueError:
            raise click.BadParameter(f"expected integers such as 256,256, got {size!r}") from None
        path = make_sample(directory, n_images=n_images, size=shape, layout=layout, seed=seed)
        click.echo(f"Sample dataset ready: {n_images} samples ({layout} layout) in {path}")


@main.command("verify")
@click.argument("store")
def verify_cmd(store: str) -> None:
    """Check a store: complete, shard checksums intact, metadata consistent.

    Exits 0 when the store is sound, 1 naming every problem otherwise.

    \b
    Example:
        maskprep verify nuclei.zarr
    """
    with _user_errors():
        report = verify_store(store)
    if report.ok:
        click.echo(
            f"OK {report.store}: {report.shards_checked} shards checked, "
            f"{report.samples_recounted} samples recounted"
        )
        return
    for problem in report.problems:
        click.echo(f"FAILED: {problem}", err=True)
    sys.exit(1)


@main.command("reweight")
@click.argument("store")
@_class_weight_options
@_scheduler_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def reweight_cmd(
    store: str,
    scheme: str,
    mu: float | None,
    enet_c: float,
    beta: float | None,
    normalize: str,
    max_weight: float | None,
    scheduler: str,
    workers: int | None,
    quiet: bool,
) -> None:
    """Switch a built store to another class-weight scheme, without the dataset.

    Rewrites the metadata and the weight maps (they include the class weight);
    the result equals a fresh build with that scheme, byte for byte.

    \b
    Example:
        maskprep reweight nuclei.zarr --class-weights median-frequency
    """
    with _user_errors():
        config = _class_weight_config(scheme, mu, enet_c, beta, normalize, max_weight)
        summary = reweight(
            store,
            config,
            scheduler=scheduler,
            workers=workers,
            progress=None if quiet else _progress_lines,
        )
        click.echo(f"Reweighted {summary.store} to {summary.scheme} in {summary.seconds:.1f} s")
        for name, old, new in zip(
            summary.class_names, summary.old_weights, summary.new_weights, strict=True
        ):
            click.echo(f"  {name:<16}{old:>10.4f} -> {new:.4f}")


@main.command("inspect")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_cmd(store: str, as_json: bool) -> None:
    """Summarise a store: splits, classes, void, instances, shards, size, provenance.

    A store whose build did not finish is still summarised, marked INCOMPLETE.

    \b
    Example:
        maskprep inspect nuclei.zarr
        maskprep inspect nuclei.zarr --json > nuclei.json
        maskprep inspect s3://bucket/nuclei.zarr
    """
    with _user_errors():
        info = inspect_store(store)
    click.echo(json.dumps(info, indent=2) if as_json else format_inspection(info))


# Options of preview that only make sense for a dataset directory.
_PREVIEW_BUILD_OPTIONS = (
    *("layout", "recipe", "void_label", "unlabeled_value", "scheme", "mu", "enet_c", "beta"),
    *("normalize", "max_weight", "w0", "sigma", "border_region", "spacing", "scan_limit"),
)


@main.command("preview")
@click.argument("path")
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for the PNGs (created if missing).",
)
@click.option(
    "-n",
    "--samples",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Samples to draw: those with void first, then most instances.",
)
@click.option("--id", "ids", multiple=True, help="Draw this sample instead (repeatable).")
@click.option(
    "--dpi",
    type=click.FloatRange(min=20),
    default=80,
    show_default=True,
    help="Resolution; a sample figure is 10 x 8.4 inches.",
)
@click.option("--palette", is_flag=True, help="256-colour PNGs, about half the size.")
@_dataset_options
@click.option(
    "--scan-limit",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Samples scanned for the class weights of a dataset preview.",
)
@click.pass_context
def preview_cmd(
    ctx: click.Context,
    path: str,
    out_dir: Path,
    samples: int,
    ids: tuple[str, ...],
    dpi: float,
    palette: bool,
    layout: str,
    recipe: str | None,
    void_label: int,
    unlabeled_value: int | None,
    scheme: str,
    mu: float | None,
    enet_c: float,
    beta: float | None,
    normalize: str,
    max_weight: float | None,
    w0: float,
    sigma: float,
    border_region: str,
    spacing: str | None,
    scan_limit: int,
) -> None:
    """Draw PNGs of samples (image, labels and void, outlines, weights) and class stats.

    PATH is a built store, or a dataset directory: then the PNGs show the void
    fill and weights build-weights would produce with the same options
    (--layout to --spacing, which apply to dataset directories only; class
    weights from up to --scan-limit samples).

    \b
    Example:
        maskprep preview nuclei.zarr -o previews --samples 4
        maskprep preview data/nuclei -o previews --w0 10 --sigma 5
        maskprep preview data/camvid -o previews --recipe camvid
    """
    with _user_errors():
        given = [
            n
            for n in _PREVIEW_BUILD_OPTIONS
            if ctx.get_parameter_source(n) != ParameterSource.DEFAULT
        ]
        config = None
        if recipe is not None:
            config = _recipe_config(ctx, recipe, Path(path))
        elif given:
            config = BuildConfig(
                layout=layout,
                void_label=void_label,
                unlabeled_value=unlabeled_value,
                class_weights=_class_weight_config(scheme, mu, enet_c, beta, normalize, max_weight),
                w0=w0,
                sigma=sigma,
                border_region=border_region,
                spacing=_parse_spacing(spacing),
            )
        written = preview(
            path,
            out_dir,
            samples=samples,
            ids=ids or None,
            config=config,
            dpi=dpi,
            scan_limit=scan_limit,
            palette=palette,
        )
    click.echo(f"Wrote {len(written)} PNG(s) to {out_dir}:")
    for p in written:
        click.echo(f"  {p.name}")
