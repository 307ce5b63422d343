"""Benchmark mixed image sizes: untiled (format 1) against tiled (format 2) stores.

Run from the repository root::

    python benchmarks/bench_mixed.py            # about a minute
    python benchmarks/bench_mixed.py --quick    # fewer repeats, smoke test
    python benchmarks/bench_mixed.py --clock cpu  # CPU time of each read (a loaded machine)

Three stores are built from the bundled synthetic nuclei data (``make_sample``,
deterministic), arrays ``image`` (uint8), ``labels`` (uint8), ``instances``
(int32) and ``weights`` (float32):

* ``all-small``: 64 samples of 256x256, untiled (the reference);
* ``mixed``: 62 samples of 256x256 and 2 of 1040x1388 (DSB2018's extremes),
  untiled: every sample is padded to 1040x1388;
* ``mixed tile=256``: the same samples built with ``tile=256``;
* ``mixed tile=256 no-crc``: the same again, written without the per-chunk
  crc32c (as format-2 stores were before it), to measure what checking it
  costs a read: the last table compares the two, pass by pass, and also
  ``mixed tile=256`` read with and without the reader's check that the store
  was not rewritten since it was opened (one ``stat`` of ``zarr.json`` a
  read; switched off on a second reader of the same store).

Small samples are read one at a time (``shards[i]`` with
``arrays=("image", "labels", "weights")``) in one shuffled order; the
samples/s of each mixed store are compared with the all-small store's in the
same run. Patches: ``shards.patch(i, start, (256, 256))`` of the 1040x1388
samples, at random starts inside the sample (a patch then usually touches 4
tiles) and at tile-aligned starts (1 tile), each against reading one whole
256x256 sample of the all-small store. Methods are interleaved over
``--repeats`` passes after an untimed one, round robin one read at a time
(so that a disturbance from other jobs hits every method alike), the order
of the turn rotated by one every read (so that no method always follows the
one that flushed the CPU caches: the untiled mixed store decodes 8.6 MB a
sample; ``--fixed-order`` keeps the order of earlier runs); the table shows
the median over passes of each method's rate and of its ratio to the
all-small rate of the same pass.

Warm rows (``cached``, not part of the goals): the tiled stores read again
by a second reader with ``shards.cache_tiles(64 MiB)``, which then holds
every tile the patches touch, so they measure reading from the cache.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import maskprep.pipeline.build as build_module
from maskprep import BuildConfig, build_weights, make_sample, open_shards

ARRAYS = ("image", "labels", "weights")
SMALL, BIG = (256, 256), (1040, 1388)


def mixed_dataset(root: Path, n_small: int, n_big: int) -> Path:
    data = make_sample(root / "small", n_images=n_small, size=SMALL)
    if n_big:
        big = make_sample(root / "big", n_images=n_big, size=BIG, seed=1)
        for sub in ("images", "masks", "unlabeled"):
            for p in (big / sub).glob("*"):
                shutil.copy(p, data / sub / p.name)
    return data


def build_without_checksums(data: Path, out: Path, cfg: BuildConfig) -> None:
    """Build a format-2 store whose chunks carry no crc32c (as before it existed)."""
    real = build_module.plan_layout

    def plan(*args: object, **kwargs: object) -> object:
        return replace(real(*args, **kwargs), chunk_checksum=False)  # type: ignore[arg-type]

    build_module.plan_layout = plan  # type: ignore[assignment]
    try:
        build_weights(data, out, cfg, scheduler="threads", workers=2)
    finally:
        build_module.plan_layout = real


#: The clock reads are timed with: wall time, or with ``--clock cpu`` this thread's CPU
#: time (on a machine shared with other jobs it leaves out the time spent waiting for
#: a core, though not their effect on the caches).
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]


def timed(
    methods: dict[str, Callable[[int], object]], units: int, repeats: int, *, rotate: bool
) -> dict[str, list[float]]:
    """Reads per second of each method in each of ``repeats`` passes of ``units`` reads.

    The methods take turns read by read (round robin, so that a disturbance from
    other jobs hits every method alike), after an untimed pass; with ``rotate``
    the order of the turn shifts by one every read.
    """
    for fn in methods.values():
        for u in range(units):
            fn(u)  # warm
    names = list(methods)
    rates: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(repeats):
        spent = dict.fromkeys(names, 0.0)
        for u in range(units):
            shift = u % len(names) if rotate else 0
            for k in names[shift:] + names[:shift]:
                t0 = clock()
                methods[k](u)
                spent[k] += clock() - t0
        for k in names:
            rates[k].append(units / spent[k])
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="build here and keep the stores")
    ap.add_argument("--tiles", default="256,128", help="tile sizes of the tiled mixed stores")
    ap.add_argument("--fixed-order", action="store_true", help="no rotation of the main table")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="what is timed")
    args = ap.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    tiles = [int(t) for t in args.tiles.split(",")]
    repeats = 2 if args.quick else args.repeats
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-mixed-"))
    crc = f"mixed tile={tiles[0]}"
    no_crc = f"{crc} no-crc"
    stores = {
        "all-small": (tmp / "small.zarr", 64, 0, None),
        "mixed": (tmp / "mixed.zarr", 62, 2, None),
        **{f"mixed tile={t}": (tmp / f"mixed-t{t}.zarr", 62, 2, t) for t in tiles},
        no_crc: (tmp / f"mixed-t{tiles[0]}-nocrc.zarr", 62, 2, tiles[0]),
    }
    datasets = {0: mixed_dataset(tmp / "d64", 64, 0), 2: mixed_dataset(tmp / "d62", 62, 2)}
    for key, (path, _, n_big, tile) in stores.items():
        if not path.exists():
            cfg = BuildConfig(tile=tile)
            if key == no_crc:
                build_without_checksums(datasets[n_big], path, cfg)
            else:
                build_weights(datasets[n_big], path, cfg, scheduler="threads", workers=2)

    opened = {k: open_shards(v[0], arrays=ARRAYS) for k, v in stores.items()}
    for t in tiles:  # warm: a second reader with a tile cache
        opened[f"mixed tile={t} cached"] = open_shards(stores[f"mixed tile={t}"][0], arrays=ARRAYS)
        opened[f"mixed tile={t} cached"].cache_tiles(64 << 20)
    unwatched = f"{crc} unwatched"
    opened[unwatched] = open_shards(stores[crc][0], arrays=ARRAYS)
    opened[unwatched]._check_unchanged = lambda failed=False: None  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    small_idx = {
        k: [i for i in range(len(s)) if tuple(s.shapes[i]) == SMALL] for k, s in opened.items()
    }
    for k in small_idx:
        small_idx[k] = list(rng.permutation(small_idx[k][:62]))
    # The tiled stores hold the same values as the untiled one.
    a = opened["mixed"]
    assert opened[crc]._sources["weights"].chunk_checksum  # type: ignore[attr-defined]
    assert not opened[no_crc]._sources["weights"].chunk_checksum  # type: ignore[attr-defined]
    for k in (*(f"mixed tile={t}" for t in tiles), no_crc):
        b = opened[k]
        for i in range(len(a)):
            assert all(np.array_equal(a[i][name], b[i][name]) for name in ARRAYS)

    def read_small(k: str) -> Callable[[int], object]:
        s, order = opened[k], small_idx[k]
        return lambda u: s[order[u % len(order)]]

    big = {k: [i for i in range(len(s)) if tuple(s.shapes[i]) == BIG] for k, s in opened.items()}
    n_patches = 64
    starts = [
        (int(rng.integers(0, BIG[0] - 256)), int(rng.integers(0, BIG[1] - 256)))
        for _ in range(n_patches)
    ]
    aligned = [
        (256 * int(rng.integers(0, BIG[0] // 256)), 256 * int(rng.integers(0, BIG[1] // 256)))
        for _ in range(n_patches)
    ]

    def patches(k: str, where: list[tuple[int, int]]) -> Callable[[int], object]:
        s, bi = opened[k], big[k]
        return lambda u: s.patch(bi[u % len(bi)], where[u % len(where)], (256, 256), arrays=ARRAYS)

    # Patches equal crops of the whole sample.
    tiled = [f"mixed tile={t}{c}" for t in tiles for c in ("", " cached")]
    for k in ("mixed", *tiled):
        s = opened[k]
        whole = s[big[k][0]]
        p = s.patch(big[k][0], starts[0], (256, 256))
        window = tuple(slice(a, a + 256) for a in starts[0])
        assert all(np.array_equal(p[n], whole[n][window]) for n in ARRAYS)

    methods = {
        "all-small: small samples": read_small("all-small"),
        "mixed: small samples": read_small("mixed"),
        **{f"mixed tile={t}: small samples": read_small(f"mixed tile={t}") for t in tiles},
        "mixed: 256x256 patch, random start": patches("mixed", starts),
    }
    for t in tiles:
        k = f"mixed tile={t}"
        methods[f"{k}: 256x256 patch, random start"] = patches(k, starts)
        methods[f"{k}: 256x256 patch, tile-aligned"] = patches(k, aligned)
    for t in tiles:
        k = f"mixed tile={t} cached"
        methods[f"{k}: small samples (warm)"] = read_small(k)
        methods[f"{k}: 256x256 patch, random start (warm)"] = patches(k, starts)
    units = 62
    rates = timed(methods, units, repeats, rotate=not args.fixed_order)
    base = np.asarray(rates["all-small: small samples"])
    order = "fixed order" if args.fixed_order else "order rotated every read"
    print(f"stores in {tmp}; arrays {', '.join(ARRAYS)}; medians of {repeats} passes; {order}; "
          f"{args.clock} time")  # fmt: skip
    print("| read | per second | speed vs a 256x256 sample | cost vs a 256x256 sample |")
    print("| --- | ---: | ---: | ---: |")
    for k, r in rates.items():
        ratio = np.asarray(r) / base
        med, cost = float(np.median(ratio)), float(np.median(1 / ratio))
        print(f"| {k} | {np.median(r):,.0f} | {med:.2f}x | {cost:.2f}x |")
    print("\ngoals (issue 12, cold reads): small samples >= 0.9x, random patch <= 2x")
    for t in tiles:
        k = f"mixed tile={t}"
        speed = np.asarray(rates[f"{k}: small samples"]) / base
        cost = base / np.asarray(rates[f"{k}: 256x256 patch, random start"])
        print(f"tile {t}: small samples {np.median(speed):.2f}x "
              f"(passes {speed.min():.2f}-{speed.max():.2f}), random patch {np.median(cost):.2f}x "
              f"(passes {cost.min():.2f}-{cost.max():.2f})")  # fmt: skip

    # The checks, timed on their own: each read of a method is followed by the
    # same read of the others, in an order rotated every read, so that no
    # method always follows one that flushed the CPU caches.
    checks = {
        f"{crc}: small samples": read_small(crc),
        f"{no_crc}: small samples": read_small(no_crc),
        f"{unwatched}: small samples": read_small(unwatched),
        f"{crc}: 256x256 patch, random start": patches(crc, starts),
        f"{no_crc}: 256x256 patch, random start": patches(no_crc, starts),
    }
    rates = timed(checks, units, 2 * repeats, rotate=True)
    print(f"\nchecks on {crc}: time per read with the check / without it, medians of "
          f"{2 * repeats} passes")  # fmt: skip
    print("| check | read | with | without | with / without (median of passes) | range |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    pairs = [
        ("per-chunk crc32c", "small samples", no_crc),
        ("per-chunk crc32c", "256x256 patch, random start", no_crc),
        ("store unchanged (stat)", "small samples", unwatched),
    ]
    for check, what, without in pairs:
        r_with = np.asarray(rates[f"{crc}: {what}"])
        r_without = np.asarray(rates[f"{without}: {what}"])
        cost = r_without / r_with
        us_with, us_without = 1e6 / np.median(r_with), 1e6 / np.median(r_without)
        print(f"| {check} | {what} | {us_with:.0f} us | {us_without:.0f} us | "
              f"{np.median(cost):.3f}x | {cost.min():.3f}-{cost.max():.3f} |")  # fmt: skip
    if args.keep is None:
        for s in opened.values():
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
