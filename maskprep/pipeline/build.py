"""The two-pass Dask build: scan and count, then write one shard per task.

Pass 1 reads every sample once, checks it, and returns its shape and exact
integer class statistics; the train split's statistics are merged by a Dask tree
reduction. The class weights follow from them. Pass 2 re-reads each shard's
samples, fills void, computes the border weight maps and writes the shard. A
task owns a whole shard, so no two tasks ever write parts of the same shard
(zarr would silently lose samples); a task that is retried or re-run rewrites
the same bytes.

A build is resumable: each finished shard leaves a marker with its checksums,
and re-running the same command on an incomplete store writes only the missing
shards. Changed inputs or parameters are detected and refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from maskprep._version import __version__
from maskprep.config import BuildConfig
from maskprep.errors import DataError, StoreError
from maskprep.ingest import Dataset, LoadedSample, SampleSource, discover, read_sample
from maskprep.store.format import (
    ARRAY_NAMES,
    FORMAT_VERSION,
    StoreLayout,
    create_store,
    done_shards,
    mark_complete,
    read_attrs,
    record_shard,
    write_shard,
)
from maskprep.store.location import Location
from maskprep.targets.border import border_weights
from maskprep.weighting import ClassStats, class_weights

__all__ = [
    "ON_ERROR",
    "SCHEDULERS",
    "BuildSummary",
    "SampleInfo",
    "SampleProblem",
    "build_weights",
    "sample_arrays",
    "sample_labels",
    "semantic_labels",
]

SCHEDULERS = ("threads", "processes", "sync", "local-cluster")
ON_ERROR = ("fail", "skip")

# Test hook: seconds each shard task sleeps first, so a test can kill a build
# between shards. Never set in normal use.
_SHARD_DELAY_ENV = "MASKPREP_TEST_SHARD_DELAY"


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


@dataclass(frozen=True)
class SampleProblem:
    """A sample pass 1 could not use, and why (message names the file)."""

    sample_id: str
    message: str


@dataclass(frozen=True)
class BuildSummary:
    """Result of :func:`build_weights`."""

    out: str
    n_samples: int
    n_train: int
    n_valid: int
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    class_weights: tuple[float, ...]
    void_pixels: int
    bytes_on_disk: int
    seconds: float
    shards_written: int
    shards_skipped: int
    quarantined: tuple[dict[str, str], ...] = ()
    notes: tuple[dict[str, str], ...] = ()


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


def sample_labels(s: LoadedSample, config: BuildConfig, dtype: Any = np.uint8) -> np.ndarray:
    """The stored labels of a loaded sample, void filled, as ``dtype``.

    Semantic layouts read their labels (:attr:`LoadedSample.labels`);
    instances and dsb2018 derive them with :func:`semantic_labels`.
    """
    if s.labels is None:
        return semantic_labels(s.instances, s.void, config.void_label, dtype)
    return s.labels.astype(dtype, copy=False)


def _count_classes(labels: np.ndarray, void_label: int, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels.ravel(), minlength=max(num_classes, void_label + 1))
    counts[void_label] = 0
    return counts[:num_classes].astype(np.int64)


def _split_instances(instances: np.ndarray) -> list[int]:
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


def _load(src: SampleSource, config: BuildConfig, *, image: bool = True) -> LoadedSample:
    return read_sample(
        src,
        unlabeled_value=config.unlabeled_value,
        max_pixels=config.max_pixels,
        image=image,
        source=config.source,
        void_label=config.void_label,
    )


def _count_instances(instances: np.ndarray) -> int:
    top = int(instances.max(initial=0))
    if top < 1 << 22:
        # Cheaper than np.unique for the id ranges annotation tools produce.
        return int(np.count_nonzero(np.bincount(instances.ravel(), minlength=1)[1:]))
    ids = np.unique(instances)
    return int(ids.size - (1 if ids[0] == 0 else 0))


def _scan_sample(src: SampleSource, config: BuildConfig) -> SampleInfo:
    s = _load(src, config, image=False)
    c = config.num_classes
    labels = sample_labels(s, config, np.uint16)
    per = _count_classes(labels, config.void_label, c)
    n_inst = _count_instances(s.instances)
    channels = s.image_shape[-1] if len(s.image_shape) == s.instances.ndim + 1 else None
    notes = []
    # Instances in several pieces hint at annotation mistakes in instance
    # masks; in Cityscapes and COCO they are occluded objects, by design.
    split = _split_instances(s.instances) if config.source is None else []
    if split:
        shown = ", ".join(str(i) for i in split[:10])
        more = f" and {len(split) - 10} more" if len(split) > 10 else ""
        notes.append(
            f"{src.masks[0] if src.masks else src.image}: instance id(s) {shown}{more} "
            "have several separate pieces (kept as one instance each)"
        )
    return SampleInfo(
        sample_id=src.sample_id,
        split=src.split,
        shape=tuple(int(n) for n in s.instances.shape),
        channels=None if channels is None else int(channels),
        image_dtype=str(s.image_dtype),
        class_counts=tuple(int(n) for n in per),
        void_pixels=int(s.void.sum()),
        n_instances=n_inst,
        notes=tuple(notes),
    )


def _scan_group(
    sources: Sequence[SampleSource], config: BuildConfig
) -> tuple[list[SampleInfo | SampleProblem], ClassStats]:
    results: list[SampleInfo | SampleProblem] = []
    c = config.num_classes
    counts = np.zeros(c, dtype=np.int64)
    present = np.zeros(c, dtype=np.int64)
    images_with = np.zeros(c, dtype=np.int64)
    n_train = 0
    for src in sources:
        try:
            info = _scan_sample(src, config)
        except DataError as exc:
            results.append(SampleProblem(src.sample_id, str(exc)))
            continue
        results.append(info)
        if src.split == "train":
            per = np.asarray(info.class_counts, dtype=np.int64)
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
    return results, stats


def _add_stats(a: ClassStats, b: ClassStats) -> ClassStats:
    return a + b


def _stats_of(scan: tuple[list[SampleInfo | SampleProblem], ClassStats]) -> ClassStats:
    return scan[1]


def _plain(value: Any) -> Any:
    """Wrap task arguments that hold no Dask collections, so Dask does not walk
    every dataclass field of thousands of samples when building the graph."""
    import dask

    return dask.delayed(value, traverse=False)


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
    assert s.image is not None
    labels = sample_labels(s, config, labels_dtype)
    return {
        "image": s.image,
        "labels": labels,
        "instances": s.instances,
        "weights": weight_map(s.instances, labels, config, weight_lut),
    }


def weight_map(
    instances: np.ndarray, labels: np.ndarray, config: BuildConfig, weight_lut: np.ndarray
) -> np.ndarray:
    """Class weight plus border term; 0 on void (``weight_lut[void_label] == 0``)."""
    border = border_weights(
        instances,
        w0=config.w0,
        sigma=config.sigma,
        spacing=config.spacing,
        region=config.border_region,
        tolerance=config.tolerance,
    )
    weights = weight_lut[labels] + border
    weights[labels == config.void_label] = 0.0
    return weights


def _write_blocks(
    loc: Location,
    layout: StoreLayout,
    shard: int,
    start: int,
    blocks: dict[str, np.ndarray],
    zstd_level: int,
) -> dict[str, Any]:
    checksums = {
        name: write_shard(loc, layout, shard, name, block, zstd_level)
        for name, block in blocks.items()
    }
    record = {
        "shard": shard,
        "samples": [start, start + next(iter(blocks.values())).shape[0]],
        "checksums": checksums,
    }
    record_shard(loc, shard, record)
    return record


def _write_shard(
    loc: Location,
    shard: int,
    start: int,
    sources: Sequence[SampleSource],
    infos: Sequence[SampleInfo],
    config: BuildConfig,
    layout: StoreLayout,
    weight_lut: np.ndarray,
) -> dict[str, Any]:
    delay = float(os.environ.get(_SHARD_DELAY_ENV, "0") or 0)
    if delay:
        time.sleep(delay)
    n = len(sources)
    blocks = {
        name: np.full(
            (n, *layout.array_shape(name)[1:]), layout.fill_value(name), dtype=layout.dtype(name)
        )
        for name in ARRAY_NAMES
    }
    for j, (src, info) in enumerate(zip(sources, infos, strict=True)):
        arrays = sample_arrays(src, config, weight_lut, layout.dtype("labels"))
        if arrays["labels"].shape != info.shape or str(arrays["image"].dtype) != info.image_dtype:
            raise DataError(
                f"{src.masks[0] if src.masks else src.image}: changed while the build was "
                f"running (shape {arrays['labels'].shape} {arrays['image'].dtype}, "
                f"was {info.shape} {info.image_dtype})"
            )
        window: tuple[int | slice, ...] = (j, *(slice(0, k) for k in info.shape))
        for name, arr in arrays.items():
            blocks[name][window] = arr
    return _write_blocks(loc, layout, shard, start, blocks, config.zstd_level)


def _plan_layout(
    infos: Sequence[SampleInfo], sources: Sequence[SampleSource], config: BuildConfig
) -> StoreLayout:
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
        labels_dtype=labels_dtype(config),
        shard_size=config.shard_size,
        void_label=config.void_label,
    )


def labels_dtype(config: BuildConfig) -> str:
    """Smallest unsigned dtype holding every class and the void label."""
    return "uint8" if max(config.void_label, config.num_classes - 1) <= 255 else "uint16"


def weight_lookup(config: BuildConfig, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """float32 table label -> class weight, 0 for void and unused values."""
    lut = np.zeros(max(config.void_label, config.num_classes - 1) + 1, dtype=np.float32)
    lut[: config.num_classes] = np.asarray(weights, dtype=np.float64).astype(np.float32)
    lut[config.void_label] = 0.0
    return lut


class _Runner:
    """Runs lists of delayed tasks on the chosen scheduler; one cluster per build."""

    def __init__(self, scheduler: str, workers: int | None, progress: bool, retries: int) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.progress = progress
        self.retries = retries
        self.client: Any = None
        self.cluster: Any = None

    @property
    def distributed(self) -> bool:
        return self.scheduler == "local-cluster" or "://" in self.scheduler

    def __enter__(self) -> _Runner:
        if self.distributed:
            from distributed import Client, LocalCluster

            if self.scheduler == "local-cluster":
                self.cluster = LocalCluster(
                    n_workers=self.workers or 2,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                self.client = Client(self.cluster)
            else:
                self.client = Client(self.scheduler)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def compute(self, tasks: list[Any], label: str = "") -> list[Any]:
        import dask

        if not tasks:
            return []
        if self.progress and label:
            print(label, flush=True)
        if self.client is not None:
            from distributed import progress as dist_progress

            futures = self.client.compute(tasks, retries=self.retries)
            if self.progress:
                dist_progress(futures)
            return list(self.client.gather(futures))
        kwargs: dict[str, Any] = {"scheduler": self.scheduler}
        if self.workers is not None and self.scheduler != "sync":
            kwargs["num_workers"] = self.workers
        if self.progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                return list(dask.compute(*tasks, **kwargs))
        return list(dask.compute(*tasks, **kwargs))


def _input_files(dataset: Dataset) -> dict[Path, tuple[str, int, int]]:
    """Every input file once: path relative to the dataset, size, modification time."""
    root = dataset.root.resolve()
    table: dict[Path, tuple[str, int, int]] = {}
    for s in dataset.samples:
        for p in s.files():
            if p not in table:
                st = p.stat()
                table[p] = (str(p.resolve().relative_to(root)), st.st_size, st.st_mtime_ns)
    return table


def _inputs_digest(dataset: Dataset, files: dict[Path, tuple[str, int, int]]) -> str:
    """Digest of the input files' names, sizes and modification times, per sample."""
    h = hashlib.sha256()
    for s in dataset.samples:
        for p in s.files():
            rel, size, mtime = files[p]
            h.update(f"{s.sample_id}\0{s.split}\0{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def _problems_error(problems: Sequence[SampleProblem], n: int) -> DataError:
    lines = [p.message for p in problems[:10]]
    more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
    head = (
        f"{len(problems)} of {n} samples have problems "
        "(use --on-error skip to build without them):\n"
        if len(problems) > 1
        else ""
    )
    return DataError(head + "\n".join(lines) + more)


def _summary(
    loc: Location, meta: dict[str, Any], t0: float, written: int, skipped: int
) -> BuildSummary:
    split = meta["split"]
    return BuildSummary(
        out=str(loc),
        n_samples=len(split),
        n_train=sum(s == "train" for s in split),
        n_valid=sum(s == "valid" for s in split),
        class_names=tuple(meta["class_names"]),
        class_counts=tuple(meta["class_counts"]),
        class_weights=tuple(meta["class_weights"]),
        void_pixels=sum(meta["void_pixels"]),
        bytes_on_disk=loc.size(),
        seconds=time.perf_counter() - t0,
        shards_written=written,
        shards_skipped=skipped,
        quarantined=tuple(meta.get("quarantine", [])),
        notes=tuple(meta.get("notes", [])),
    )


def build_weights(
    dataset_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: BuildConfig | None = None,
    *,
    scheduler: str = "threads",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_error: str = "fail",
    retries: int = 2,
    storage_options: dict[str, Any] | None = None,
) -> BuildSummary:
    """Build a zarr v3 store of training-ready shards from a dataset directory.

    Re-running the same call on a store whose build was interrupted writes only
    the shards still missing; on a complete store it does nothing.

    Parameters
    ----------
    dataset_dir : path
        Dataset in the ``instances`` or ``dsb2018`` layout (see :func:`discover`).
    out : path or URL
        Output ``.zarr`` location (``s3://bucket/x.zarr`` and other fsspec URLs
        work with the matching fsspec backend installed).
    config : BuildConfig, optional
        Void label, class weight scheme, border term parameters, shard size.
    scheduler : {"threads", "processes", "sync", "local-cluster"} or str
        Dask scheduler; an address such as ``tcp://host:8786`` uses that
        dask-distributed cluster.
    workers : int, optional
        Number of local workers (threads, processes or LocalCluster workers).
    overwrite : bool
        Replace an existing maskprep store at ``out``.
    progress : bool
        Show a progress bar.
    on_error : {"fail", "skip"}
        With ``skip``, samples with bad input are left out and listed in the
        store's ``quarantine`` metadata instead of failing the build.
    retries : int
        Task retries on a dask-distributed cluster.
    storage_options : dict, optional
        fsspec options for URL outputs (credentials otherwise come from the
        environment as usual).

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
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    dataset = discover(dataset_dir, config.layout, source=config.source)
    loc = Location.parse(out, storage_options)
    files = _input_files(dataset)
    inputs_digest = _inputs_digest(dataset, files)
    wanted = {"config": config.to_dict(), "on_error": on_error, "inputs_digest": inputs_digest}

    existing = read_attrs(loc)
    if existing is None and not loc.is_empty():
        raise StoreError(
            f"{loc}: exists and is not a maskprep store; refusing to write into it "
            "(choose another --out path)"
        )
    resume: dict[str, Any] | None = None
    if existing is not None:
        same = all(existing.get(k) == v for k, v in wanted.items())
        if overwrite:
            loc.remove()
        elif not same:
            raise StoreError(
                f"{loc}: a maskprep store built from other inputs or parameters is already "
                "there; pass --overwrite to replace it"
            )
        elif existing.get("complete"):
            return _summary(loc, existing, t0, 0, len(existing.get("shard_checksums", [])))
        elif existing.get("stage") == "writing":
            resume = existing
        else:
            loc.remove()  # creation was interrupted: nothing in it is worth keeping

    with _Runner(scheduler, workers, progress, retries) as runner:
        if resume is None:
            meta, infos, good = _scan_and_create(
                dataset, files, loc, config, runner, on_error, wanted
            )
        else:
            meta = resume
            by_id = {s.sample_id: s for s in dataset.samples}
            good = [by_id[i] for i in meta["sample_ids"]]
            infos = _infos_from_meta(meta, loc)
        layout = StoreLayout.from_dict(meta["layout_info"])
        lut = weight_lookup(config, meta["class_weights"])
        done = done_shards(loc)
        writes = [
            dask.delayed(_write_shard)(
                loc, k, a, _plain(good[a:b]), _plain(infos[a:b]), config, layout, lut
            )
            for k, (a, b) in enumerate(layout.shard_bounds())
            if k not in done
        ]
        runner.compute(writes, f"writing {len(writes)} shard(s)")
    records = done_shards(loc)
    n_shards = len(layout.shard_bounds())
    missing = [k for k in range(n_shards) if k not in records]
    if missing:
        raise StoreError(f"{loc}: shards {missing[:10]} were not written; re-run to complete")
    meta = {**meta, "shard_checksums": [records[k]["checksums"] for k in range(n_shards)]}
    loc.sweep_temporaries()
    final = mark_complete(loc, meta)
    return _summary(loc, final, t0, len(writes), n_shards - len(writes))


def _infos_from_meta(meta: dict[str, Any], loc: Location) -> list[SampleInfo]:
    import zarr

    shapes = np.asarray(zarr.open_array(loc.zarr_store(), path="shapes", mode="r")[:])
    channels = meta["layout_info"]["channels"]
    return [
        SampleInfo(
            sample_id=sid,
            split=split,
            shape=tuple(int(v) for v in shapes[i]),
            channels=channels,
            image_dtype=meta["layout_info"]["image_dtype"],
            class_counts=tuple(meta["sample_class_counts"][i]),
            void_pixels=int(meta["void_pixels"][i]),
            n_instances=int(meta["instance_counts"][i]),
        )
        for i, (sid, split) in enumerate(zip(meta["sample_ids"], meta["split"], strict=True))
    ]


def _scan_and_create(
    dataset: Dataset,
    files: dict[Path, tuple[str, int, int]],
    loc: Location,
    config: BuildConfig,
    runner: _Runner,
    on_error: str,
    wanted: dict[str, Any],
) -> tuple[dict[str, Any], list[SampleInfo], list[SampleSource]]:
    import dask

    samples = dataset.samples
    step = config.shard_size
    bounds = [(a, min(a + step, len(samples))) for a in range(0, len(samples), step)]
    scans = [dask.delayed(_scan_group)(_plain(samples[a:b]), config) for a, b in bounds]
    stats_total = _tree_sum([dask.delayed(_stats_of)(s) for s in scans], _add_stats)
    results = runner.compute([*scans, stats_total], f"scanning {len(samples)} sample(s)")
    scanned = [r for group_results, _ in results[:-1] for r in group_results]
    stats: ClassStats = results[-1]
    problems = [r for r in scanned if isinstance(r, SampleProblem)]
    if problems and on_error == "fail":
        raise _problems_error(problems, len(samples))
    infos = [r for r in scanned if isinstance(r, SampleInfo)]
    good = [s for s, r in zip(samples, scanned, strict=True) if isinstance(r, SampleInfo)]
    if not infos:
        raise DataError(f"{dataset.root}: no usable samples ({len(problems)} had problems)")

    layout = _plan_layout(infos, good, config)
    weights = class_weights(stats, config.class_weights, class_names=config.class_names)
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
        "sample_ids": [i.sample_id for i in infos],
        "split": [i.split for i in infos],
        "instance_counts": [i.n_instances for i in infos],
        "sample_class_counts": [list(i.class_counts) for i in infos],
        "void_pixels": [i.void_pixels for i in infos],
        "padding": "end of each axis; image 0, labels void_label, instances 0, weights 0",
        "shard_size": config.shard_size,
        # Each file once: COCO samples share their split's annotation JSON.
        "inputs": [
            {"path": files[p][0], "bytes": files[p][1]}
            for p in dict.fromkeys(p for s in good for p in s.files())
        ],
        "quarantine": [{"sample_id": p.sample_id, "error": p.message} for p in problems],
        "notes": [{"sample_id": i.sample_id, "note": n} for i in infos for n in i.notes],
        **wanted,
    }
    # zarr attributes are JSON: fail here, before anything is written, if not.
    json.dumps(metadata)
    shapes = np.asarray([i.shape for i in infos], dtype=np.int32)
    create_store(loc, layout, metadata, config.zstd_level, shapes=shapes)
    meta = read_attrs(loc)
    assert meta is not None
    return meta, infos, good
