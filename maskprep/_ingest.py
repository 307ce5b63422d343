"""Dataset discovery and sample reading.

Two layouts are understood:

``instances``
    ``images/<stem>.(png|tif|tiff)`` and ``masks/<stem>.(png|tif|tiff)``, each
    mask an instance label image (0 background, any other value one instance;
    ids need not be sequential). 2D images or 3D TIFF stacks. Unannotated
    pixels come from an optional ``unlabeled/<stem>.(png|tif|tiff)`` (nonzero =
    not annotated) or from a mask value (``unlabeled_value``).
``dsb2018``
    ``<stem>/images/<stem>.png`` and ``<stem>/masks/*.png``, one binary mask per
    instance, as in the Kaggle Data Science Bowl 2018.

An optional ``valid.txt`` at the dataset root lists validation stems, one per
line (fastai's ``split_by_fname_file``); every other sample is train.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskprep._errors import DataError

__all__ = [
    "LAYOUTS",
    "Dataset",
    "LoadedSample",
    "SampleSource",
    "detect_layout",
    "discover",
    "read_sample",
]

LAYOUTS = ("auto", "instances", "dsb2018")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
SPLITS = ("train", "valid")


@dataclass(frozen=True)
class SampleSource:
    """Where one sample's files are on disk."""

    sample_id: str
    image: Path
    masks: tuple[Path, ...]
    unlabeled: Path | None
    split: str
    layout: str

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


def detect_layout(root: Path) -> str:
    """Return ``"instances"`` or ``"dsb2018"`` for a dataset directory.

    Raises
    ------
    DataError
        If the directory matches neither layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset directory does not exist")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "instances"
    for child in sorted(root.iterdir()):
        if child.is_dir() and (child / "images").is_dir() and (child / "masks").is_dir():
            return "dsb2018"
    raise DataError(
        f"{root}: cannot detect the dataset layout: expected images/ and masks/ "
        "(instances layout) or <stem>/images/ and <stem>/masks/ (dsb2018 layout)"
    )


def _inside(root: Path, path: Path) -> bool:
    # A symlink or '..' that resolves outside the dataset would let a crafted
    # dataset read arbitrary files; refuse it.
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _check_name(path: Path) -> None:
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"{path.parent}: file name {path.name!r} is not valid UTF-8; rename the file"
        ) from None


def _files_by_stem(root: Path, folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        _check_name(path)
        if not _inside(root, path):
            raise DataError(f"{path}: resolves outside the dataset directory {root}")
        stem = path.stem
        if stem in found:
            raise DataError(
                f"{folder}: two files share the stem {stem!r}: {found[stem].name} and {path.name}"
            )
        found[stem] = path
    return found


def _read_valid(root: Path, stems: Sequence[str]) -> set[str]:
    path = root / "valid.txt"
    if not path.exists():
        return set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the validation list: {exc}") from None
    known = set(stems)
    valid: set[str] = set()
    unknown: list[str] = []
    for line in lines:
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        # fastai lists file names; accept bare stems too.
        base = os.path.basename(name)
        stem = Path(base).stem if Path(base).suffix.lower() in IMAGE_SUFFIXES else base
        if stem in known:
            valid.add(stem)
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise DataError(f"{path}: names samples that do not exist: {shown}{more}")
    return valid


def _discover_instances(root: Path) -> list[tuple[str, Path, tuple[Path, ...], Path | None]]:
    images = _files_by_stem(root, root / "images")
    masks = _files_by_stem(root, root / "masks")
    unlabeled = _files_by_stem(root, root / "unlabeled")
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        raise DataError(
            f"{root / 'images'}: {len(no_mask)} image(s) have no mask in masks/: "
            + ", ".join(no_mask[:5])
        )
    if no_image:
        raise DataError(
            f"{root / 'masks'}: {len(no_image)} mask(s) have no image in images/: "
            + ", ".join(no_image[:5])
        )
    stray = sorted(set(unlabeled) - set(images))
    if stray:
        raise DataError(
            f"{root / 'unlabeled'}: {len(stray)} file(s) have no image in images/: "
            + ", ".join(stray[:5])
        )
    return [(s, images[s], (masks[s],), unlabeled.get(s)) for s in sorted(images)]


def _discover_dsb2018(root: Path) -> list[tuple[str, Path, tuple[Path, ...], Path | None]]:
    found: list[tuple[str, Path, tuple[Path, ...], Path | None]] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        stem = child.name
        _check_name(child)
        if not _inside(root, child):
            raise DataError(f"{child}: resolves outside the dataset directory {root}")
        image = child / "images" / f"{stem}.png"
        if not image.is_file():
            raise DataError(f"{child}: expected the image {image.relative_to(root)}")
        masks_dir = child / "masks"
        masks = tuple(p for p in sorted(masks_dir.glob("*.png")) if not p.name.startswith("."))
        for m in masks:
            _check_name(m)
            if not _inside(root, m):
                raise DataError(f"{m}: resolves outside the dataset directory {root}")
        found.append((stem, image, masks, None))
    return found


def discover(root: str | os.PathLike[str], layout: str = "auto") -> Dataset:
    """Find every sample of a dataset directory and its split.

    Parameters
    ----------
    root : path
        Dataset directory.
    layout : {"auto", "instances", "dsb2018"}
        Directory layout; ``"auto"`` detects it.

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
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not root_path.is_dir():
        raise DataError(f"{root_path}: dataset directory does not exist")
    if layout == "auto":
        layout = detect_layout(root_path)
    entries = (
        _discover_instances(root_path) if layout == "instances" else _discover_dsb2018(root_path)
    )
    if not entries:
        raise DataError(f"{root_path}: the dataset is empty (no samples in the {layout} layout)")
    valid = _read_valid(root_path, [e[0] for e in entries])
    samples = tuple(
        SampleSource(stem, image, masks, unl, "valid" if stem in valid else "train", layout)
        for stem, image, masks, unl in entries
    )
    return Dataset(root_path, layout, samples)


