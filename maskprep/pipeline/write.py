"""Pass 2 of a build: per shard, re-read its samples, fill void, compute the
targets and write whole shards (one task owns one shard).

Each array goes to its shard's encoder as soon as it is made: the image,
labels and instances before the targets are computed. Under the threaded
scheduler, big arrays (a volume built whole, a block) are compressed by a
pool of threads meanwhile (:data:`COMPRESS_THREADS`); a chunk's bytes do not
depend on the thread that made them, so neither does the store.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskprep.config import BuildConfig
from maskprep.errors import DataError
from maskprep.ingest import SampleSource
from maskprep.pipeline.blocks import block_arrays, config_block, config_tile
from maskprep.pipeline.scan import SampleInfo, load_sample
from maskprep.pipeline.training import (
    TrainingPartials,
    sample_partials,
    wants_training_stats,
    write_training_partials,
)
from maskprep.store import (
    ArraySpec,
    Location,
    ShardEncoder,
    StoreLayout,
    combine_checksums,
    put_shard_file,
    record_part,
    record_shard,
    shard_encoder,
    write_shard,
)
from maskprep.targets import TARGETS, TargetInput
from maskprep.voidfill import labels_dtype, sample_labels
from maskprep.weighting import count_classes

__all__ = [
    "COMPRESS_THREADS",
    "BlockWork",
    "compress_pool",
    "plan_layout",
    "sample_arrays",
    "target_specs",
    "write_blocks",
    "write_sample_shard",
]

# Test hook: seconds each shard task sleeps first, so a test can kill a build
# between shards. Never set in normal use.
SHARD_DELAY_ENV = "MASKPREP_TEST_SHARD_DELAY"

#: Dask config key: threads one task may use to compress its chunks. The
#: runner sets it for the threaded scheduler (its worker count); elsewhere
#: (sync, processes, a cluster's single-threaded workers) a task compresses
#: in its own thread. The chunks' bytes do not depend on it.
COMPRESS_THREADS = "maskprep.compress-threads"
#: Arrays smaller than this are compressed in the task's own thread (handing
#: a small image's few chunks to threads costs more than it saves).
_POOL_MIN_NBYTES = 4 << 20
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()

Emit = Callable[[str, np.ndarray], None]


def compress_pool() -> Executor | None:
    """The process's pool of compression threads for this build, or None (see
    :data:`COMPRESS_THREADS`); one pool per size, shared by the tasks."""
    import dask

    n = int(dask.config.get(COMPRESS_THREADS, 1) or 1)
    if n <= 1:
        return None
    with _pools_lock:
        pool = _pools.get(n)
        if pool is None:
            pool = _pools[n] = ThreadPoolExecutor(n, thread_name_prefix="maskprep-zstd")
    return pool


def target_specs(config: BuildConfig, ndim: int) -> tuple[ArraySpec, ...]:
    """The stored arrays of the configured targets, in ``config.targets`` order."""
    specs = []
    for name in config.targets:
        t = TARGETS.get(name)
        dtype = str(np.dtype(t.dtype))
        specs.append(ArraySpec(name, dtype, t.fill_value, t.channels(ndim, config)))
    return tuple(specs)


def sample_arrays(
    src: SampleSource,
    config: BuildConfig,
    weight_lut: np.ndarray,
    labels_dtype: Any,
    emit: Emit | None = None,
) -> dict[str, np.ndarray]:
    """Every stored array of one sample, unpadded: image, labels, instances, targets.

    ``weight_lut[label]`` is the class weight of each label value (0 for void).
    ``emit(name, array)``, if given, is called with each array as soon as it
    is made (the image, labels and instances before the targets are computed).
    """
    s = load_sample(src, config)
    assert s.image is not None
    labels = sample_labels(s, config.void_label, labels_dtype)
    sample = TargetInput(s.image, labels, s.instances, config, weight_lut)
    out = {"image": s.image, "labels": labels, "instances": s.instances}
    if emit is not None:
        for name, arr in out.items():
            emit(name, arr)
    for name in config.targets:
        target = TARGETS.get(name)
        out[name] = np.asarray(target.compute(sample), dtype=target.dtype)
        if emit is not None:
            emit(name, out[name])
    return out


def write_blocks(
    loc: Location,
    layout: StoreLayout,
    shard: int,
    start: int,
    blocks: dict[str, np.ndarray],
    zstd_level: int,
    unchanged: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Write one shard of each array in ``blocks``, then its marker; return the marker.

    ``unchanged`` holds the recorded checksums of arrays not rewritten.
    """
    checksums = dict(unchanged or {})
    for name, block in blocks.items():
        checksums[name] = write_shard(loc, layout, shard, name, block, zstd_level)
    record = {
        "shard": shard,
        "samples": [start, start + next(iter(blocks.values())).shape[0]],
        "checksums": checksums,
    }
    record_shard(loc, shard, record)
    return record


