"""Chunked volume datasets for tests and benchmarks: TIFF, zarr, OME-Zarr, HDF5.

:func:`write_volume` writes given arrays as one sample of a chunked input
format; :func:`make_volume_sample` writes a deterministic dataset of touching
nuclei in any of them. Every format here is read region by region by
:mod:`maskprep.ingest` (:func:`~maskprep.ingest.read_region`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from maskprep.errors import DataError

__all__ = ["VOLUME_FORMATS", "make_volume_sample", "write_volume"]

#: Formats :func:`write_volume` writes, and the layout that reads each.
VOLUME_FORMATS = {
    "tiff": "instances",  # uncompressed contiguous TIFF: memory-mapped
    "tiff-tiled": "instances",  # zlib-compressed TIFF tiles (one page per z)
    "zarr": "instances",  # zarr v3 array directories
    "zarr2": "instances",  # zarr v2 array directories
    "ome-zarr": "ome-zarr",  # NGFF 0.5 (zarr v3)
    "ome-zarr-0.4": "ome-zarr",  # NGFF 0.4 (zarr v2)
    "hdf5": "hdf5",  # CREMI's dataset paths, chunked and gzip-compressed
}


def _chunks(shape: Sequence[int], chunks: Sequence[int] | None) -> tuple[int, ...]:
    if chunks is None:
        chunks = [min(n, 64 if len(shape) == 3 else 256) for n in shape]
    if len(chunks) != len(shape):
        raise DataError(f"chunks {tuple(chunks)} must have one size per axis of {tuple(shape)}")
    return tuple(max(1, min(int(c), int(n))) for c, n in zip(chunks, shape, strict=True))


def write_volume(
    directory: str | os.PathLike[str],
    name: str,
    image: np.ndarray,
    instances: np.ndarray,
    *,
    format: str = "zarr",
    chunks: Sequence[int] | None = None,
    unlabeled: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Write one sample (``image``, integer ``instances``) in a chunked format.

    Parameters
    ----------
    directory : path
        The dataset directory (created if missing).
    name : str
        The sample id (file stem).
    image : ndarray
        Spatial shape of ``instances``, optionally with a trailing channel axis.
    instances : ndarray
        2D or 3D integer ids, 0 background (for ``hdf5`` stored as uint64,
        where ``2**64 - 1`` means no label).
    format : str
        A key of :data:`VOLUME_FORMATS`.
    chunks : sequence of int, optional
        Spatial chunk (tile) shape; default 64 per axis in 3D, 256 in 2D.
        ``tiff-tiled`` tiles y and x (multiples of 16) and stores one page per z.
    unlabeled : ndarray of bool, optional
        Unannotated pixels (``unlabeled/`` of the instances layout only).
    spacing : sequence of float, optional
        Pixel size per spatial axis: the HDF5 ``resolution`` attribute, the
        OME-Zarr scale.

    Returns
    -------
    Path
        The dataset directory.

    Examples
    --------
    >>> import tempfile
    >>> ids = np.zeros((4, 16, 16), np.uint16); ids[1:3, 4:9, 4:9] = 7
    >>> d = write_volume(tempfile.mkdtemp(), "v", ids.astype(np.uint8), ids, format="zarr",
    ...                  chunks=(2, 8, 8))
    >>> sorted(p.name for p in (d / "masks").iterdir())
    ['v.zarr']
    """
    if format not in VOLUME_FORMATS:
        raise DataError(f"format must be one of {', '.join(VOLUME_FORMATS)}, got {format!r}")
    if instances.ndim not in (2, 3) or image.shape[: instances.ndim] != instances.shape:
        raise DataError(
            f"image shape {image.shape} must be instances shape {instances.shape} "
            "(plus a trailing channel axis)"
        )
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    c = _chunks(instances.shape, chunks)
    if VOLUME_FORMATS[format] == "instances":
        arrays = [("images", image), ("masks", instances)]
        if unlabeled is not None:
            arrays.append(("unlabeled", unlabeled.astype(np.uint8)))
        for folder, arr in arrays:
            (root / folder).mkdir(exist_ok=True)
            rgb = folder == "images" and arr.ndim == instances.ndim + 1 and arr.shape[-1] in (3, 4)
            _write_array(root / folder / name, arr, format, c, rgb)
    elif format.startswith("ome-zarr"):
        _write_ome_zarr(root, name, image, instances, format, c, spacing)
    else:
        _write_hdf5(root / f"{name}.hdf", image, instances, c, spacing)
    return root


