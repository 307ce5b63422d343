"""Benchmark opening a store of many samples: records in arrays (format 3) against
records in ``zarr.json`` (format 2).

Run from the repository root::

    python benchmarks/bench_open.py                    # 10^4, 10^5 and 10^6 samples
    python benchmarks/bench_open.py --samples 10000    # quick

For each size N a synthetic store is written twice with the same content:
N samples of 32x32 (tile 32, 64 samples a shard, so N/64 shards), ids
``img_0000000``..., random splits and counts, two input files per sample,
random shard checksums; the image arrays hold no chunks (every sample reads
as padding), because opening does not depend on them. ``format 3`` keeps the
records in the arrays of the group ``metadata``; ``format 2`` in
``zarr.json``, as tiled stores were written before format 3. Timed, median of
``--repeats`` after one untimed open each, alternating the two stores:
``open`` = ``open_shards(store)``; ``+ read`` = opening and reading sample 0;
``split`` = ``open_shards(store, split="valid")``; ``sample_ids`` = the
first access to ``shards.sample_ids`` after opening (format 3 reads the ids
array then; format 2 parsed them while opening). Also the size of zarr.json.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskprep import BuildConfig, build_weights, make_sample, open_shards
from maskprep.store import (
    Location,
    StoreRecords,
    create_store,
    read_store_metadata,
    write_metadata,
)


def synthetic_store(template: Path, out: Path, n: int, version: int) -> None:
    meta = read_store_metadata(template)
    assert meta is not None
    rng = np.random.default_rng(0)
    layout = replace(meta.layout_info, n_samples=n, spatial_shape=(32, 32), tile=32, block=None)
    ids = [f"img_{i:07d}" for i in range(n)]
    split = np.where(rng.random(n) < 0.2, "valid", "train").tolist()
    counts = rng.integers(0, 1024, size=(n, len(meta.class_names)))
    records = StoreRecords(
        array_names=layout.array_names,
        sample_ids=ids,
        split=split,
        instance_counts=rng.integers(0, 50, n),
        sample_class_counts=counts,
        void_pixels=rng.integers(0, 100, n),
        inputs=[
            {"path": f"{kind}/{i}.png", "bytes": int(b)}
            for i, b in zip(ids, rng.integers(1000, 99999, n), strict=True)
            for kind in ("images", "masks")
        ],
        notes=[{"sample_id": ids[0], "note": "instance id(s) 9 have several separate pieces"}],
    )
    fresh = replace(
        meta,
        layout_info=layout,
        records=records,
        format_version=version,
        shard_size=layout.shard_size,
        metadata_digest=None,
        complete=False,
    )
    loc = Location.parse(out)
    shapes = np.full((n, 2), 32, dtype=np.int32)
    made = create_store(loc, fresh, 3, shapes)
    n_shards = len(layout.shard_bounds())
    digests = [
        {a: hashlib.sha256(f"{k}{a}".encode()).hexdigest() for a in sorted(layout.array_names)}
        for k in range(n_shards)
    ]
    write_metadata(loc, made.completed(digests))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", default="10000,100000,1000000")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    sizes = [int(s) for s in args.samples.split(",")]
    root = Path(tempfile.mkdtemp(prefix="maskprep_open_"))
    try:
        data = make_sample(root / "data", n_images=2, size=(32, 32))
        template = root / "template.zarr"
        build_weights(data, template, BuildConfig(tile=32), scheduler="sync")
        rows = []
        for n in sizes:
            stores = {}
            for version in (3, 2):
                stores[version] = root / f"n{n}_v{version}.zarr"
                synthetic_store(template, stores[version], n, version)
            times: dict[tuple[int, str], list[float]] = {}
            ops = {
                "open": lambda s: open_shards(s),
                "+ read": lambda s: open_shards(s)[0],
                "split": lambda s: open_shards(s, split="valid"),
            }
            for r in range(args.repeats + 1):
                for version, store in stores.items():
                    for name, op in ops.items():
                        t = timed(lambda op=op, store=store: op(store))
                        if r:
                            times.setdefault((version, name), []).append(t)
                    sh = open_shards(store)
                    t = timed(lambda sh=sh: sh.sample_ids)
                    if r:
                        times.setdefault((version, "sample_ids"), []).append(t)
            for version, store in stores.items():
                size = (store / "zarr.json").stat().st_size
                med = {k: statistics.median(v) for (ver, k), v in times.items() if ver == version}
                rows.append((n, version, size, med))
        print(f"medians of {args.repeats}; N/64 shards; two input files per sample")
        print("| samples | format | zarr.json | open | open + read | split | sample_ids |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n, version, size, med in rows:
            cells = " | ".join(
                f"{1000 * med[k]:,.1f} ms" for k in ("open", "+ read", "split", "sample_ids")
            )
            print(f"| {n:,} | {version} | {size:,} B | {cells} |")
        print()
        print("format 2 / format 3 (same run):")
        for n in sizes:
            (a,) = [r[3] for r in rows if r[0] == n and r[1] == 3]
            (b,) = [r[3] for r in rows if r[0] == n and r[1] == 2]
            print(
                f"  {n:>9,} samples: open {b['open'] / a['open']:.1f}x, "
                f"open + read {b['+ read'] / a['+ read']:.1f}x"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
