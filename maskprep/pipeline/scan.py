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
    "instance_pieces",
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


def instance_pieces(instances: np.ndarray) -> np.ndarray:
    """The id of every connected piece of every instance (full connectivity), one a piece.

    An id that appears more than once is in several separate pieces; the
    distinct values are the instance ids. One pass over the image (a numba
    union-find over row runs, :mod:`maskprep._kernels._pieces`), with no
    label array of the image's size.

    >>> lab = np.array([[5, 0, 5], [0, 0, 0], [7, 7, 0]], dtype=np.int32)
    >>> sorted(instance_pieces(lab).tolist())
    [5, 5, 7]
    """
    from maskprep._kernels._pieces import piece_ids

    arr = instances if instances.ndim == 3 else instances.reshape((1, *instances.shape[-2:]))
    if arr.size == 0:
        return np.zeros(0, instances.dtype)
    if arr.dtype.kind in "ib":
        # Ids are only compared for equality: one compiled kernel per width.
        arr = arr.view(f"u{arr.dtype.itemsize}")
    pieces = piece_ids(np.ascontiguousarray(arr))
    return pieces.view(instances.dtype) if instances.dtype.kind in "ib" else pieces


def split_instances(instances: np.ndarray) -> list[int]:
    """Ids whose pixels form more than one connected piece (full connectivity), ascending.

    >>> split_instances(np.array([[5, 0, 7], [0, 5, 0]], dtype=np.int32))  # diagonals touch
    []
    >>> split_instances(np.array([[5, 0, 5], [0, 0, 0]], dtype=np.int32))
    [5]
    """
    return _split_of(instance_pieces(instances))


def _split_of(pieces: np.ndarray) -> list[int]:
    ids, counts = np.unique(pieces, return_counts=True)
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
    if config.source is None:
        pieces = instance_pieces(s.instances)
        split = _split_of(pieces)
        n_instances = int(np.unique(pieces).size)  # the pieces' ids are the instances'
    else:
        split, n_instances = [], count_instances(s.instances)
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
        void_pixels=int(np.count_nonzero(s.void)),
        n_instances=n_instances,
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
