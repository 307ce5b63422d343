"""The ``ome-zarr`` layout: OME-Zarr (NGFF 0.4 or 0.5) images with ``labels/``.

The dataset directory holds one image per sample, ``<stem>.zarr`` or
``<stem>.ome.zarr`` (a multiscale group; zarr format 2 for NGFF 0.4, 3 for
0.5). The image is level 0 of its first multiscale; the instance ids are
level 0 of the label image ``labels/<name>`` (the first one ``labels/``
lists, or a :class:`~maskprep.ingest.SourceSpec`'s ``labels_key``), 0
background, ids that fit in int32. ``valid.txt`` at the root lists
validation sample ids.

Axes: NGFF orders them ``t, c, z, y, x`` (time, channel, space); maskprep
images are spatial with an optional trailing channel axis. So a ``c`` axis
moves to the end (dropped when it has one channel, as a greyscale image has
none; more than 4 channels is an error, as for any image), a ``t`` axis of
size 1 is dropped (several time points are an error), and the space axes
keep their order. The label image's space axes must be the image's; a
channel or time axis it has must be of size 1.

Everything is read from the zarr metadata and region by region (every
sample is chunked); ``spacing`` is the image's level-0 scale on its space
axes. Needs only zarr (the ``ome-zarr`` package writes test data; reading
does not use it, since its reader brings dask).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.arrays import ArrayFile, open_zarr_array, region_shape, too_big
from maskprep.ingest.imageio import check_label_array
from maskprep.ingest.layout import LAYOUTS, Annotations, Layout, ReadOptions, SampleGeometry
from maskprep.ingest.model import LoadedSample, SampleProblems, SampleSource
from maskprep.ingest.source import SourceSpec
from maskprep.ingest.volumes import find_volume_entries

__all__ = ["OME_ZARR_SUFFIXES", "OmeZarrLayout", "ngff_attributes"]

OME_ZARR_SUFFIXES = (".ome.zarr", ".zarr")
_INT32_MAX = int(np.iinfo(np.int32).max)


def ngff_attributes(group: Path) -> dict[str, Any] | None:
    """The NGFF attributes of a zarr group (0.5: under ``ome``), None if not a group.

    Raises
    ------
    DataError
        Naming the file, if its JSON is unreadable.
    """
    for name in ("zarr.json", ".zattrs"):
        path = group / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read the zarr metadata: {exc}") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: zarr metadata is not a JSON object")
        if name == "zarr.json":
            if data.get("node_type") != "group":
                return None
            attrs = data.get("attributes", {})
            if isinstance(attrs, dict) and isinstance(attrs.get("ome"), dict):
                return dict(attrs["ome"])
            return attrs if isinstance(attrs, dict) else {}
        return data
    if (group / ".zgroup").is_file():
        return {}
    return None


@dataclass(frozen=True)
class _Multiscale:
    """Level 0 of one multiscale image: its array, axes and scale."""

    array: Path
    names: tuple[str, ...]
    types: tuple[str, ...]
    scale: tuple[float, ...] | None

    @property
    def space(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.types, strict=True) if t == "space")


def _axis_type(axis: Any) -> tuple[str, str]:
    if isinstance(axis, str):  # NGFF 0.3 listed names only
        name, kind = axis, None
    elif isinstance(axis, dict) and isinstance(axis.get("name"), str):
        name, kind = axis["name"], axis.get("type")
    else:
        raise ValueError(f"axis {axis!r} has no name")
    if kind not in ("space", "time", "channel"):
        kind = {"t": "time", "c": "channel"}.get(name, "space" if name in "zyx" else str(kind))
    return name, str(kind)


def _scale(transforms: Any, n: int) -> tuple[float, ...] | None:
    if not isinstance(transforms, list):
        return None
    for t in transforms:
        if isinstance(t, dict) and t.get("type") == "scale" and isinstance(t.get("scale"), list):
            values = t["scale"]
            if len(values) == n and all(isinstance(v, (int, float)) for v in values):
                return tuple(float(v) for v in values)
    return None


def _multiscale(group: Path, what: str) -> _Multiscale:
    attrs = ngff_attributes(group)
    ms = None if attrs is None else attrs.get("multiscales")
    if not isinstance(ms, list) or not ms or not isinstance(ms[0], dict):
        raise DataError(f"{group}: {what} is not an OME-Zarr image (no multiscales metadata)")
    first = ms[0]
    try:
        datasets = first["datasets"]
        level0 = datasets[0]
        path = level0["path"]
        axes = [_axis_type(a) for a in first["axes"]]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(f"{group}: {what} has invalid multiscales metadata: {exc}") from None
    if not isinstance(path, str) or not path or ".." in path.split("/"):
        raise DataError(f"{group}: {what} level 0 has an invalid path {path!r}")
    names = tuple(a for a, _ in axes)
    types = tuple(t for _, t in axes)
    bad = [t for t in types if t not in ("space", "time", "channel")]
    if bad or not 2 <= types.count("space") <= 3:
        raise DataError(
            f"{group}: {what} has axes {list(names)}; maskprep reads 2 or 3 space axes with "
            "optional time and channel axes"
        )
    scale = _scale(level0.get("coordinateTransformations"), len(names))
    outer = _scale(first.get("coordinateTransformations"), len(names))
    if scale is not None and outer is not None:
        scale = tuple(a * b for a, b in zip(scale, outer, strict=True))
    return _Multiscale(group / path, names, types, scale)


def _label_names(image: Path) -> list[str]:
    attrs = ngff_attributes(image / "labels")
    names = None if attrs is None else attrs.get("labels")
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n and "/" not in n and n not in (".", "..")]


class _Reader:
    """One NGFF level-0 array, read as maskprep arrays (spatial, then channels)."""

    def __init__(self, group: Path, what: str, *, labels: bool) -> None:
        self.ms = _multiscale(group, what)
        self.what = what
        self.group = group
        arr = open_zarr_array(self.ms.array, what)
        if len(arr.shape) != len(self.ms.names):
            raise DataError(
                f"{self.ms.array}: {what} has {len(arr.shape)} dimensions but its metadata "
                f"names {len(self.ms.names)} axes {list(self.ms.names)}"
            )
        self.file = ArrayFile(self.ms.array, what, arr, chunks=tuple(int(c) for c in arr.chunks))
        self.sizes = dict(zip(self.ms.names, self.file.shape, strict=True))
        for name, kind in zip(self.ms.names, self.ms.types, strict=True):
            n = self.sizes[name]
            if kind == "time" and n != 1:
                raise DataError(
                    f"{group}: {what} has {n} time points (axis {name!r}); maskprep reads "
                    "one image per sample"
                )
            if kind == "channel" and labels and n != 1:
                raise DataError(
                    f"{group}: {what} has {n} channels (axis {name!r}); a label image "
                    "needs one id per pixel"
                )
        self.channel = next(
            (
                name
                for name, kind in zip(self.ms.names, self.ms.types, strict=True)
                if kind == "channel" and self.sizes[name] > 1
            ),
            None,
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """maskprep's shape: space axes, then the channels if more than one."""
        space = tuple(self.sizes[n] for n in self.ms.space)
        return space + ((self.sizes[self.channel],) if self.channel else ())

    @property
    def chunks(self) -> tuple[int, ...]:
        assert self.file.chunks is not None
        by_name = dict(zip(self.ms.names, self.file.chunks, strict=True))
        return tuple(by_name[n] for n in self.ms.space)

    @property
    def spacing(self) -> tuple[float, ...] | None:
        if self.ms.scale is None:
            return None
        by_name = dict(zip(self.ms.names, self.ms.scale, strict=True))
        values = tuple(by_name[n] for n in self.ms.space)
        return values if all(v > 0 for v in values) else None

    def read(self, region: tuple[slice, ...], max_pixels: int | None) -> np.ndarray:
        """``region`` (over the space axes) in maskprep's axis order."""
        regions = dict(zip(self.ms.space, region, strict=True))
        index: list[slice] = []
        for name in self.ms.names:
            index.append(regions.get(name, slice(0, self.sizes[name])))
        index_t = tuple(index)
        # decoded_pixels counts chunks over every on-disk axis listed in the index.
        too_big(self.ms.array, f"{self.what} region", self.file.decoded_pixels(index_t), max_pixels)
        out = self.file.read(index_t)
        names = list(self.ms.names)
        # Drop time and single channel axes, then move channels last.
        drop = [i for i, n in enumerate(names) if n not in self.ms.space and n != self.channel]
        out = out.reshape([s for i, s in enumerate(out.shape) if i not in drop])
        kept = [n for i, n in enumerate(names) if i not in drop]
        if self.channel is not None:
            out = np.moveaxis(out, kept.index(self.channel), -1)
        return np.ascontiguousarray(out)

    def close(self) -> None:
        self.file.close()


