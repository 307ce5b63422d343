"""A 3D volume built end to end against the border kernel alone, in the same run.

    python benchmarks/bench_volume_build.py              # 256^3 and 512^3
    python benchmarks/bench_volume_build.py --sides 256 --rounds 5
    python benchmarks/bench_volume_build.py --quick      # 128^3, one round (smoke test)

Each side gets one instances dataset (a TIFF image, uint8, and a TIFF mask,
int32) of touching blobs: one jittered ball per cell of 8x16x16 voxels with
``spacing=(2, 1, 1)``, so ~65 000 instances at 512^3 (8 192 at 256^3) with
non-sequential ids. The kernel is ``border_weights`` on the whole mask
(single-threaded, the build's own parameters: sigma 5, the spacing, default
tolerance). The builds are ``build_weights`` with the default target
(``weights``) and store (tiles of 64, zstd 3, crc32c), ``shard_size=1``:

- ``whole``: ``block`` larger than the volume, one task computes it whole;
- ``blocks``: the default 3D block (256), so a 512^3 volume is 8 blocks, each
  computed on its crop (the block plus the border term's halo: ceil(R / spacing)).

Each with ``scheduler="sync"`` (one thread: the fair comparison with the
single-threaded kernel) and ``scheduler="threads"`` (this machine's cores:
big arrays are compressed by threads while the kernel runs). One untimed
build of each first (numba cache, page cache), then ``--rounds`` rounds, the
methods in turns within a round. Printed: median wall seconds, the median
over rounds of build / kernel of the same round, and for ``sync`` the same
ratio of CPU seconds (``time.process_time``, what the build costs whatever
else the machine runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

CELL = (8, 16, 16)
SPACING = (2.0, 1.0, 1.0)
SIGMA = 5.0


def blobs(side: int, seed: int = 0) -> np.ndarray:
    """int32 ids: per cell of CELL voxels a ball of radius 6.5-9.5 (physical units,
    spacing SPACING) around a jittered centre, cut by the cell's faces (so
    neighbours touch there); ids a random permutation times 3 plus 7."""
    rng = np.random.default_rng(seed)
    grid = [-(-side // c) for c in CELL]
    n = grid[0] * grid[1] * grid[2]
    jitter = rng.uniform(-2, 2, (n, 3)) * np.array([0.5, 1.0, 1.0])
    radius2 = rng.uniform(6.5, 9.5, n) ** 2
    ids = (rng.permutation(n) * 3 + 7).astype(np.int32)
    out = np.empty((side,) * 3, np.int32)
    y, x = np.ogrid[:side, :side]
    for z0 in range(0, side, 16):
        z = np.arange(z0, min(side, z0 + 16))[:, None, None]
        k = ((z // CELL[0]) * grid[1] + y // CELL[1]) * grid[2] + x // CELL[2]
        j = jitter[k]
        d2 = (
            ((z % CELL[0] - CELL[0] / 2 - j[..., 0]) * SPACING[0]) ** 2
            + (y % CELL[1] - CELL[1] / 2 - j[..., 1]) ** 2
            + (x % CELL[2] - CELL[2] / 2 - j[..., 2]) ** 2
        )
        out[z0 : z0 + 16] = np.where(d2 <= radius2[k], ids[k], 0)
    return out


def write_dataset(root: Path, side: int) -> np.ndarray:
    import tifffile

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lab = blobs(side)
    noise = np.random.default_rng(1).integers(0, 50, lab.shape, dtype=np.uint8)
    tifffile.imwrite(root / "images" / "vol.tif", (lab % 200).astype(np.uint8) + noise)
    tifffile.imwrite(root / "masks" / "vol.tif", lab)
    return lab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="128^3, one round")
    args = ap.parse_args()
    if args.quick:
        args.sides, args.rounds = [128], 1

    tmp = Path(tempfile.mkdtemp(prefix="bench_volume_build_"))
    try:
        print(
            f"cores: {os.cpu_count()}, load average at start: "
            f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}",
            flush=True,
        )
        for side in args.sides:
            measure(tmp, side, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(tmp: Path, side: int, rounds: int) -> None:
    """Time the kernel and the four builds of one side; print the table."""
    from maskprep import BuildConfig, build_weights
    from maskprep.targets import border_weights

    data = tmp / f"d{side}"
    lab = write_dataset(data, side)
    n_ids = int(np.count_nonzero(np.unique(lab)))
    out = tmp / "out.zarr"
    configs = {
        "whole": BuildConfig(spacing=SPACING, sigma=SIGMA, shard_size=1, block=4 * side),
        "blocks": BuildConfig(spacing=SPACING, sigma=SIGMA, shard_size=1),
    }
    methods: list[tuple[str, str]] = [(c, s) for c in configs for s in ("sync", "threads")]

    def run(method: tuple[str, str]) -> None:
        if method[0] == "kernel":
            border_weights(lab, sigma=SIGMA, spacing=SPACING)
        else:
            build_weights(data, out, configs[method[0]], scheduler=method[1], overwrite=True)

    everything = [("kernel", ""), *methods]
    for m in everything:  # untimed: numba and page caches
        run(m)
    wall: dict[tuple[str, str], list[float]] = {m: [] for m in everything}
    cpu: dict[tuple[str, str], list[float]] = {m: [] for m in everything}
    for r in range(rounds):
        k = r % len(everything)
        for m in everything[k:] + everything[:k]:  # the order rotates every round
            c0, t0 = time.process_time(), time.perf_counter()
            run(m)
            wall[m].append(time.perf_counter() - t0)
            cpu[m].append(time.process_time() - c0)
    kernel = statistics.median(wall[("kernel", "")])
    print(
        f"\n{side}^3 ({side**3 / 1e6:.1f} Mvox), {n_ids} instances, spacing {SPACING}, "
        f"sigma {SIGMA}, {rounds} round(s); kernel median {kernel:.2f} s "
        f"({side**3 / kernel / 1e6:.1f} Mvox/s)"
    )
    print("| build | scheduler | median s | build / kernel (wall) | (CPU) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for m in methods:
        ratio = statistics.median(b / k for b, k in zip(wall[m], wall[("kernel", "")], strict=True))
        cpu_ratio = statistics.median(
            b / k for b, k in zip(cpu[m], cpu[("kernel", "")], strict=True)
        )
        label = "whole" if m[0] == "whole" else "blocks of 256"
        shown = f"{cpu_ratio:.2f}x" if m[1] == "sync" else "-"
        print(
            f"| {label} | {m[1]} | {statistics.median(wall[m]):.2f} | {ratio:.2f}x | {shown} |",
            flush=True,
        )
    shutil.rmtree(data)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