def _write_array(
    stem: Path, arr: np.ndarray, format: str, chunks: tuple[int, ...], rgb: bool
) -> None:
    import tifffile

    full = chunks + tuple(arr.shape[len(chunks) :])
    # Said explicitly: tifffile would guess RGB planes from a leading axis of 3.
    photometric = "rgb" if rgb else "minisblack"
    if format == "tiff":
        tifffile.imwrite(stem.with_suffix(".tif"), arr, photometric=photometric)
    elif format == "tiff-tiled":
        ty, tx = (max(16, -(-n // 16) * 16) for n in chunks[-2:])
        tifffile.imwrite(
            stem.with_suffix(".tif"), arr, tile=(ty, tx), compression="zlib",
            photometric=photometric,
        )
    else:
        import zarr

        z = zarr.create_array(
            stem.with_suffix(".zarr"),
            shape=arr.shape,
            chunks=full,
            dtype=arr.dtype,
            zarr_format=2 if format == "zarr2" else 3,
            overwrite=True,
        )
        z[...] = arr


def _write_ome_zarr(
    root: Path,
    name: str,
    image: np.ndarray,
    instances: np.ndarray,
    format: str,
    chunks: tuple[int, ...],
    spacing: Sequence[float] | None,
) -> None:
    import zarr

    from maskprep.ingest.arrays import import_optional

    with _quiet():  # ome-zarr deprecates its own defaults on import
        import_optional("ome_zarr", "volumes")
        from ome_zarr.format import FormatV04, FormatV05
        from ome_zarr.writer import write_image, write_labels

    v04 = format == "ome-zarr-0.4"
    fmt = FormatV04() if v04 else FormatV05()
    space = "zyx"[-instances.ndim :]
    group = zarr.open_group(
        root / f"{name}{'.zarr' if v04 else '.ome.zarr'}", mode="w", zarr_format=2 if v04 else 3
    )
    # NGFF puts channels first: maskprep's trailing channel axis moves to the front.
    if image.ndim == instances.ndim + 1:
        data, axes, img_chunks = np.moveaxis(image, -1, 0), "c" + space, (1, *chunks)
    else:
        data, axes, img_chunks = image, space, chunks
    scale = None if spacing is None else dict(zip(space, (float(s) for s in spacing), strict=True))
    if scale is not None and axes.startswith("c"):
        scale["c"] = 1.0
    with _quiet():
        write_image(
            data, group, axes=axes, fmt=fmt, scale_factors=(), scale=scale,
            storage_options={"chunks": img_chunks},
        )
        write_labels(
            instances, group, name="cells", axes=space, fmt=fmt, scale_factors=(),
            storage_options={"chunks": chunks},
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ome-zarr's deprecation notices (they concern its API, not the data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # "too small to downsample": no pyramid is asked for (scale_factors=()).
        warnings.filterwarnings("ignore", "Dimension .* too small", UserWarning)
        yield


def _write_hdf5(
    path: Path,
    image: np.ndarray,
    instances: np.ndarray,
    chunks: tuple[int, ...],
    spacing: Sequence[float] | None,
) -> None:
    from maskprep.ingest.arrays import import_optional

    h5py = import_optional("h5py", "volumes")
    with h5py.File(path, "w") as f:
        full = chunks + tuple(image.shape[len(chunks) :])
        raw = f.create_dataset("volumes/raw", data=image, chunks=full, compression="gzip")
        ids = f.create_dataset(
            "volumes/labels/neuron_ids",
            data=instances.astype(np.uint64),
            chunks=chunks,
            compression="gzip",
        )
        if spacing is not None:
            raw.attrs["resolution"] = np.asarray(spacing, dtype=np.float64)
            ids.attrs["resolution"] = np.asarray(spacing, dtype=np.float64)


def make_volume_sample(
    directory: str | os.PathLike[str],
    *,
    format: str = "zarr",
    shape: tuple[int, ...] = (16, 64, 64),
    n_samples: int = 2,
    chunks: Sequence[int] | None = None,
    channels: int | None = None,
    seed: int = 0,
) -> Path:
    """Write ``n_samples`` volumes of touching nuclei in a chunked ``format``.

    Instance ids are non-sequential (``3 * k + 1``); the hdf5 format also
    marks a corner of each volume as CREMI's "no label" (``2**64 - 1``, void)
    and records a 40 x 4 x 4 spacing (2D: 4 x 4). ``channels`` adds a trailing
    channel axis to the images (1 to 4). Same arguments, same values.

    Returns
    -------
    Path
        The dataset directory (read with ``discover(directory)``).

    Examples
    --------
    >>> import tempfile
    >>> from maskprep.ingest import discover
    >>> d = make_volume_sample(tempfile.mkdtemp(), format="tiff", shape=(8, 32, 32))
    >>> ds = discover(d)
    >>> ds.layout, len(ds)
    ('instances', 2)
    """
    from maskprep.tools.sample_data import touching_nuclei

    if len(shape) not in (2, 3) or min(shape) < 4:
        raise DataError(f"shape must be 2 or 3 sizes of at least 4, got {shape}")
    if channels is not None and not 1 <= channels <= 4:
        raise DataError(f"channels must be 1 to 4, got {channels}")
    rng = np.random.default_rng(seed)
    n_cells = max(2, int(np.prod(shape)) // (8 ** len(shape)))
    spacing = (40.0, 4.0, 4.0)[-len(shape) :]
    for k in range(n_samples):
        labels = touching_nuclei(shape, n_cells, (3.0, 7.0), rng)
        ids = np.where(labels > 0, labels * 3 + 1, 0).astype(np.uint32)
        img = (labels * 37 % 200 + rng.integers(0, 40, size=shape)).astype(np.uint8)
        if channels is not None:
            img = np.stack([np.roll(img, i, axis=-1) for i in range(channels)], axis=-1)
        if format == "hdf5":
            ids64 = ids.astype(np.uint64)
            ids64[(slice(0, 2),) * len(shape)] = np.uint64(2**64 - 1)
            write_volume(directory, f"vol_{k:03d}", img, ids64, format=format, chunks=chunks,
                         spacing=spacing)
        else:
            write_volume(directory, f"vol_{k:03d}", img, ids, format=format, chunks=chunks,
                         spacing=spacing if format.startswith("ome-zarr") else None)
    return Path(directory)
