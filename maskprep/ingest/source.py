"""How a recipe-described dataset (semantic, cityscapes, coco) is found and decoded."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from maskprep.errors import check_known_keys
from maskprep.ingest.model import (
    CITYSCAPES_INSTANCE_FACTOR,
    INSTANCE_SOURCES,
    MAX_SOURCE_VALUE,
    RECIPE_LAYOUTS,
    SPLITS,
    VOLUME_LAYOUTS,
)
from maskprep.ingest.paths import PathPattern

__all__ = ["IMAGE_MODES", "SourceSpec", "json_value", "ranges"]

IMAGE_MODES = ("L", "LA", "RGB", "RGBA", "I", "I;16")
_OMITTED_AT_NONE = ("image_key", "labels_key")


def json_value(value: Any) -> Any:
    """A config field's value as JSON has it: tuples (and tuples of tuples) as lists.

    >>> json_value(((0, 1), 2)), json_value("a")
    ([[0, 1], 2], 'a')
    """
    if isinstance(value, tuple):
        return [list(v) if isinstance(v, tuple) else v for v in value]
    return value


@dataclass(frozen=True)
class SourceSpec:
    """How to find and decode a dataset of the semantic, cityscapes, coco, hdf5 or ome-zarr layout.

    Normally made from a recipe (:meth:`maskprep.recipes.Recipe.build_config`);
    part of :class:`~maskprep.config.BuildConfig` and so of every store's
    metadata. Everything here is explicit: class names and sources are
    resolved, so a store can be re-derived without the recipe.

    Parameters
    ----------
    layout : {"semantic", "cityscapes", "coco", "hdf5", "ome-zarr"}
        See the module docstring. hdf5 and ome-zarr read without a source
        too (their defaults); a source chooses their files and keys.
    images : str
        Image path pattern (:class:`PathPattern`). semantic and cityscapes:
        matched against the files, must contain ``{stem}`` (the sample id);
        coco: filled in with the annotation file's fields and each image's
        ``{file_name}``, its stem is the sample id; hdf5: the HDF5 files
        (``"{stem}.hdf"``); ome-zarr: the image directories (``"{stem}.ome.zarr"``).
    labels : str or None
        Mask path pattern (semantic, cityscapes), filled in with the image's
        fields.
    annotations : str or None
        COCO annotation JSON pattern, e.g. ``annotations/instances_{split}.json``.
    split : str
        ``"directory"``: the ``{split}`` field decides, through ``splits``;
        ``"none"``: every sample is train; anything else: a file at the dataset
        root listing validation samples, one stem or file name a line (when
        the file is absent every sample is train).
    splits : tuple of (str, str)
        ``{split}`` value -> ``"train"`` or ``"valid"``. Samples under other
        values (e.g. Cityscapes ``test``, which has no labels) are left out.
    label_map : tuple of (int, int)
        Source value -> class index. The source value is the mask value
        (semantic), the label id (cityscapes) or the category id (coco).
    void_values : tuple of int
        Source values that mean "not annotated". Every other source value
        is an error naming the file and the value.
    instances : {"layout", "connected-components", "none"}
        Where instance ids come from (module docstring); ``"layout"`` is for
        cityscapes and coco only.
    instance_classes : tuple of int
        With ``"connected-components"``: the classes whose components are
        instances.
    image_mode : str or None
        Pillow mode every image is converted to (e.g. ``"RGB"``: COCO has
        some greyscale images); None keeps images as stored.
    image_key : str or None
        hdf5: the image dataset's path in each file (default ``volumes/raw``).
    labels_key : str or None
        hdf5: the instance-id dataset's path (default
        ``volumes/labels/neuron_ids``); ome-zarr: the name of the label image
        under ``labels/`` (default: the first one listed).

    Examples
    --------
    >>> spec = SourceSpec("semantic", "images/{stem}.png", labels="masks/{stem}.png",
    ...                   label_map=((1, 0), (2, 1)), void_values=(0,),
    ...                   instances="connected-components", instance_classes=(1,))
    >>> SourceSpec.from_dict(spec.to_dict()) == spec
    True
    """

    layout: str
    images: str
    labels: str | None = None
    annotations: str | None = None
    split: str = "valid.txt"
    splits: tuple[tuple[str, str], ...] = ()
    label_map: tuple[tuple[int, int], ...] = ()
    void_values: tuple[int, ...] = ()
    instances: str = "none"
    instance_classes: tuple[int, ...] = ()
    image_mode: str | None = None
    image_key: str | None = None
    labels_key: str | None = None

    def __post_init__(self) -> None:
        layouts = (*RECIPE_LAYOUTS, *VOLUME_LAYOUTS)
        if self.layout not in layouts:
            raise ValueError(
                f"source layout must be one of {', '.join(layouts)}, got {self.layout!r}"
            )
        images = PathPattern(self.images)
        img_fields = set(images.fields)
        self._check_keys()
        if self.layout in VOLUME_LAYOUTS:
            if self.labels is not None or self.annotations is not None:
                raise ValueError(
                    f"the {self.layout} layout reads image and labels from one "
                    + ("file" if self.layout == "hdf5" else "directory")
                    + ": give images (and labels_key), not labels or annotations"
                )
            if "stem" not in img_fields:
                raise ValueError(f"images pattern {self.images!r} must contain {{stem}}")
            split_fields = img_fields
        elif self.layout == "coco":
            if self.annotations is None or self.labels is not None:
                raise ValueError("the coco layout needs annotations and no labels pattern")
            ann_fields = set(PathPattern(self.annotations).fields)
            if "file_name" not in img_fields:
                raise ValueError(f"coco images pattern {self.images!r} must contain {{file_name}}")
            extra = img_fields - ann_fields - {"file_name"}
            if extra:
                raise ValueError(
                    f"coco images pattern {self.images!r} uses {{{sorted(extra)[0]}}}, "
                    f"which the annotations pattern {self.annotations!r} does not give"
                )
            split_fields = ann_fields
        else:
            if self.labels is None or self.annotations is not None:
                raise ValueError(f"the {self.layout} layout needs a labels pattern")
            if "stem" not in img_fields:
                raise ValueError(f"images pattern {self.images!r} must contain {{stem}}")
            extra = set(PathPattern(self.labels).fields) - img_fields
            if extra:
                raise ValueError(
                    f"labels pattern {self.labels!r} uses {{{sorted(extra)[0]}}}, "
                    f"which the images pattern {self.images!r} does not have"
                )
            split_fields = img_fields
        if self.split == "directory":
            if "split" not in split_fields:
                raise ValueError(
                    "split = 'directory' needs a {split} field in the "
                    + ("annotations" if self.layout == "coco" else "images")
                    + " pattern"
                )
            if not self.splits:
                raise ValueError("split = 'directory' needs splits ({split} value -> train/valid)")
        elif self.splits:
            raise ValueError("splits only applies with split = 'directory'")
        if self.layout in VOLUME_LAYOUTS and (
            self.label_map or self.void_values or self.instance_classes or self.image_mode
        ):
            raise ValueError(
                f"the {self.layout} layout has instance ids, not source values: label_map, "
                "void_values, instance_classes and image_mode do not apply"
            )
        if self.layout in VOLUME_LAYOUTS and self.instances != "layout":
            raise ValueError(
                f"the {self.layout} layout takes instance ids from its files: "
                f"instances must be 'layout', got {self.instances!r}"
            )
        if self.split != "none" and self.split != "directory":
            PathPattern(self.split)  # a relative path inside the dataset
            if "{" in self.split:
                raise ValueError(f"split file {self.split!r} cannot have fields")
        splits = tuple(sorted((str(k), str(v)) for k, v in dict(self.splits).items()))
        for key, value in splits:
            if value not in SPLITS:
                raise ValueError(f"splits: {key!r} must map to train or valid, got {value!r}")
        object.__setattr__(self, "splits", splits)
        label_map = tuple(
            sorted((_int(k, "label_map"), _int(v, "label_map")) for k, v in self.label_map)
        )
        keys = [k for k, _ in label_map]
        if len(set(keys)) != len(keys):
            raise ValueError("label_map maps a source value twice")
        void_values = tuple(sorted({_int(v, "void_values") for v in self.void_values}))
        huge = [v for v in (*keys, *void_values) if v > MAX_SOURCE_VALUE]
        if huge:
            raise ValueError(f"source values go up to {MAX_SOURCE_VALUE}, got {huge[0]}")
        both = sorted(set(keys) & set(void_values))
        if both:
            raise ValueError(f"source value {both[0]} is both in label_map and in void_values")
        if self.layout == "cityscapes":
            big = [v for v in (*keys, *void_values) if v >= CITYSCAPES_INSTANCE_FACTOR]
            if big:
                raise ValueError(
                    f"cityscapes label ids are below {CITYSCAPES_INSTANCE_FACTOR}, got {big[0]}"
                )
        object.__setattr__(self, "label_map", label_map)
        object.__setattr__(self, "void_values", void_values)
        if self.instances not in INSTANCE_SOURCES:
            raise ValueError(
                f"instances must be one of {', '.join(INSTANCE_SOURCES)}, got {self.instances!r}"
            )
        if self.instances == "layout" and self.layout == "semantic":
            raise ValueError(
                "the semantic layout has no instance ids: use instances = "
                "'connected-components' or 'none'"
            )
        classes = tuple(sorted({_int(c, "instance_classes") for c in self.instance_classes}))
        if classes and self.instances != "connected-components":
            raise ValueError("instance_classes only applies to instances = 'connected-components'")
        object.__setattr__(self, "instance_classes", classes)
        if self.image_mode is not None and self.image_mode not in IMAGE_MODES:
            raise ValueError(
                f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {self.image_mode!r}"
            )

    def _check_keys(self) -> None:
        for name in ("image_key", "labels_key"):
            key = getattr(self, name)
            if key is None:
                continue
            if not isinstance(key, str) or not key.strip("/"):
                raise ValueError(f"{name} must be a non-empty string, got {key!r}")
            allowed = {"hdf5": ("image_key", "labels_key"), "ome-zarr": ("labels_key",)}
            if name not in allowed.get(self.layout, ()):
                raise ValueError(f"{name} does not apply to the {self.layout} layout")
            if self.layout == "ome-zarr" and ("/" in key or key in (".", "..")):
                raise ValueError(f"labels_key is the name of one label image, got {key!r}")

    @property
    def class_indices(self) -> tuple[int, ...]:
        """Class indices the label map produces, sorted."""
        return tuple(sorted({c for _, c in self.label_map}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary; :meth:`from_dict` inverts it.

        The volume keys are left out while unset, so the metadata of stores
        of the other layouts is what it was before they existed.
        """
        return {
            f.name: json_value(getattr(self, f.name))
            for f in fields(self)
            if not (f.name in _OMITTED_AT_NONE and getattr(self, f.name) is None)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceSpec:
        """Validated spec from :meth:`to_dict` output (unknown keys are an error)."""
        check_known_keys(data, {f.name for f in fields(cls)}, "source option")
        kwargs = dict(data)
        for key in ("splits", "label_map"):
            if key in kwargs:
                kwargs[key] = tuple(tuple(pair) for pair in kwargs[key])
        for key in ("void_values", "instance_classes"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def lookup(self, void_label: int) -> np.ndarray:
        """int32 table source value -> class index, ``void_label`` for void, -1 undeclared."""
        return _lookup(self.label_map, self.void_values, void_label)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what}: expected a non-negative integer, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=32)
def _lookup(
    label_map: tuple[tuple[int, int], ...], void_values: tuple[int, ...], void_label: int
) -> np.ndarray:
    size = 1 + max([k for k, _ in label_map] + list(void_values), default=0)
    lut = np.full(size, -1, dtype=np.int32)
    for k, c in label_map:
        lut[k] = c
    for v in void_values:
        lut[v] = void_label
    lut.setflags(write=False)
    return lut


def ranges(values: Sequence[int]) -> str:
    """'0-3, 7, 9-10' for [0, 1, 2, 3, 7, 9, 10]."""
    vals = sorted(set(values))
    if not vals:
        return "none"
    parts = []
    start = prev = vals[0]
    for v in [*vals[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)
