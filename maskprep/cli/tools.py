"""The commands that write sample data or look after stores: make-sample, verify, inspect,
upgrade."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from maskprep.cli.app import main, user_errors
from maskprep.cli.options import comma_list, default_of, field_option, option, quiet_option
from maskprep.cli.progress import progress_for
from maskprep.ingest import BUILTIN_LAYOUTS as LAYOUTS
from maskprep.tools.inspect import inspect_store
from maskprep.tools.inspect_text import format_inspection
from maskprep.tools.sample_data import make_sample
from maskprep.tools.upgrade import upgrade_store
from maskprep.tools.verify import verify_store

__all__: list[str] = []

# The layouts make_sample writes: the instance layouts but auto (detection).
_SAMPLE_LAYOUTS = tuple(name for name in LAYOUTS if name != "auto")


@main.command("make-sample", short_help="Write a small synthetic dataset of touching nuclei.")
@click.argument("directory", type=click.Path(path_type=Path))
@field_option(make_sample, "n_images", "-n", type=int, help="Number of samples.")
@click.option(
    "--size",
    default=",".join(str(n) for n in default_of(make_sample, "size")),
    show_default=True,
    callback=comma_list(int, "256,256", "integers"),
    help="Spatial shape, 2 or 3 comma-separated values (3 writes TIFF stacks).",
)
@field_option(
    make_sample,
    "layout",
    type=click.Choice(_SAMPLE_LAYOUTS),
    help="instances: one label image per sample; dsb2018: one PNG per nucleus.",
)
@option(
    make_sample, "seed", "--seed", type=int, help="Random seed; a seed always gives the same files."
)
def make_sample_cmd(
    directory: Path, n_images: int, size: tuple[int, ...], layout: str, seed: int
) -> None:
    """Write a small synthetic dataset of touching nuclei (deterministic).

    \b
    Example:
        maskprep make-sample sample_data -n 24 --size 256,256
    """
    with user_errors():
        path = make_sample(directory, n_images=n_images, size=size, layout=layout, seed=seed)
        click.echo(f"Sample dataset ready: {n_images} samples ({layout} layout) in {path}")


@main.command("verify", short_help="Check a store: complete, checksums, metadata.")
@click.argument("store")
@quiet_option
def verify_cmd(store: str, quiet: bool) -> None:
    """Check a store: complete, shard checksums intact, metadata consistent.

    Exits 0 when the store is sound, 1 naming every problem otherwise.

    \b
    Example:
        maskprep verify nuclei.zarr
    """
    with user_errors(), progress_for(quiet) as progress:
        report = verify_store(store, progress=progress)
    if report.ok:
        click.echo(
            f"OK {report.store}: {report.shards_checked} shards checked, "
            f"{report.samples_recounted} samples recounted"
        )
        return
    for problem in report.problems:
        click.echo(f"FAILED: {problem}", err=True)
    sys.exit(1)


@main.command("inspect", short_help="Summarise a store: splits, classes, void, shards.")
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
    with user_errors():
        info = inspect_store(store)
    click.echo(json.dumps(info, indent=2) if as_json else format_inspection(info))


@main.command("upgrade", short_help="Move a format-2 store's records into arrays (format 3).")
@click.argument("store")
def upgrade_cmd(store: str) -> None:
    """Rewrite a format-2 store's per-sample records as arrays (format 3), in place.

    Only the metadata is rewritten; the image, labels and target arrays are
    not touched. A format-3 store is left as it is; a format-1 (untiled) store
    is refused (build it again with tiles).

    \b
    Example:
        maskprep upgrade nuclei.zarr
    """
    with user_errors():
        report = upgrade_store(store)
    if not report.changed:
        click.echo(f"{report.store}: already format {report.format_after}; nothing to do")
        return
    click.echo(
        f"Upgraded {report.store}: format {report.format_before} -> {report.format_after}, "
        f"zarr.json {report.json_bytes_before:,} -> {report.json_bytes_after:,} bytes"
    )
