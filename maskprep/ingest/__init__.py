"""Ingest: find a dataset's samples and read each one into numpy arrays.

Owns dataset layouts (one module each, registered in :data:`LAYOUTS`),
path patterns and split files, image and label-image decoding, and the
source-value -> class mapping of semantic datasets. Built-in layouts:

``instances`` (:mod:`~maskprep.ingest.instances`), ``dsb2018``
(:mod:`~maskprep.ingest.dsb2018`), ``semantic`` and ``cityscapes``
(:mod:`~maskprep.ingest.semantic`), ``coco`` (:mod:`~maskprep.ingest.coco`);
third-party layouts come through the ``maskprep.layouts`` entry-point group.
Instance ids of the recipe layouts (``SourceSpec.instances``): ``"layout"``
takes them from the annotations, ``"connected-components"`` numbers each
connected component (full connectivity) of each instance class ``1..N`` (the
lowest class first, in raster order of first pixel), ``"none"`` leaves every
pixel instance 0. Void pixels always have instance 0.

Must never import dask, numba, zarr or any later stage (store, pipeline,
reader, tools): a layout only turns files into arrays.
"""

from maskprep.ingest.coco import coco_categories
from maskprep.ingest.layout import (
    LAYOUTS,
    Annotations,
    Layout,
    ReadOptions,
    available_layouts,
    detect_layout,
    discover,
    read_sample,
)
from maskprep.ingest.model import (
    INSTANCE_SOURCES,
    RECIPE_LAYOUTS,
    CocoAnnotation,
    Dataset,
    LoadedSample,
    SampleProblems,
    SampleSource,
)
from maskprep.ingest.paths import PathPattern, check_inside
from maskprep.ingest.source import SourceSpec

#: Layouts needing no recipe, as offered by ``layout=`` (``"auto"`` detects).
BUILTIN_LAYOUTS = ("auto", "instances", "dsb2018")

__all__ = [
    "BUILTIN_LAYOUTS",
    "INSTANCE_SOURCES",
    "LAYOUTS",
    "RECIPE_LAYOUTS",
    "Annotations",
    "CocoAnnotation",
    "Dataset",
    "Layout",
    "LoadedSample",
    "PathPattern",
    "ReadOptions",
    "SampleProblems",
    "SampleSource",
    "SourceSpec",
    "available_layouts",
    "check_inside",
    "coco_categories",
    "detect_layout",
    "discover",
    "read_sample",
]
