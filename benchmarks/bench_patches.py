"""Benchmark class-aware random patches: maskprep against MONAI and torchio, same run.

Run from the repository root (MONAI is a test dependency; torchio is installed
for this benchmark only: ``pip install -e ".[bench]"``)::

    python benchmarks/bench_patches.py            # a few minutes
    python benchmarks/bench_patches.py --quick    # fewer patches, smoke test

Data: the bundled synthetic nuclei (``make_sample``, deterministic), 64
samples of 256x256 (uint8 image, labels background/object). Every method
draws ``(128, 128)`` patches of image and labels, a third of them centred on
the object class, in batches of 16, in one process (no DataLoader workers):

* ``maskprep``: ``Shards.patches(..., foreground_prob=0.33)`` on a store
  built with ``class_locations=1000``, read from disk (the page cache) for
  every patch; untiled and ``tile=64`` stores;
* ``monai``: ``RandCropByLabelClassesd(ratios=[2, 1])`` with the class
  indices precomputed (``ClassesToIndicesd`` in a ``CacheDataset``, so only
  the crop runs per patch), arrays in memory, batched by MONAI's
  ``DataLoader``;
* ``torchio``: ``LabelSampler`` (label probabilities 2:1) feeding a
  ``Queue`` (``samples_per_volume=8``, ``max_length=64``), subjects in
  memory as ``(1, 256, 256, 1)`` tensors, batched by a torch ``DataLoader``.

Methods run in turns (``--repeats`` rounds after an untimed one); the table
shows each one's median patches/s and the ratio of maskprep to the faster
peer of the same round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskprep import BuildConfig, build_weights, make_sample, open_shards

SIZE = (128, 128)
BATCH = 16


def maskprep_method(store: Path, n: int) -> Callable[[int], int]:
    shards = open_shards(store, arrays=("image", "labels"))

    def run(epoch: int) -> int:
        got = 0
        for batch in shards.patches(SIZE, BATCH, n, seed=0, epoch=epoch, foreground_prob=0.33):
            got += batch["image"].shape[0]
        return got

    return run


def peer_arrays(store: Path) -> list[dict[str, np.ndarray]]:
    """The same samples as in-memory arrays, channel first; void counts as background."""
    shards = open_shards(store, arrays=("image", "labels"))
    out = []
    for s in shards:
        lab = np.where(s["labels"] == shards.void_label, 0, s["labels"]).astype(np.uint8)
        out.append({"image": s["image"][None].astype(np.float32), "label": lab[None]})
    return out


def monai_method(samples: list[dict[str, np.ndarray]], n: int) -> Callable[[int], int]:
    from monai.data import CacheDataset, DataLoader
    from monai.transforms import ClassesToIndicesd, Compose, RandCropByLabelClassesd

    transform = Compose(
        [
            ClassesToIndicesd(keys="label", num_classes=2),
            RandCropByLabelClassesd(
                keys=["image", "label"],
                label_key="label",
                spatial_size=SIZE,
                ratios=[2, 1],
                num_classes=2,
                num_samples=1,
                indices_key="label_cls_indices",
            ),
        ]
    )
    data = CacheDataset(samples, transform, progress=False, num_workers=1)
    # The cached dataset yields one patch per sample per pass: as many passes as needed.
    repeats = -(-n // len(samples))

    def run(epoch: int) -> int:
        transform.set_random_state(seed=epoch)
        got = 0
        for _ in range(repeats):
            loader = DataLoader(data, batch_size=BATCH, shuffle=True, num_workers=0)
            for batch in loader:
                got += batch["image"].shape[0]
                if got >= n:
                    return got
        return got

    return run


def torchio_method(samples: list[dict[str, np.ndarray]], n: int) -> Callable[[int], int]:
    import torch
    import torchio as tio

    subjects = [
        tio.Subject(
            image=tio.ScalarImage(tensor=torch.from_numpy(s["image"][..., None])),
            label=tio.LabelMap(tensor=torch.from_numpy(s["label"][..., None].astype(np.int64))),
        )
        for s in samples
    ]
    dataset = tio.SubjectsDataset(subjects)
    sampler = tio.LabelSampler(
        patch_size=(*SIZE, 1), label_name="label", label_probabilities={0: 2, 1: 1}
    )

    def run(epoch: int) -> int:
        torch.manual_seed(epoch)
        queue = tio.Queue(
            dataset,
            max_length=64,
            samples_per_volume=8,
            sampler=sampler,
            num_workers=0,
            shuffle_subjects=True,
            shuffle_patches=True,
        )
        loader = torch.utils.data.DataLoader(queue, batch_size=BATCH, num_workers=0)
        got = 0
        while got < n:
            for batch in loader:
                got += batch["image"][tio.DATA].shape[0]
                if got >= n:
                    break
        return got

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patches", type=int, default=2048, help="patches per method and round")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="build here and keep the stores")
    args = ap.parse_args()
    n = 256 if args.quick else args.patches
    repeats = 1 if args.quick else args.repeats
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-patches-"))
    data = tmp / "data"
    if not data.exists():
        make_sample(data, n_images=64, size=(256, 256))
    stores = {"maskprep": tmp / "untiled.zarr", "maskprep tile=64": tmp / "tile64.zarr"}
    for name, path in stores.items():
        if not path.exists():
            tile = 64 if "tile" in name else None
            cfg = BuildConfig(class_locations=1000, tile=tile, targets=("weights",))
            build_weights(data, path, cfg, scheduler="threads", workers=2)
    samples = peer_arrays(stores["maskprep"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peers' deprecation notices
        methods = {name: maskprep_method(path, n) for name, path in stores.items()}
        methods["monai RandCropByLabelClassesd"] = monai_method(samples, n)
        methods["torchio LabelSampler + Queue"] = torchio_method(samples, n)
        rates: dict[str, list[float]] = {name: [] for name in methods}
        for r in range(repeats + 1):
            for name, run in methods.items():
                t0 = time.perf_counter()
                got = run(r)
                dt = time.perf_counter() - t0
                if r:  # the first round warms up caches and imports
                    rates[name].append(got / dt)
    peers = [k for k in methods if not k.startswith("maskprep")]
    print(f"{n} patches of {SIZE} (image + labels), batch {BATCH}, 1 process, "
          f"median of {repeats} round(s)")  # fmt: skip
    print(f"{'method':34s} {'patches/s':>10s} {'vs faster peer':>15s}")
    for name, values in rates.items():
        ratios = [
            v / max(rates[p][i] for p in peers) for i, v in enumerate(values)
        ]
        print(f"{name:34s} {statistics.median(values):10.0f} {statistics.median(ratios):14.2f}x")


if __name__ == "__main__":
    main()
