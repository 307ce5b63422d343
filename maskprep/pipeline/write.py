"""Pass 2 of a build: per shard, re-read its samples, fill void, compute the
targets and write whole shards (one task owns one shard)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from maskprep.config import BuildConfig
from maskprep.errors import DataError
from maskprep.ingest import SampleSource
from maskprep.pipeline.scan import SampleInfo, load_sample
from maskprep.pipeline.training import (
    TrainingPartials,
    sample_partials,
    wants_training_stats,
    write_training_partials,
)
from maskprep.store import ArraySpec, Location, StoreLayout, record_shard, write_shard
from maskprep.targets import TARGETS, TargetInput
from maskprep.voidfill import labels_dtype, sample_labels
from maskprep.weighting import count_classes

__all__ = ["plan_layout", "sample_arrays", "target_specs", "write_blocks", "write_sample_shard"]

# Test hook: seconds each shard task sleeps first, so a test can kill a build
# between shards. Never set in normal use.
SHARD_DELAY_ENV = "MASKPREP_TEST_SHARD_DELAY"


def target_specs(config: BuildConfig, ndim: int) -> tuple[ArraySpec, ...]:
    """The stored arrays of the configured targets, in ``config.targets`` order."""
    specs = []
    for name in config.targets:
        t = TARGETS.get(name)
        dtype = str(np.dtype(t.dtype))
        specs.append(ArraySpec(name, dtype, t.fill_value, t.channels(ndim, config)))
    return tuple(specs)


def sample_arrays(
    src: SampleSource, config: BuildConfig, weight_lut: np.ndarray, labels_dtype: Any
) -> dict[str, np.ndarray]:
    """Every stored array of one sample, unpadded: image, labels, instances, targets.

    ``weight_lut[label]`` is the class weight of each label value (0 for void).
    """
    s = load_sample(src, config)
    assert s.image is not None
    labels = sample_labels(s, config.void_label, labels_dtype)
    sample = TargetInput(s.image, labels, s.instances, config, weight_lut)
    out = {"image": s.image, "labels": labels, "instances": s.instances}
    for name in config.targets:
        target = TARGETS.get(name)
        out[name] = np.asarray(target.compute(sample), dtype=target.dtype)
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
) -> dict[str, Any]:
    """The task of pass 2: build and write shard ``shard`` (samples from ``start``).

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
    n = len(sources)
    blocks = {
        name: np.full(
            (n, *layout.array_shape(name)[1:]), layout.fill_value(name), dtype=layout.dtype(name)
        )
        for name in layout.array_names
    }
    partials: list[TrainingPartials] = []
    for j, (src, info) in enumerate(zip(sources, infos, strict=True)):
        try:
            arrays = sample_arrays(src, config, weight_lut, layout.dtype("labels"))
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
        counts = count_classes(arrays["labels"], config.void_label, config.num_classes)
        if tuple(int(c) for c in counts) != tuple(info.class_counts):
            raise DataError(
                f"{src.masks[0] if src.masks else src.image}: changed while the build was "
                f"running (class counts {counts.tolist()}, pass 1 counted "
                f"{list(info.class_counts)}); the store is left incomplete"
            )
        window: tuple[int | slice, ...] = (j, *(slice(0, k) for k in info.shape))
        for name, arr in arrays.items():
            blocks[name][window] = arr
        if wants_training_stats(config):  # from the stored (cast, void-filled) arrays
            partial = sample_partials(
                blocks["image"][window],
                blocks["labels"][window],
                index=start + j,
                sample_id=info.sample_id,
                split=info.split,
                config=config,
                layout=layout,
            )
            partials.append(partial)
    if wants_training_stats(config):  # before the marker
        write_training_partials(loc, shard, TrainingPartials.merge(partials))
    return write_blocks(loc, layout, shard, start, blocks, config.zstd_level)


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
        tile=config.tile,
    )
