"""A small deterministic synthetic dataset of touching nuclei.

Used by the README quick start, the tests and the benchmarks. The same
arguments always give the same pixel values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError

__all__ = ["make_sample", "touching_nuclei"]

_MARKER = ".maskprep-sample.json"


def touching_nuclei(
    shape: tuple[int, ...],
    n_cells: int,
    radius: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Label image of ``n_cells`` round cells that touch where they would overlap.

    Each pixel goes to the cell with the smallest ``distance / radius`` if that
    is below 1, so neighbours share a boundary instead of overlapping. Labels are
    ``1..k`` in creation order (cells fully hidden by others disappear, so ``k``
    may be below ``n_cells``).

    Examples
    --------
    >>> lab = touching_nuclei((32, 32), 3, (4, 6), np.random.default_rng(0))
    >>> lab.shape, lab.dtype, int(lab.max()) <= 3
    ((32, 32), dtype('int32'), True)
    """
    ndim = len(shape)
    best = np.full(shape, np.inf)
    labels = np.zeros(shape, dtype=np.int32)
    centres = rng.uniform(0, 1, size=(n_cells, ndim)) * np.asarray(shape)
    radii = rng.uniform(radius[0], radius[1], size=n_cells)
    for k in range(n_cells):
        c, r = centres[k], radii[k]
        lo = [max(0, int(np.floor(c[a] - r))) for a in range(ndim)]
        hi = [min(shape[a], int(np.ceil(c[a] + r)) + 1) for a in range(ndim)]
        window = tuple(slice(lo[a], hi[a]) for a in range(ndim))
        grids = np.meshgrid(
            *[np.arange(lo[a], hi[a]) + 0.5 - c[a] for a in range(ndim)], indexing="ij"
        )
        rel = np.sqrt(sum(g**2 for g in grids)) / r
        take = (rel < 1.0) & (rel < best[window])
        best[window][take] = rel[take]
        labels[window][take] = k + 1
    # Relabel so every id that survived is present (hidden cells vanish).
    present = np.unique(labels)
    present = present[present != 0]
    lut = np.zeros(n_cells + 1, dtype=np.int32)
    lut[present] = np.arange(1, present.size + 1, dtype=np.int32)
    return lut[labels]


