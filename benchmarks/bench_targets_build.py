"""What storing every training target adds to a build of the quick start's sample data.

    python benchmarks/bench_targets_build.py [--repeats 5]

Builds the 24 x 256x256 sample dataset (``maskprep make-sample``) with the
default target (``weights``) and with all six, alternating, in one process
with warm kernels (one untimed build of each first), single-threaded
(``scheduler="sync"``) so the two cost the same CPU; prints the medians and
their ratio (the goal: at most 2x).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from maskprep import BuildConfig, build_weights, make_sample

ALL = ("weights", "boundary", "distance", "stardist", "hover", "affinities")


def _build(data: Path, out: Path, config: BuildConfig) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    build_weights(data, out, config, scheduler="sync")
    return time.perf_counter() - t


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
    }
    times: dict[str, list[float]] = {k: [] for k in configs}
    for cfg in configs.values():
        _build(data, tmp / "warm.zarr", cfg)
    for _ in range(args.repeats):
        for name, cfg in configs.items():
            times[name].append(_build(data, tmp / "o.zarr", cfg))
    base = statistics.median(times["weights only"])
    print(f"{'build (24 x 256x256, sync)':28} {'median s':>9} {'ratio':>7}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:28} {m:9.3f} {m / base:6.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
