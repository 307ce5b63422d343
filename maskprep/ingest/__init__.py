"""Ingest: find a dataset's samples and read each one into numpy arrays.

Owns dataset layouts (one module each, registered in :data:`LAYOUTS`),
path patterns and split files, image and label-image decoding, and the
source-value -> class mapping of semantic datasets. Built-in layouts:

``instances`` (:mod:`~maskprep.ingest.instances`), ``dsb2018``
(:mod:`~maskprep.ingest.dsb2018`), ``semantic`` and ``cityscapes``
(:mod:`~maskprep.ingest.semantic`), ``coco`` (:mod:`~maskprep.ingest.coco`),
and for big chunked volumes ``hdf5`` (:mod:`~maskprep.ingest.hdf5`, CREMI
style) and ``ome-zarr`` (:mod:`~maskprep.ingest.omezarr`); the instances
layout also reads TIFF and zarr arrays region by region. Third-party layouts
come through the ``maskprep.layouts`` entry-point group.

Samples too big to read whole are read by region: :func:`is_chunked` says
whether a sample's files are read chunk by chunk, :func:`probe_sample` gives
its shapes from headers (:class:`SampleGeometry`), and :func:`read_region`
gives :func:`read_sample`'s arrays cropped to a region, decoding only the
chunks it touches (:mod:`~maskprep.ingest.arrays`).
Instance ids of the recipe layouts (``SourceSpec.instances``): ``"layout"``
takes them from the annotations, ``"connected-components"`` numbers each
connected component (full connectivity) of each instance class ``1..N`` (the
lowest class first, in raster order of first pixel), ``"none"`` leaves every
pixel instance 0. Void pixels always have instance 0.

Must never import dask, numba or any later stage (store, pipeline, reader,
tools): a layout only turns files into arrays. zarr (and h5py) are imported
only inside the functions that read zarr, tiled TIFF, OME-Zarr or HDF5 inputs.
"""

from maskprep.ingest.coco import coco_categories
from maskprep.ingest.layout import (
    LAYOUTS,
    Annotations,
    Layout,
    ReadOptions,
    SampleGeometry,
    available_layouts,
    detect_layout,
    discover,
    read_sample,
)
from maskprep.ingest.model import (
    INSTANCE_SOURCES,
    RECIPE_LAYOUTS,
    VOLUME_LAYOUTS,
    CocoAnnotation,
    Dataset,
    LoadedSample,
    SampleProblems,
    SampleSource,
)
from maskprep.ingest.paths import PathPattern, check_inside
from maskprep.ingest.regions import crop_sample, is_chunked, probe_sample, read_region
from maskprep.ingest.source import SourceSpec

#: Layouts needing no recipe, as offered by ``layout=`` (``"auto"`` detects).
BUILTIN_LAYOUTS = ("auto", "instances", "dsb2018")

__all__ = [
    "BUILTIN_LAYOUTS",
    "INSTANCE_SOURCES",
    "LAYOUTS",
    "RECIPE_LAYOUTS",
    "VOLUME_LAYOUTS",
    "Annotations",
    "CocoAnnotation",
    "Dataset",
    "Layout",
    "LoadedSample",
    "PathPattern",
    "ReadOptions",
    "SampleGeometry",
    "SampleProblems",
    "SampleSource",
    "SourceSpec",
    "available_layouts",
    "check_inside",
    "coco_categories",
    "crop_sample",
    "detect_layout",
    "discover",
    "is_chunked",
    "probe_sample",
    "read_region",
    "read_sample",
]
