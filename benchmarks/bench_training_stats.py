"""Benchmark what class locations and intensity statistics add to a build.

Run from the repository root::

    python benchmarks/bench_training_stats.py           # a few minutes
    python benchmarks/bench_training_stats.py --quick

The bundled synthetic nuclei (``make_sample``, deterministic) are built with
the defaults and with ``class_locations=1000, intensity_stats=True``, in
turns (``--repeats`` rounds), on the threads scheduler with 2 workers: 128
samples of 256x256 and 8 of 1024x1024. Prints each build's median seconds
and the ratio, and the cost of the partial-result functions alone per
megapixel (one 1024x1024 sample, median of 5 calls): the build's numba
kernel for class locations, the numpy reference the reader uses for stores
built without them, and the intensity histogram.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskprep import BuildConfig, build_weights, make_sample, open_shards
from maskprep.intensity import intensity_partial
from maskprep.pipeline.training import class_locations_fast
from maskprep.weighting.locations import class_location_partial, location_key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-stats-"))
    datasets = {
        "128 x 256x256": make_sample(tmp / "small", n_images=32 if args.quick else 128),
        "8 x 1024x1024": make_sample(tmp / "big", n_images=2 if args.quick else 8,
                                     size=(1024, 1024)),
    }
    configs = {
        "default": BuildConfig(),
        "+ locations, stats": BuildConfig(class_locations=1000, intensity_stats=True),
    }
    print(f"build seconds, median of {repeats} round(s), threads scheduler, 2 workers")
    print(f"{'dataset':<16}{'default':>10}{'+ locations, stats':>20}{'ratio':>8}")
    for name, data in datasets.items():
        times: dict[str, list[float]] = {k: [] for k in configs}
        for r in range(repeats):
            for key, cfg in configs.items():
                out = tmp / f"o-{r}-{key[:3]}.zarr"
                t0 = time.perf_counter()
                build_weights(data, out, cfg, scheduler="threads", workers=2)
                times[key].append(time.perf_counter() - t0)
                shutil.rmtree(out)
        a, b = (statistics.median(times[k]) for k in configs)
        print(f"{name:<16}{a:>10.2f}{b:>20.2f}{b / a:>7.2f}x")
    out = tmp / "one.zarr"
    build_weights(datasets["8 x 1024x1024"], out, scheduler="threads", workers=2)
    sample = open_shards(out)[0]
    mpx = sample["labels"].size / 1e6
    for what, fn in (
        (
            "class_locations_fast (the build's kernel)",
            lambda: class_locations_fast(
                sample["labels"], per_class=1000, num_classes=2, key=location_key("x")
            ),
        ),
        (
            "class_location_partial (numpy, the reader's)",
            lambda: class_location_partial(sample["labels"], per_class=1000, num_classes=2,
                                           void_label=255, key=location_key("x")),
        ),
        ("intensity_partial", lambda: intensity_partial(sample["image"], sample["labels"],
                                                        void_label=255)),
    ):
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        print(f"{what}: {1e3 * statistics.median(ts) / mpx:.1f} ms per megapixel")


if __name__ == "__main__":
    main()
