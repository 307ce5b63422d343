"""Reading images and label images from disk, sizes checked before decoding."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.arrays import ZARR_SUFFIX, open_array, too_big
from maskprep.ingest.model import SampleSource

__all__ = [
    "check_image_shape",
    "check_label_array",
    "check_label_header",
    "file_header",
    "probe_image",
    "probe_image_as",
    "read_array",
    "read_image",
]

_too_big = too_big

# Pillow has its own decompression-bomb limit (a warning past
# PIL.Image.MAX_IMAGE_PIXELS, an error past twice that, 178,956,970 pixels by
# default), checked once in Image.open from the header. maskprep's max_pixels
# is checked from the same header right after, so Pillow's is switched off
# for the open alone: max_pixels is the one limit, above or below Pillow's.
# The lock keeps concurrent opens from restoring each other's setting.
_PILLOW_LIMIT = threading.Lock()


def _open_pillow(path: Path) -> Any:
    """``PIL.Image.open(path)`` without Pillow's decompression-bomb check (see above);
    the caller checks max_pixels before decoding anything."""
    from PIL import Image

    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved




def _palette_mode(mode: str, info: Mapping[Any, Any]) -> str | None:
    """The mode a palette image's colours are read in (None: not a palette image).

    An image's palette indices are not its pixel values: they are converted
    to the colours they stand for (RGBA when the palette has transparency).
    """
    if mode == "PA" or (mode == "P" and "transparency" in info):
        return "RGBA"
    return "RGB" if mode == "P" else None


def _multichannel(path: Path, what: str, n: int, kind: str) -> DataError:
    name = {2: "a grey+alpha", 3: "an RGB(A)", 4: "an RGB(A)"}.get(n, "a multi-channel")
    return DataError(
        f"{path}: {what} is {name} image ({kind}, {n} channels per pixel); expected a "
        "single-channel label image (one integer id per pixel, e.g. a greyscale or palette PNG)"
    )


def read_array(
    path: Path, what: str, max_pixels: int | None = None, *, labels: bool = False
) -> np.ndarray:
    """Decode ``path``; with ``labels=True`` refuse files with several channels per pixel.

    Whether a file has channels is read from the file's own description
    (Pillow's bands, TIFF's sample axis), not guessed from the array's shape:
    an RGB TIFF of 16x16 pixels and a 16x16x3 volume decode to the same shape.
    Palette images that are not labels are read as their colours. A zarr
    array directory (``.zarr``) is read with zarr; it has no channel
    description, so its shape is taken as it is.
    """
    if path.suffix.lower() == ZARR_SUFFIX:
        with open_array(path, what) as zarr_array:
            return zarr_array.read_all(max_pixels)
    # The size is checked from the header before anything is decoded, so a
    # small file claiming a huge image cannot exhaust memory.
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                _too_big(path, what, int(np.prod(series.shape)), max_pixels)
                axes = str(getattr(series, "axes", ""))
                if labels and ("S" in axes or "C" in axes):
                    n = int(series.shape[axes.index("S" if "S" in axes else "C")])
                    raise _multichannel(path, what, n, f"TIFF axes {axes}")
                return np.asarray(series.asarray())
        with _open_pillow(path) as im:
            w, h = im.size
            bands = im.getbands()
            _too_big(path, what, w * h * len(bands), max_pixels)
            if labels and len(bands) > 1:
                raise _multichannel(path, what, len(bands), f"mode {im.mode}")
            palette = None if labels else _palette_mode(im.mode, im.info)
            if palette is not None:
                return np.asarray(im.convert(palette))
            im.load()
            return np.asarray(im)
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read {what}: {exc}") from None


def probe_image(path: Path, max_pixels: int | None) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of an image without decoding its pixels where possible.

    PNG (and other Pillow formats) are checked from the header and their chunk
    checksums, which catches truncated and corrupted files at a fraction of a
    decode; TIFF stacks are decoded; zarr arrays are read from their metadata.
    """
    if path.suffix.lower() == ZARR_SUFFIX:
        with open_array(path, "image") as zarr_array:
            _too_big(path, "image", int(np.prod(zarr_array.shape)), max_pixels)
            return zarr_array.shape, zarr_array.dtype
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = read_array(path, "image", max_pixels)
        return arr.shape, arr.dtype
    try:
        from PIL import Image

        with _open_pillow(path) as im:
            w, h = im.size
            mode = _palette_mode(im.mode, im.info) or im.mode
            _too_big(path, "image", w * h * len(im.getbands()), max_pixels)
            im.verify()
        # What np.asarray gives for this mode: dtype and channel axis.
        probe = np.asarray(Image.new(mode, (1, 1)))
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read image: {exc}") from None
    return (h, w, *probe.shape[2:]), probe.dtype


