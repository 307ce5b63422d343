"""The ``instances`` layout: ``images/<stem>`` and ``masks/<stem>`` instance label images.

Each mask is an instance label image (0 background, any other value one
instance; ids need not be sequential), 2D or a 3D TIFF stack. Unannotated
pixels come from an optional ``unlabeled/<stem>`` (nonzero = not annotated)
or from a mask value (``unlabeled_value``). ``valid.txt`` at the root lists
validation stems.

Files are PNG, TIFF or zarr arrays (``<stem>.zarr`` directories, zarr format
2 or 3; an image's channels, if any, on its last axis). A sample whose files
are all TIFF or zarr is chunked (:func:`~maskprep.ingest.is_chunked`):
probed from headers and read region by region, uncompressed contiguous TIFFs
memory-mapped, tiled or compressed ones tile by tile through tifffile's zarr
interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.arrays import open_array, region_shape
from maskprep.ingest.imageio import (
    check_image_shape,
    check_label_array,
    check_label_header,
    file_header,
    probe_image_as,
    read_array,
)
from maskprep.ingest.layout import LAYOUTS, Annotations, Layout, ReadOptions, SampleGeometry
from maskprep.ingest.model import IMAGE_SUFFIXES, LoadedSample, SampleProblems, SampleSource
from maskprep.ingest.paths import files_by_stem, read_valid
from maskprep.ingest.source import SourceSpec

__all__ = ["InstancesLayout", "read_unlabeled", "samples_with_split"]


def samples_with_split(
    root: Path,
    layout: str,
    entries: Sequence[tuple[str, Path, tuple[Path, ...], Path | None]],
    problems: Sequence[tuple[str, str]] = (),
    message: str = "",
) -> list[SampleSource]:
    """Samples of ``(stem, image, masks, unlabeled)`` entries, split by ``valid.txt``.

    With ``problems`` (``(stem, message)`` of unusable samples), raise
    :class:`SampleProblems` with ``message`` and the usable samples instead.
    """
    stems = [e[0] for e in entries] + [p[0] for p in problems]
    valid = read_valid(root, stems, suffixes=_VALID_SUFFIXES) if stems else set()
    samples = [
        SampleSource(stem, image, masks, unl, "valid" if stem in valid else "train", layout)
        for stem, image, masks, unl in entries
    ]
    if problems:
        raise SampleProblems(message, samples, problems)
    return samples


def read_unlabeled(src: SampleSource, void: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """``void`` or-ed with the sample's ``unlabeled/`` mask, if it has one."""
    if src.unlabeled is None:
        return void
    extra = read_array(src.unlabeled, "unlabeled mask", max_pixels)
    _check_unlabeled_shape(src, extra.shape, void.shape)
    if extra.ndim == void.ndim + 1 and extra.shape[-1] in (3, 4):
        extra = np.any(extra, axis=-1)
    return void | (extra != 0)


def _check_unlabeled_shape(
    src: SampleSource, shape: tuple[int, ...], mask_shape: tuple[int, ...]
) -> None:
    # An RGB(A) unlabeled mask counts a pixel as unannotated if any channel is set.
    spatial = shape[:-1] if len(shape) == len(mask_shape) + 1 and shape[-1] in (3, 4) else shape
    if spatial != mask_shape:
        raise DataError(
            f"{src.unlabeled}: unlabeled mask shape {spatial} does not match "
            f"mask shape {mask_shape}"
        )


