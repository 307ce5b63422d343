"""Reading a sample region by region: which samples can (:func:`is_chunked`), their
geometry without their pixels (:func:`probe_sample`) and one region
(:func:`read_region`; other samples are read whole and cropped, :func:`crop_sample`
of :mod:`maskprep.ingest.layout`).

A build reads a sample longer than its block this way, one block's region per
task, so that no task holds a whole large sample.
"""

from __future__ import annotations

from maskprep.ingest.arrays import check_region
from maskprep.ingest.layout import (
    Layout,
    ReadOptions,
    SampleGeometry,
    _checked_layout,
    _layout,
    _read_whole,
    crop_sample,
)
from maskprep.ingest.model import LoadedSample, SampleSource
from maskprep.ingest.source import SourceSpec

__all__ = ["crop_sample", "is_chunked", "probe_sample", "read_region"]


def is_chunked(src: SampleSource) -> bool:
    """True when :func:`read_region` reads only the chunks a region touches.

    Decided from the layout and the sample's file types, without opening a
    file: TIFF and zarr files of the instances layout, OME-Zarr and HDF5
    samples. Read such samples region by region; others whole.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import discover, make_sample, read_sample
    >>> d = make_sample(pathlib.Path(tempfile.mkdtemp()) / "n", n_images=1, size=(16, 16))
    >>> is_chunked(discover(d).samples[0])  # PNG files
    False
    """
    return _layout(src.layout).is_chunked(src)


def probe_sample(
    src: SampleSource,
    *,
    unlabeled_value: int | None = None,
    max_pixels: int | None = None,
    source: SourceSpec | None = None,
    void_label: int = 255,
) -> SampleGeometry:
    """A sample's shapes and image dtype without decoding its pixels where the format allows.

    Chunked samples (:func:`is_chunked`) are probed from headers and metadata
    alone, and ``max_pixels`` (which bounds whole decodes) does not apply to
    them; other layouts may decode the annotations. Checks what headers tell
    (shapes agree, dtypes are usable, masks have one channel), not values.

    Raises
    ------
    DataError
        Naming the file, as :func:`read_sample` would for a bad header.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import discover, make_sample, read_sample
    >>> d = make_sample(pathlib.Path(tempfile.mkdtemp()) / "n", n_images=1, size=(16, 24))
    >>> g = probe_sample(discover(d).samples[0])
    >>> g.shape, g.image_shape, g.image_dtype
    ((16, 24), (16, 24), dtype('uint8'))
    """
    layout = _checked_layout(src, source)
    return layout.probe_sample(src, ReadOptions(unlabeled_value, max_pixels, source, void_label))


def read_region(
    src: SampleSource,
    region: tuple[slice, ...],
    *,
    unlabeled_value: int | None = None,
    max_pixels: int | None = None,
    image: bool = True,
    source: SourceSpec | None = None,
    void_label: int = 255,
) -> LoadedSample:
    """One region of a sample: :func:`read_sample`'s arrays cropped to ``region``.

    Parameters
    ----------
    src : SampleSource
        From :func:`discover`.
    region : tuple of slice
        One ``slice(start, stop)`` per spatial axis, ``0 <= start < stop <=
        size`` (None bounds mean the whole axis), no step. The image keeps
        its channel axis whole.
    max_pixels : int, optional
        Decompression-bomb guard. For chunked samples (:func:`is_chunked`)
        it bounds what this one read decodes (the chunks the region touches,
        per file), not the whole sample; other samples are decoded whole and
        it bounds the whole, as in :func:`read_sample`.
    image : bool
        False leaves ``image`` None; ``image_shape`` and ``image_dtype`` are
        still the region's.

    Returns
    -------
    LoadedSample
        Field by field equal to ``read_sample(src)`` cropped to the region:
        same dtypes, void pixels instance 0. Chunked samples decode only the
        chunks the region touches; value checks (negative or too large ids,
        undeclared values) see only the region's pixels, so a build that
        reads every region raises for the same files.

    Raises
    ------
    ValueError
        Naming the file, for a region that does not fit the sample.
    DataError
        Naming the file, as :func:`read_sample`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import discover, make_sample, read_sample
    >>> d = make_sample(pathlib.Path(tempfile.mkdtemp()) / "n", n_images=1, size=(32, 32))
    >>> src = discover(d).samples[0]
    >>> part = read_region(src, (slice(8, 16), slice(0, 4)))
    >>> part.image.shape, bool((part.instances == read_sample(src).instances[8:16, :4]).all())
    ((8, 4), True)
    """
    layout = _checked_layout(src, source)
    options = ReadOptions(unlabeled_value, max_pixels, source, void_label)
    if type(layout).read_region is Layout.read_region and not layout.is_chunked(src):
        # Small files: read once, then check the region against what was read.
        whole = _read_whole(layout, src, options, image)
        return crop_sample(whole, check_region(region, whole.instances.shape, src.image))
    geometry = layout.probe_sample(src, options)
    checked = check_region(region, geometry.shape, src.image)
    out = layout.read_region(src, checked, options, image=image)
    out.instances[out.void] = 0
    return out
