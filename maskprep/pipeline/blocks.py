"""Blockwise builds: a sample longer than the block along an axis is scanned and
computed one block at a time, so a task's memory is bounded by its block and
halo, not by the sample.

The blocks of a sample are the store's spatial shards (``StoreLayout.block``
pixels along each axis from the origin; the last ones end with the sample).
For each block:

- pass 1 (:func:`scan_block`) reads the block grown by the void band's reach
  (:func:`band_reach`), applies the band, and counts the block's classes, void
  pixels and the ids and boxes of its instances: exact integers, summed and
  merged per sample (:func:`merge_block_scans`);
- pass 2 (:func:`block_arrays`) reads the block's *crop*
  (:func:`block_crop`): the block grown by the halo of the local targets
  (:meth:`Target.halo <maskprep.targets.Target.halo>`: the border weights'
  cutoff radius ``R / spacing``, the boundary width, the affinity offsets),
  joined with the boxes (grown by 1) of every instance in it when a target
  needs whole instances (``distance``, ``stardist``, ``hover``), and then
  grown by the void band's reach; it computes every array on the crop and
  keeps the block.

Why that is exact: a local target's value at a pixel depends only on the
instances within its halo, all inside the crop, and a whole-instance target's
value inside an instance depends only on that instance, whose box (and the
ring of other pixels around it) is inside the crop; the void band at a pixel
depends on the instance borders within its reach, inside the crop too. The
kernels see the same pixels at the same relative positions, so the arrays are
the whole-sample computation's, bit for bit (``tests/test_blockwise.py``).
Targets of context ``"sample"`` (plugins that declare nothing) cannot be
built block by block: a DataError says so.

Limits: the split-instance note (an id in several separate pieces) is not
made for samples built block by block; the crop of a block is bounded by
``max_pixels`` (a whole-instance target on instances that span the volume,
such as neurons, would need the volume: the error says so).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maskprep.config import BuildConfig
from maskprep.errors import DataError, StoreError
from maskprep.ingest import LoadedSample, SampleSource, read_region
from maskprep.store import Location, StoreLayout, default_block, default_tile
from maskprep.targets import TARGETS, TargetInput
from maskprep.targets.extent import instance_boxes
from maskprep.voidfill import sample_labels, with_void_border
from maskprep.weighting import count_classes

if TYPE_CHECKING:
    from maskprep.pipeline.scan import SampleInfo as SampleInfoLike
    from maskprep.pipeline.scan import SampleProblem
    from maskprep.pipeline.write import BlockWork

__all__ = [
    "BlockScan",
    "InstanceTable",
    "band_reach",
    "block_arrays",
    "block_crop",
    "block_regions",
    "block_works",
    "config_block",
    "config_tile",
    "is_blockwise",
    "load_block_infos",
    "merge_block_scans",
    "read_options",
    "save_block_infos",
    "scan_block",
    "scan_block_or_problem",
    "target_reach",
]

Region = tuple[slice, ...]


def config_tile(config: BuildConfig, ndim: int) -> int | None:
    """The tile of a build (``"auto"`` resolved by dimensionality); None when untiled.

    >>> auto, untiled = BuildConfig(), BuildConfig(tile=None)
    >>> config_tile(auto, 2), config_tile(auto, 3), config_tile(untiled, 2)
    (256, 64, None)
    """
    if config.tile == "auto":
        return default_tile(ndim)
    return None if config.tile is None else int(config.tile)


def config_block(config: BuildConfig, ndim: int) -> int | None:
    """The block of a build: ``config.block`` rounded up to whole tiles, or the default.

    None for an untiled store (format 1), whose samples are always built whole.

    >>> config_block(BuildConfig(), 2), config_block(BuildConfig(tile=64, block=100), 3)
    (2048, 128)
    """
    tile = config_tile(config, ndim)
    if tile is None:
        return None
    if config.block is None:
        return default_block(ndim, tile)
    return -(-config.block // tile) * tile


def is_blockwise(shape: Sequence[int], block: int | None) -> bool:
    """True if a sample of ``shape`` is built block by block (longer than ``block``).

    >>> is_blockwise((300, 200), 256), is_blockwise((256, 256), 256), is_blockwise((9, 9), None)
    (True, False, False)
    """
    return block is not None and any(s > block for s in shape)


def block_regions(shape: Sequence[int], block: int) -> list[tuple[tuple[int, ...], Region]]:
    """The blocks of a sample of ``shape``: grid position and region, in C order.

    >>> [r for _, r in block_regions((5, 3), 4)]
    [(slice(0, 4, None), slice(0, 3, None)), (slice(4, 5, None), slice(0, 3, None))]
    """
    grid = [range(-(-s // block)) for s in shape]
    return [
        (
            pos,
            tuple(
                slice(p * block, min((p + 1) * block, s)) for p, s in zip(pos, shape, strict=True)
            ),
        )
        for pos in itertools.product(*grid)
    ]


def band_reach(config: BuildConfig) -> int:
    """Pixels beyond which the void band at a pixel does not look (0 without a band).

    A band pixel lies within ``void_border`` of a border pixel, which is one
    with a face neighbour of another value: ``floor(width) + 1`` pixels, and
    one more so the crop's own edge (not a border) stays out of reach.
    """
    if config.void_border == 0:
        return 0
    return math.floor(config.void_border) + 2


def target_reach(
    config: BuildConfig, ndim: int, where: str, shape: Sequence[int], block: int
) -> tuple[tuple[int, ...], bool]:
    """The halo of the configured targets per axis, and whether one needs whole instances.

    Raises DataError (naming ``where``) for a target that needs the whole sample.
    """
    halo = [0] * ndim
    whole_instances = False
    for name in config.targets:
        target = TARGETS.get(name)
        if target.context == "local":
            halo = [max(h, int(t)) for h, t in zip(halo, target.halo(ndim, config), strict=True)]
        elif target.context == "instance":
            whole_instances = True
        else:
            raise DataError(
                f"{where}: the sample ({'x'.join(map(str, shape))}) is longer than the block "
                f"({block}) and is built block by block, but target {name!r} needs whole "
                f"samples; build without it, or with block of at least {max(shape)}"
            )
    return tuple(halo), whole_instances


def _grow(region: Region, reach: Sequence[int], shape: Sequence[int]) -> Region:
    return tuple(
        slice(max(0, r.start - k), min(n, r.stop + k))
        for r, k, n in zip(region, reach, shape, strict=True)
    )


def _inside(outer: Region, inner: Region) -> Region:
    """``inner`` in the coordinates of ``outer`` (which contains it)."""
    return tuple(
        slice(i.start - o.start, i.stop - o.start) for o, i in zip(outer, inner, strict=True)
    )


def read_options(config: BuildConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`~maskprep.ingest.read_sample` and
    :func:`~maskprep.ingest.read_region` that a build's config decides."""
    return {
        "unlabeled_value": config.unlabeled_value,
        "max_pixels": config.max_pixels,
        "source": config.source,
        "void_label": config.void_label,
    }


