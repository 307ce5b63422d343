"""The ``instances`` layout: ``images/<stem>`` and ``masks/<stem>`` instance label images.

Each mask is an instance label image (0 background, any other value one
instance; ids need not be sequential), 2D or a 3D TIFF stack. Unannotated
pixels come from an optional ``unlabeled/<stem>`` (nonzero = not annotated)
or from a mask value (``unlabeled_value``). ``valid.txt`` at the root lists
validation stems.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.imageio import check_label_array, read_array
from maskprep.ingest.layout import LAYOUTS, Annotations, Layout, ReadOptions
from maskprep.ingest.model import SampleProblems, SampleSource
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
    valid = read_valid(root, stems) if stems else set()
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
    if extra.ndim == void.ndim + 1 and extra.shape[-1] in (3, 4):
        extra = np.any(extra, axis=-1)
    if extra.shape != void.shape:
        raise DataError(
            f"{src.unlabeled}: unlabeled mask shape {extra.shape} does not match "
            f"mask shape {void.shape}"
        )
    return void | (extra != 0)


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


def _discover_instances(
    root: Path,
) -> tuple[list[tuple[str, Path, tuple[Path, ...], Path | None]], list[tuple[str, str]], str]:
    """Entries of the usable samples, ``(stem, message)`` of the others, and the error."""
    images = files_by_stem(root, root / "images")
    masks = files_by_stem(root, root / "masks")
    unlabeled = files_by_stem(root, root / "unlabeled")
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
        "images/<stem>.png|tif|tiff with masks/<stem>.png|tif|tiff)"
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