class OmeZarrLayout(Layout):
    """``<stem>.zarr`` / ``<stem>.ome.zarr`` OME-Zarr images with ``labels/<name>``."""

    name = "ome-zarr"
    description = "*.zarr OME-Zarr images with labels/"

    def guess_can_open(self, root: Path) -> bool:
        for p in sorted(root.iterdir()):
            if p.is_dir() and p.name.lower().endswith(".zarr") and not p.name.startswith("."):
                attrs = ngff_attributes(p)
                if attrs is not None and "multiscales" in attrs:
                    return True
        return False

    def find_samples(self, root: Path, source: SourceSpec | None) -> list[SampleSource]:
        entries = find_volume_entries(root, OME_ZARR_SUFFIXES, directories=True, source=source)
        wanted = None if source is None else source.labels_key
        samples: list[SampleSource] = []
        problems: list[tuple[str, str]] = []
        for stem, path, split in entries:
            attrs = ngff_attributes(path)
            if attrs is None or "multiscales" not in attrs:
                if source is None and attrs is not None and not (path / "labels").is_dir():
                    continue  # another zarr group (a maskprep store, say) is not a sample
                problems.append((stem, f"{path}: is not an OME-Zarr image (no multiscales)"))
                continue
            names = _label_names(path)
            if wanted is not None and wanted not in names:
                listed = ", ".join(names) or "none"
                problems.append(
                    (stem, f"{path}: has no label image {wanted!r} in labels/ (it has {listed})")
                )
                continue
            if not names:
                problems.append((stem, f"{path}: has no label image (labels/ lists none)"))
                continue
            label = path / "labels" / (wanted or names[0])
            samples.append(SampleSource(stem, path, (label,), None, split, self.name))
        if problems:
            message = problems[0][1] if len(problems) == 1 else "\n".join(
                [f"{root}: {len(problems)} image(s) have problems:", *(m for _, m in problems[:10])]
            )
            raise SampleProblems(message, samples, problems)
        return samples

    def is_chunked(self, src: SampleSource) -> bool:
        return True

    def _open(self, src: SampleSource) -> tuple[_Reader, _Reader]:
        image = _Reader(src.image, "image", labels=False)
        try:
            labels = _Reader(src.masks[0], "label image", labels=True)
        except BaseException:
            image.close()
            raise
        if labels.ms.space != image.ms.space or labels.shape != image.shape[: len(labels.shape)]:
            image.close()
            labels.close()
            raise DataError(
                f"{src.masks[0]}: label image has space axes {list(labels.ms.space)} of shape "
                f"{labels.shape}; the image {src.image} has {list(image.ms.space)} of shape "
                f"{image.shape[: len(image.ms.space)]}"
            )
        return image, labels

    def probe_sample(self, src: SampleSource, options: ReadOptions) -> SampleGeometry:
        image, labels = self._open(src)
        try:
            dtype = labels.file.dtype
            check_label_array(np.zeros((1, 1), dtype=dtype), src.masks[0])
            return SampleGeometry(
                labels.shape, image.shape, image.file.dtype, labels.chunks, image.spacing
            )
        finally:
            image.close()
            labels.close()

    def read_image(self, src: SampleSource, options: ReadOptions) -> np.ndarray:
        image, labels = self._open(src)
        try:
            whole = tuple(slice(0, n) for n in labels.shape)
            too_big(src.image, "image", int(np.prod(image.shape)), options.max_pixels)
            return image.read(whole, None)
        finally:
            image.close()
            labels.close()

    def probe_image(
        self, src: SampleSource, options: ReadOptions
    ) -> tuple[tuple[int, ...], np.dtype[Any]]:
        g = self.probe_sample(src, options)
        return g.image_shape, g.image_dtype

    def read_annotations(
        self, src: SampleSource, image_shape: tuple[int, ...], options: ReadOptions
    ) -> Annotations:
        image, labels = self._open(src)
        try:
            whole = tuple(slice(0, n) for n in labels.shape)
            too_big(src.masks[0], "label image", int(np.prod(labels.shape)), options.max_pixels)
            raw = labels.read(whole, None)
        finally:
            image.close()
            labels.close()
        return _annotations(raw, src.masks[0], options.unlabeled_value)

    def read_region(
        self,
        src: SampleSource,
        region: tuple[slice, ...],
        options: ReadOptions,
        *,
        image: bool = True,
    ) -> LoadedSample:
        img, labels = self._open(src)
        try:
            pixels = img.read(region, options.max_pixels) if image else None
            raw = labels.read(region, options.max_pixels)
            image_shape = region_shape(region) + img.shape[len(region) :]
            dtype = img.file.dtype
        finally:
            img.close()
            labels.close()
        ann = _annotations(raw, src.masks[0], options.unlabeled_value)
        return LoadedSample(pixels, image_shape, dtype, ann.instances, ann.void)


def _annotations(raw: np.ndarray, path: Path, unlabeled_value: int | None) -> Annotations:
    raw = check_label_array(raw, path)
    void = raw == unlabeled_value if unlabeled_value is not None else np.zeros(raw.shape, bool)
    if raw.size and int(raw.max(initial=0)) > _INT32_MAX:
        raise DataError(
            f"{path}: instance id {raw.max()} does not fit in int32 (maximum {_INT32_MAX})"
        )
    instances = raw.astype(np.int32, copy=True)
    instances[void] = 0
    return Annotations(instances, void)


LAYOUTS.register(OmeZarrLayout.name, OmeZarrLayout())
