"""Arrays read region by region: TIFF (memory-mapped or by tile), zarr, HDF5.

A sample too big to decode whole is read through an :class:`ArrayFile`: its
shape, dtype and chunk shape come from the file's header, and
:meth:`ArrayFile.read` decodes only the chunks (TIFF tiles, strips or pages;
zarr chunks; HDF5 chunks) that a region touches. Uncompressed contiguous TIFFs
are memory-mapped, so a region costs its own bytes. Every value comes back in
the dtype a whole read gives (native byte order), so a region equals the
whole array cropped.

zarr and h5py are imported only when such a file is read (zarr is a core
dependency; h5py comes with the ``volumes`` extra).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from maskprep.errors import DataError

__all__ = [
    "ZARR_SUFFIX",
    "ArrayFile",
    "check_region",
    "import_optional",
    "open_array",
    "open_hdf5",
    "region_shape",
    "too_big",
]

#: Suffix of zarr array (and OME-Zarr image) directories.
ZARR_SUFFIX = ".zarr"
_TIFF_SUFFIXES = (".tif", ".tiff")


def import_optional(module: str, extra: str) -> Any:
    """Import ``module``, or raise a DataError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"reading these files needs the {module} package: pip install 'maskprep[{extra}]'"
        ) from None


def too_big(path: Path, what: str, n: int, max_pixels: int | None) -> None:
    """DataError if decoding ``n`` pixel values exceeds ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and n > max_pixels:
        raise DataError(
            f"{path}: {what} has {n:,} pixel values, more than the limit of {max_pixels:,} "
            "(a decompression bomb? raise max_pixels if the file is genuine)"
        )


def check_region(
    region: Any, shape: Sequence[int], where: object
) -> tuple[slice, ...]:
    """``region`` as one ``slice(start, stop)`` per axis of ``shape``, checked.

    ``None`` bounds mean the axis' start or end. Raises ValueError naming
    ``where`` (the file) for anything else than ``0 <= start < stop <= size``
    with no step.

    Examples
    --------
    >>> check_region((slice(2, 4), slice(None)), (8, 5), "a.tif")
    (slice(2, 4, None), slice(0, 5, None))
    >>> check_region((slice(2, 9),), (8,), "a.tif")
    Traceback (most recent call last):
    ...
    ValueError: a.tif: region axis 0 is slice(2, 9, None); need 0 <= start < stop <= 8, no step
    """
    if not isinstance(region, tuple) or not all(isinstance(s, slice) for s in region):
        raise ValueError(f"{where}: a region is a tuple of slices, got {region!r}")
    if len(region) != len(shape):
        raise ValueError(
            f"{where}: region has {len(region)} axes, the sample has {len(shape)} "
            f"(shape {tuple(shape)})"
        )
    out = []
    for axis, (s, n) in enumerate(zip(region, shape, strict=True)):
        start = 0 if s.start is None else s.start
        stop = n if s.stop is None else s.stop
        ok = (
            s.step is None
            and isinstance(start, (int, np.integer))
            and isinstance(stop, (int, np.integer))
            and not isinstance(start, bool)
            and not isinstance(stop, bool)
            and 0 <= start < stop <= n
        )
        if not ok:
            raise ValueError(
                f"{where}: region axis {axis} is {s!r}; need 0 <= start < stop <= {n}, no step"
            )
        out.append(slice(int(start), int(stop)))
    return tuple(out)


def region_shape(region: Sequence[slice]) -> tuple[int, ...]:
    """The shape of a checked region."""
    return tuple(int(s.stop) - int(s.start) for s in region)


def _touched(region: Sequence[slice], chunks: Sequence[int], shape: Sequence[int]) -> int:
    """Pixel values in the chunks ``region`` touches (its leading axes; the rest whole)."""
    n = 1
    for axis, size in enumerate(shape):
        if axis >= len(region):
            n *= int(size)
            continue
        c = int(chunks[axis])
        lo = (region[axis].start // c) * c
        hi = min(int(size), -(-region[axis].stop // c) * c)
        n *= hi - lo
    return n


class ArrayFile:
    """One array of a file, open for region reads; use as a context manager.

    ``shape`` and ``dtype`` are those of a whole read; ``chunks`` is the shape
    of what is decoded at once (None: any region is read alone, as from a
    memory map or a contiguous HDF5 dataset); ``axes`` are TIFF axis letters
    where the file has them ("" otherwise); ``attrs`` an HDF5 dataset's attributes.
    """

    def __init__(
        self,
        path: Path,
        what: str,
        array: Any,
        *,
        chunks: tuple[int, ...] | None,
        axes: str = "",
        closer: Any = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.what = what
        self._array = array
        self.shape: tuple[int, ...] = tuple(int(n) for n in array.shape)
        self.dtype: np.dtype[Any] = np.dtype(array.dtype).newbyteorder("=")
        self.chunks = chunks
        self.axes = axes
        self.attrs: dict[str, Any] = {} if attrs is None else attrs
        self._closer = closer

    def __enter__(self) -> ArrayFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file (and its memory map)."""
        self._array = None
        if self._closer is not None:
            self._closer.close()
            self._closer = None

    def decoded_pixels(self, region: Sequence[slice]) -> int:
        """Pixel values decoded to read ``region`` (leading axes; trailing axes whole)."""
        if self.chunks is None:
            rest = math.prod(self.shape[len(region) :])
            return math.prod(region_shape(region)) * rest
        return _touched(region, self.chunks, self.shape)

    def read(self, region: Sequence[slice], max_pixels: int | None = None) -> np.ndarray:
        """The values of ``region`` (its leading axes; trailing axes whole), a new array.

        ``max_pixels`` bounds what the read decodes (the touched chunks).
        """
        too_big(self.path, f"{self.what} region", self.decoded_pixels(region), max_pixels)
        index = tuple(region) + (slice(None),) * (len(self.shape) - len(region))
        try:
            out = self._array[index]
        except Exception as exc:  # any decoder failure means the same thing to the user
            raise DataError(f"{self.path}: cannot read {self.what}: {exc}") from None
        return np.array(out, dtype=self.dtype, copy=True)

    def read_all(self, max_pixels: int | None = None) -> np.ndarray:
        """The whole array; ``max_pixels`` bounds its size."""
        too_big(self.path, self.what, math.prod(self.shape), max_pixels)
        return self.read(tuple(slice(0, n) for n in self.shape))