def _read_region(
    src: SampleSource, config: BuildConfig, region: Region, *, image: bool
) -> LoadedSample:
    """The sample's ``region``, void band applied (exact only ``band_reach`` inside it)."""
    s = read_region(src, region, image=image, **read_options(config))
    return with_void_border(s, config.void_border, config.void_border_mode, config.void_label)


@dataclass(frozen=True)
class BlockScan:
    """What pass 1 counts in one block of a sample (``boxes`` in sample coordinates)."""

    position: tuple[int, ...]
    class_counts: tuple[int, ...]
    void_pixels: int
    ids: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True, eq=False)
class InstanceTable:
    """Every instance of a sample built block by block: ids ascending and boxes.

    ``boxes[k, 0]`` and ``boxes[k, 1]`` are the first and one past the last
    index of instance ``ids[k]`` along each axis, over the whole sample.
    """

    ids: np.ndarray
    boxes: np.ndarray

    def in_region(self, region: Region) -> np.ndarray:
        """Boxes of the instances whose box meets ``region``."""
        lo = np.array([r.start for r in region])
        hi = np.array([r.stop for r in region])
        meets = np.all((self.boxes[:, 0] < hi) & (self.boxes[:, 1] > lo), axis=1)
        return self.boxes[meets]

    @classmethod
    def of(cls, instances: np.ndarray) -> InstanceTable:
        """The table of a whole sample in memory."""
        return cls(*instance_boxes(instances))


