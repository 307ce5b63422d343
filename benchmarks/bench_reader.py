"""Benchmark reading training samples: maskprep's shard reader against the usual ways.

Run from the repository root::

    python benchmarks/bench_reader.py             # 2000 samples of 256x256 (a few minutes)
    python benchmarks/bench_reader.py --quick     # 300 samples, smoke test

The data is the bundled synthetic nuclei dataset (``make_sample``, deterministic)
built with ``build_weights``: per sample an ``image`` (uint8), ``labels`` (uint8)
and ``weights`` (float32) of 256x256. The same samples are stored three ways:

* ``maskprep``: the built zarr v3 store read with ``open_shards(path,
  arrays=("image", "labels", "weights"))``: ``shards[i]`` for random access,
  ``shards.batches(batch_size, seed=...)`` for batches (``threads=2``: decoding
  in two threads). zstd is decoded with python-zstandard when it is installed;
  ``maskprep numcodecs`` is the same reader forced to numcodecs' zstd (what it
  uses without python-zstandard).
* ``zarr-python``: the same store read with plain ``zarr.open_array``:
  ``arr[i]`` per array for random access, ``arr.oindex[indices]`` for batches.
* ``png+npy``: one file per array and sample: ``image`` and ``labels`` as PNG
  (Pillow, default compression), ``weights`` as ``.npy``; batches stack them.

Every method reads the same shuffled order, in one process, warm: one untimed
pass first, then ``--repeats`` timed passes (the best is reported) with the
methods interleaved so that machine noise hits them alike. Results are checked
equal across methods before timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zarr

import maskprep.store.codec as codec_mod
from maskprep import build_weights, make_sample, open_shards

ARRAYS = ("image", "labels", "weights")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_png_npy(store: Path, out: Path) -> list[str]:
    """Write every sample of ``store`` as PNG (image, labels) and .npy (weights)."""
    shards = open_shards(store, arrays=ARRAYS)
    out.mkdir(parents=True)
    stems = []
    for i, sid in enumerate(shards.sample_ids):
        s = shards[i]
        Image.fromarray(s["image"]).save(out / f"{sid}_image.png")
        Image.fromarray(s["labels"]).save(out / f"{sid}_labels.png")
        np.save(out / f"{sid}_weights.npy", s["weights"])
        stems.append(str(out / sid))
    return stems


def read_png_npy(stem: str) -> dict[str, np.ndarray]:
    with Image.open(stem + "_image.png") as im:
        image = np.asarray(im)
    with Image.open(stem + "_labels.png") as im:
        labels = np.asarray(im)
    return {"image": image, "labels": labels, "weights": np.load(stem + "_weights.npy")}


def batched(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [order[a : a + batch_size] for a in range(0, order.size, batch_size)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="number of samples (default 2000)")
    ap.add_argument("--size", type=int, default=256, help="side of the square samples")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per method")
    ap.add_argument("--quick", action="store_true", help="300 samples, one timed pass")
    ap.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeats = min(args.n, 300), 1

    tmp = Path(tempfile.mkdtemp(prefix="bench_reader_")) if args.workdir is None else None
    work = args.workdir or tmp
    assert work is not None
    try:
        return run(args, work)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    n, size, bs = args.n, args.size, args.batch_size
    data, store, files = work / "data", work / "store.zarr", work / "files"
    t0 = time.perf_counter()
    if not store.exists():
        make_sample(data, n_images=n, size=(size, size))
        build_weights(data, store, scheduler="threads")
    if not files.exists():
        write_png_npy(store, files)
    stems = [str(files / sid) for sid in open_shards(store).sample_ids]
    print(f"prepared {n} samples of {size}x{size} in {time.perf_counter() - t0:.0f} s")
    print(
        f"on disk: store {dir_bytes(store) / 1e6:.1f} MB (all four arrays), "
        f"png+npy {dir_bytes(files) / 1e6:.1f} MB (image, labels, weights)"
    )

    shards = open_shards(store, arrays=ARRAYS)
    assert all(b == "direct" for b in shards.backend.values()), shards.backend
    zarrs = {name: zarr.open_array(str(store / name), mode="r") for name in ARRAYS}
    rng = np.random.default_rng(12345)
    order = rng.permutation(n)
    chunks = batched(order, bs)

    # Same bytes from every method.
    for i in order[:20].tolist():
        ours, files_i = shards[i], read_png_npy(stems[i])
        for name in ARRAYS:
            np.testing.assert_array_equal(ours[name], np.asarray(zarrs[name][i]))
            np.testing.assert_array_equal(ours[name], files_i[name])

    def ours_random() -> None:
        for i in order.tolist():
            shards[i]

    def ours_batches(threads: int) -> Callable[[], None]:
        def f() -> None:
            for _ in shards.batches(bs, seed=0, threads=threads):
                pass

        return f

    def with_numcodecs(f: Callable[[], None]) -> Callable[[], None]:
        def g() -> None:
            saved, codec_mod._ZSTD = codec_mod._ZSTD, "numcodecs"
            try:
                f()
            finally:
                codec_mod._ZSTD = saved

        return g

    def zarr_random() -> None:
        for i in order.tolist():
            for arr in zarrs.values():
                np.asarray(arr[i])

    def zarr_batches() -> None:
        for idx in chunks:
            for arr in zarrs.values():
                np.asarray(arr.oindex[idx])

    def files_random() -> None:
        for i in order.tolist():
            read_png_npy(stems[i])

    def files_batches() -> None:
        for idx in chunks:
            got = [read_png_npy(stems[i]) for i in idx.tolist()]
            {name: np.stack([g[name] for g in got]) for name in ARRAYS}

    methods: dict[tuple[str, str], Callable[[], None]] = {
        ("maskprep", "random"): ours_random,
        ("maskprep", "batched"): ours_batches(1),
        ("maskprep threads=2", "batched"): ours_batches(2),
        ("maskprep numcodecs", "random"): with_numcodecs(ours_random),
        ("maskprep numcodecs", "batched"): with_numcodecs(ours_batches(1)),
        ("zarr-python", "random"): zarr_random,
        ("zarr-python", "batched"): zarr_batches,
        ("png+npy", "random"): files_random,
        ("png+npy", "batched"): files_batches,
    }
    best: dict[tuple[str, str], float] = {}
    for f in methods.values():  # warm-up pass: page cache, imports, shard indexes
        f()
    for _ in range(args.repeats):
        for key, f in methods.items():
            t = time.perf_counter()
            f()
            rate = n / (time.perf_counter() - t)
            best[key] = max(best.get(key, 0.0), rate)

    print(
        f"\nn={n} {size}x{size} batch={bs} repeats={args.repeats} "
        f"cores={os.cpu_count()} python={platform.python_version()} "
        f"numpy={np.__version__} zarr={zarr.__version__}"
    )
    print(f"{'method':<20} {'random/s':>9} {'batched/s':>10} {'vs png+npy':>11} {'vs zarr':>8}")
    rows = ["maskprep", "maskprep threads=2", "maskprep numcodecs", "zarr-python", "png+npy"]
    for who in rows:
        r = best.get((who, "random"))
        b = best[(who, "batched")]
        vs_files = [
            f"{x / best[('png+npy', kind)]:.1f}x"
            for kind, x in (("random", r), ("batched", b))
            if x is not None
        ]
        vs_zarr = [
            f"{x / best[('zarr-python', kind)]:.1f}x"
            for kind, x in (("random", r), ("batched", b))
            if x is not None
        ]
        print(
            f"{who:<20} {'-' if r is None else f'{r:.0f}':>9} {b:>10.0f} "
            f"{'/'.join(vs_files):>11} {'/'.join(vs_zarr):>8}"
        )
    print(
        "(ratios: random/batched; samples/s = image + labels + weights per sample; "
        f"maskprep decodes zstd with {codec_mod._ZSTD}, 'maskprep numcodecs' forces numcodecs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
