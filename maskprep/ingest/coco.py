"""The ``coco`` layout: COCO instance annotation JSON files and the images they list.

Class 0 is background, then one class per category in category id order.
Annotations are painted in ascending annotation id, so where two overlap the
later id wins; an ``iscrowd`` annotation paints void. Polygons and RLE
(compressed or not) are decoded with pycocotools; polygons with fewer than 3
points have no area and are skipped. Instance ids number each image's
non-crowd annotations ``1, 2, ...`` in ascending annotation id order.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.labelmap import components, labels_dtype
from maskprep.ingest.layout import LAYOUTS, Annotations, Layout, ReadOptions
from maskprep.ingest.model import MAX_SOURCE_VALUE, CocoAnnotation, SampleSource
from maskprep.ingest.paths import PathPattern, check_inside, check_name
from maskprep.ingest.source import SourceSpec
from maskprep.ingest.splits import all_left_out, finish_recipe_samples, split_of

__all__ = ["CocoLayout", "coco_categories"]


class CocoLayout(Layout):
    """COCO ``annotations/instances_{split}.json`` and ``{split}/`` image folders."""

    name = "coco"
    needs_source = True

    def find_samples(self, root: Path, source: SourceSpec | None) -> list[SampleSource]:
        assert source is not None
        return finish_recipe_samples(root, source, _discover_coco(root, source))

    def read_annotations(
        self, src: SampleSource, image_shape: tuple[int, ...], options: ReadOptions
    ) -> Annotations:
        assert options.source is not None
        labels, void, instances = _read_coco(src, options.source, options.void_label)
        return Annotations(instances, void, labels)


@dataclass(frozen=True)
class _CocoFile:
    """The parts of a COCO instances JSON that maskprep uses, checked."""

    categories: tuple[tuple[int, str], ...]  # (id, name), ascending id
    images: tuple[tuple[int, str, int, int], ...]  # (id, file_name, height, width)
    annotations: Mapping[int, tuple[CocoAnnotation, ...]]  # image id -> ascending ann id


def _load_coco(path: Path) -> _CocoFile:
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the annotations: {exc}") from None
    return _load_coco_cached(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_coco_cached(name: str, size: int, mtime_ns: int) -> _CocoFile:
    # Keyed by size and mtime so that a changed file is read again.
    path = Path(name)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the annotations: {exc}") from None

    def fail(msg: str) -> DataError:
        return DataError(f"{path}: {msg}")

    def integer(obj: Mapping[str, Any], key: str, what: str) -> int:
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise fail(f"{what} has no integer {key!r}")
        return v

    if not isinstance(data, dict):
        raise fail("not a COCO annotation file (expected a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise fail(f"not a COCO instances file: no {key!r} list")
    categories: dict[int, str] = {}
    for cat in data["categories"]:
        if not isinstance(cat, dict) or not isinstance(cat.get("name"), str):
            raise fail(f"category {cat!r} has no name")
        cid = integer(cat, "id", f"category {cat.get('name')!r}")
        if not 0 <= cid <= MAX_SOURCE_VALUE:  # ids are source values of the label map
            raise fail(
                f"category {cat['name']!r} has id {cid}; maskprep reads category ids from 0 "
                f"to {MAX_SOURCE_VALUE}"
            )
        if cid in categories:
            raise fail(f"category id {cid} appears twice ({categories[cid]!r}, {cat['name']!r})")
        categories[cid] = cat["name"]
    images: dict[int, tuple[int, str, int, int]] = {}
    for img in data["images"]:
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str):
            raise fail(f"image {img!r} has no file_name")
        what = f"image {img['file_name']!r}"
        iid = integer(img, "id", what)
        h, w = integer(img, "height", what), integer(img, "width", what)
        if iid in images:
            raise fail(f"image id {iid} appears twice")
        if h < 1 or w < 1:
            raise fail(f"{what} has size {h} x {w}")
        images[iid] = (iid, img["file_name"], h, w)
    by_image: dict[int, list[CocoAnnotation]] = {}
    seen: set[int] = set()
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            raise fail(f"annotation {ann!r} is not an object")
        aid = integer(ann, "id", "an annotation")
        what = f"annotation {aid}"
        if aid in seen:
            raise fail(f"annotation id {aid} appears twice")
        seen.add(aid)
        iid = integer(ann, "image_id", what)
        cid = integer(ann, "category_id", what)
        if iid not in images:
            raise fail(f"{what} refers to image id {iid}, which is not in images")
        if cid not in categories:
            raise fail(f"{what} has category_id {cid}, which is not in categories")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise fail(f"{what} has iscrowd {crowd!r}; expected 0 or 1")
        seg = ann.get("segmentation")
        if not isinstance(seg, (list, dict)):
            raise fail(f"{what} has no segmentation (polygons or RLE)")
        by_image.setdefault(iid, []).append(
            CocoAnnotation(aid, cid, bool(crowd), json.dumps(seg, separators=(",", ":")))
        )
    return _CocoFile(
        categories=tuple(sorted(categories.items())),
        images=tuple(images[i] for i in sorted(images)),
        annotations={i: tuple(sorted(a, key=lambda x: x.id)) for i, a in by_image.items()},
    )


def _coco_files(root: Path, spec: SourceSpec) -> list[tuple[dict[str, str], Path, str]]:
    assert spec.annotations is not None
    found = PathPattern(spec.annotations).find(root)
    if not found:
        raise DataError(f"{root}: no annotation file matches {spec.annotations!r}")
    chosen = [(v, p, s) for v, p in found if (s := split_of(v, spec)) is not None]
    if not chosen:
        all_left_out(root, [v["split"] for v, _ in found], spec)
    return chosen


def coco_categories(root: str | os.PathLike[str], spec: SourceSpec) -> tuple[tuple[int, str], ...]:
    """The ``(id, name)`` categories of a COCO dataset, the same in every annotation file.

    Raises
    ------
    DataError
        Naming the file, if annotation files disagree or cannot be read.
    """
    root_path = Path(root)
    first: tuple[tuple[int, str], ...] | None = None
    first_path = None
    for _, path, _ in _coco_files(root_path, spec):
        cats = _load_coco(path).categories
        if first is None:
            first, first_path = cats, path
        elif cats != first:
            raise DataError(f"{path}: categories differ from those of {first_path}")
    assert first is not None
    return first


def _discover_coco(root: Path, spec: SourceSpec) -> list[SampleSource]:
    images = PathPattern(spec.images)
    known = {k for k, _ in spec.label_map}
    samples: list[SampleSource] = []
    for values, path, split in _coco_files(root, spec):
        data = _load_coco(path)
        for cid, name in data.categories:
            if cid not in known:
                raise DataError(
                    f"{path}: category {cid} ({name!r}) is not a class of this build "
                    "(the categories changed since the build options were made?)"
                )
        for iid, file_name, h, w in data.images:
            image = root / images.format({**values, "file_name": file_name})
            if not image.is_file():
                raise DataError(
                    f"{path}: image id {iid} {file_name!r} is not at {image.relative_to(root)}"
                )
            check_name(image)
            check_inside(root, image)
            anns = data.annotations.get(iid, ())
            stem = Path(file_name).stem
            samples.append(SampleSource(stem, image, (path,), None, split, "coco", anns, (h, w)))
    return samples


def _rle_counts(text: str | bytes) -> list[int]:
    """Run lengths of a compressed COCO RLE string (the format of pycocotools' maskApi).

    Each count is stored in 5-bit groups as characters from ``0`` (48) up,
    bit 5 meaning "more groups follow" and bit 4 of the last group the sign;
    from the third count on, the value is a difference to the count two
    places before.
    """
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data):
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {chr(data[p])!r} in an RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _rle_mask(counts: Sequence[int], h: int, w: int) -> np.ndarray:
    """Boolean (h, w) mask from run lengths (column-major, starting with a 0 run)."""
    runs = np.asarray(counts, dtype=np.int64)
    if runs.size and (runs.min() < 0 or int(runs.sum()) != h * w):
        raise ValueError(f"run lengths add up to {int(runs.sum())}, not {h} x {w} = {h * w}")
    values = np.arange(runs.size) % 2 == 1
    flat = np.repeat(values, runs) if runs.size else np.zeros(h * w, dtype=bool)
    return flat.reshape(w, h).T.copy()


def _polygon_points(poly: list[Any], h: int, w: int, where: str) -> list[float]:
    """A polygon's coordinates as floats, each finite and within one image size of the
    ``h`` x ``w`` image; DataError otherwise.

    pycocotools rasterizes every edge at 5x its length: a coordinate of 1e9
    crashes it (segmentation fault) and a NaN exhausts memory, so they are
    refused here, before it sees them.

    >>> _polygon_points([1, 2, 3, 4, 5, 6], 10, 10, "a.json: annotation 1")
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    >>> try:
    ...     _polygon_points([1, 2, 3, 4, 1e9, 6], 10, 10, "a.json: annotation 1")
    ... except DataError as e:
    ...     print(str(e).split(";")[0])
    a.json: annotation 1: polygon point (1000000000.0, 6.0) lies outside the 10 x 10 image
    """
    try:
        coords = [float(v) for v in poly]
    except (TypeError, ValueError):
        raise DataError(f"{where}: polygon coordinates must be numbers") from None
    for x, y in zip(coords[0::2], coords[1::2], strict=True):
        if not (-w <= x <= 2 * w and -h <= y <= 2 * h):  # also False for NaN
            raise DataError(
                f"{where}: polygon point ({x}, {y}) lies outside the {h} x {w} image; "
                "coordinates must be finite and within one image size of it"
            )
    return coords


def _coco_mask(ann: CocoAnnotation, shape: tuple[int, ...], src: SampleSource) -> np.ndarray:
    h, w = shape
    json_path = src.masks[0]
    where = f"{json_path}: annotation {ann.id} (image {src.image.name})"
    seg = json.loads(ann.segmentation)
    try:
        if isinstance(seg, list):
            polygons = []
            for poly in seg:
                if not isinstance(poly, list) or len(poly) % 2:
                    raise DataError(f"{where}: a polygon must be a list of x, y pairs")
                if len(poly) >= 6:  # fewer than 3 points have no area
                    polygons.append(_polygon_points(poly, h, w, where))
            if not polygons:
                return np.zeros(shape, dtype=bool)
            try:
                from pycocotools import mask as coco_mask
            except ImportError:
                raise DataError(
                    f"{where}: polygons need pycocotools: pip install 'maskprep[coco]'"
                ) from None
            # pycocotools rasterizes the polygons (the COCO convention); its
            # decode() is avoided as it warns under NumPy 2.
            rle = coco_mask.merge(coco_mask.frPyObjects(polygons, h, w))
            counts = _rle_counts(rle["counts"])
        elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
            if [int(v) for v in seg["size"]] != [h, w]:
                raise DataError(
                    f"{where}: RLE size {seg['size']} differs from the image size {[h, w]}"
                )
            raw = seg["counts"]
            counts = [int(v) for v in raw] if isinstance(raw, list) else _rle_counts(raw)
        else:
            raise DataError(f"{where}: segmentation is neither polygons nor RLE")
        return _rle_mask(counts, h, w)
    except DataError:
        raise
    except Exception as exc:  # malformed input in any of many ways: one message
        raise DataError(f"{where}: cannot decode the segmentation: {exc}") from None


def _read_coco(
    src: SampleSource, spec: SourceSpec, void_label: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labels (void filled), void, instances of a COCO image (module docstring)."""
    assert src.shape is not None
    classes = dict(spec.label_map)
    labels = np.zeros(src.shape, dtype=labels_dtype(spec, void_label))
    instances = np.zeros(src.shape, dtype=np.int32)
    rank = 0
    for ann in src.annotations:  # ascending annotation id
        m = _coco_mask(ann, src.shape, src)
        if ann.iscrowd:
            labels[m] = void_label
            instances[m] = 0
            continue
        rank += 1
        labels[m] = classes[ann.category_id]
        if spec.instances == "layout":
            instances[m] = rank
    void = labels == void_label
    if spec.instances == "connected-components":
        instances = components(labels, spec.instance_classes)
    return labels, void, instances


LAYOUTS.register(CocoLayout.name, CocoLayout())
