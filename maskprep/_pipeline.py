"""The two-pass Dask build: scan and count, then write one shard per task.

Pass 1 reads every sample once, checks it, and returns its shape and exact
integer class statistics; the train split's statistics are merged by a Dask tree
reduction. The class weights follow from them. Pass 2 re-reads each shard's
samples, fills void, computes the border weight maps and writes the shard. A
task owns a whole shard, so no two tasks ever write parts of the same shard
(zarr would silently lose samples).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskprep._border import border_weights
from maskprep._class_weights import ClassStats, class_weights
from maskprep._config import BuildConfig
from maskprep._errors import DataError
from maskprep._ingest import Dataset, LoadedSample, SampleSource, discover, read_sample
from maskprep._store import (
    FORMAT_VERSION,
    StoreLayout,
    create_store,
    mark_complete,
    prepare_output,
)
from maskprep._version import __version__

__all__ = [
    "SCHEDULERS",
    "BuildSummary",
    "SampleInfo",
    "build_weights",
    "sample_arrays",
    "semantic_labels",
]

SCHEDULERS = ("threads", "processes", "sync", "local-cluster")


@dataclass(frozen=True)
class SampleInfo:
    """What pass 1 learns about one sample."""

    sample_id: str
    split: str
    shape: tuple[int, ...]
    channels: int | None
    image_dtype: str
    class_counts: tuple[int, ...]
    void_pixels: int
    n_instances: int


@dataclass(frozen=True)
class BuildSummary:
    """Result of :func:`build_weights`."""

    out: Path
    n_samples: int
    n_train: int
    n_valid: int
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    class_weights: tuple[float, ...]
    void_pixels: int
    bytes_on_disk: int
    seconds: float


def semantic_labels(
    instances: np.ndarray, void: np.ndarray, void_label: int, dtype: Any = np.uint8
) -> np.ndarray:
    """Semantic labels of an instance dataset: 0 background, 1 object, void elsewhere.

    Examples
    --------
    >>> inst = np.array([[0, 7], [0, 0]], dtype=np.int32)
    >>> void = np.array([[False, False], [False, True]])
    >>> semantic_labels(inst, void, 255)
    array([[  0,   1],
           [  0, 255]], dtype=uint8)
    """
    labels = (instances != 0).astype(dtype)
    labels[void] = void_label
    return labels


def _count_classes(labels: np.ndarray, void_label: int, num_classes: int) -> np.ndarray:
    valid = labels[labels != void_label]
    return np.bincount(valid.ravel(), minlength=num_classes).astype(np.int64)[:num_classes]


def _load(src: SampleSource, config: BuildConfig) -> LoadedSample:
    return read_sample(src, unlabeled_value=config.unlabeled_value)


def _scan_group(
    sources: Sequence[SampleSource], config: BuildConfig
) -> tuple[list[SampleInfo], ClassStats]:
    infos = []
    c = config.num_classes
    counts = np.zeros(c, dtype=np.int64)
    present = np.zeros(c, dtype=np.int64)
    images_with = np.zeros(c, dtype=np.int64)
    n_train = 0
    for src in sources:
        s = _load(src, config)
        labels = semantic_labels(s.instances, s.void, config.void_label, np.uint16)
        per = _count_classes(labels, config.void_label, c)
        ids = np.unique(s.instances)
        n_inst = int(ids.size - (1 if ids.size and ids[0] == 0 else 0))
        channels = s.image.shape[-1] if s.image.ndim == s.instances.ndim + 1 else None
        infos.append(
            SampleInfo(
                sample_id=src.sample_id,
                split=src.split,
                shape=tuple(int(n) for n in s.instances.shape),
                channels=None if channels is None else int(channels),
                image_dtype=str(s.image.dtype),
                class_counts=tuple(int(n) for n in per),
                void_pixels=int(s.void.sum()),
                n_instances=n_inst,
            )
        )
        if src.split == "train":
            n_train += 1
            counts += per
            on = per > 0
            present[on] += int(per.sum())
            images_with[on] += 1
    stats = ClassStats(
        class_counts=tuple(int(n) for n in counts),
        present_pixels=tuple(int(n) for n in present),
        image_counts=tuple(int(n) for n in images_with),
        n_images=n_train,
    )
    return infos, stats


def _add_stats(a: ClassStats, b: ClassStats) -> ClassStats:
    return a + b


def _stats_of(scan: tuple[list[SampleInfo], ClassStats]) -> ClassStats:
    return scan[1]


def _tree_sum(items: list[Any], combine: Callable[..., Any]) -> Any:
    import dask

    while len(items) > 1:
        items = [
            dask.delayed(combine)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]


def sample_arrays(
    src: SampleSource, config: BuildConfig, weight_lut: np.ndarray, labels_dtype: Any
) -> dict[str, np.ndarray]:
    """The four stored arrays of one sample, unpadded.

    ``weight_lut[label]`` is the class weight of each label value (0 for void).
    """
    s = _load(src, config)
    labels = semantic_labels(s.instances, s.void, config.void_label, labels_dtype)
    border = border_weights(
        s.instances,
        w0=config.w0,
        sigma=config.sigma,
        spacing=config.spacing,
        region=config.border_region,
        tolerance=config.tolerance,
    )
    weights = weight_lut[labels] + border
    weights[s.void] = 0.0
    return {"image": s.image, "labels": labels, "instances": s.instances, "weights": weights}


def _write_shard(
    out: str,
    start: int,
    sources: Sequence[SampleSource],
    infos: Sequence[SampleInfo],
    config: BuildConfig,
    layout: StoreLayout,
    weight_lut: np.ndarray,
) -> int:
    import zarr

    n = len(sources)
    blocks = {
        name: np.full(
            (n, *layout.array_shape(name)[1:]), layout.fill_value(name), dtype=layout.dtype(name)
        )
        for name in ("image", "labels", "instances", "weights")
    }
    for j, (src, info) in enumerate(zip(sources, infos, strict=True)):
        arrays = sample_arrays(src, config, weight_lut, layout.dtype("labels"))
        if arrays["labels"].shape != info.shape:
            raise DataError(
                f"{src.masks[0] if src.masks else src.image}: changed while the build was "
                f"running (shape {arrays['labels'].shape}, was {info.shape})"
            )
        window: tuple[int | slice, ...] = (j, *(slice(0, k) for k in info.shape))
        for name, arr in arrays.items():
            blocks[name][window] = arr
    group = zarr.open_group(out, mode="r+")
    for name, block in blocks.items():
        group[name][start : start + n] = block  # type: ignore[index]
    return start


def _plan_layout(infos: Sequence[SampleInfo], config: BuildConfig, dataset: Dataset) -> StoreLayout:
    first = infos[0]
    ndim = len(first.shape)
    for info, src in zip(infos, dataset.samples, strict=True):
        if len(info.shape) != ndim:
            raise DataError(
                f"{src.image}: is {len(info.shape)}D but {dataset.samples[0].image} is {ndim}D; "
                "a dataset must be all 2D or all 3D"
            )
        if info.channels != first.channels:
            raise DataError(
                f"{src.image}: has {info.channels or 1} channel(s) but "
                f"{dataset.samples[0].image} has {first.channels or 1}"
            )
    if config.spacing is not None and len(config.spacing) != ndim:
        raise DataError(
            f"{dataset.root}: spacing {config.spacing} has {len(config.spacing)} values "
            f"for {ndim}D images"
        )
    spatial = tuple(max(info.shape[a] for info in infos) for a in range(ndim))
    image_dtype = np.result_type(*[np.dtype(info.image_dtype) for info in infos])
    if image_dtype == np.bool_:
        image_dtype = np.dtype(np.uint8)
    labels_dtype = "uint8" if max(config.void_label, config.num_classes - 1) <= 255 else "uint16"
    return StoreLayout(
        n_samples=len(infos),
        spatial_shape=spatial,
        channels=first.channels,
        image_dtype=str(image_dtype),
        labels_dtype=labels_dtype,
        shard_size=config.shard_size,
        void_label=config.void_label,
    )


def _compute(tasks: list[Any], scheduler: str, workers: int | None, progress: bool) -> list[Any]:
    import dask

    if scheduler == "local-cluster" or "://" in scheduler:
        from distributed import Client, LocalCluster
        from distributed import progress as dist_progress

        if scheduler == "local-cluster":
            cluster = LocalCluster(
                n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        else:
            cluster = None
            client = Client(scheduler)
        try:
            futures = client.compute(tasks)
            if progress:
                dist_progress(futures)
            return list(client.gather(futures))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    kwargs: dict[str, Any] = {"scheduler": scheduler}
    if workers is not None and scheduler != "sync":
        kwargs["num_workers"] = workers
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*tasks, **kwargs))
    return list(dask.compute(*tasks, **kwargs))


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total


def build_weights(
    dataset_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: BuildConfig | None = None,
    *,
    scheduler: str = "threads",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> BuildSummary:
    """Build a zarr v3 store of training-ready shards from a dataset directory.

    Parameters
    ----------
    dataset_dir : path
        Dataset in the ``instances`` or ``dsb2018`` layout (see :func:`discover`).
    out : path
        Output ``.zarr`` directory; must not exist unless it is a maskprep store
        and ``overwrite`` is given.
    config : BuildConfig, optional
        Void label, class weight scheme, border term parameters, shard size.
    scheduler : {"threads", "processes", "sync", "local-cluster"} or str
        Dask scheduler; an address such as ``tcp://host:8786`` uses that
        dask-distributed cluster.
    workers : int, optional
        Number of local workers.
    overwrite : bool
        Replace an existing maskprep store at ``out``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    BuildSummary

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import make_sample, open_shards
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> data = make_sample(tmp / "nuclei", n_images=3, size=(32, 32))
    >>> summary = build_weights(data, tmp / "out.zarr", scheduler="sync")
    >>> summary.n_samples, summary.class_names
    (3, ('background', 'object'))
    >>> open_shards(tmp / "out.zarr")[0]["weights"].dtype
    dtype('float32')
    """
    import dask

    t0 = time.perf_counter()
    config = config or BuildConfig()
    if scheduler not in SCHEDULERS and "://" not in scheduler:
        raise ValueError(
            f"scheduler must be one of {', '.join(SCHEDULERS)} or a tcp:// address, "
            f"got {scheduler!r}"
        )
    dataset = discover(dataset_dir, config.layout)
    out_path = Path(out)
    prepare_output(out_path, overwrite=overwrite)

    samples = dataset.samples
    step = config.shard_size
    bounds = [(a, min(a + step, len(samples))) for a in range(0, len(samples), step)]
    scans = [dask.delayed(_scan_group)(samples[a:b], config) for a, b in bounds]
    stats_total = _tree_sum([dask.delayed(_stats_of)(s) for s in scans], _add_stats)
    results = _compute([*scans, stats_total], scheduler, workers, progress)
    infos = [info for group_infos, _ in results[:-1] for info in group_infos]
    stats: ClassStats = results[-1]

    layout = _plan_layout(infos, config, dataset)
    weights = class_weights(stats, config.class_weights, class_names=config.class_names)
    lut_size = max(config.void_label, config.num_classes - 1) + 1
    weight_lut = np.zeros(lut_size, dtype=np.float32)
    weight_lut[: config.num_classes] = weights.astype(np.float32)

    root = dataset.root.resolve()
    metadata = {
        "format_version": FORMAT_VERSION,
        "maskprep_version": __version__,
        "layout": dataset.layout,
        "class_names": list(config.class_names),
        "void_label": config.void_label,
        "class_counts": list(stats.class_counts),
        "class_stats": stats.to_dict(),
        "class_weights": [float(w) for w in weights],
        "class_weight_scheme": config.class_weights.scheme,
        "class_weight_config": config.class_weights.to_dict(),
        "w0": config.w0,
        "sigma": config.sigma,
        "border_region": config.border_region,
        "tolerance": config.tolerance,
        "spacing": None if config.spacing is None else list(config.spacing),
        "sample_ids": [s.sample_id for s in samples],
        "split": [s.split for s in samples],
        "instance_counts": [i.n_instances for i in infos],
        "sample_class_counts": [list(i.class_counts) for i in infos],
        "void_pixels": [i.void_pixels for i in infos],
        "padding": "end of each axis; image 0, labels void_label, instances 0, weights 0",
        "shard_size": config.shard_size,
        "inputs": [
            {"path": str(p.resolve().relative_to(root)), "bytes": p.stat().st_size}
            for s in samples
            for p in s.files()
        ],
        "config": config.to_dict(),
    }
    create_store(out_path, layout, metadata, config.zstd_level)

    import zarr

    shapes = zarr.open_array(str(out_path / "shapes"), mode="r+")
    shapes[:] = np.asarray([i.shape for i in infos], dtype=np.int32)

    writes = [
        dask.delayed(_write_shard)(
            str(out_path), a, samples[a:b], infos[a:b], config, layout, weight_lut
        )
        for a, b in layout.shard_bounds()
    ]
    _compute(writes, scheduler, workers, progress)
    mark_complete(out_path)
    return BuildSummary(
        out=out_path,
        n_samples=len(samples),
        n_train=sum(s.split == "train" for s in samples),
        n_valid=sum(s.split == "valid" for s in samples),
        class_names=config.class_names,
        class_counts=stats.class_counts,
        class_weights=tuple(float(w) for w in weights),
        void_pixels=sum(i.void_pixels for i in infos),
        bytes_on_disk=_dir_size(out_path),
        seconds=time.perf_counter() - t0,
    )
