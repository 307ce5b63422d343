"""End-to-end build: time, samples/s and peak RSS, against the I/O floor in the same run.

    python benchmarks/bench_build.py            # 500 and 5000 samples of 256x256
    python benchmarks/bench_build.py --quick    # 100 and 400 samples (smoke test)

Each build runs in a fresh subprocess (threads scheduler, the default) so its
peak RSS is its own (``ru_maxrss`` from ``wait4``). The floor decodes the same
PNGs and writes the same four arrays zstd-sharded with the same Dask layout,
without void fill, counting or border weights: what any build must pay.
Datasets are generated once into ``bench_out/build/`` (deterministic).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "bench_out" / "build"

BUILD = """
import json, sys, time
from maskprep import build_weights
t = time.perf_counter()
s = build_weights(sys.argv[1], sys.argv[2], scheduler="threads")
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": s.bytes_on_disk}))
"""

FLOOR = """
import json, sys, time
import dask, numpy as np, zarr
from PIL import Image
from pathlib import Path
from zarr.codecs import ZstdCodec

root, out = Path(sys.argv[1]), sys.argv[2]
stems = sorted(p.stem for p in (root / "images").glob("*.png"))
t = time.perf_counter()
n, S = len(stems), 64
g = zarr.open_group(out, mode="w")
spec = {"image": "uint8", "labels": "uint8", "instances": "int32", "weights": "float32"}
for name, dt in spec.items():
    g.create_array(name, shape=(n, 256, 256), chunks=(1, 256, 256), shards=(S, 256, 256),
                   dtype=dt, compressors=ZstdCodec(level=3))

def shard(a, b):
    blocks = {k: np.zeros((b - a, 256, 256), dt) for k, dt in spec.items()}
    for j, stem in enumerate(stems[a:b]):
        blocks["image"][j] = np.asarray(Image.open(root / "images" / f"{stem}.png"))
        mask = np.asarray(Image.open(root / "masks" / f"{stem}.png"))
        blocks["instances"][j] = mask
        blocks["labels"][j] = mask > 0
        blocks["weights"][j] = blocks["labels"][j]
    grp = zarr.open_group(out, mode="r+")
    for k, v in blocks.items():
        grp[k][a:b] = v

dask.compute(*[dask.delayed(shard)(a, min(a + S, n)) for a in range(0, n, S)], scheduler="threads")
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": 0}))
"""


def run(code: str, data: Path, out: Path) -> dict[str, float]:
    if out.exists():
        shutil.rmtree(out)
    proc = subprocess.Popen([sys.executable, "-c", code, str(data), str(out)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed ({proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


def dataset(n: int) -> Path:
    from maskprep import make_sample

    path = OUT / f"nuclei_{n}"
    if not (path / "valid.txt").exists():
        if path.exists():
            shutil.rmtree(path)
        t = time.perf_counter()
        make_sample(path, n_images=n, size=(256, 256), seed=0)
        print(f"generated {n} samples in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--large", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="100 and 400 samples")
    args = ap.parse_args()
    small, large = (100, 400) if args.quick else (args.small, args.large)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in (small, large):
        data = dataset(n)
        rows.append((n, "maskprep build-weights", run(BUILD, data, OUT / f"build_{n}.zarr")))
        rows.append((n, "floor: decode + zstd write", run(FLOOR, data, OUT / f"floor_{n}.zarr")))
    print(f"\n{'samples':>8} {'method':<28} {'seconds':>8} {'samples/s':>10} {'peak RSS MB':>12}")
    for n, name, r in rows:
        print(f"{n:>8} {name:<28} {r['seconds']:>8.2f} {n / r['seconds']:>10.1f} "
              f"{r['rss_mb']:>12.0f}")  # fmt: skip
    build = {n: r for n, name, r in rows if name.startswith("maskprep")}
    floor = {n: r for n, name, r in rows if name.startswith("floor")}
    print(f"\npeak RSS ratio {large} vs {small} samples: "
          f"{build[large]['rss_mb'] / build[small]['rss_mb']:.2f} (target < 1.2)")  # fmt: skip
    rate = large / build[large]["seconds"]
    print(f"end to end at {large}: {rate:.0f} samples/s (target >= 150), "
          f"{build[large]['seconds'] / floor[large]['seconds']:.2f}x the floor's time")  # fmt: skip


if __name__ == "__main__":
    main()