def open_array(path: Path, what: str) -> ArrayFile:
    """A TIFF file or a zarr array directory, opened for region reads.

    Raises
    ------
    DataError
        Naming the file, if it cannot be opened.
    """
    if path.suffix.lower() == ZARR_SUFFIX:
        return _open_zarr(path, what)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        return _open_tiff(path, what)
    raise DataError(f"{path}: {what} is not a TIFF or a zarr array; cannot read it by region")


# Opened TIFFs, per thread: parsing a TIFF reads every page's tile table, which
# for a volume of many pages costs as much as decoding a block (a region read
# opens the image and the mask, and a block task reads several regions).
# Keyed by path, size and modification time, so a rewritten file is reopened;
# per thread, because a TiffFile's file handle is not shared across threads.
_TIFF_CACHE = threading.local()
_TIFF_CACHE_SIZE = 8


def _cached_tiff(path: Path, what: str) -> tuple[Any, tuple[int, ...] | None, str]:
    """The array (memory map or zarr view), chunks and axes of a TIFF, opened once per thread."""
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what}: {exc.strerror}") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    cache: OrderedDict[tuple[str, int, int], Any] | None = getattr(_TIFF_CACHE, "files", None)
    if cache is None:
        cache = _TIFF_CACHE.files = OrderedDict()
    hit = cache.get(key)
    if hit is not None:
        cache.move_to_end(key)
        return hit[0], hit[1], hit[2]
    opened = _parse_tiff(path, what)
    cache[key] = opened
    while len(cache) > _TIFF_CACHE_SIZE:
        _, old = cache.popitem(last=False)
        if old[3] is not None:
            old[3].close()
    return opened[0], opened[1], opened[2]


def _parse_tiff(path: Path, what: str) -> tuple[Any, tuple[int, ...] | None, str, Any]:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read {what}: {exc}") from None
    try:
        series = tif.series[0]
        axes = str(getattr(series, "axes", ""))
        if series.dataoffset is not None:
            # Uncompressed and contiguous: a region costs only its own bytes.
            tif.close()
            return tifffile.memmap(path, mode="r"), None, axes, None
        import zarr

        store = series.aszarr(level=0)
        arr = zarr.open_array(store, mode="r")
        return arr, tuple(arr.chunks), axes, tif
    except DataError:
        tif.close()
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        tif.close()
        raise DataError(f"{path}: cannot read {what}: {exc}") from None


def _open_tiff(path: Path, what: str) -> ArrayFile:
    array, chunks, axes = _cached_tiff(path, what)
    return ArrayFile(path, what, array, chunks=chunks, axes=axes)


def zarr_store(path: Path) -> Any:
    """The read-only store of a zarr directory (tests wrap it to count reads)."""
    from zarr.storage import LocalStore

    return LocalStore(path, read_only=True)


def open_zarr_array(path: Path, what: str) -> Any:
    """The zarr array (format 2 or 3) at ``path``, read-only; DataError naming it if none."""
    import zarr

    if not ((path / "zarr.json").is_file() or (path / ".zarray").is_file()):
        kind = "a zarr group" if (path / ".zgroup").is_file() else "not a zarr array"
        raise DataError(f"{path}: {what} is {kind} (no zarr.json or .zarray array metadata)")
    try:
        return zarr.open_array(store=zarr_store(path), mode="r")
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read {what}: {exc}") from None


def _open_zarr(path: Path, what: str) -> ArrayFile:
    arr = open_zarr_array(path, what)
    return ArrayFile(path, what, arr, chunks=tuple(int(c) for c in arr.chunks))


def open_hdf5(path: Path, key: str, what: str) -> ArrayFile:
    """Dataset ``key`` of the HDF5 file ``path``, opened for region reads.

    Raises
    ------
    DataError
        Naming the file and the key, if the file cannot be opened or has no
        such dataset.
    """
    h5py = import_optional("h5py", "volumes")
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read {what}: {exc}") from None
    try:
        if key not in f:
            raise DataError(
                f"{path}: has no dataset {key!r} for the {what}; it has "
                + (", ".join(_datasets(f)[:8]) or "no datasets")
            )
        ds = f[key]
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"{path}: {key!r} is a group, not a dataset ({what})")
        chunks = None if ds.chunks is None else tuple(int(c) for c in ds.chunks)
        return ArrayFile(
            path, f"{what} {key!r}", ds, chunks=chunks, closer=f, attrs=dict(ds.attrs)
        )
    except BaseException:
        f.close()
        raise


def _datasets(f: Any) -> list[str]:
    """Paths of every dataset of an open HDF5 file, sorted."""
    import h5py

    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)