def scan_block(
    src: SampleSource,
    config: BuildConfig,
    shape: tuple[int, ...],
    position: tuple[int, ...],
    region: Region,
) -> BlockScan:
    """Pass 1 for one block: exact class counts, void pixels, instance ids and boxes."""
    read = _grow(region, (band_reach(config),) * len(shape), shape)
    s = _read_region(src, config, read, image=False)
    inner = _inside(read, region)
    labels = sample_labels(s, config.void_label, np.uint16)[inner]
    counts = count_classes(labels, config.void_label, config.num_classes)
    ids, boxes = instance_boxes(s.instances[inner])
    boxes = boxes + np.array([r.start for r in region])
    return BlockScan(
        position=tuple(position),
        class_counts=tuple(int(c) for c in counts),
        void_pixels=int(s.void[inner].sum()),
        ids=ids,
        boxes=boxes,
    )


def scan_block_or_problem(
    src: SampleSource,
    config: BuildConfig,
    shape: tuple[int, ...],
    position: tuple[int, ...],
    region: Region,
) -> BlockScan | SampleProblem:
    """:func:`scan_block`, with bad input returned as the sample's problem."""
    from maskprep.pipeline.scan import SampleProblem

    try:
        return scan_block(src, config, shape, position, region)
    except DataError as exc:
        return SampleProblem(src.sample_id, str(exc))


def merge_block_scans(
    scans: Sequence[BlockScan],
) -> tuple[tuple[int, ...], int, InstanceTable]:
    """A sample's class counts, void pixels and instance table from its blocks' scans."""
    counts = np.asarray([s.class_counts for s in scans], dtype=np.int64).sum(axis=0)
    void = sum(s.void_pixels for s in scans)
    ndim = scans[0].boxes.shape[2] if scans[0].boxes.ndim == 3 else 0
    ids = np.concatenate([s.ids for s in scans])
    boxes = np.concatenate([s.boxes for s in scans]).reshape(-1, 2, ndim)
    if ids.size == 0:
        return tuple(int(c) for c in counts), int(void), InstanceTable(ids, boxes)
    order = np.argsort(ids, kind="stable")
    ids, boxes = ids[order], boxes[order]
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    merged = np.stack(
        [np.minimum.reduceat(boxes[:, 0], first), np.maximum.reduceat(boxes[:, 1], first)],
        axis=1,
    )
    return tuple(int(c) for c in counts), int(void), InstanceTable(ids[first], merged)


def block_crop(
    region: Region,
    shape: tuple[int, ...],
    config: BuildConfig,
    halo: tuple[int, ...],
    table: InstanceTable | None,
    where: str,
) -> Region:
    """What pass 2 reads for one block (see the module notes); DataError above max_pixels."""
    crop = _grow(region, halo, shape)
    if table is not None and table.ids.size:
        boxes = table.in_region(region)
        if boxes.size:
            lo = np.minimum(boxes[:, 0].min(axis=0) - 1, [c.start for c in crop])
            hi = np.maximum(boxes[:, 1].max(axis=0) + 1, [c.stop for c in crop])
            crop = tuple(
                slice(max(0, int(a)), min(n, int(b))) for a, b, n in zip(lo, hi, shape, strict=True)
            )
    crop = _grow(crop, (band_reach(config),) * len(shape), shape)
    pixels = math.prod(c.stop - c.start for c in crop)
    if pixels > config.max_pixels:
        raise DataError(
            f"{where}: the block at {[r.start for r in region]} needs a crop of {pixels:,} "
            f"pixels (its halo and the whole instances it holds), more than max_pixels "
            f"({config.max_pixels:,}); instances this large need a target that does not "
            "need whole instances, or a larger max_pixels"
        )
    return crop