@dataclass(frozen=True)
class BlockWork:
    """Pass 2's work on one block of a sample built block by block.

    ``region`` is the block, ``crop`` what is read for it
    (:func:`~maskprep.pipeline.blocks.block_crop`), ``class_counts`` what
    pass 1 counted in it.
    """

    region: tuple[slice, ...]
    crop: tuple[slice, ...]
    class_counts: tuple[int, ...]


def write_sample_shard(
    loc: Location,
    shard: int,
    start: int,
    sources: Sequence[SampleSource],
    infos: Sequence[SampleInfo],
    config: BuildConfig,
    layout: StoreLayout,
    weight_lut: np.ndarray,
    fingerprints: Sequence[Sequence[tuple[str, int, int]]] | None = None,
    *,
    part: int | None = None,
    blocks: dict[tuple[int, tuple[int, ...]], BlockWork] | None = None,
) -> dict[str, Any]:
    """The task of pass 2: build and write shard ``shard`` (samples from ``start``).

    With ``part``, only that spatial shard (flat index, C order) of the shard
    is written, and marked on its own. ``blocks[j, position]`` is the work
    on the block at ``position`` of the shard's ``j``-th sample when it is
    built block by block (``infos[j].block_counts`` set); the other samples
    lie in the first spatial shard and are computed whole. Samples are
    compressed as soon as they are computed, so a task holds one sample (or
    block) and the compressed shard, never the shard uncompressed.

    ``fingerprints`` holds, per sample, ``(path, size, mtime_ns)`` of its files
    as they were before pass 1. Every file is re-stat-ed after it is read here,
    and the sample's class counts are recounted and compared with pass 1's: an
    input rewritten during the build fails the task (DataError naming the
    file), so the store is never marked complete with labels that disagree
    with its metadata.
    """
    delay = float(os.environ.get(SHARD_DELAY_ENV, "0") or 0)
    if delay:
        time.sleep(delay)
    shards = layout.spatial_shards()
    chosen = shards if part is None else [shards[part]]
    origin = (0,) * len(layout.spatial_shape)
    digests: dict[str, list[tuple[str, str | None]]] = {n: [] for n in layout.array_names}
    partials: list[TrainingPartials] = []
    pool = compress_pool()
    for pos, _ in chosen:
        encoders = {
            name: shard_encoder(layout, name, pos, config.zstd_level) for name in layout.array_names
        }
        for j, (src, info) in enumerate(zip(sources, infos, strict=True)):
            emit = functools.partial(_add, encoders, j, origin, pool)
            work = None
            if info.block_counts is None:
                if any(pos):
                    continue  # a sample built whole lies in the first spatial shard
                arrays = _whole_sample(src, info, config, layout, weight_lut, fingerprints, j, emit)
            else:
                work = (blocks or {}).get((j, pos))
                if work is None:
                    continue
                arrays = _sample_block(src, work, config, layout, weight_lut, emit)
            for enc in encoders.values():
                enc.wait()  # one sample (or block) in memory at a time
            if wants_training_stats(config):
                partials.append(_partials(arrays, start + j, info, config, layout, work))
            del arrays
        for name, enc in encoders.items():
            key = layout.shard_key(name, shard, pos)
            digests[name].append((key, put_shard_file(loc, key, enc.finish())))
    if fingerprints is not None:
        for j, info in enumerate(infos):
            if info.block_counts is not None:
                _check_unchanged(fingerprints[j])
    samples = [start, start + len(sources)]
    if wants_training_stats(config):  # before the marker
        write_training_partials(
            loc, shard, TrainingPartials.merge(partials), None if part is None else f"{part:06d}"
        )
    if part is not None:
        record = {
            "shard": shard,
            "part": part,
            "samples": samples,
            "checksums": {name: d[0][1] for name, d in digests.items()},
        }
        record_part(loc, shard, part, record)
        return record
    record = {
        "shard": shard,
        "samples": samples,
        "checksums": {name: combine_checksums(layout, d) for name, d in digests.items()},
    }
    record_shard(loc, shard, record)
    return record


def _add(
    encoders: dict[str, ShardEncoder],
    slot: int,
    origin: tuple[int, ...],
    pool: Executor | None,
    name: str,
    arr: np.ndarray,
) -> None:
    """Add one array of a sample to its encoder: a big one is compressed by the
    pool's threads while the task computes the next arrays."""
    big = pool is not None and arr.nbytes >= _POOL_MIN_NBYTES
    encoders[name].add(slot, origin, arr, executor=pool if big else None)