class InstancesLayout(Layout):
    """``images/<stem>.(png|tif|tiff)`` with ``masks/<stem>.(png|tif|tiff)``."""

    name = "instances"
    description = "images/ and masks/"

    def guess_can_open(self, root: Path) -> bool:
        return (root / "images").is_dir() and (root / "masks").is_dir()

    def find_samples(self, root: Path, source: SourceSpec | None) -> list[SampleSource]:
        return samples_with_split(root, self.name, *_discover_instances(root))

    def read_annotations(
        self, src: SampleSource, image_shape: tuple[int, ...], options: ReadOptions
    ) -> Annotations:
        raw = check_label_array(
            read_array(src.masks[0], "mask", options.max_pixels, labels=True), src.masks[0]
        )
        instances, void = _instances_from_label_image(raw, src.masks[0], options.unlabeled_value)
        return Annotations(instances, read_unlabeled(src, void, options.max_pixels))

    def is_chunked(self, src: SampleSource) -> bool:
        return all(p.suffix.lower() in _CHUNKED_SUFFIXES for p in src.files())

    def probe_sample(self, src: SampleSource, options: ReadOptions) -> SampleGeometry:
        # Headers only; in read_sample's order, so the first problem reported
        # is the same. Chunked samples are read by region: no whole-file limit.
        limit = None if self.is_chunked(src) else options.max_pixels
        mode = None if options.source is None else options.source.image_mode
        if src.image.suffix.lower() in _CHUNKED_SUFFIXES and mode is None:
            image_shape, image_dtype = file_header(src.image, "image", limit)
        else:
            image_shape, image_dtype = probe_image_as(src.image, limit, mode)
        mask = src.masks[0]
        shape, dtype = file_header(mask, "mask", limit, labels=True)
        check_label_header(shape, dtype, mask)
        if src.unlabeled is not None:
            extra, _ = file_header(src.unlabeled, "unlabeled mask", limit)
            _check_unlabeled_shape(src, extra, shape)
        check_image_shape(image_shape, shape, src)
        chunks = None
        if self.is_chunked(src):
            with open_array(mask, "mask") as arr:
                chunks = None if arr.chunks is None else arr.chunks[: len(shape)]
        return SampleGeometry(shape, image_shape, image_dtype, chunks)

    def read_region(
        self,
        src: SampleSource,
        region: tuple[slice, ...],
        options: ReadOptions,
        *,
        image: bool = True,
    ) -> LoadedSample:
        if not self.is_chunked(src):
            return super().read_region(src, region, options, image=image)
        geometry = self.probe_sample(src, options)
        limit = options.max_pixels
        pixels = None
        if image:
            with open_array(src.image, "image") as arr:
                pixels = arr.read(region, limit)
        mask = src.masks[0]
        with open_array(mask, "mask") as arr:
            raw = check_label_array(arr.read(region, limit), mask)
        instances, void = _instances_from_label_image(raw, mask, options.unlabeled_value)
        if src.unlabeled is not None:
            with open_array(src.unlabeled, "unlabeled mask") as arr:
                extra = arr.read(region, limit)
            if extra.ndim == void.ndim + 1 and extra.shape[-1] in (3, 4):
                extra = np.any(extra, axis=-1)
            void |= extra != 0
        instances[void] = 0
        image_shape = region_shape(region) + tuple(geometry.image_shape[len(region) :])
        return LoadedSample(pixels, image_shape, geometry.image_dtype, instances, void)


# File names valid.txt may list, besides bare stems.
_VALID_SUFFIXES = (*IMAGE_SUFFIXES, ".zarr")
# Files read chunk by chunk: TIFF (memory map, tiles, strips or pages) and zarr arrays.
_CHUNKED_SUFFIXES = (".tif", ".tiff", ".zarr")


def _discover_instances(
    root: Path,
) -> tuple[list[tuple[str, Path, tuple[Path, ...], Path | None]], list[tuple[str, str]], str]:
    """Entries of the usable samples, ``(stem, message)`` of the others, and the error."""
    images = files_by_stem(root, root / "images", arrays=True)
    masks = files_by_stem(root, root / "masks", arrays=True)
    unlabeled = files_by_stem(root, root / "unlabeled", arrays=True)
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    stray = sorted(set(unlabeled) - set(images))
    problems = [(s, f"{images[s]}: has no mask in masks/") for s in no_mask]
    problems += [(s, f"{masks[s]}: has no image in images/") for s in no_image]
    problems += [(s, f"{unlabeled[s]}: has no image in images/") for s in stray if s not in masks]
    message = ""
    if no_mask or no_image:
        message = _unpaired_message(root, images, masks, no_mask, no_image)
    elif stray:
        message = (
            f"{root / 'unlabeled'}: {len(stray)} file(s) have no image in images/: "
            + ", ".join(stray[:5])
        )
    good = sorted(set(images) - set(no_mask))
    return [(s, images[s], (masks[s],), unlabeled.get(s)) for s in good], problems, message


def _unpaired_message(
    root: Path,
    images: dict[str, Path],
    masks: dict[str, Path],
    no_mask: list[str],
    no_image: list[str],
) -> str:
    """Both sides of the pairing: images without a mask, masks without an image."""

    def shown(files: dict[str, Path], stems: list[str]) -> str:
        more = f" and {len(stems) - 5} more" if len(stems) > 5 else ""
        return ", ".join(files[s].relative_to(root).as_posix() for s in stems[:5]) + more

    parts = []
    if no_mask:
        parts.append(f"{len(no_mask)} image(s) have no mask in masks/: {shown(images, no_mask)}")
    if no_image:
        parts.append(
            f"{len(no_image)} mask(s) have no image in images/: {shown(masks, no_image)}"
        )
    return (
        f"{root}: " + "; ".join(parts) + " (images and masks pair by file stem: "
        "images/<stem>.png|tif|tiff|zarr with masks/<stem>.png|tif|tiff|zarr)"
    )


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


LAYOUTS.register(InstancesLayout.name, InstancesLayout())
