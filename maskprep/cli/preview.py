"""The preview command: PNGs of a built store or of a dataset directory."""

from __future__ import annotations

from pathlib import Path

import click

from maskprep.cli.app import main, user_errors
from maskprep.cli.options import (
    DATASET_PARAMS,
    build_config,
    dataset_options,
    field_option,
    given,
    quiet_option,
)
from maskprep.cli.progress import progress_for
from maskprep.tools.preview import preview

__all__: list[str] = []


@main.command("preview", short_help="Draw PNGs of samples (labels, void, weights), class stats.")
@click.argument("path")
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for the PNGs (created if missing).",
)
@field_option(
    preview,
    "samples",
    "-n",
    type=click.IntRange(min=0),
    help="Samples to draw: those with void first, then most instances.",
)
@click.option("--id", "ids", multiple=True, help="Draw this sample instead (repeatable).")
@field_option(
    preview,
    "dpi",
    type=click.FloatRange(min=20),
    help="Resolution; a sample figure is 10 x 8.4 inches.",
)
@click.option("--palette", is_flag=True, help="256-colour PNGs, about half the size.")
@dataset_options
@field_option(
    preview,
    "scan_limit",
    type=click.IntRange(min=1),
    help="Samples scanned for the class weights of a dataset preview.",
)
@quiet_option
@click.pass_context
def preview_cmd(ctx: click.Context, **_: object) -> None:
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
    p = ctx.params
    with user_errors():
        # Build options (or a recipe) given: preview what a build would store.
        # Given with a store, the library refuses them.
        dataset_preview = any(given(ctx, n) for n in (*DATASET_PARAMS, "scan_limit"))
        config = build_config(ctx, Path(p["path"])) if dataset_preview else None
        with progress_for(p["quiet"]) as progress:
            written = preview(
                p["path"],
                p["out_dir"],
                samples=p["samples"],
                ids=p["ids"] or None,
                config=config,
                dpi=p["dpi"],
                scan_limit=p["scan_limit"],
                palette=p["palette"],
                progress=progress,
            )
    click.echo(f"Wrote {len(written)} PNG(s) to {p['out_dir']}:")
    for path in written:
        click.echo(f"  {path.name}")
