"""Pass 1 of a build: read every sample once, check it, count its classes exactly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskprep.config import BuildConfig
from maskprep.errors import DataError
from maskprep.ingest import (
    LAYOUTS,
    LoadedSample,
    ReadOptions,
    SampleSource,
    is_chunked,
    probe_sample,
    read_sample,
)
from maskprep.pipeline.blocks import (
    BlockScan,
    InstanceTable,
    block_regions,
    config_block,
    is_blockwise,
    merge_block_scans,
    read_options,
)
from maskprep.voidfill import sample_labels, with_void_border
from maskprep.weighting import ClassStats, count_classes

__all__ = [
    "PendingBlocks",
    "SampleInfo",
    "SampleProblem",
    "blockwise_info",
    "load_sample",
    "plain",
    "scan_group",
    "scan_sample",
    "tree_sum",
]


@dataclass(frozen=True)
class SampleInfo:
    """What pass 1 learns about one good sample."""

    sample_id: str
    split: str
    shape: tuple[int, ...]
    channels: int | None
    image_dtype: str
    class_counts: tuple[int, ...]
    void_pixels: int
    n_instances: int
    notes: tuple[str, ...] = ()
    #: Per block (C order of :func:`~maskprep.pipeline.blocks.block_regions`):
    #: class counts, for a sample built block by block; None for others.
    block_counts: tuple[tuple[int, ...], ...] | None = None
    #: Ids and boxes of every instance, for a sample built block by block.
    instance_table: InstanceTable | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PendingBlocks:
    """A sample of a chunked input longer than the block: scanned block by block next.

    Its shape and image come from the input's metadata, nothing was decoded.
    """

    sample_id: str
    split: str
    shape: tuple[int, ...]
    channels: int | None
    image_dtype: str


@dataclass(frozen=True)
class SampleProblem:
    """A sample pass 1 could not use, and why (message names the file)."""

    sample_id: str
    message: str


def load_sample(src: SampleSource, config: BuildConfig, *, image: bool = True) -> LoadedSample:
    """Read one sample with the build options of ``config`` (see :func:`read_sample`),
    void band included (``config.void_border``)."""
    s = read_sample(src, image=image, **read_options(config))
    return with_void_border(s, config.void_border, config.void_border_mode, config.void_label)


def split_instances(instances: np.ndarray) -> list[int]:
    """Ids whose pixels form more than one connected piece (full connectivity)."""
    from skimage.measure import label

    pieces = label(instances, background=0, connectivity=instances.ndim)
    n = int(pieces.max())
    if n == 0:
        return []
    id_of_piece = np.zeros(n + 1, dtype=np.int64)
    id_of_piece[pieces.ravel()] = instances.ravel()
    ids, counts = np.unique(id_of_piece[1:], return_counts=True)
    return [int(i) for i in ids[counts > 1]]


def count_instances(instances: np.ndarray) -> int:
    """Number of distinct nonzero ids."""
    top = int(instances.max(initial=0))
    if top < 1 << 22:
        # Cheaper than np.unique for the id ranges annotation tools produce.
        return int(np.count_nonzero(np.bincount(instances.ravel(), minlength=1)[1:]))
    ids = np.unique(instances)
    return int(ids.size - (1 if ids[0] == 0 else 0))


def scan_sample(src: SampleSource, config: BuildConfig) -> SampleInfo | PendingBlocks:
    """Check one sample and count it (its image is checked, not decoded).

    A sample of a chunked input longer than the block is only probed
    (:class:`PendingBlocks`): its blocks are scanned by their own tasks.
    """
    pending = _pending_blocks(src, config)
    if pending is not None:
        return pending
    s = load_sample(src, config, image=False)
    labels = sample_labels(s, config.void_label, np.uint16)
    per = count_classes(labels, config.void_label, config.num_classes)
    channels = s.image_shape[-1] if len(s.image_shape) == s.instances.ndim + 1 else None
    notes = []
    # Instances in several pieces hint at annotation mistakes in instance
    # masks; in Cityscapes and COCO they are occluded objects, by design.
    split = split_instances(s.instances) if config.source is None else []
    if split:
        shown = ", ".join(str(i) for i in split[:10])
        more = f" and {len(split) - 10} more" if len(split) > 10 else ""
        notes.append(
            f"{src.masks[0] if src.masks else src.image}: instance id(s) {shown}{more} "
            "have several separate pieces (kept as one instance each)"
        )
    if s.image_dtype.kind == "f":
        # Pass 1 does not decode images; float ones are, for their NaN/inf.
        options = ReadOptions(
            config.unlabeled_value, config.max_pixels, config.source, config.void_label
        )
        pixels = LAYOUTS.get(src.layout).read_image(src, options)
        bad = int(pixels.size - np.count_nonzero(np.isfinite(pixels)))
        if bad:
            notes.append(
                f"{src.image}: image has {bad:,} NaN or infinite value(s), stored as they "
                "are (they propagate through normalisation and losses)"
            )
    shape = tuple(int(n) for n in s.instances.shape)
    block = config_block(config, len(shape))
    block_counts = table = None
    if block is not None and is_blockwise(shape, block):
        # Read whole (its format allows nothing else), but built block by
        # block: pass 2 needs each block's counts and every instance's box.
        block_counts = tuple(
            tuple(int(c) for c in count_classes(labels[r], config.void_label, config.num_classes))
            for _, r in block_regions(shape, block)
        )
        table = InstanceTable.of(s.instances)
    return SampleInfo(
        sample_id=src.sample_id,
        split=src.split,
        shape=shape,
        channels=None if channels is None else int(channels),
        image_dtype=str(s.image_dtype),
        class_counts=tuple(int(n) for n in per),
        void_pixels=int(s.void.sum()),
        n_instances=count_instances(s.instances),
        notes=tuple(notes),
        block_counts=block_counts,
        instance_table=table,
    )


def _pending_blocks(src: SampleSource, config: BuildConfig) -> PendingBlocks | None:
    if config.tile is None or not is_chunked(src):
        return None
    geo = probe_sample(src, **read_options(config))
    if not is_blockwise(geo.shape, config_block(config, len(geo.shape))):
        return None
    ndim = len(geo.shape)
    channels = geo.image_shape[-1] if len(geo.image_shape) == ndim + 1 else None
    return PendingBlocks(
        src.sample_id, src.split, tuple(geo.shape), channels, str(np.dtype(geo.image_dtype))
    )


def blockwise_info(pending: PendingBlocks, scans: Sequence[BlockScan]) -> SampleInfo:
    """The :class:`SampleInfo` of a sample scanned block by block."""
    counts, void, table = merge_block_scans(scans)
    return SampleInfo(
        sample_id=pending.sample_id,
        split=pending.split,
        shape=pending.shape,
        channels=pending.channels,
        image_dtype=pending.image_dtype,
        class_counts=counts,
        void_pixels=void,
        n_instances=int(table.ids.size),
        block_counts=tuple(s.class_counts for s in scans),
        instance_table=table,
    )


def scan_group(
    sources: Sequence[SampleSource], config: BuildConfig
) -> tuple[list[SampleInfo | SampleProblem | PendingBlocks], ClassStats]:
    """Scan samples; their results, and the exact statistics of the train ones."""
    results: list[SampleInfo | SampleProblem | PendingBlocks] = []
    for src in sources:
        try:
            results.append(scan_sample(src, config))
        except DataError as exc:
            results.append(SampleProblem(src.sample_id, str(exc)))
    train = [r.class_counts for r in results if isinstance(r, SampleInfo) and r.split == "train"]
    return results, ClassStats.from_sample_counts(train, config.num_classes)


def add_stats(a: ClassStats, b: ClassStats) -> ClassStats:
    return a + b


def stats_of(scan: tuple[list[SampleInfo | SampleProblem], ClassStats]) -> ClassStats:
    return scan[1]


def plain(value: Any) -> Any:
    """Wrap task arguments that hold no Dask collections, so Dask does not walk
    every dataclass field of thousands of samples when building the graph."""
    import dask

    return dask.delayed(value, traverse=False)


def tree_sum(items: list[Any], combine: Callable[..., Any]) -> Any:
    """Pairwise (tree) reduction of delayed ``items`` with ``combine``."""
    import dask

    while len(items) > 1:
        items = [
            dask.delayed(combine)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]
