"""The :class:`Layout` protocol, the layout registry, and the two entry points
every stage uses: :func:`discover` (find samples) and :func:`read_sample`.

A layout knows where one kind of dataset keeps its files and how to decode its
annotations into instances, void and (for semantic datasets) class labels.
Everything shared (image decoding with a size limit, shape checks, void pixels
never carrying an instance) happens here, once, whatever the layout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.arrays import region_shape
from maskprep.ingest.imageio import check_image_shape, probe_image_as, read_image
from maskprep.ingest.model import Dataset, LoadedSample, SampleProblems, SampleSource
from maskprep.ingest.source import SourceSpec
from maskprep.plugins import Registry

__all__ = [
    "LAYOUTS",
    "Annotations",
    "Layout",
    "ReadOptions",
    "SampleGeometry",
    "available_layouts",
    "crop_sample",
    "detect_layout",
    "discover",
    "read_sample",
]


@dataclass(frozen=True)
class ReadOptions:
    """What a layout needs to know to read one sample."""

    unlabeled_value: int | None = None
    max_pixels: int | None = None
    source: SourceSpec | None = None
    void_label: int = 255


@dataclass(frozen=True)
class Annotations:
    """One sample's annotations as a layout decodes them, before shared checks.

    ``labels`` is None for instance layouts (classes background and object
    follow from the instances); semantic layouts give class indices with
    ``void_label`` on void pixels.
    """

    instances: np.ndarray  # int32, 0 = background
    void: np.ndarray  # bool
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class SampleGeometry:
    """A sample's shapes as its files' headers give them (:func:`probe_sample`).

    ``shape`` is the spatial shape of labels and instances; ``image_shape``
    the image's (spatial, then an optional trailing channel axis).
    ``chunks`` is the spatial shape of the blocks the labels are stored in
    (TIFF tiles or pages, zarr or HDF5 chunks): a region aligned to it decodes
    nothing outside itself. None when the sample is not chunked, or when any
    region reads alone (a memory-mapped TIFF, a contiguous HDF5 dataset).
    ``spacing`` is the physical size of a pixel per spatial axis when the
    files record it (HDF5 ``resolution`` attributes, OME-Zarr scales), else None.

    Examples
    --------
    >>> g = SampleGeometry((4, 6), (4, 6, 3), np.dtype("uint8"), spacing=(0.5, 0.5))
    >>> SampleGeometry.from_dict(g.to_dict()) == g
    True
    """

    shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    image_dtype: np.dtype[Any]
    chunks: tuple[int, ...] | None = None
    spacing: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary; :meth:`from_dict` inverts it."""
        return {
            "shape": list(self.shape),
            "image_shape": list(self.image_shape),
            "image_dtype": np.dtype(self.image_dtype).str,
            "chunks": None if self.chunks is None else list(self.chunks),
            "spacing": None if self.spacing is None else list(self.spacing),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleGeometry:
        """The geometry :meth:`to_dict` gave."""
        chunks, spacing = data.get("chunks"), data.get("spacing")
        return cls(
            tuple(int(n) for n in data["shape"]),
            tuple(int(n) for n in data["image_shape"]),
            np.dtype(data["image_dtype"]),
            None if chunks is None else tuple(int(n) for n in chunks),
            None if spacing is None else tuple(float(s) for s in spacing),
        )


class Layout:
    """Base class of dataset layouts; subclass it and register an instance.

    Subclasses set :attr:`name` and implement :meth:`find_samples` and
    :meth:`read_annotations`. :meth:`read_image` and :meth:`probe_image` read
    ``SampleSource.image`` with Pillow or tifffile; override them for other
    image containers. Third-party layouts register through the
    ``maskprep.layouts`` entry-point group (see ``docs/plugins.md``).

    Layouts for big inputs also override :meth:`is_chunked` (True for samples
    whose files can be read chunk by chunk), :meth:`probe_sample` (shapes
    from headers only) and :meth:`read_region` (decode only the chunks a
    region touches); the defaults read the sample whole.
    """

    #: Name used in configs and store metadata (``BuildConfig(layout=...)``).
    name: str = ""
    #: What ``auto`` detection looks for, in its error message.
    description: str = ""
    #: True for layouts whose classes and paths come from a :class:`SourceSpec`.
    needs_source: bool = False

    def guess_can_open(self, root: Path) -> bool:
        """True if ``root`` looks like this layout (used by ``layout="auto"``)."""
        return False

    def find_samples(self, root: Path, source: SourceSpec | None) -> Sequence[SampleSource]:
        """Every sample under ``root``, with its split; raise DataError naming files."""
        raise NotImplementedError

    def read_annotations(
        self, src: SampleSource, image_shape: tuple[int, ...], options: ReadOptions
    ) -> Annotations:
        """Decode one sample's annotations; raise DataError naming the file."""
        raise NotImplementedError

    def read_image(self, src: SampleSource, options: ReadOptions) -> np.ndarray:
        """Decode the sample's image."""
        mode = None if options.source is None else options.source.image_mode
        return read_image(src.image, options.max_pixels, mode)

    def probe_image(
        self, src: SampleSource, options: ReadOptions
    ) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """The image's shape and dtype, checked but decoded only where unavoidable."""
        mode = None if options.source is None else options.source.image_mode
        return probe_image_as(src.image, options.max_pixels, mode)

    def is_chunked(self, src: SampleSource) -> bool:
        """True when :meth:`read_region` reads only the chunks a region touches.

        Memory is then bounded by the region (and the chunks around it), not
        the sample, and ``max_pixels`` bounds what one region read decodes
        rather than the whole sample. Decided from the sample's file types,
        without opening them. The default (and every small-image layout) is False.
        """
        return False

    def probe_sample(self, src: SampleSource, options: ReadOptions) -> SampleGeometry:
        """The sample's shapes and image dtype, from headers where the format allows.

        The default probes the image and decodes the annotations whole (fine
        for small files); chunked layouts read metadata only.
        """
        image_shape, image_dtype = self.probe_image(src, options)
        ann = self.read_annotations(src, tuple(image_shape), options)
        shape = ann.instances.shape if ann.labels is None else ann.labels.shape
        check_image_shape(tuple(image_shape), shape, src)
        return SampleGeometry(tuple(shape), tuple(image_shape), np.dtype(image_dtype))

    def read_region(
        self,
        src: SampleSource,
        region: tuple[slice, ...],
        options: ReadOptions,
        *,
        image: bool = True,
    ) -> LoadedSample:
        """The sample restricted to ``region`` (checked: one slice per spatial axis).

        Exactly :func:`read_sample`'s values cropped to the region. The default
        reads the sample whole and crops it.
        """
        return crop_sample(_read_whole(self, src, options, image), region)


#: Registered layouts; built-ins first, in ``auto`` detection order.
LAYOUTS: Registry[Layout] = Registry(
    "layout",
    group="maskprep.layouts",
    builtins=(
        "maskprep.ingest.instances",
        "maskprep.ingest.dsb2018",
        "maskprep.ingest.semantic",
        "maskprep.ingest.coco",
        "maskprep.ingest.hdf5",
        "maskprep.ingest.omezarr",
    ),
)


def available_layouts() -> tuple[str, ...]:
    """Names of every registered dataset layout, plugins included.

    Examples
    --------
    >>> available_layouts()[:3]
    ('cityscapes', 'coco', 'dsb2018')
    """
    return LAYOUTS.names()


def _layout(name: str) -> Layout:
    try:
        return LAYOUTS.get(name)
    except KeyError:
        raise DataError(
            f"unknown layout {name!r}; choose auto or one of {', '.join(available_layouts())}"
        ) from None


def detect_layout(root: Path) -> str:
    """The first registered layout whose :meth:`Layout.guess_can_open` accepts ``root``.

    Raises
    ------
    DataError
        If the directory matches no layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(_not_a_directory(root))
    candidates = [LAYOUTS.get(n) for n in LAYOUTS.in_order()]
    for layout in candidates:
        if not layout.needs_source and layout.guess_can_open(root):
            return layout.name
    expected = " or ".join(
        f"{c.description} ({c.name} layout)" for c in candidates if c.description
    )
    raise DataError(f"{root}: cannot detect the dataset layout: expected {expected}")


def discover(
    root: str | os.PathLike[str],
    layout: str = "auto",
    *,
    source: SourceSpec | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Find every sample of a dataset directory and its split.

    Parameters
    ----------
    root : path
        Dataset directory.
    layout : str
        A registered layout (:func:`available_layouts`); ``"auto"`` detects
        one, or takes ``source.layout`` when a source is given.
    source : SourceSpec, optional
        Paths, split and classes of a semantic, cityscapes or coco dataset
        (usually from a recipe); required for those layouts.
    skip_bad : bool
        Leave out samples the layout finds unusable (an image without a mask,
        say) and list them in :attr:`Dataset.problems`, instead of raising.
        Problems of the whole dataset still raise.

    Returns
    -------
    Dataset
        Samples sorted by id, so the output order never depends on the file system.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import make_sample
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "nuclei"
    >>> _ = make_sample(d, n_images=4, size=(32, 32))
    >>> ds = discover(d)
    >>> ds.layout, len(ds), ds.samples[0].sample_id
    ('instances', 4, 'nuclei_000')
    """
    root_path = Path(root)
    if source is not None:
        if layout not in ("auto", source.layout):
            raise DataError(f"layout {layout!r} differs from the source's {source.layout!r}")
        layout = source.layout
    if layout != "auto":
        chosen = _layout(layout)
        if chosen.needs_source and (source is None or source.layout != layout):
            raise DataError(
                f"the {layout} layout needs its classes and paths: build with a recipe "
                "(BuildConfig.from_recipe)"
            )
    if not root_path.is_dir():
        raise DataError(_not_a_directory(root_path))
    if layout == "auto":
        layout = detect_layout(root_path)
    problems: tuple[tuple[str, str], ...] = ()
    try:
        samples = tuple(_layout(layout).find_samples(root_path, source))
    except SampleProblems as exc:
        if not skip_bad:
            raise DataError(str(exc)) from None
        samples, problems = exc.samples, exc.problems
    if not samples:
        if problems:
            listed = "\n".join(m for _, m in problems[:10])
            raise DataError(
                f"{root_path}: no usable samples ({len(problems)} had problems)\n{listed}"
            )
        raise DataError(f"{root_path}: the dataset is empty (no samples in the {layout} layout)")
    return Dataset(root_path, layout, samples, problems)


def _not_a_directory(root: Path) -> str:
    if root.exists():
        return f"{root}: is a file, not a dataset directory"
    return f"{root}: dataset directory does not exist"


def read_sample(
    src: SampleSource,
    *,
    unlabeled_value: int | None = None,
    max_pixels: int | None = None,
    image: bool = True,
    source: SourceSpec | None = None,
    void_label: int = 255,
) -> LoadedSample:
    """Read and check one sample's image, labels, instances and unannotated pixels.

    With ``image=False`` the image is checked but not decoded (see
    :class:`LoadedSample`), which is all a counting pass needs. Samples of the
    semantic, cityscapes and coco layouts need their ``source`` and get
    ``labels`` with ``void_label`` on void pixels.

    Raises
    ------
    DataError
        Naming the file, for unreadable files, shape mismatches, float or
        negative or RGB masks, overlapping dsb2018 instance masks, and mask
        values the source does not declare (naming the value).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import make_sample
    >>> d = make_sample(pathlib.Path(tempfile.mkdtemp()) / "n", n_images=2, size=(32, 32))
    >>> s = read_sample(discover(d).samples[1])
    >>> s.image.shape, s.instances.dtype, bool(s.void.any())  # sample 1 has a void patch
    ((32, 32), dtype('int32'), True)
    """
    layout = _checked_layout(src, source)
    options = ReadOptions(unlabeled_value, max_pixels, source, void_label)
    return _read_whole(layout, src, options, image)


def _checked_layout(src: SampleSource, source: SourceSpec | None) -> Layout:
    layout = _layout(src.layout)
    if layout.needs_source and (source is None or source.layout != src.layout):
        raise ValueError(f"{src.image}: a {src.layout} sample needs its SourceSpec to be read")
    return layout


def _read_whole(
    layout: Layout, src: SampleSource, options: ReadOptions, image: bool
) -> LoadedSample:
    pixels: np.ndarray | None = None
    if image:
        pixels = layout.read_image(src, options)
        image_shape, image_dtype = tuple(pixels.shape), pixels.dtype
    else:
        image_shape, image_dtype = layout.probe_image(src, options)
    ann = layout.read_annotations(src, tuple(image_shape), options)
    shape = ann.instances.shape if ann.labels is None else ann.labels.shape
    check_image_shape(tuple(image_shape), shape, src)
    ann.instances[ann.void] = 0
    return LoadedSample(
        pixels, tuple(image_shape), np.dtype(image_dtype), ann.instances, ann.void, ann.labels
    )


def crop_sample(sample: LoadedSample, region: tuple[slice, ...]) -> LoadedSample:
    """``sample`` restricted to ``region`` (one slice per spatial axis), as new arrays.

    The image keeps its channels whole; ``image_shape`` becomes the region's.

    Examples
    --------
    >>> s = LoadedSample(None, (4, 5, 3), np.dtype("uint8"), np.ones((4, 5), np.int32),
    ...                  np.zeros((4, 5), bool))
    >>> c = crop_sample(s, (slice(1, 3), slice(0, 2)))
    >>> c.image_shape, c.instances.shape
    ((2, 2, 3), (2, 2))
    """
    region = tuple(region)
    extra = tuple(sample.image_shape[len(region) :])

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.array(a[region], copy=True)

    instances = cut(sample.instances)
    void = cut(sample.void)
    assert instances is not None and void is not None
    return LoadedSample(
        cut(sample.image),
        region_shape(region) + extra,
        sample.image_dtype,
        instances,
        void,
        cut(sample.labels),
    )
