"""``maskprep reweight``: switch class-weight scheme without re-reading the dataset.

The store's metadata keeps exact class statistics, so any scheme's weights
follow without touching the images. The weight maps include the class weight,
so their shards are rewritten too, from the stored labels and instances (the
same inputs the build used), giving the store a fresh build with that scheme
would give, byte for byte.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from maskprep.config import BuildConfig
from maskprep.errors import StoreError
from maskprep.pipeline.blocks import _grow, _inside, is_blockwise
from maskprep.pipeline.kernels import KernelWarmup
from maskprep.pipeline.runner import Progress, Runner
from maskprep.pipeline.write import write_blocks
from maskprep.store import (
    SHAPES_KEY,
    Location,
    StoreLayout,
    StoreMetadata,
    done_parts,
    mark_complete,
    put_shard_file,
    read_store_metadata,
    record_part,
    shapes_checksum,
    shard_checksums,
    shard_encoder,
    write_metadata,
    writer_lock,
)
from maskprep.targets import TARGETS, TargetInput
from maskprep.targets.weights import weight_lookup
from maskprep.weighting import ClassWeightConfig, class_weights

__all__ = ["ReweightSummary", "reweight"]


@dataclass(frozen=True)
class ReweightSummary:
    """Result of :func:`reweight`."""

    store: str
    scheme: str
    class_names: tuple[str, ...]
    old_weights: tuple[float, ...]
    new_weights: tuple[float, ...]
    shards_rewritten: int
    seconds: float


def _reweight_shard(
    loc: Location,
    shard: int,
    start: int,
    stop: int,
    config: BuildConfig,
    layout: StoreLayout,
    lut: np.ndarray,
    unchanged: dict[str, str | None],
) -> int:
    import zarr

    group = zarr.open_group(loc.zarr_store(), mode="r")
    labels = np.asarray(group["labels"][start:stop])  # type: ignore[index]
    instances = np.asarray(group["instances"][start:stop])  # type: ignore[index]
    shapes = np.asarray(group["shapes"][start:stop])  # type: ignore[index]
    names = _reweighted(layout)
    blocks = {
        name: np.full(
            (stop - start, *layout.array_shape(name)[1:]),
            layout.fill_value(name),
            dtype=layout.dtype(name),
        )
        for name in names
    }
    for j in range(stop - start):
        window = tuple(slice(0, int(s)) for s in shapes[j])
        sample = TargetInput(None, labels[j][window], instances[j][window], config, lut)
        for name in names:
            blocks[name][j][window] = TARGETS.get(name).compute(sample)
    # Only these targets change; the other arrays keep the checksums recorded at build.
    kept = {k: v for k, v in unchanged.items() if k not in names}
    write_blocks(loc, layout, shard, start, blocks, config.zstd_level, unchanged=kept)
    return shard


def _reweight_part(
    loc: Location,
    shard: int,
    part: int,
    start: int,
    stop: int,
    config: BuildConfig,
    layout: StoreLayout,
    lut: np.ndarray,
    unchanged: dict[str, str | None],
) -> int:
    """Reweight one spatial shard of a shard holding a sample built block by block.

    Each sample's part of it is recomputed from its labels and instances
    read over the part grown by the reweighted targets' halo (zarr reads
    only the chunks that touches), so memory stays bounded by the block.
    """
    import zarr

    group = zarr.open_group(loc.zarr_store(), mode="r")
    shapes = np.asarray(group["shapes"][start:stop])  # type: ignore[index]
    names = _reweighted(layout)
    ndim = len(layout.spatial_shape)
    halo = tuple(
        max((TARGETS.get(n).halo(ndim, config)[a] for n in names), default=0) for a in range(ndim)
    )
    pos, region = layout.spatial_shards()[part]
    encoders = {name: shard_encoder(layout, name, pos, config.zstd_level) for name in names}
    for j in range(stop - start):
        shape = tuple(int(v) for v in shapes[j])
        mine = layout.in_sample(region, shape)
        if mine is None:
            continue
        crop = _grow(mine, halo, shape)
        labels = np.asarray(group["labels"][(start + j, *crop)])  # type: ignore[index]
        instances = np.asarray(group["instances"][(start + j, *crop)])  # type: ignore[index]
        sample = TargetInput(None, labels, instances, config, lut)
        inner = _inside(crop, mine)
        for name in names:
            encoders[name].add(j, (0,) * ndim, TARGETS.get(name).compute(sample)[inner])
    checksums = dict(unchanged)
    for name, enc in encoders.items():
        key = layout.shard_key(name, shard, pos)
        checksums[name] = put_shard_file(loc, key, enc.finish())
    record_part(
        loc,
        shard,
        part,
        {"shard": shard, "part": part, "samples": [start, stop], "checksums": checksums},
    )
    return shard


def _check_inputs(
    loc: Location, meta: StoreMetadata, checksums: Sequence[dict[str, str | None]]
) -> None:
    """Refuse, before the store is touched, to reweight from damaged labels,
    instances or shapes (their files must match the checksums of the build).

    A damaged chunk would otherwise stop the reweight halfway, with the store
    marked "reweighting" and every retry failing the same way.
    """
    layout = meta.layout_info
    if meta.shapes_checksum is not None and shapes_checksum(loc) != meta.shapes_checksum:
        raise StoreError(
            f"{loc}/{SHAPES_KEY}: checksum mismatch (the sample shapes were modified); the "
            "store was not changed: restore the file or rebuild the store"
        )
    n_shards = len(layout.shard_bounds())
    for k in range(n_shards if len(checksums) == n_shards else 0):
        actual = shard_checksums(loc, layout, k, ("labels", "instances"))
        for name, digest in actual.items():
            if digest != checksums[k].get(name):
                key = f"{name}/c/{k}/*" if layout.tiled else layout.shard_key(name, k)
                raise StoreError(
                    f"{loc}/{key}: checksum mismatch (the shard was modified or is "
                    "damaged); the store was not changed: restore the file or rebuild the store"
                )


def _reweighted(layout: StoreLayout) -> list[str]:
    """The stored targets that depend on the class weights."""
    return [t.name for t in layout.targets if TARGETS.get(t.name).uses_class_weights]


def _check_local(layout: StoreLayout, loc: Location) -> None:
    for name in _reweighted(layout):
        if TARGETS.get(name).context != "local":
            raise StoreError(
                f"{loc}: target {name!r} depends on the class weights and needs more than "
                "a halo around each block; its samples built block by block cannot be "
                "reweighted (rebuild with the new class weights instead)"
            )


def reweight(
    target: str | os.PathLike[str],
    class_weight_config: ClassWeightConfig,
    *,
    scheduler: str = "threads",
    workers: int | None = None,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ReweightSummary:
    """Recompute class weights (and the weight maps) of a store under another scheme.

    An interrupted reweight leaves the store marked incomplete; running the
    same reweight again finishes it.

    Examples
    --------
    >>> from maskprep import ClassWeightConfig, example_store, open_shards
    >>> store = example_store(n_images=3)
    >>> s = reweight(store, ClassWeightConfig(scheme="none"), scheduler="sync")
    >>> open_shards(store).class_weights.tolist()
    [1.0, 1.0]
    """
    t0 = time.perf_counter()
    loc = Location.parse(target, storage_options)
    if loc.is_local and loc.path.is_symlink():
        loc = Location(str(loc.path.resolve()), {})
    with writer_lock(loc, "reweight"):
        return _reweight_locked(loc, class_weight_config, scheduler, workers, progress, t0)


def _reweight_locked(
    loc: Location,
    class_weight_config: ClassWeightConfig,
    scheduler: str,
    workers: int | None,
    progress: Progress | None,
    t0: float,
) -> ReweightSummary:
    import dask
    import zarr

    meta = read_store_metadata(loc)
    if meta is None:
        problem = "not a maskprep store" if loc.exists() else "no such store"
        raise StoreError(f"{loc}: {problem}")
    target_cfg = class_weight_config.to_dict()
    interrupted = meta.stage == "reweighting"
    if interrupted and meta.reweight_target != target_cfg:
        raise StoreError(
            f"{loc}: an interrupted reweight to {meta.reweight_target} must be "
            "finished first (run it again with the same options)"
        )
    if not meta.complete and not interrupted:
        raise StoreError(
            f"{loc}: the store is incomplete; finish its build-weights run before reweighting"
        )
    old_weights = meta.class_weights
    build_cfg = replace(meta.build_config(), class_weights=class_weight_config)
    weights = class_weights(
        meta.class_stats, class_weight_config, class_names=build_cfg.class_names
    )
    new_meta = replace(
        meta,
        class_weights=tuple(float(w) for w in weights),
        class_weight_config=class_weight_config,
        config=build_cfg.to_dict(),
        reweight_target=None,
    )
    layout = meta.layout_info
    missing = [
        name for name in (*layout.array_names, "shapes") if not loc.exists(f"{name}/zarr.json")
    ]
    if missing:
        raise StoreError(
            f"{loc}/{missing[0]}/zarr.json: array metadata is missing (the store is damaged; "
            "rebuild it); the store was not changed"
        )
    checksums = meta.shard_checksums or ()
    _check_inputs(loc, meta, checksums)
    lut = weight_lookup(build_cfg.void_label, build_cfg.num_classes, weights)
    shapes = np.asarray(zarr.open_array(loc.zarr_store(), path="shapes", mode="r")[:])
    parts = done_parts(loc)
    tasks = []
    for k, (a, b) in enumerate(layout.shard_bounds()):
        if not any(is_blockwise(tuple(shapes[j]), layout.block) for j in range(a, b)):
            tasks.append(
                dask.delayed(_reweight_shard)(loc, k, a, b, build_cfg, layout, lut, checksums[k])
            )
            continue
        _check_local(layout, loc)
        for part in range(len(layout.spatial_shards())):
            kept = {
                n: d
                for n, d in parts.get((k, part), {}).get("checksums", {}).items()
                if n not in _reweighted(layout)
            }
            tasks.append(
                dask.delayed(_reweight_part)(loc, k, part, a, b, build_cfg, layout, lut, kept)
            )
    # Connect first (an unreachable scheduler changes nothing), then mark the
    # store incomplete before touching any shard: a crash from there on leaves
    # a store that readers refuse, not one with mixed weights.
    with Runner(scheduler, workers, progress, retries=2) as runner:
        KernelWarmup(progress).wait()  # a fresh install compiles the kernels first
        write_metadata(
            loc, replace(meta, complete=False, stage="reweighting", reweight_target=target_cfg)
        )
        runner.compute(tasks, f"rewriting the weights of {len(tasks)} shard(s)")
    mark_complete(loc, new_meta)
    return ReweightSummary(
        store=str(loc),
        scheme=class_weight_config.scheme,
        class_names=build_cfg.class_names,
        old_weights=old_weights,
        new_weights=tuple(float(w) for w in weights),
        shards_rewritten=len(tasks),
        seconds=time.perf_counter() - t0,
    )
