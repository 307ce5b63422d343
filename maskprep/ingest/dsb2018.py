"""The ``dsb2018`` layout: ``<stem>/images/<stem>.png`` and one binary PNG per instance.

As in the Kaggle Data Science Bowl 2018 (``<stem>/masks/*.png``); overlapping
instance masks are an error naming both files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.imageio import read_array
from maskprep.ingest.instances import read_unlabeled, samples_with_split
from maskprep.ingest.layout import LAYOUTS, Annotations, Layout, ReadOptions
from maskprep.ingest.model import SampleSource
from maskprep.ingest.paths import check_inside, check_name
from maskprep.ingest.source import SourceSpec

__all__ = ["Dsb2018Layout"]


class Dsb2018Layout(Layout):
    """``<stem>/images/<stem>.png`` with ``<stem>/masks/*.png``."""

    name = "dsb2018"
    description = "<stem>/images/ and <stem>/masks/"

    def guess_can_open(self, root: Path) -> bool:
        return any(
            child.is_dir() and (child / "images").is_dir() and (child / "masks").is_dir()
            for child in sorted(root.iterdir())
        )

    def find_samples(self, root: Path, source: SourceSpec | None) -> list[SampleSource]:
        return samples_with_split(root, self.name, *_discover_dsb2018(root))

    def read_annotations(
        self, src: SampleSource, image_shape: tuple[int, ...], options: ReadOptions
    ) -> Annotations:
        instances, void = _instances_from_binary_masks(src, image_shape[:2], options.max_pixels)
        return Annotations(instances, read_unlabeled(src, void, options.max_pixels))


def _discover_dsb2018(
    root: Path,
) -> tuple[list[tuple[str, Path, tuple[Path, ...], Path | None]], list[tuple[str, str]], str]:
    """Entries of the usable samples, ``(stem, message)`` of the others, and the error."""
    found: list[tuple[str, Path, tuple[Path, ...], Path | None]] = []
    problems: list[tuple[str, str]] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if (child / "zarr.json").is_file():
            continue  # a zarr store (maskprep's output, say) is not a sample folder
        stem = child.name
        check_name(child)
        check_inside(root, child)
        image = child / "images" / f"{stem}.png"
        if not image.is_file():
            problems.append((stem, str(_no_image_error(root, child, image))))
            continue
        masks_dir = child / "masks"
        masks = tuple(p for p in sorted(masks_dir.glob("*.png")) if not p.name.startswith("."))
        for m in masks:
            check_name(m)
            check_inside(root, m)
        found.append((stem, image, masks, None))
    message = problems[0][1] if len(problems) == 1 else "\n".join(
        [f"{root}: {len(problems)} sample folder(s) have problems:", *(m for _, m in problems[:10])]
    )
    return found, problems, message


def _no_image_error(root: Path, child: Path, image: Path) -> DataError:
    """Name what the dsb2018 layout expected and what the folder holds instead."""
    expected = "one folder per sample, <stem>/images/<stem>.png with <stem>/masks/*.png"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return DataError(
            f"{root}: holds images/ and masks/ directly, which is the instances layout "
            f"(images/<stem>.png with masks/<stem>.png); the dsb2018 layout expects {expected}"
        )
    images_dir = child / "images"
    found = sorted(p.name for p in images_dir.iterdir()) if images_dir.is_dir() else []
    holds = f"{images_dir.relative_to(root)}/ holds {', '.join(found[:5])}" if found else (
        f"{images_dir.relative_to(root)}/ is missing or empty"
    )
    return DataError(
        f"{child}: expected the image {image.relative_to(root)} (the folder's name is the stem; "
        f"the dsb2018 layout expects {expected}), but {holds}"
    )


def _instances_from_binary_masks(
    src: SampleSource, image_shape: tuple[int, ...], max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    instances: np.ndarray | None = None
    owner: list[Path] = []
    for k, path in enumerate(src.masks, start=1):
        m = read_array(path, "instance mask", max_pixels)
        if m.ndim == 3 and m.shape[-1] in (2, 3, 4):
            # A binary mask drawn in any colour: a pixel is on if any colour
            # channel is (the alpha channel, last of LA and RGBA, is not colour).
            colour = m[..., :3] if m.shape[-1] in (3, 4) else m[..., :1]
            m = np.asarray(colour.any(axis=-1))
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


LAYOUTS.register(Dsb2018Layout.name, Dsb2018Layout())
