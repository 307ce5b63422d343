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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from maskprep.config import BuildConfig
from maskprep.errors import StoreError
from maskprep.pipeline.build import _Runner, weight_lookup, weight_map
from maskprep.store.format import (
    FORMAT_VERSION,
    StoreLayout,
    done_shards,
    mark_complete,
    read_attrs,
    record_shard,
    write_attrs,
    write_shard,
)
from maskprep.store.location import Location
from maskprep.weighting import ClassStats, ClassWeightConfig, class_weights

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
    weights = np.zeros(labels.shape, dtype=np.float32)
    for j in range(stop - start):
        window = tuple(slice(0, int(s)) for s in shapes[j])
        weights[j][window] = weight_map(instances[j][window], labels[j][window], config, lut)
    # Only the weights change; the other arrays keep the checksums recorded at build.
    checksums = {
        **unchanged,
        "weights": write_shard(loc, layout, shard, "weights", weights, config.zstd_level),
    }
    record = {"shard": shard, "samples": [start, stop], "checksums": checksums}
    record_shard(loc, shard, record)
    return shard


def reweight(
    target: str | os.PathLike[str],
    class_weight_config: ClassWeightConfig,
    *,
    scheduler: str = "threads",
    workers: int | None = None,
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> ReweightSummary:
    """Recompute class weights (and the weight maps) of a store under another scheme.

    An interrupted reweight leaves the store marked incomplete; running the
    same reweight again finishes it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import ClassWeightConfig, build_weights, make_sample, open_shards
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = build_weights(make_sample(tmp / "d", n_images=3, size=(16, 16)), tmp / "o.zarr",
    ...                   scheduler="sync")
    >>> s = reweight(tmp / "o.zarr", ClassWeightConfig(scheme="none"), scheduler="sync")
    >>> open_shards(tmp / "o.zarr").class_weights.tolist()
    [1.0, 1.0]
    """
    import dask

    t0 = time.perf_counter()
    loc = Location.parse(target, storage_options)
    meta = read_attrs(loc)
    if meta is None:
        raise StoreError(f"{loc}: not a maskprep store")
    if meta.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{loc}: unsupported store format {meta.get('format_version')}")
    target_cfg = class_weight_config.to_dict()
    interrupted = meta.get("stage") == "reweighting"
    if interrupted and meta.get("reweight_target") != target_cfg:
        raise StoreError(
            f"{loc}: an interrupted reweight to {meta.get('reweight_target')} must be "
            "finished first (run it again with the same options)"
        )
    if not meta.get("complete") and not interrupted:
        raise StoreError(
            f"{loc}: the store is incomplete; finish its build-weights run before reweighting"
        )
    old_weights = tuple(float(w) for w in meta["class_weights"])
    build_cfg = replace(BuildConfig.from_dict(meta["config"]), class_weights=class_weight_config)
    stats = ClassStats.from_dict(meta["class_stats"])
    weights = class_weights(stats, class_weight_config, class_names=build_cfg.class_names)
    new_meta = dict(meta)
    new_meta.pop("reweight_target", None)
    new_meta.update(
        {
            "class_weights": [float(w) for w in weights],
            "class_weight_scheme": class_weight_config.scheme,
            "class_weight_config": target_cfg,
            "config": build_cfg.to_dict(),
        }
    )
    # Mark the store incomplete before touching any shard: a crash from here on
    # leaves a store that readers refuse, not one with mixed weights.
    write_attrs(
        loc, {**meta, "complete": False, "stage": "reweighting", "reweight_target": target_cfg}
    )
    layout = StoreLayout.from_dict(meta["layout_info"])
    lut = weight_lookup(build_cfg, weights)
    tasks = [
        dask.delayed(_reweight_shard)(
            loc, k, a, b, build_cfg, layout, lut, meta["shard_checksums"][k]
        )
        for k, (a, b) in enumerate(layout.shard_bounds())
    ]
    with _Runner(scheduler, workers, progress, retries=2) as runner:
        runner.compute(tasks, f"rewriting the weights of {len(tasks)} shard(s)")
    records = done_shards(loc)
    n_shards = len(layout.shard_bounds())
    new_meta["shard_checksums"] = [records[k]["checksums"] for k in range(n_shards)]
    loc.sweep_temporaries()
    mark_complete(loc, new_meta)
    return ReweightSummary(
        store=str(loc),
        scheme=class_weight_config.scheme,
        class_names=build_cfg.class_names,
        old_weights=old_weights,
        new_weights=tuple(float(w) for w in weights),
        shards_rewritten=n_shards,
        seconds=time.perf_counter() - t0,
    )
