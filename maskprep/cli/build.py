"""The commands that compute: build-weights and reweight."""

from __future__ import annotations

from pathlib import Path

import click

from maskprep.cli.app import main, user_errors
from maskprep.cli.options import (
    apply_options,
    build_config,
    class_weight_config,
    dataset_options,
    field_options,
    quiet_option,
    required_class_weight_options,
    scheduler_kwargs,
    scheduler_options,
    shard_options,
)
from maskprep.cli.progress import progress_for
from maskprep.pipeline import ON_ERROR, BuildSummary, build_weights, reweight

__all__ = ["format_summary"]


@main.command(
    "build-weights", short_help="Build training shards: void fill, class and border weights."
)
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    required=True,
    help="Output zarr v3 store: a new directory (train.zarr) or a URL (s3://bucket/train.zarr).",
)
@dataset_options
@shard_options
@scheduler_options(build_weights)
@apply_options(
    field_options(
        build_weights,
        [
            (
                "retries",
                click.IntRange(min=0),
                "Retries of a failed task on a dask-distributed cluster (a lost worker, say).",
            ),
            (
                "on_error",
                click.Choice(ON_ERROR),
                "fail: stop at bad input; skip: build without bad samples and list them.",
            ),
        ],
    )
)
@click.option("--overwrite", is_flag=True, help="Replace an existing maskprep store at --out.")
@quiet_option
@click.pass_context
def build_weights_cmd(ctx: click.Context, **_: object) -> None:
    """Build training shards with void fill, class weights and border weight maps.

    Re-running the same command on an interrupted build completes it, writing
    only the missing shards.

    \b
    Example:
        maskprep build-weights data/nuclei -o nuclei.zarr \\
            --class-weights clamped --w0 10 --sigma 5
        maskprep build-weights data/nuclei -o s3://bucket/nuclei.zarr \\
            --scheduler tcp://head:8786
        maskprep build-weights data/camvid -o camvid.zarr --recipe camvid
    """
    p = ctx.params
    with user_errors():
        config = build_config(ctx, p["dataset_dir"])
        with progress_for(p["quiet"]) as renderer:
            # Any: the library's progress parameter is becoming a callback (stage, done, total).
            progress = renderer
            summary = build_weights(
                p["dataset_dir"],
                p["out"],
                config,
                **scheduler_kwargs(ctx),
                overwrite=p["overwrite"],
                progress=progress,
                on_error=p["on_error"],
                retries=p["retries"],
            )
        click.echo(format_summary(summary))


def format_summary(s: BuildSummary) -> str:
    """The table build-weights prints: samples, classes with counts and weights, shards."""
    total = sum(s.class_counts)
    what = f"{s.n_samples} samples ({s.n_train} train, {s.n_valid} valid), "
    if s.shards_written == 0 and s.shards_skipped > 0:
        head = f"{s.out} is already complete: {what}{s.bytes_on_disk / 1e6:.1f} MB; nothing written"
    else:
        head = f"Wrote {s.out}: {what}{s.bytes_on_disk / 1e6:.1f} MB in {s.seconds:.1f} s"
    lines = [
        head,
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


@main.command("reweight", short_help="Switch a built store to another class-weight scheme.")
@click.argument("store")
@required_class_weight_options
@scheduler_options(reweight)
@quiet_option
@click.pass_context
def reweight_cmd(ctx: click.Context, **_: object) -> None:
    """Switch a built store to another class-weight scheme, without the dataset.

    Rewrites the metadata and the weight maps (they include the class weight);
    the result equals a fresh build with that scheme, byte for byte.

    \b
    Example:
        maskprep reweight nuclei.zarr --class-weights median-frequency
    """
    p = ctx.params
    with user_errors():
        config = class_weight_config(ctx)
        with progress_for(p["quiet"]) as renderer:
            progress = renderer  # a callback (stage, done, total), as for build_weights
            summary = reweight(
                p["store"],
                config,
                **scheduler_kwargs(ctx),
                progress=progress,
            )
        click.echo(f"Reweighted {summary.store} to {summary.scheme} in {summary.seconds:.1f} s")
        for name, old, new in zip(
            summary.class_names, summary.old_weights, summary.new_weights, strict=True
        ):
            click.echo(f"  {name:<16}{old:>10.4f} -> {new:.4f}")
