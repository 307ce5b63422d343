"""The ``hdf5`` layout: one HDF5 file per sample, an image and an instance-id dataset.

As CREMI ships its volumes: ``<stem>.hdf`` (or ``.h5``, ``.hdf5``) with the
image in ``volumes/raw`` and the instance ids in ``volumes/labels/neuron_ids``
(other dataset paths: a :class:`~maskprep.ingest.SourceSpec`'s ``image_key``
and ``labels_key``, e.g. from a recipe). Images may have a trailing channel
axis. ``valid.txt`` at the root lists validation samples.

Instance ids: 0 is background. In ``uint64`` datasets the three largest
values (``2**64 - 1``, ``- 2``, ``- 3``, i.e. -1, -2, -3 as int64), which
CREMI and its tools use for voxels without a label (CREMI's evaluation
ignores ``uint64(-1)``), are void (not annotated). Every other id must fit in
int32: a larger one is an error naming the file, the dataset and the value.
``unlabeled_value`` makes one more id void.

The files are read by region (HDF5 chunks; contiguous datasets by
hyperslab), so every sample is chunked. The labels dataset's ``resolution``
attribute (CREMI: z 40 nm, y and x 4 nm) is the sample's
:attr:`~maskprep.ingest.SampleGeometry.spacing`. Needs h5py (the ``volumes``
extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.arrays import open_hdf5, region_shape
from maskprep.ingest.layout import LAYOUTS, Annotations, Layout, ReadOptions, SampleGeometry
from maskprep.ingest.model import LoadedSample, SampleSource
from maskprep.ingest.source import SourceSpec
from maskprep.ingest.volumes import find_volume_entries

__all__ = [
    "DEFAULT_IMAGE_KEY",
    "DEFAULT_LABELS_KEY",
    "HDF5_SUFFIXES",
    "NO_LABEL_MIN",
    "Hdf5Layout",
    "instance_ids",
]

HDF5_SUFFIXES = (".h5", ".hdf", ".hdf5")
DEFAULT_IMAGE_KEY = "volumes/raw"
DEFAULT_LABELS_KEY = "volumes/labels/neuron_ids"
#: uint64 ids from this one up (-3, -2, -1 as int64) mean "no label": void.
NO_LABEL_MIN = np.uint64(2**64 - 3)
_INT32_MAX = int(np.iinfo(np.int32).max)


def _keys(options: ReadOptions) -> tuple[str, str]:
    spec = options.source
    image = spec.image_key if spec is not None and spec.image_key else DEFAULT_IMAGE_KEY
    labels = spec.labels_key if spec is not None and spec.labels_key else DEFAULT_LABELS_KEY
    return image, labels


def instance_ids(
    raw: np.ndarray, path: Path, key: str, unlabeled_value: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """int32 instances (void pixels 0) and void of an HDF5 id array (or a region of it).

    Examples
    --------
    >>> raw = np.array([[0, 7], [2**64 - 1, 3]], dtype=np.uint64)
    >>> ids, void = instance_ids(raw, Path("a.hdf"), "ids", None)
    >>> ids.tolist(), void.tolist()
    ([[0, 7], [0, 3]], [[False, False], [True, False]])
    """
    if raw.dtype == bool:
        raw = raw.astype(np.uint8)
    if raw.dtype.kind == "f":
        raise DataError(
            f"{path}: labels {key!r} have floating-point dtype {raw.dtype}; instance ids "
            "need integer values"
        )
    if raw.dtype.kind not in "iu":
        raise DataError(f"{path}: labels {key!r} have unsupported dtype {raw.dtype}")
    # CREMI's "no label" ids are void; nothing else in an id array is.
    void = raw >= NO_LABEL_MIN if raw.dtype == np.uint64 else np.zeros(raw.shape, dtype=bool)
    if unlabeled_value is not None:
        void |= raw == unlabeled_value
    if raw.size and raw.dtype.kind == "i" and raw.min() < 0:
        raise DataError(f"{path}: labels {key!r} have negative values (minimum {raw.min()})")
    top = int(np.where(void, 0, raw).max(initial=0)) if raw.size else 0
    if top > _INT32_MAX:
        raise DataError(
            f"{path}: labels {key!r} have instance id {top}, which does not fit in int32 "
            f"(maximum {_INT32_MAX}); relabel the ids (e.g. "
            "skimage.segmentation.relabel_sequential), or make it void with unlabeled_value"
        )
    instances = np.where(void, 0, raw).astype(np.int32)
    return instances, void


def _spacing(ds_attrs: dict[str, Any], ndim: int) -> tuple[float, ...] | None:
    res = ds_attrs.get("resolution")
    if res is None:
        return None
    try:
        values = tuple(float(v) for v in np.asarray(res, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        return None
    if len(values) != ndim or not all(np.isfinite(v) and v > 0 for v in values):
        return None
    return values


class Hdf5Layout(Layout):
    """``<stem>.h5|.hdf|.hdf5`` files holding an image and an instance-id dataset."""

    name = "hdf5"
    description = "*.h5, *.hdf or *.hdf5 files (CREMI style)"

    def guess_can_open(self, root: Path) -> bool:
        return any(
            p.is_file() and p.suffix.lower() in HDF5_SUFFIXES and not p.name.startswith(".")
            for p in root.iterdir()
        )

    def find_samples(self, root: Path, source: SourceSpec | None) -> list[SampleSource]:
        entries = find_volume_entries(root, HDF5_SUFFIXES, directories=False, source=source)
        return [SampleSource(s, p, (p,), None, split, self.name) for s, p, split in entries]

    def is_chunked(self, src: SampleSource) -> bool:
        return True

    def _check_shapes(
        self, src: SampleSource, image_shape: tuple[int, ...], shape: tuple[int, ...],
        keys: tuple[str, str], offset: Any = None,
    ) -> None:
        ok = image_shape == shape or (
            len(image_shape) == len(shape) + 1
            and image_shape[:-1] == shape
            and image_shape[-1] <= 4
        )
        if ok:
            return
        hint = ""
        if offset is not None and np.any(np.asarray(offset) != 0):
            hint = (
                f" (the labels have an offset attribute {list(np.asarray(offset).ravel())}: "
                "a padded volume? use the unpadded file)"
            )
        raise DataError(
            f"{src.image}: image {keys[0]!r} has shape {image_shape}, labels {keys[1]!r} "
            f"have shape {shape}; they must cover the same voxels{hint}"
        )

    def probe_sample(self, src: SampleSource, options: ReadOptions) -> SampleGeometry:
        keys = _keys(options)
        with open_hdf5(src.image, keys[0], "image") as image:
            image_shape, image_dtype = image.shape, image.dtype
        with open_hdf5(src.image, keys[1], "labels") as labels:
            shape = labels.shape
            attrs = labels.attrs
            chunks = None if labels.chunks is None else labels.chunks[: len(shape)]
            dtype = labels.dtype
        instance_ids(np.zeros(0, dtype=dtype), src.image, keys[1], None)  # the dtype checks
        if len(shape) not in (2, 3):
            raise DataError(f"{src.image}: labels {keys[1]!r} must be 2D or 3D, got {shape}")
        self._check_shapes(src, image_shape, shape, keys, attrs.get("offset"))
        return SampleGeometry(
            shape, image_shape, image_dtype, chunks, _spacing(attrs, len(shape))
        )

    def read_image(self, src: SampleSource, options: ReadOptions) -> np.ndarray:
        with open_hdf5(src.image, _keys(options)[0], "image") as image:
            return image.read_all(options.max_pixels)

    def probe_image(
        self, src: SampleSource, options: ReadOptions
    ) -> tuple[tuple[int, ...], np.dtype[Any]]:
        with open_hdf5(src.image, _keys(options)[0], "image") as image:
            return image.shape, image.dtype

    def read_annotations(
        self, src: SampleSource, image_shape: tuple[int, ...], options: ReadOptions
    ) -> Annotations:
        keys = _keys(options)
        with open_hdf5(src.image, keys[1], "labels") as labels:
            if len(labels.shape) not in (2, 3):
                raise DataError(
                    f"{src.image}: labels {keys[1]!r} must be 2D or 3D, got {labels.shape}"
                )
            self._check_shapes(
                src, image_shape, labels.shape, keys, labels.attrs.get("offset")
            )
            raw = labels.read_all(options.max_pixels)
        instances, void = instance_ids(raw, src.image, keys[1], options.unlabeled_value)
        return Annotations(instances, void)

    def read_region(
        self,
        src: SampleSource,
        region: tuple[slice, ...],
        options: ReadOptions,
        *,
        image: bool = True,
    ) -> LoadedSample:
        geometry = self.probe_sample(src, options)
        keys = _keys(options)
        pixels = None
        if image:
            with open_hdf5(src.image, keys[0], "image") as arr:
                pixels = arr.read(region, options.max_pixels)
        with open_hdf5(src.image, keys[1], "labels") as arr:
            raw = arr.read(region, options.max_pixels)
        instances, void = instance_ids(raw, src.image, keys[1], options.unlabeled_value)
        image_shape = region_shape(region) + tuple(geometry.image_shape[len(region) :])
        return LoadedSample(pixels, image_shape, geometry.image_dtype, instances, void)


LAYOUTS.register(Hdf5Layout.name, Hdf5Layout())
