"""What storing every training target adds to a build of the quick start's sample data.

    python benchmarks/bench_targets_build.py [--repeats 5]

Builds the 24 x 256x256 sample dataset (``maskprep make-sample``) with the
default target (``weights``) and with all six, alternating, in one process
with warm kernels (one untimed build of each first), single-threaded
(``scheduler="sync"``) so the two cost the same CPU; prints the medians and
their ratio (the goal: at most 2x). Two more rows show what 16 StarDist rays
instead of 32 give, and the cost of the ``cellpose`` flows (not one of the
six). Wall time and the process's CPU time are both given: on a shared
machine the CPU time is the steadier.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This checkout's maskprep, not whichever one is installed (as bench_targets.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskprep import BuildConfig, build_weights, make_sample

ALL = ("weights", "boundary", "distance", "stardist", "hover", "affinities")


def _build(data: Path, out: Path, config: BuildConfig) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    c = time.process_time()
    build_weights(data, out, config, scheduler="sync")
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = make_sample(tmp / "sample_data")
    configs = {
        "weights only": BuildConfig(),
        "all but stardist": BuildConfig(targets=tuple(t for t in ALL if t != "stardist")),
        "all six targets": BuildConfig(targets=ALL),
        "all six, 16 rays": BuildConfig(targets=ALL, rays=16),
        "weights + cellpose": BuildConfig(targets=("weights", "cellpose")),
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    for cfg in configs.values():
        _build(data, tmp / "warm.zarr", cfg)
    for _ in range(args.repeats):
        for name, cfg in configs.items():
            times[name].append(_build(data, tmp / "o.zarr", cfg))
    base = [statistics.median(t[k] for t in times["weights only"]) for k in (0, 1)]
    print(f"{'build (24 x 256x256, sync)':28} {'wall s':>7} {'ratio':>7} {'cpu s':>7} {'ratio':>7}")
    for name, ts in times.items():
        w, c = (statistics.median(t[k] for t in ts) for k in (0, 1))
        print(f"{name:28} {w:7.3f} {w / base[0]:6.2f}x {c:7.3f} {c / base[1]:6.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
