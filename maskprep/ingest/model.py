"""The data model of ingestion: where a sample's files are, and a sample in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError

__all__ = [
    "CITYSCAPES_INSTANCE_FACTOR",
    "IMAGE_SUFFIXES",
    "INSTANCE_SOURCES",
    "MAX_SOURCE_VALUE",
    "RECIPE_IMAGE_SUFFIXES",
    "RECIPE_LAYOUTS",
    "SPLITS",
    "SPLIT_RULES",
    "VOLUME_LAYOUTS",
    "CocoAnnotation",
    "Dataset",
    "LoadedSample",
    "SampleProblems",
    "SampleSource",
]

RECIPE_LAYOUTS = ("semantic", "cityscapes", "coco")
# Layouts of chunked volumes whose files (and, for HDF5, dataset keys) a
# SourceSpec may choose; without one they use their defaults.
VOLUME_LAYOUTS = ("hdf5", "ome-zarr")
INSTANCE_SOURCES = ("layout", "connected-components", "none")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
# Suffixes a split file may give for the recipe layouts (COCO images are JPEG).
RECIPE_IMAGE_SUFFIXES = (*IMAGE_SUFFIXES, ".jpg", ".jpeg", ".bmp", ".webp")
SPLITS = ("train", "valid")
# Split rules of a SourceSpec besides a split file name such as "valid.txt".
SPLIT_RULES = ("directory", "none")
# Cityscapes instanceIds: v >= 1000 is class v // 1000, instance v.
CITYSCAPES_INSTANCE_FACTOR = 1000
# Largest source value a label_map or void_values may list (a lookup table entry each).
MAX_SOURCE_VALUE = 65535


@dataclass(frozen=True)
class CocoAnnotation:
    """One COCO annotation of one image; ``segmentation`` is its JSON text."""

    id: int
    category_id: int
    iscrowd: bool
    segmentation: str


@dataclass(frozen=True)
class SampleSource:
    """Where one sample's files are on disk.

    COCO samples have the annotation JSON as their only mask file, and carry
    their annotations and the ``(height, width)`` the JSON gives.
    """

    sample_id: str
    image: Path
    masks: tuple[Path, ...]
    unlabeled: Path | None
    split: str
    layout: str
    annotations: tuple[CocoAnnotation, ...] = ()
    shape: tuple[int, ...] | None = None

    def files(self) -> tuple[Path, ...]:
        """All input files of this sample, image first."""
        extra = (self.unlabeled,) if self.unlabeled is not None else ()
        return (self.image, *self.masks, *extra)


@dataclass(frozen=True)
class Dataset:
    """A discovered dataset: its root, layout and samples sorted by id."""

    root: Path
    layout: str
    samples: tuple[SampleSource, ...]
    #: ``(sample_id, message)`` of samples left out (``discover(skip_bad=True)``).
    problems: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class LoadedSample:
    """One sample in memory, before void fill.

    ``image`` is None when the sample was read with ``image=False``: the image
    file was then checked (header, and PNG chunk checksums) but not decoded.
    """

    image: np.ndarray | None
    image_shape: tuple[int, ...]
    image_dtype: np.dtype[Any]
    instances: np.ndarray  # int32, 0 = background; 0 also on void pixels
    void: np.ndarray  # bool, True where the pixel is not annotated
    # Semantic layouts: class indices with void_label on void pixels (uint8 or
    # uint16). None for the instances and dsb2018 layouts, whose labels follow
    # from the instances (0 background, 1 object).
    labels: np.ndarray | None = None



class SampleProblems(DataError):
    """Some samples of a dataset cannot be used, the rest can (raised by layouts).

    The message is the error for a build that stops at bad input;
    ``samples`` are the usable samples and ``problems`` the
    ``(sample_id, message)`` of the others, for builds that skip them.
    """

    def __init__(
        self,
        message: str,
        samples: Sequence[SampleSource],
        problems: Sequence[tuple[str, str]],
    ) -> None:
        super().__init__(message)
        self.samples = tuple(samples)
        self.problems = tuple(problems)
