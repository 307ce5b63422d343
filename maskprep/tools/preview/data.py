"""What a preview shows: the chosen samples of a store or dataset directory, and class statistics.

Samples with void pixels come first, then by number of instances (most
first), ties in dataset order; see :mod:`maskprep.tools.preview`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskprep.config import BuildConfig

__all__ = ["PreviewData", "PreviewSample", "load_dataset_preview", "load_store_preview"]


@dataclass(frozen=True)
class PreviewSample:
    """One sample to draw: the four arrays as a trainer sees them, unpadded."""

    sample_id: str
    split: str
    arrays: Mapping[str, np.ndarray]
    n_instances: int
    void_pixels: int


@dataclass(frozen=True)
class PreviewData:
    """Everything the figures show: chosen samples and class statistics."""

    source: str
    note: str
    class_names: tuple[str, ...]
    void_label: int
    class_counts: tuple[int, ...]
    class_weights: tuple[float, ...]
    scheme: str
    void_pixels_train: int
    w0: float
    sigma: float
    samples: tuple[PreviewSample, ...]


def _rank(instance_counts: Sequence[int], void_pixels: Sequence[int], k: int) -> list[int]:
    """Indices of the ``k`` samples to show, in dataset order.

    >>> _rank([3, 9, 1, 9], [0, 0, 5, 0], 2)
    [1, 2]
    """
    order = sorted(
        range(len(instance_counts)),
        key=lambda i: (void_pixels[i] == 0, -instance_counts[i], i),
    )
    return sorted(order[:k])


def _pick_ids(known: Sequence[str], ids: Sequence[str]) -> list[int]:
    index = {s: i for i, s in enumerate(known)}
    missing = [s for s in ids if s not in index]
    if missing:
        shown = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
        raise ValueError(f"unknown sample id(s) {', '.join(missing)}; the samples are {shown}")
    return [index[s] for s in ids]


def _check_count(samples: int) -> None:
    if not isinstance(samples, int) or samples < 0:
        raise ValueError(f"samples must be a non-negative integer, got {samples!r}")


def load_store_preview(
    path: str | os.PathLike[str], *, samples: int = 4, ids: Sequence[str] | None = None
) -> PreviewData:
    """Pick and read the samples of a complete store to preview.

    Raises
    ------
    StoreError
        If the store is missing, not a maskprep store, or incomplete.
    """
    from maskprep.reader import open_shards

    _check_count(samples)
    shards = open_shards(path)
    meta = shards.store_metadata
    inst = [meta.instance_counts[i] for i in shards.indices]
    void = [meta.void_pixels[i] for i in shards.indices]
    chosen = _pick_ids(shards.sample_ids, ids) if ids else _rank(inst, void, samples)
    splits = shards.splits
    picked = tuple(
        PreviewSample(shards.sample_ids[i], splits[i], shards[i], inst[i], void[i]) for i in chosen
    )
    void_train = sum(v for v, s in zip(void, splits, strict=True) if s == "train")
    return PreviewData(
        source=str(path),
        note=f"store {str(path).rstrip('/').rsplit('/', 1)[-1]}",
        class_names=tuple(shards.class_names),
        void_label=shards.void_label,
        class_counts=tuple(int(c) for c in shards.class_counts),
        class_weights=tuple(float(w) for w in shards.class_weights),
        scheme=meta.class_weight_scheme,
        void_pixels_train=void_train,
        w0=meta.w0,
        sigma=meta.sigma,
        samples=picked,
    )


def load_dataset_preview(
    path: str | os.PathLike[str],
    *,
    samples: int = 4,
    ids: Sequence[str] | None = None,
    config: BuildConfig | None = None,
    scan_limit: int = 64,
) -> PreviewData:
    """Pick samples of a dataset directory and compute what a build would store.

    Class weights come from a scan of up to ``scan_limit`` evenly spaced
    samples (see :mod:`maskprep.tools.preview`); the arrays of the shown samples are
    computed by the build's own :func:`~maskprep.pipeline.sample_arrays`.

    Raises
    ------
    DataError
        For the same dataset problems a build reports.
    """
    from maskprep.ingest import discover
    from maskprep.pipeline import load_sample, sample_arrays
    from maskprep.targets.weights import weight_lookup
    from maskprep.voidfill import labels_dtype, sample_labels
    from maskprep.weighting import ClassStats, class_weights

    _check_count(samples)
    if scan_limit < 1:
        raise ValueError(f"scan_limit must be at least 1, got {scan_limit}")
    config = config or BuildConfig()
    dataset = discover(path, config.layout, source=config.source)
    n = len(dataset)
    scan = sorted({int(i) for i in np.linspace(0, n - 1, min(n, scan_limit)).round()})
    inst: dict[int, int] = {}
    void: dict[int, int] = {}
    labels_of: dict[int, np.ndarray] = {}
    for i in scan:
        s = load_sample(dataset.samples[i], config, image=False)
        ids_ = np.unique(s.instances)
        inst[i] = int(np.count_nonzero(ids_))
        void[i] = int(s.void.sum())
        labels_of[i] = sample_labels(s, config.void_label, np.uint16)
    train = [i for i in scan if dataset.samples[i].split == "train"] or scan
    stats = ClassStats.from_label_images(
        (labels_of[i] for i in train), config.num_classes, config.void_label
    )
    del labels_of
    weights = class_weights(stats, config.class_weights, class_names=config.class_names)
    lut = weight_lookup(config.void_label, config.num_classes, weights)
    dtype = np.dtype(labels_dtype(config.void_label, config.num_classes))

    all_ids = [s.sample_id for s in dataset.samples]
    if ids:
        chosen = _pick_ids(all_ids, ids)
    else:
        chosen = [scan[j] for j in _rank([inst[i] for i in scan], [void[i] for i in scan], samples)]
    picked = []
    for i in chosen:
        src = dataset.samples[i]
        arrays = sample_arrays(src, config, lut, dtype)
        n_inst = inst[i] if i in inst else int(np.count_nonzero(np.unique(arrays["instances"])))
        n_void = int((arrays["labels"] == config.void_label).sum())
        picked.append(PreviewSample(src.sample_id, src.split, arrays, n_inst, n_void))

    which = "train samples" if any(dataset.samples[i].split == "train" for i in scan) else "samples"
    scope = "all" if len(scan) == n else f"{len(scan)} of {n}"
    return PreviewData(
        source=str(path),
        note=(
            f"dataset {Path(path).resolve().name} before build: class weights from {scope} {which}"
        ),
        class_names=tuple(config.class_names),
        void_label=config.void_label,
        class_counts=stats.class_counts,
        class_weights=tuple(float(w) for w in weights),
        scheme=config.class_weights.scheme,
        void_pixels_train=sum(void[i] for i in train),
        w0=config.w0,
        sigma=config.sigma,
        samples=tuple(picked),
    )
