"""A volume bigger than any worker, built block by block on a real dask cluster.

Writes a SIDE^3 volume of touching blobs (int32 ids in a zarr array, uint8
image), starts ``dask scheduler`` and WORKERS ``dask worker --memory-limit``
processes on loopback, and builds it with ``--block``; prints Mvox/s end to end,
each worker's peak RSS, and, measured in the same run, the border kernel's own
speed on one block crop (what the build would cost if it did nothing else) and
a whole-sample build of one block-sized cube in one process.

    python benchmarks/bench_volume.py                       # 1024^3 = 1.07 GVox
    python benchmarks/bench_volume.py --side 384 --block 128  # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CELL = 16


def blobs(z0: int, z1: int, side: int) -> np.ndarray:
    """Slices z0:z1: a ball of radius 7-9 in each 16^3 cell (about 60% foreground)."""
    z, y, x = np.ogrid[z0:z1, :side, :side]
    ids = ((z // CELL) * 1000 + y // CELL) * 1000 + x // CELL
    radius = 7 + (ids % 3)
    inside = (z % CELL - 8) ** 2 + (y % CELL - 8) ** 2 + (x % CELL - 8) ** 2 <= radius**2
    return np.where(inside, ids * 3 + 1, 0).astype(np.int32)


def write_volume(root: Path, side: int) -> None:
    import zarr

    arrays = {}
    for sub, dtype in (("images", "uint8"), ("masks", "int32")):
        (root / sub).mkdir(parents=True)
        arrays[sub] = zarr.create_array(
            str(root / sub / "vol.zarr"), shape=(side,) * 3, chunks=(64,) * 3, dtype=dtype
        )
    for z0 in range(0, side, 64):
        lab = blobs(z0, min(z0 + 64, side), side)
        arrays["masks"][z0 : z0 + lab.shape[0]] = lab
        arrays["images"][z0 : z0 + lab.shape[0]] = (lab % 251).astype(np.uint8)


def kernel_speed(block: int, sigma: float) -> float:
    """Mvox/s of border_weights alone on one block crop (halo included in the voxels)."""
    from maskprep.targets import border_weights

    halo = int(np.ceil(sigma * np.sqrt(2 * np.log(1e6))))
    lab = blobs(0, block + 2 * halo, block + 2 * halo)
    border_weights(lab[:8, :8, :8], sigma=sigma)  # compile
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        border_weights(lab, sigma=sigma)
        best = min(best, time.perf_counter() - t)
    return block**3 / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--sigma", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="3GB")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = ap.parse_args()

    from distributed import Client

    import maskprep

    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_volume_"))
    data = root / "data"
    if not data.exists():
        t = time.perf_counter()
        write_volume(data, args.side)
        print(f"wrote {args.side}^3 volume in {time.perf_counter() - t:.0f} s", flush=True)
    dask_cli = str(Path(sys.executable).with_name("dask"))
    sched_file = root / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    procs = [
        subprocess.Popen(
            [
                dask_cli,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        while not sched_file.exists():
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(args.workers):
            procs.append(
                subprocess.Popen(
                    [
                        dask_cli,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--memory-limit",
                        args.memory_limit,
                        "--name",
                        f"w{i}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with Client(address) as client:
            client.wait_for_workers(args.workers, timeout=120)
            config = maskprep.BuildConfig(
                tile=args.tile, block=args.block, sigma=args.sigma, shard_size=1
            )
            out = root / "out.zarr"
            t = time.perf_counter()
            maskprep.build_weights(data, out, config, scheduler=address, overwrite=True)
            seconds = time.perf_counter() - t
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            names = [w["name"] for w in client.scheduler_info()["workers"].values()]
        vox = args.side**3
        kernel = kernel_speed(args.block, args.sigma)
        print(
            f"{args.side}^3 ({vox / 1e9:.2f} GVox), block {args.block}, sigma {args.sigma}, "
            f"{args.workers} workers x 1 thread, --memory-limit {args.memory_limit}\n"
            f"  build: {seconds:.0f} s = {vox / seconds / 1e6:.2f} Mvox/s "
            f"({vox / seconds / 1e6 / args.workers:.2f} per worker)\n"
            f"  peak worker RSS: {', '.join(f'{v:.0f} MB' for v in sorted(peaks.values()))}"
            f" (workers now: {sorted(names)})\n"
            f"  border kernel alone on one block with its halo: {kernel:.2f} Mvox/s of block "
            f"-> build/kernel per worker = {kernel / (vox / seconds / 1e6 / args.workers):.2f}x",
            flush=True,
        )
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    if args.dir is None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