def _too_big(path: Path, what: str, n: int, max_pixels: int | None) -> None:
    if max_pixels is not None and n > max_pixels:
        raise DataError(
            f"{path}: {what} has {n:,} pixel values, more than the limit of {max_pixels:,} "
            "(a decompression bomb? raise --max-pixels if the file is genuine)"
        )


def _read_array(path: Path, what: str, max_pixels: int | None = None) -> np.ndarray:
    # The size is checked from the header before anything is decoded, so a
    # small file claiming a huge image cannot exhaust memory.
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                _too_big(path, what, int(np.prod(series.shape)), max_pixels)
                return np.asarray(series.asarray())
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            _too_big(path, what, w * h * len(im.getbands()), max_pixels)
            im.load()
            return np.asarray(im)
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read {what}: {exc}") from None


def _probe_image(path: Path, max_pixels: int | None) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of an image without decoding its pixels where possible.

    PNG (and other Pillow formats) are checked from the header and their chunk
    checksums, which catches truncated and corrupted files at a fraction of a
    decode; TIFF stacks are decoded.
    """
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = _read_array(path, "image", max_pixels)
        return arr.shape, arr.dtype
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            _too_big(path, "image", w * h * len(im.getbands()), max_pixels)
            im.verify()
        # What np.asarray gives for this mode: dtype and channel axis.
        probe = np.asarray(Image.new(mode, (1, 1)))
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read image: {exc}") from None
    return (h, w, *probe.shape[2:]), probe.dtype


def _check_label_array(arr: np.ndarray, path: Path) -> np.ndarray:
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


def _check_image_shape(
    image_shape: tuple[int, ...], shape: tuple[int, ...], src: SampleSource
) -> None:
    if image_shape == shape:
        return
    if len(image_shape) == len(shape) + 1 and image_shape[:-1] == shape and image_shape[-1] <= 4:
        return
    where = f" ({src.masks[0]})" if src.masks else ""
    raise DataError(
        f"{src.image}: image shape {image_shape} does not match mask shape {shape}{where}"
    )


def read_sample(
    src: SampleSource,
    *,
    unlabeled_value: int | None = None,
    max_pixels: int | None = None,
    image: bool = True,
) -> LoadedSample:
    """Read and check one sample's image, instance labels and unannotated pixels.

    With ``image=False`` the image is checked but not decoded (see
    :class:`LoadedSample`), which is all a counting pass needs.

    Raises
    ------
    DataError
        Naming the file, for unreadable files, shape mismatches, float or
        negative or RGB masks, and overlapping dsb2018 instance masks.
    """
    pixels: np.ndarray | None = None
    if image:
        pixels = _read_array(src.image, "image", max_pixels)
        image_shape, image_dtype = pixels.shape, pixels.dtype
    else:
        image_shape, image_dtype = _probe_image(src.image, max_pixels)
    if src.layout == "dsb2018":
        instances, void = _instances_from_binary_masks(src, image_shape[:2], max_pixels)
    else:
        raw = _check_label_array(_read_array(src.masks[0], "mask", max_pixels), src.masks[0])
        instances, void = _instances_from_label_image(raw, src.masks[0], unlabeled_value)
    if src.unlabeled is not None:
        extra = _read_array(src.unlabeled, "unlabeled mask", max_pixels)
        if extra.ndim == instances.ndim + 1 and extra.shape[-1] in (3, 4):
            extra = np.any(extra, axis=-1)
        if extra.shape != instances.shape:
            raise DataError(
                f"{src.unlabeled}: unlabeled mask shape {extra.shape} does not match "
                f"mask shape {instances.shape}"
            )
        void = void | (extra != 0)
    _check_image_shape(tuple(image_shape), instances.shape, src)
    instances[void] = 0
    return LoadedSample(pixels, tuple(image_shape), np.dtype(image_dtype), instances, void)


def _instances_from_label_image(
    raw: np.ndarray, path: Path, unlabeled_value: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if unlabeled_value is not None:
        void = raw == unlabeled_value
    else:
        void = np.zeros(raw.shape, dtype=bool)
    if raw.size and raw.max(initial=0) > np.iinfo(np.int32).max:
        raise DataError(
            f"{path}: instance id {raw.max()} does not fit in int32 "
            f"(maximum {np.iinfo(np.int32).max})"
        )
    instances = raw.astype(np.int32, copy=True)
    return instances, void


def _instances_from_binary_masks(
    src: SampleSource, image_shape: tuple[int, ...], max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    instances: np.ndarray | None = None
    owner: list[Path] = []
    for k, path in enumerate(src.masks, start=1):
        m = _read_array(path, "instance mask", max_pixels)
        if m.ndim == 3 and m.shape[-1] in (3, 4):
            m = m[..., 0]
        if m.ndim != 2:
            raise DataError(f"{path}: instance mask must be 2D, got shape {m.shape}")
        if instances is None:
            instances = np.zeros(m.shape, dtype=np.int32)
        elif m.shape != instances.shape:
            raise DataError(
                f"{path}: instance mask shape {m.shape} differs from {src.masks[0].name} "
                f"{instances.shape}"
            )
        on = m != 0
        clash = on & (instances != 0)
        if clash.any():
            other = owner[int(instances[clash][0]) - 1]
            raise DataError(
                f"{path}: overlaps {other} at {int(clash.sum())} pixel(s); "
                "dsb2018 instance masks must not overlap"
            )
        instances[on] = k
        owner.append(path)
    if instances is None:
        # A dsb2018 sample without masks is all background of the image's size.
        instances = np.zeros(image_shape[:2], dtype=np.int32)
    return instances, np.zeros(instances.shape, dtype=bool)
