"""PNG previews of samples and class statistics: ``maskprep preview``.

For a built store, the samples are read back with :func:`~maskprep.open_shards`
and shown exactly as a trainer gets them. For a dataset directory (before any
build), the samples go through the same code as a build
(:func:`~maskprep.pipeline.sample_arrays`): void fill, class weights and the
border term are what ``build-weights`` with the same options would write.

Class weights of a dataset preview come from a quick scan: up to
``scan_limit`` samples (default 64) evenly spaced over the dataset are read and
counted, their train samples (all scanned samples if none is train) give the
class statistics, and the weights follow from the configured scheme. With
``scan_limit`` or fewer samples the scan is the whole dataset, so the weights
equal those of a build; otherwise they are an estimate, and the figures say so.

Which samples are shown is deterministic: samples with void pixels first, then
by number of instances (most first), ties in dataset order, so the previews
show void, touching instances and border weights when the data has them. The
chosen samples are written in dataset order. ``ids`` picks samples by id instead.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global
backend switch, nothing shown on screen).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from maskprep.config import BuildConfig
from maskprep.errors import StoreError
from maskprep.store import is_maskprep_store, make_directory
from maskprep.tools.preview.data import (
    PreviewData,
    PreviewSample,
    load_dataset_preview,
    load_store_preview,
)
from maskprep.tools.preview.render import (
    HISTOGRAM_FIGSIZE,
    OUTLINE_COLOR,
    SAMPLE_FIGSIZE,
    VOID_COLOR,
    render_class_histogram,
    render_sample,
    save_png,
)
from maskprep.tools.preview.targets import extra_targets, render_targets

__all__ = [
    "HISTOGRAM_FIGSIZE",
    "OUTLINE_COLOR",
    "SAMPLE_FIGSIZE",
    "VOID_COLOR",
    "PreviewData",
    "PreviewSample",
    "load_dataset_preview",
    "load_store_preview",
    "preview",
    "render_class_histogram",
    "render_sample",
]


def preview(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    samples: int = 4,
    ids: Sequence[str] | None = None,
    config: BuildConfig | None = None,
    dpi: float = 80,
    scan_limit: int = 64,
    palette: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Path]:
    """Write preview PNGs of a built store or of a dataset directory.

    One ``<sample_id>.png`` per chosen sample (image; labels with void in
    magenta and a legend; instance outlines over the image; weight map with a
    colour bar) and ``class_histogram.png`` (class pixel counts and weights).

    Parameters
    ----------
    path : path
        A complete maskprep store, or a dataset directory (previewed as
        ``build-weights`` with ``config`` would build it).
    out_dir : path
        Directory for the PNGs; created if missing, existing files replaced.
    samples : int
        How many samples to draw (see the module docstring for which).
    ids : sequence of str, optional
        Draw these samples instead.
    config : BuildConfig, optional
        Build options for a dataset directory; an error for a store, whose
        options are fixed.
    dpi : float
        Resolution; a sample figure is ``SAMPLE_FIGSIZE * dpi`` pixels.
    scan_limit : int
        Dataset directories only: samples scanned for the class weights.
    palette : bool
        Write 256-colour palette PNGs (about half the size, colours
        approximate; for docs and sharing) instead of full-colour RGB.

    progress : callable, optional
        Called as ``progress(stage, done, total)`` as the PNGs are written.

    Returns
    -------
    list of Path
        The sample PNGs in dataset order, then ``class_histogram.png``.

    Raises
    ------
    StoreError
        For an incomplete store (open_shards refuses it) or a missing path.
    OutputError
        When ``out_dir`` cannot be a directory (a file is in the way).
    DataError
        For a dataset directory a build would refuse.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import make_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> data = make_sample(tmp / "d", n_images=3, size=(32, 32))
    >>> [p.name for p in preview(data, tmp / "png", samples=1)]
    ['d_001.png', 'class_histogram.png']
    """
    # A URL (s3://...) can only be a built store; a local path may be either.
    src: Path | str = str(path) if "://" in str(path) else Path(path)
    if is_maskprep_store(src):
        if config is not None:
            raise ValueError(
                f"{src} is a built store; build options apply only to a dataset directory"
            )
        data = load_store_preview(src, samples=samples, ids=ids)
    elif isinstance(src, Path) and src.is_dir():
        data = load_dataset_preview(
            src, samples=samples, ids=ids, config=config, scan_limit=scan_limit
        )
    else:
        raise StoreError(f"{src}: no such store or dataset directory")

    out = make_directory(out_dir, "the preview directory")
    written: list[Path] = []
    # One PNG per sample, one more for its extra targets, then the histogram.
    total = sum(1 + bool(extra_targets(sample)) for sample in data.samples) + 1
    stage = f"drawing {total} PNG(s)"
    if progress is not None:
        progress(stage, 0, total)
    for sample in data.samples:
        fig, _ = render_sample(sample, data, dpi=dpi)
        target = out / f"{sample.sample_id}.png"
        save_png(fig, target, palette=palette)
        written.append(target)
        if extra_targets(sample):
            target = out / f"{sample.sample_id}_targets.png"
            save_png(render_targets(sample, data, dpi=dpi), target, palette=palette)
            written.append(target)
        if progress is not None:
            progress(stage, len(written), total)
    target = out / "class_histogram.png"
    save_png(render_class_histogram(data, dpi=dpi), target, palette=palette)
    written.append(target)
    if progress is not None:
        progress(stage, total, total)
    return written
