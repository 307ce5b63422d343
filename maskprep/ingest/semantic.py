"""The ``semantic`` and ``cityscapes`` layouts: image and class-mask files by path pattern.

``semantic`` masks hold class source values, mapped by the recipe's
``label_map`` and ``void_values``; ``cityscapes`` masks are
``*_gtFine_instanceIds.png`` files, where a value ``v >= 1000`` is label id
``v // 1000`` and instance ``v`` and a smaller value a label id with no
instance. Any undeclared value is an error naming the file and the value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.imageio import check_label_array, read_array
from maskprep.ingest.labelmap import components, labels_dtype, map_source_values
from maskprep.ingest.layout import LAYOUTS, Annotations, Layout, ReadOptions
from maskprep.ingest.model import CITYSCAPES_INSTANCE_FACTOR, SampleSource
from maskprep.ingest.paths import PathPattern
from maskprep.ingest.source import SourceSpec
from maskprep.ingest.splits import all_left_out, finish_recipe_samples, split_of

__all__ = ["CityscapesLayout", "SemanticLayout"]


class SemanticLayout(Layout):
    """Images and class masks found by a recipe's path patterns."""

    name = "semantic"
    needs_source = True

    def find_samples(self, root: Path, source: SourceSpec | None) -> list[SampleSource]:
        assert source is not None
        return finish_recipe_samples(root, source, _discover_pattern(root, source))

    def read_annotations(
        self, src: SampleSource, image_shape: tuple[int, ...], options: ReadOptions
    ) -> Annotations:
        assert options.source is not None
        labels, void, instances = _read_semantic(
            src, options.source, options.void_label, options.unlabeled_value, options.max_pixels
        )
        return Annotations(instances, void, labels)


class CityscapesLayout(SemanticLayout):
    """Cityscapes ``gtFine`` instance-id masks (``class * 1000 + k``)."""

    name = "cityscapes"


def _discover_pattern(root: Path, spec: SourceSpec) -> list[SampleSource]:
    assert spec.labels is not None
    images = PathPattern(spec.images)
    labels = PathPattern(spec.labels)
    keys = labels.fields
    label_files = {tuple(v[k] for k in keys): p for v, p in labels.find(root)}
    found = images.find(root)
    if not found:
        raise DataError(f"{root}: no file matches the images pattern {spec.images!r}")
    samples: list[SampleSource] = []
    missing: list[tuple[Path, str]] = []
    image_keys: set[tuple[str, ...]] = set()
    left_out: list[str] = []
    for values, image in found:
        key = tuple(values[k] for k in keys)
        image_keys.add(key)
        split = split_of(values, spec)
        if split is None:
            left_out.append(values["split"])
            continue
        label = label_files.get(key)
        if label is None:
            missing.append((image, labels.format(values)))
            continue
        samples.append(SampleSource(values["stem"], image, (label,), None, split, spec.layout))
    if missing:
        shown = ", ".join(f"{p.relative_to(root)} (expected {m})" for p, m in missing[:5])
        raise DataError(f"{root}: {len(missing)} image(s) have no mask: {shown}")
    stray = sorted(
        p.relative_to(root).as_posix() for k, p in label_files.items() if k not in image_keys
    )
    if stray:
        raise DataError(
            f"{root}: {len(stray)} mask(s) have no image ({spec.images}): " + ", ".join(stray[:5])
        )
    if not samples and left_out:
        all_left_out(root, left_out, spec)
    return samples



def _read_semantic(
    src: SampleSource,
    spec: SourceSpec,
    void_label: int,
    unlabeled_value: int | None,
    max_pixels: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labels (void filled), void, instances of a semantic or cityscapes sample."""
    path = src.masks[0]
    raw = check_label_array(read_array(path, "mask", max_pixels, labels=True), path)
    given: np.ndarray | None = None
    if spec.layout == "cityscapes":
        if raw.size and int(raw.max()) > np.iinfo(np.int32).max:
            raise DataError(f"{path}: value {raw.max()} does not fit in int32")
        big = raw >= CITYSCAPES_INSTANCE_FACTOR
        source = np.where(big, raw // CITYSCAPES_INSTANCE_FACTOR, raw)
        given = np.where(big, raw, 0).astype(np.int32)
        what = "label id"
    else:
        source = raw
        what = "mask value"
    mapped = map_source_values(source, path, spec, void_label, unlabeled_value, what)
    labels = mapped.astype(labels_dtype(spec, void_label))
    void = labels == void_label
    if spec.instances == "layout" and given is not None:
        instances = given
    elif spec.instances == "connected-components":
        instances = components(labels, spec.instance_classes)
    else:
        instances = np.zeros(labels.shape, dtype=np.int32)
    return labels, void, instances


LAYOUTS.register(SemanticLayout.name, SemanticLayout())
LAYOUTS.register(CityscapesLayout.name, CityscapesLayout())