def _nuclei_image(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    n = int(labels.max())
    brightness = np.concatenate([[20.0], rng.uniform(110, 200, size=n)])
    img = brightness[labels]
    img = ndimage.gaussian_filter(img, 1.0)
    img = img + rng.normal(0.0, 6.0, size=labels.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_sample(
    directory: str | os.PathLike[str],
    *,
    n_images: int = 24,
    size: tuple[int, ...] = (256, 256),
    layout: str = "instances",
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset of touching nuclei to ``directory``.

    The ``instances`` layout gets uint16 masks with non-sequential instance ids,
    ``unlabeled/`` masks (a rectangle not annotated) for every third image, one
    image with a single nucleus and one with none, and a ``valid.txt`` naming every
    fifth image. ``size`` with three values writes 3D TIFF stacks. The ``dsb2018``
    layout writes one binary PNG per nucleus.

    Parameters
    ----------
    directory : path
        Created if missing; must be empty or not exist, or hold the output of the
        same call (then nothing is done).
    n_images : int
        Number of samples (at least 1).
    size : tuple of int
        Spatial shape of every image, 2D or 3D.
    layout : {"instances", "dsb2018"}
    seed : int
        Seed of the random generator: same seed, same data.

    Returns
    -------
    Path
        The dataset directory.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = make_sample(pathlib.Path(tempfile.mkdtemp()) / "s", n_images=2, size=(32, 32))
    >>> sorted(p.name for p in d.iterdir())
    ['.maskprep-sample.json', 'images', 'masks', 'unlabeled', 'valid.txt']
    """
    import tifffile
    from PIL import Image

    if n_images < 1:
        raise DataError(f"n_images must be at least 1, got {n_images}")
    if len(size) not in (2, 3) or min(size) < 8:
        raise DataError(f"size must be 2 or 3 values of at least 8, got {size}")
    if layout not in ("instances", "dsb2018"):
        raise DataError(f"layout must be 'instances' or 'dsb2018', got {layout!r}")
    if layout == "dsb2018" and len(size) != 2:
        raise DataError("the dsb2018 layout is 2D only")
    root = Path(directory)
    recipe = {"n_images": n_images, "size": list(size), "layout": layout, "seed": seed}
    marker = root / _MARKER
    if root.exists() and any(root.iterdir()):
        # Re-running the same command (the README quick start, say) is a no-op.
        if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == recipe:
            return root
        raise DataError(f"{root}: directory is not empty; choose a new directory")
    rng = np.random.default_rng(seed)
    three_d = len(size) == 3
    ext = ".tif" if three_d else ".png"
    area = float(np.prod(size))
    mean_r = max(3.0, min(size) / 16)
    stems = [f"{root.name}_{i:03d}" for i in range(n_images)]
    for i, stem in enumerate(stems):
        if n_images > 2 and i == n_images - 1:
            n_cells = 0
        elif n_images > 2 and i == n_images - 2:
            n_cells = 1
        else:
            n_cells = int(rng.integers(28, 40) * area / (256 * 256 if not three_d else 64**3))
            n_cells = max(2, n_cells)
        labels = touching_nuclei(tuple(size), n_cells, (0.6 * mean_r, 1.3 * mean_r), rng)
        image = _nuclei_image(labels, rng)
        if layout == "dsb2018":
            sample_dir = root / stem
            (sample_dir / "images").mkdir(parents=True)
            (sample_dir / "masks").mkdir()
            Image.fromarray(image).save(sample_dir / "images" / f"{stem}.png")
            for k in range(1, int(labels.max()) + 1):
                mask = np.where(labels == k, 255, 0).astype(np.uint8)
                Image.fromarray(mask).save(sample_dir / "masks" / f"{stem}_{k:03d}.png")
            continue
        for sub in ("images", "masks", "unlabeled"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        # Non-sequential, scattered ids, as exported by annotation tools.
        n = int(labels.max())
        ids = np.sort(rng.choice(np.arange(1, 65535), size=n, replace=False))
        lut = np.zeros(n + 1, dtype=np.uint16)
        lut[1:] = ids
        mask = lut[labels]
        if three_d:
            tifffile.imwrite(root / "images" / f"{stem}{ext}", image, photometric="minisblack")
            tifffile.imwrite(root / "masks" / f"{stem}{ext}", mask, photometric="minisblack")
        else:
            Image.fromarray(image).save(root / "images" / f"{stem}{ext}")
            Image.fromarray(mask).save(root / "masks" / f"{stem}{ext}")
        if i % 3 == 1:
            unlabeled = np.zeros(size, dtype=np.uint8)
            lo = [int(rng.integers(0, s // 2)) for s in size]
            ext_ = [int(rng.integers(s // 8, s // 3)) for s in size]
            unlabeled[tuple(slice(a, a + e) for a, e in zip(lo, ext_, strict=True))] = 255
            if three_d:
                tifffile.imwrite(
                    root / "unlabeled" / f"{stem}{ext}", unlabeled, photometric="minisblack"
                )
            else:
                Image.fromarray(unlabeled).save(root / "unlabeled" / f"{stem}{ext}")
    valid = [s for i, s in enumerate(stems) if i % 5 == 4]
    root.mkdir(parents=True, exist_ok=True)
    (root / "valid.txt").write_text("".join(f"{s}\n" for s in valid), encoding="utf-8")
    marker.write_text(json.dumps(recipe), encoding="utf-8")  # written last: complete
    return root


def example_store(
    n_images: int = 3, size: tuple[int, ...] = (16, 16), **options: Any
) -> Path:
    """Build a small store from :func:`make_sample` data in a new temporary directory.

    For examples and quick experiments: ``options`` are :class:`~maskprep.BuildConfig`
    fields (``w0=5.0``, ...). Runs on the synchronous scheduler.

    Examples
    --------
    >>> from maskprep import open_shards
    >>> len(open_shards(example_store(n_images=2)))
    2
    """
    import tempfile

    from maskprep.config import BuildConfig
    from maskprep.pipeline import build_weights

    tmp = Path(tempfile.mkdtemp(prefix="maskprep-example-"))
    data = make_sample(tmp / "d", n_images=n_images, size=size)
    build_weights(data, tmp / "o.zarr", BuildConfig(**options), scheduler="sync")
    return tmp / "o.zarr"

