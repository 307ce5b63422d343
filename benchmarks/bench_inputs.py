"""Benchmark chunked inputs: one region read against reading the whole sample.

Run from the repository root::

    python benchmarks/bench_inputs.py            # 64 x 512 x 512 volumes, about a minute
    python benchmarks/bench_inputs.py --quick    # 64 x 256 x 256, smoke test

One volume of touching nuclei (``make_volume_sample``, deterministic; uint8
image, uint32 ids) is written in each chunked format, chunks 32 x 64 x 64
(TIFF tiles: one page per z, 64 x 64 tiles). For each format the table shows
the time of ``read_sample`` (the peer: the whole volume, as the build reads
it today) and of ``read_region`` for a 32 x 64 x 64 region at a chunk-aligned
start (one chunk per array) and at an unaligned one (up to 8 chunks per
array), as the median of ``--repeats`` interleaved passes after an untimed
one, and the whole / region ratio of the same pass; ``peak MB`` is the
tracemalloc peak of one region read (numpy and Python allocations; HDF5's own
chunk cache is not traced).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskprep.ingest import discover, read_region, read_sample
from maskprep.tools.volume_data import VOLUME_FORMATS, make_volume_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = (64, 256, 256) if args.quick else (64, 512, 512)
    repeats = 2 if args.quick else args.repeats
    chunks = (32, 64, 64)
    aligned = (slice(0, 32), slice(64, 128), slice(128, 192))
    unaligned = (slice(16, 48), slice(96, 160), slice(160, 224))
    print(f"volume {shape}, chunks {chunks}, region 32 x 64 x 64, {repeats} passes")
    print(f"{'format':14} {'whole s':>8} {'aligned s':>10} {'ratio':>7} "
          f"{'unaligned s':>12} {'ratio':>7} {'peak MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in VOLUME_FORMATS:
            d = make_volume_sample(Path(tmp) / fmt, format=fmt, shape=shape, n_samples=1,
                                   chunks=chunks)
            src = discover(d).samples[0]
            methods = {
                "whole": lambda src=src: read_sample(src, max_pixels=None),
                "aligned": lambda src=src: read_region(src, aligned),
                "unaligned": lambda src=src: read_region(src, unaligned),
            }
            times: dict[str, list[float]] = {k: [] for k in methods}
            for p in range(repeats + 1):
                for name, fn in methods.items():
                    t0 = time.perf_counter()
                    fn()
                    if p:
                        times[name].append(time.perf_counter() - t0)
            tracemalloc.start()
            read_region(src, unaligned)
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            med = {k: statistics.median(v) for k, v in times.items()}
            ratio_a = statistics.median(
                w / a for w, a in zip(times["whole"], times["aligned"], strict=True)
            )
            ratio_u = statistics.median(
                w / u for w, u in zip(times["whole"], times["unaligned"], strict=True)
            )
            print(f"{fmt:14} {med['whole']:8.3f} {med['aligned']:10.4f} {ratio_a:6.1f}x "
                  f"{med['unaligned']:12.4f} {ratio_u:6.1f}x {peak:8.1f}")


if __name__ == "__main__":
    main()
