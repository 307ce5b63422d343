"""Benchmark weights="recompute": its cost per patch, and how wrong a warped stored map is.

Run from the repository root (albumentations: ``pip install -e ".[augment]"``)::

    python benchmarks/bench_augment.py            # about a minute
    python benchmarks/bench_augment.py --quick

Data: the bundled synthetic nuclei (``make_sample``, deterministic), 32
samples of 256x256, built with the defaults (w0 10, sigma 5). Patches of
128x128 are read with the recompute margin (28 px per side) and augmented by
albumentations pipelines of geometric transforms, each patch with its own
seed:

* ``elastic``: ``ElasticTransform(alpha=40, sigma=5)``;
* ``scale``: ``Affine(scale=(0.6, 1.6))``;
* ``rotate``: ``Affine(rotate=(-45, 45))``;
* ``elastic+scale``: both.

For each, the exact map is the one ``weights="recompute"`` gives (the
build's weight map of the transformed instances, on the widened patch, then
cropped). The warped maps are the stored weight map transformed along with
the image: by linear interpolation (as an image channel) and by nearest
neighbour (as a mask, what a generic segmentation pipeline does). Errors are
in units of ``w0``, over the annotated pixels of the 128x128 centre: the
largest, the mean over pixels where the exact border term exceeds 0.01 w0
(the border regions that the term exists for), and the share of pixels off by
more than 0.1 w0. Costs: milliseconds per patch for reading + transforming
with the stored map (nearest), for reading + transforming + recomputing, and
for the recomputation of the weight map alone (184x184).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskprep import build_weights, make_sample, open_shards
from maskprep.augment import PatchAugment, apply_joint, as_joint_transform, recompute_margin

SIZE = (128, 128)


def pipelines() -> dict[str, object]:
    import albumentations as A

    return {
        "elastic": A.Compose([A.ElasticTransform(alpha=40, sigma=5, p=1)]),
        "scale": A.Compose([A.Affine(scale=(0.6, 1.6), p=1)]),
        "rotate": A.Compose([A.Affine(rotate=(-45, 45), p=1)]),
        "elastic+scale": A.Compose(
            [A.ElasticTransform(alpha=40, sigma=5, p=1), A.Affine(scale=(0.6, 1.6), p=1)]
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patches", type=int, default=200)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 20 if args.quick else args.patches
    tmp = Path(tempfile.mkdtemp(prefix="bench-augment-"))
    data = make_sample(tmp / "data", n_images=32, size=(256, 256))
    build_weights(data, tmp / "o.zarr", scheduler="threads", workers=2)
    shards = open_shards(tmp / "o.zarr")
    meta = shards.store_metadata
    margin = recompute_margin(meta)
    w0, void = meta.w0, meta.void_label
    wide = tuple(s + 2 * m for s, m in zip(SIZE, margin, strict=True))
    rng = np.random.default_rng(0)
    places = []
    for i in rng.integers(0, len(shards), size=n):
        start = [int(rng.integers(0, 256 - s + 1)) - m for s, m in zip(SIZE, margin, strict=True)]
        places.append((int(i), tuple(start)))
    inner = tuple(slice(m, m + s) for s, m in zip(SIZE, margin, strict=True))
    print(f"{n} patches of {SIZE} (read {wide}), w0 {w0}, sigma {meta.sigma}; errors in w0")
    head = ("transform", "ms/patch stored", "ms/patch recompute", "(weights alone)", "warp",
            "max err", "mean err (border)", "> 0.1 w0")  # fmt: skip
    widths = (-14, 16, 20, 16, 8, 9, 19, 10)
    cells = zip(head, widths, strict=True)
    print("".join(f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in cells))
    for name, pipeline in pipelines().items():
        joint = as_joint_transform(pipeline)
        exact_aug = PatchAugment(meta, pipeline, recompute=["weights"], margin=margin)
        stored_aug = PatchAugment(meta, pipeline, margin=margin)
        t_stored, t_exact, t_alone = [], [], []
        errors: dict[str, list[np.ndarray]] = {"linear": [], "nearest": []}
        border: list[np.ndarray] = []
        for k, (i, start) in enumerate(places):
            t0 = time.perf_counter()
            patch = shards.patch(i, start, wide)
            stored_aug(patch, seed=k)
            t1 = time.perf_counter()
            patch = shards.patch(i, start, wide, arrays=("image", "labels", "instances"))
            exact = exact_aug(patch, seed=k)
            t2 = time.perf_counter()
            t_stored.append(t1 - t0)
            t_exact.append(t2 - t1)
            assert exact_aug.recompute is not None
            t3 = time.perf_counter()
            exact_aug.recompute(patch["labels"], patch["instances"])  # on the widened patch
            t_alone.append(time.perf_counter() - t3)
            # The same transform (same seed) on the stored map as an image channel (linear)
            # and as a mask (nearest).
            full = shards.patch(i, start, wide)
            img = np.stack([full["image"].astype(np.float32), full["weights"]], axis=-1)
            maps = {"labels": full["labels"], "instances": full["instances"],
                    "weights": full["weights"]}  # fmt: skip
            moved, mmaps = apply_joint(joint, img, maps, void_label=void, channels=True, seed=k)
            valid = exact["labels"] != void
            assert np.array_equal(exact["labels"], mmaps["labels"][inner])  # same parameters
            ex = exact["weights"]
            for warp, w in (("linear", moved[..., 1][inner]), ("nearest", mmaps["weights"][inner])):
                errors[warp].append((np.abs(w - ex) / w0)[valid])
            lut_w = meta.class_weights
            term = ex - np.asarray(lut_w, np.float32)[np.where(valid, exact["labels"], 0)]
            border.append((term > 0.01 * w0)[valid])
        for warp in ("linear", "nearest"):
            e = np.concatenate(errors[warp])
            b = np.concatenate(border)
            print(
                f"{name:<14}{1e3 * statistics.median(t_stored):>16.2f}"
                f"{1e3 * statistics.median(t_exact):>20.2f}"
                f"{1e3 * statistics.median(t_alone):>16.2f}{warp:>8}{e.max():>9.3f}"
                f"{e[b].mean():>19.3f}{100 * (e > 0.1).mean():>9.2f}%"
            )


if __name__ == "__main__":
    main()
