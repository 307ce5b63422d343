"""Pass 1 of a build: scan every sample, count it exactly, and plan the new store.

One Dask task scans each group of ``shard_size`` samples (:mod:`maskprep.pipeline.scan`),
one task each block of a sample too long to scan whole (:mod:`maskprep.pipeline.blocks`);
the train split's class statistics are merged by a tree reduction. From the results,
:func:`scan_dataset` makes the new store's :class:`~maskprep.store.StoreMetadata`
(records, layout, class weights) and the sample shapes; :func:`infos_from_metadata`
gives a resumed build the same per-sample results back from the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskprep._version import __version__
from maskprep.config import BuildConfig
from maskprep.errors import DataError
from maskprep.ingest import Dataset, SampleSource
from maskprep.pipeline.blocks import block_regions, config_block, scan_block_or_problem
from maskprep.pipeline.runner import Runner
from maskprep.pipeline.scan import (
    PendingBlocks,
    SampleInfo,
    SampleProblem,
    add_stats,
    blockwise_info,
    plain,
    scan_group,
    stats_of,
    tree_sum,
)
from maskprep.pipeline.write import plan_layout
from maskprep.store import (
    FORMAT_VERSION,
    RECORDS_FORMAT_VERSION,
    Location,
    StoreMetadata,
    StoreRecords,
)
from maskprep.weighting import ClassStats, class_weights

__all__ = ["infos_from_metadata", "scan_dataset"]


def _problems_error(problems: Sequence[SampleProblem], n: int) -> DataError:
    lines = [p.message for p in problems[:10]]
    more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
    head = (
        f"{len(problems)} of {n} samples have problems (on_error='skip' builds without them):\n"
        if len(problems) > 1
        else ""
    )
    return DataError(head + "\n".join(lines) + more)


def infos_from_metadata(meta: StoreMetadata, loc: Location) -> list[SampleInfo]:
    import zarr

    shapes = np.asarray(zarr.open_array(loc.zarr_store(), path="shapes", mode="r")[:])
    layout = meta.layout_info
    counts, void, n_instances = meta.sample_class_counts, meta.void_pixels, meta.instance_counts
    return [
        SampleInfo(
            sample_id=sid,
            split=split,
            shape=tuple(int(v) for v in shapes[i]),
            channels=layout.channels,
            image_dtype=layout.image_dtype,
            class_counts=tuple(counts[i].tolist()),
            void_pixels=int(void[i]),
            n_instances=int(n_instances[i]),
        )
        for i, (sid, split) in enumerate(zip(meta.sample_ids, meta.split, strict=True))
    ]


def _scan_blocks(
    samples: Sequence[SampleSource],
    scanned: list[SampleInfo | SampleProblem | PendingBlocks],
    config: BuildConfig,
    runner: Runner,
) -> tuple[list[SampleInfo | SampleProblem], list[tuple[int, ...]]]:
    """Scan the blocks of the samples pass 1 left pending, one task a block.

    Returns every sample's result and the class counts of the pending train
    samples (not yet in the tree reduction's statistics).
    """
    import dask

    pending = [(i, r) for i, r in enumerate(scanned) if isinstance(r, PendingBlocks)]
    if not pending:
        return scanned, []  # type: ignore[return-value]
    tasks, owners = [], []
    for i, p in pending:
        block = config_block(config, len(p.shape))
        assert block is not None
        for pos, region in block_regions(p.shape, block):
            tasks.append(
                dask.delayed(scan_block_or_problem)(samples[i], config, p.shape, pos, region)
            )
            owners.append(i)
    results = runner.compute(tasks, f"scanning {len(tasks)} block(s) of {len(pending)} sample(s)")
    by_sample: dict[int, list[Any]] = {}
    for i, r in zip(owners, results, strict=True):
        by_sample.setdefault(i, []).append(r)
    out: list[SampleInfo | SampleProblem] = list(scanned)  # type: ignore[arg-type]
    train: list[tuple[int, ...]] = []
    for i, p in pending:
        problem = next((r for r in by_sample[i] if isinstance(r, SampleProblem)), None)
        if problem is not None:
            out[i] = problem
            continue
        info = blockwise_info(p, by_sample[i])
        out[i] = info
        if info.split == "train":
            train.append(info.class_counts)
    return out, train


def scan_dataset(
    dataset: Dataset,
    files: dict[Path, tuple[str, int, int]],
    config: BuildConfig,
    runner: Runner,
    on_error: str,
    wanted: dict[str, Any],
) -> tuple[StoreMetadata, list[SampleInfo], list[SampleSource], np.ndarray]:
    """Pass 1: check and count every sample; the new store's metadata and shapes."""
    import dask

    samples = dataset.samples
    step = config.shard_size
    bounds = [(a, min(a + step, len(samples))) for a in range(0, len(samples), step)]
    scans = [dask.delayed(scan_group)(plain(samples[a:b]), config) for a, b in bounds]
    stats_total = tree_sum([dask.delayed(stats_of)(s) for s in scans], add_stats)
    results = runner.compute([*scans, stats_total], f"scanning {len(samples)} sample(s)")
    scanned = [r for group_results, _ in results[:-1] for r in group_results]
    stats: ClassStats = results[-1]
    scanned, big_train = _scan_blocks(samples, scanned, config, runner)
    if big_train:
        stats = stats + ClassStats.from_sample_counts(big_train, config.num_classes)
    problems = [SampleProblem(sid, msg) for sid, msg in dataset.problems]
    problems += [r for r in scanned if isinstance(r, SampleProblem)]
    if problems and on_error == "fail":
        raise _problems_error(problems, len(samples))
    infos = [r for r in scanned if isinstance(r, SampleInfo)]
    good = [s for s, r in zip(samples, scanned, strict=True) if isinstance(r, SampleInfo)]
    if not infos:
        listed = [p.message for p in problems[:10]]
        if len(problems) > 10:
            listed.append(f"... and {len(problems) - 10} more")
        raise DataError(
            "\n".join(
                [f"{dataset.root}: no usable samples ({len(problems)} had problems)", *listed]
            )
        )
    if not any(i.split == "train" for i in infos):
        raise DataError(
            f"{dataset.root}: the train split is empty (every usable sample is in the valid "
            "split), so there are no class statistics to weight by"
        )

    weights = class_weights(stats, config.class_weights, class_names=config.class_names)
    layout = plan_layout(infos, good, config)
    metadata = StoreMetadata(
        maskprep_version=__version__,
        layout=dataset.layout,
        class_names=config.class_names,
        void_label=config.void_label,
        class_stats=stats,
        class_weights=tuple(float(w) for w in weights),
        class_weight_config=config.class_weights,
        # float(): an int w0=10 would be written as 10 and read back as 10.0,
        # and the metadata digest would no longer match.
        w0=float(config.w0),
        sigma=float(config.sigma),
        border_region=config.border_region,
        tolerance=float(config.tolerance),
        spacing=config.spacing,
        records=StoreRecords(
            array_names=layout.array_names,
            sample_ids=[i.sample_id for i in infos],
            split=[i.split for i in infos],
            instance_counts=[i.n_instances for i in infos],
            sample_class_counts=np.asarray([i.class_counts for i in infos], dtype=np.int64).reshape(
                len(infos), config.num_classes
            ),
            void_pixels=[i.void_pixels for i in infos],
            # Each file once: COCO samples share their split's annotation JSON.
            inputs=[
                {"path": files[p][0], "bytes": files[p][1]}
                for p in dict.fromkeys(p for s in good for p in s.files())
            ],
            quarantine=[{"sample_id": p.sample_id, "error": p.message} for p in problems],
            notes=[{"sample_id": i.sample_id, "note": n} for i in infos for n in i.notes],
        ),
        shard_size=config.shard_size,
        config=wanted["config"],
        on_error=on_error,
        inputs_digest=wanted["inputs_digest"],
        layout_info=layout,
        format_version=FORMAT_VERSION if config.tile is None else RECORDS_FORMAT_VERSION,
    )
    shapes = np.asarray([i.shape for i in infos], dtype=np.int32)
    return metadata, infos, good, shapes