def read_image(path: Path, max_pixels: int | None, mode: str | None) -> np.ndarray:
    if mode is None:
        return read_array(path, "image", max_pixels)
    if path.suffix.lower() in (".tif", ".tiff", ZARR_SUFFIX):
        raise DataError(f"{path}: image_mode {mode!r} applies to Pillow images, not TIFF")
    try:
        with _open_pillow(path) as im:
            w, h = im.size
            _too_big(path, "image", w * h * len(im.getbands()), max_pixels)
            return np.asarray(im.convert(mode))
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read image: {exc}") from None


def probe_image_as(
    path: Path, max_pixels: int | None, mode: str | None
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """:func:`probe_image`, for the image converted to ``mode`` if given."""
    if mode is None:
        return probe_image(path, max_pixels)
    if path.suffix.lower() in (".tif", ".tiff", ZARR_SUFFIX):
        raise DataError(f"{path}: image_mode {mode!r} applies to Pillow images, not TIFF")
    from PIL import Image

    shape, _ = probe_image(path, max_pixels)
    probe = np.asarray(Image.new(mode, (1, 1)))
    return (*shape[:2], *probe.shape[2:]), probe.dtype


def check_label_array(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        raise DataError(
            f"{path}: mask has floating-point dtype {arr.dtype}; a label image needs integer values"
        )
    if arr.dtype.kind not in "iu":
        raise DataError(f"{path}: mask has unsupported dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and path.suffix.lower() == ".png":
        raise DataError(
            f"{path}: mask is an RGB(A) image of shape {arr.shape}; "
            "expected a single-channel label image"
        )
    if arr.ndim not in (2, 3):
        raise DataError(f"{path}: mask must be 2D or 3D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise DataError(f"{path}: mask has negative values (minimum {arr.min()})")
    return arr


def check_image_shape(
    image_shape: tuple[int, ...], shape: tuple[int, ...], src: SampleSource
) -> None:
    if image_shape == shape:
        return
    if len(image_shape) == len(shape) + 1 and image_shape[:-1] == shape and image_shape[-1] <= 4:
        return
    if src.layout == "coco":
        raise DataError(
            f"{src.image}: image shape {image_shape} does not match the size {shape} "
            f"{src.masks[0]} gives"
        )
    where = f" ({src.masks[0]})" if src.masks else ""
    raise DataError(
        f"{src.image}: image shape {image_shape} does not match mask shape {shape}{where}"
    )



def file_header(
    path: Path, what: str, max_pixels: int | None, *, labels: bool = False
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype :func:`read_array` would give, from the file's header alone.

    Nothing is decoded, not even a TIFF stack (unlike :func:`probe_image`).
    With ``labels=True`` a file with several channels per pixel is refused as
    :func:`read_array` refuses it; ``max_pixels`` (None: no limit) bounds the
    whole file.
    """
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff", ZARR_SUFFIX):
        with open_array(path, what) as arr:
            if labels and ("S" in arr.axes or "C" in arr.axes):
                n = int(arr.shape[arr.axes.index("S" if "S" in arr.axes else "C")])
                raise _multichannel(path, what, n, f"TIFF axes {arr.axes}")
            _too_big(path, what, int(np.prod(arr.shape)), max_pixels)
            return arr.shape, arr.dtype
    if not labels:
        return probe_image(path, max_pixels)
    try:
        from PIL import Image

        with _open_pillow(path) as im:
            w, h = im.size
            bands = im.getbands()
            mode = im.mode
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read {what}: {exc}") from None
    _too_big(path, what, w * h * len(bands), max_pixels)
    if len(bands) > 1:
        raise _multichannel(path, what, len(bands), f"mode {mode}")
    return (h, w), np.asarray(Image.new(mode, (1, 1))).dtype


def check_label_header(shape: tuple[int, ...], dtype: np.dtype[Any], path: Path) -> None:
    """The checks of :func:`check_label_array` that a header can answer (not values)."""
    kind = np.dtype(dtype).kind
    if kind == "f":
        raise DataError(
            f"{path}: mask has floating-point dtype {dtype}; a label image needs integer values"
        )
    if kind not in "iub":
        raise DataError(f"{path}: mask has unsupported dtype {dtype}")
    if len(shape) not in (2, 3):
        raise DataError(f"{path}: mask must be 2D or 3D, got shape {shape}")