def _partials(
    arrays: dict[str, np.ndarray],
    index: int,
    info: SampleInfo,
    config: BuildConfig,
    layout: StoreLayout,
    work: BlockWork | None,
) -> TrainingPartials:
    """Class locations and intensity histograms of a sample or block, as stored
    (the image cast to the store's dtype; labels void-filled; a block's own
    pixels only, not its halo, so nothing is counted twice)."""
    image = arrays["image"].astype(layout.dtype("image"), copy=False)
    return sample_partials(
        image,
        arrays["labels"],
        index=index,
        sample_id=info.sample_id,
        split=info.split,
        config=config,
        layout=layout,
        origin=None if work is None else tuple(r.start for r in work.region),
        sample_shape=None if work is None else info.shape,
    )


def _whole_sample(
    src: SampleSource,
    info: SampleInfo,
    config: BuildConfig,
    layout: StoreLayout,
    weight_lut: np.ndarray,
    fingerprints: Sequence[Sequence[tuple[str, int, int]]] | None,
    j: int,
    emit: Emit,
) -> dict[str, np.ndarray]:
    """One sample's arrays, each handed to ``emit`` when made, then checked against
    pass 1 (a check that fails raises before the shard is written)."""
    try:
        arrays = sample_arrays(src, config, weight_lut, layout.dtype("labels"), emit)
    except DataError:
        if fingerprints is not None:
            _check_unchanged(fingerprints[j])  # say it changed, if that is why
        raise
    if arrays["labels"].shape != info.shape or str(arrays["image"].dtype) != info.image_dtype:
        raise DataError(
            f"{src.masks[0] if src.masks else src.image}: changed while the build was "
            f"running (shape {arrays['labels'].shape} {arrays['image'].dtype}, "
            f"was {info.shape} {info.image_dtype})"
        )
    if fingerprints is not None:
        _check_unchanged(fingerprints[j])
    _check_counts(src, arrays["labels"], info.class_counts, config)
    return arrays


def _sample_block(
    src: SampleSource,
    work: BlockWork,
    config: BuildConfig,
    layout: StoreLayout,
    weight_lut: np.ndarray,
    emit: Emit,
) -> dict[str, np.ndarray]:
    arrays = block_arrays(
        src, config, weight_lut, layout.dtype("labels"), work.region, work.crop, emit
    )
    _check_counts(src, arrays["labels"], work.class_counts, config)
    return arrays


def _check_counts(
    src: SampleSource, labels: np.ndarray, expected: Sequence[int], config: BuildConfig
) -> None:
    counts = count_classes(labels, config.void_label, config.num_classes)
    if tuple(int(c) for c in counts) != tuple(expected):
        raise DataError(
            f"{src.masks[0] if src.masks else src.image}: changed while the build was "
            f"running (class counts {counts.tolist()}, pass 1 counted "
            f"{list(expected)}); the store is left incomplete"
        )


def _check_unchanged(files: Sequence[tuple[str, int, int]]) -> None:
    for path, size, mtime in files:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise DataError(
                f"{path}: vanished while the build was running ({exc.strerror})"
            ) from None
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            raise DataError(
                f"{path}: changed while the build was running (size or modification time "
                "differs from pass 1); the store is left incomplete"
            )


def plan_layout(
    infos: Sequence[SampleInfo], sources: Sequence[SampleSource], config: BuildConfig
) -> StoreLayout:
    """Array shapes and dtypes for the scanned samples; DataError on mixed 2D/3D or channels."""
    first = infos[0]
    ndim = len(first.shape)
    for info, src in zip(infos, sources, strict=True):
        if len(info.shape) != ndim:
            raise DataError(
                f"{src.image}: is {len(info.shape)}D but {sources[0].image} is {ndim}D; "
                "a dataset must be all 2D or all 3D"
            )
        if info.channels != first.channels:
            raise DataError(
                f"{src.image}: has {info.channels or 1} channel(s) but "
                f"{sources[0].image} has {first.channels or 1}"
            )
    if config.spacing is not None and len(config.spacing) != ndim:
        raise DataError(
            f"spacing {config.spacing} has {len(config.spacing)} values for {ndim}D images "
            f"(e.g. {sources[0].image})"
        )
    spatial = tuple(max(info.shape[a] for info in infos) for a in range(ndim))
    image_dtype = np.result_type(*[np.dtype(info.image_dtype) for info in infos])
    if image_dtype == np.bool_:
        image_dtype = np.dtype(np.uint8)
    return StoreLayout(
        n_samples=len(infos),
        spatial_shape=spatial,
        channels=first.channels,
        image_dtype=str(image_dtype),
        labels_dtype=labels_dtype(config.void_label, config.num_classes),
        shard_size=config.shard_size,
        void_label=config.void_label,
        targets=target_specs(config, ndim),
        tile=config_tile(config, ndim),
        block=config_block(config, ndim),
    )