def block_arrays(
    src: SampleSource,
    config: BuildConfig,
    weight_lut: np.ndarray,
    labels_dtype: np.dtype | str,
    region: Region,
    crop: Region,
    emit: Callable[[str, np.ndarray], None] | None = None,
) -> dict[str, np.ndarray]:
    """Every stored array of one block of a sample: image, labels, instances, targets.

    ``emit(name, array)``, if given, is called with each as soon as it is made.
    """
    s = _read_region(src, config, crop, image=True)
    assert s.image is not None
    labels = sample_labels(s, config.void_label, labels_dtype)
    inner = _inside(crop, region)
    out = {"image": s.image[inner], "labels": labels[inner], "instances": s.instances[inner]}
    if emit is not None:
        for name, arr in out.items():
            emit(name, arr)
    if config.targets:
        sample = TargetInput(s.image, labels, s.instances, config, weight_lut)
        for name in config.targets:
            target = TARGETS.get(name)
            out[name] = np.asarray(target.compute(sample), dtype=target.dtype)[inner]
            if emit is not None:
                emit(name, out[name])
    return out


# --------------------------------------------------------------------------- planning


def block_works(
    infos: Sequence[SampleInfoLike],
    sources: Sequence[SampleSource],
    config: BuildConfig,
    layout: StoreLayout,
) -> dict[int, list[dict[tuple[int, tuple[int, ...]], BlockWork]]]:
    """Pass 2's block work, by shard and spatial shard (flat, C order).

    Only shards holding a sample built block by block appear; for those,
    ``works[k][part][j, position]`` is the work on that block of the
    shard's ``j``-th sample. DataError (naming the sample's file) for a
    target that needs whole samples, or a crop above ``max_pixels``.
    """
    from maskprep.pipeline.write import BlockWork

    out: dict[int, list[dict[tuple[int, tuple[int, ...]], BlockWork]]] = {}
    if layout.block is None:
        return out
    grid = layout.spatial_shard_grid
    n_parts = math.prod(grid)
    for k, (a, b) in enumerate(layout.shard_bounds()):
        for j in range(a, b):
            info = infos[j]
            if info.block_counts is None:
                continue
            src = sources[j]
            where = str(src.masks[0] if src.masks else src.image)
            halo, whole = target_reach(config, len(info.shape), where, info.shape, layout.block)
            table = info.instance_table if whole else None
            parts = out.setdefault(k, [{} for _ in range(n_parts)])
            for (pos, region), counts in zip(
                block_regions(info.shape, layout.block), info.block_counts, strict=True
            ):
                crop = block_crop(region, info.shape, config, halo, table, where)
                flat = int(np.ravel_multi_index(pos, grid))
                parts[flat][j - a, pos] = BlockWork(region, crop, counts)
    return out


def _blocks_key(index: int) -> str:
    return f"_maskprep/blocks/{index:08d}.npz"


def save_block_infos(loc: Location, infos: Sequence[SampleInfoLike]) -> None:
    """Keep what pass 1 learnt of each sample built block by block, for a resumed build."""
    for i, info in enumerate(infos):
        if info.block_counts is None or info.instance_table is None:
            continue
        buf = io.BytesIO()
        np.savez(
            buf,
            block_counts=np.asarray(info.block_counts, dtype=np.int64),
            ids=info.instance_table.ids,
            boxes=info.instance_table.boxes,
        )
        loc.write_bytes(_blocks_key(i), buf.getvalue())


def load_block_infos(
    loc: Location, infos: Sequence[SampleInfoLike], layout: StoreLayout
) -> list[SampleInfoLike]:
    """``infos`` of a resumed build with what :func:`save_block_infos` kept.

    Raises StoreError if a sample built block by block has no readable record
    (the build was killed between creating the store and recording it).
    """
    from dataclasses import replace

    out = list(infos)
    for i, info in enumerate(infos):
        if not is_blockwise(info.shape, layout.block):
            continue
        raw = loc.read_bytes(_blocks_key(i))
        try:
            if raw is None:
                raise ValueError("missing")
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                counts = tuple(tuple(int(c) for c in row) for row in z["block_counts"])
                table = InstanceTable(z["ids"], z["boxes"])
        except (ValueError, KeyError, OSError):
            raise StoreError(
                f"{loc}: the build was interrupted before it recorded the blocks of sample "
                f"{info.sample_id!r}; replace the store (overwrite=True) to build it again"
            ) from None
        out[i] = replace(info, block_counts=counts, instance_table=table)
    return out
