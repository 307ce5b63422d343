"""Command line interface: parses arguments and delegates to the library.

Exit codes: 0 success, 1 bad data or store (the message names the file),
2 usage errors (bad options).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from maskprep._class_weights import NORMALIZATIONS, SCHEMES, ClassWeightConfig
from maskprep._config import BORDER_REGIONS, BuildConfig
from maskprep._errors import MaskprepError
from maskprep._ingest import LAYOUTS
from maskprep._pipeline import ON_ERROR, SCHEDULERS, BuildSummary, build_weights
from maskprep._sample_data import make_sample
from maskprep._version import __version__

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


def _parse_spacing(value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers such as 1,0.5,0.5, got {value!r}"
        ) from None


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
@click.option(
    "--layout",
    type=click.Choice(LAYOUTS),
    default="auto",
    show_default=True,
    help="Dataset layout; auto detects instances or dsb2018.",
)
@click.option(
    "--void-label",
    type=int,
    default=255,
    show_default=True,
    help="Label given to unannotated pixels (the trainer's ignore_index).",
)
@click.option(
    "--unlabeled-value",
    type=int,
    default=None,
    help="Mask value that means 'not annotated' (in addition to unlabeled/ masks).",
)
@click.option(
    "--class-weights",
    "scheme",
    type=click.Choice(SCHEMES),
    default="balanced",
    show_default=True,
    help="Class weighting scheme.",
)
@click.option(
    "--mu",
    type=float,
    default=None,
    help="mu of log-ratio and clamped (default: number of classes).",
)
@click.option("--enet-c", type=float, default=1.02, show_default=True, help="c of the enet scheme.")
@click.option(
    "--beta",
    type=float,
    default=None,
    help="beta of effective-number (default: chosen from the data).",
)
@click.option(
    "--class-weights-normalize",
    "normalize",
    type=click.Choice(NORMALIZATIONS),
    default="none",
    show_default=True,
    help="Rescale class weights after the scheme.",
)
@click.option(
    "--class-weights-max",
    "max_weight",
    type=float,
    default=None,
    help="Cap class weights at this value.",
)
@click.option("--w0", type=float, default=10.0, show_default=True, help="Border term amplitude.")
@click.option(
    "--sigma",
    type=float,
    default=5.0,
    show_default=True,
    help="Border term width (pixels, or spacing units).",
)
@click.option(
    "--border-region",
    type=click.Choice(BORDER_REGIONS),
    default="background",
    show_default=True,
    help="Apply the border term to background pixels only, or all.",
)
@click.option("--spacing", default=None, help="Voxel size per axis, e.g. 1,0.5,0.5.")
@click.option("--shard-size", type=int, default=64, show_default=True, help="Samples per shard.")
@click.option(
    "--scheduler",
    default="threads",
    show_default=True,
    help=f"Dask scheduler: {', '.join(SCHEDULERS)}, or tcp://HOST:PORT.",
)
@click.option("--workers", type=int, default=None, help="Number of local workers.")
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
def build_weights_cmd(
    dataset_dir: Path,
    out: str,
    layout: str,
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
    on_error: str,
    max_pixels: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Build training shards with void fill, class weights and border weight maps.

    \b
    Re-running the same command on an interrupted build completes it, writing
    only the missing shards.

    \b
    Example:
        maskprep build-weights data/nuclei -o nuclei.zarr --class-weights clamped --w0 10 --sigma 5
        maskprep build-weights data/nuclei -o s3://bucket/nuclei.zarr --scheduler tcp://head:8786
    """
    with _user_errors():
        config = BuildConfig(
            layout=layout,
            void_label=void_label,
            unlabeled_value=unlabeled_value,
            class_weights=ClassWeightConfig(
                scheme=scheme,
                mu=mu,
                enet_c=enet_c,
                beta=beta,
                normalize=normalize,
                max_weight=max_weight,
            ),
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
            progress=not quiet,
            on_error=on_error,
        )
        click.echo(_format_summary(summary))


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
        click.echo(f"Wrote {n_images} samples ({layout} layout) to {path}")
