"""Benchmark ``maskprep.border_weights`` against the usual ways of computing it.

Run from the repository root::

    python benchmarks/bench_border.py            # full run (about a minute)
    python benchmarks/bench_border.py --quick    # smoke test, small cases
    python benchmarks/bench_border.py --skip-public
    python benchmarks/bench_border.py --skip-public --no-scaling

Methods, all timed in the same process on the same inputs, interleaved (one
call of each per round, so that load from other jobs hits them alike):

* ``maskprep``: ``border_weights`` as callers get it (``method="auto"``), one
  thread; the row says which transform "auto" picked.
* ``windowed`` / ``separable``: the same with the transform forced.
* ``maskprep-2thr``: ``method="auto"`` with ``threads=2`` (checked
  byte-identical to one thread).
* ``floor``: numpy allocating two float32 distance images and evaluating
  ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` over the image: what any method
  pays once the distances are known.
* ``public``: one full-image ``scipy.ndimage.distance_transform_edt`` per
  instance, stacked and sorted along the instance axis, as public U-Net code
  does. Slow and memory hungry (instances x pixels float64), so it is timed
  once, and only where the stack fits in ``--public-max-gb``; elsewhere its
  time is extrapolated from a few instances and marked ``~``.
* ``scipy-crop``: scipy's EDT on each instance's bounding box grown by the
  cutoff radius R, merged into a running two-smallest with numpy.
* ``edt-crop``: the same with seung-lab ``edt`` (not a maskprep dependency;
  skipped with a note when it is not importable).

Cases are built deterministically from a seeded numpy RNG: cells are grown in
colonies, each new cell placed against an existing one, and pixels covered by
several disks go to the one of least power distance, so neighbours really touch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskprep import _kernels, border_weights
from maskprep.targets import border as border_mod

try:
    import edt as seung_edt  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    seung_edt = None

W0 = 10.0
SIGMA = 5.0
TOLERANCE = 1e-6


def colony_cells(
    shape: tuple[int, ...],
    n_cells: int,
    radius: tuple[float, float],
    n_colonies: int,
    spacing: tuple[float, ...],
    seed: int,
) -> np.ndarray:
    """Label image of ``n_cells`` touching round cells grown in ``n_colonies`` colonies.

    Radii are in physical units (``spacing``). Each new cell is placed against
    a random earlier cell of its colony, overlapping it slightly; overlaps are
    split by power distance, which keeps every pixel inside its own disk.
    """
    rng = np.random.default_rng(seed)
    sp = np.asarray(spacing, dtype=np.float64)
    extent = np.asarray(shape) * sp
    centres: list[np.ndarray] = []
    radii: list[float] = []
    colony: list[int] = []
    per_colony = -(-n_cells // n_colonies)
    attempts = 0
    while len(centres) < n_cells:
        attempts += 1
        if attempts > 200 * n_cells:
            raise RuntimeError("could not place the cells; lower the density")
        r = rng.uniform(*radius)
        c_id = len(centres) // per_colony
        members = [i for i, c in enumerate(colony) if c == c_id]
        if not members:
            centre = rng.uniform(r, extent - r)
        else:
            parent = members[rng.integers(len(members))]
            direction = rng.normal(size=len(shape))
            direction /= np.linalg.norm(direction)
            centre = centres[parent] + direction * 0.9 * (radii[parent] + r)
            if np.any(centre < r) or np.any(centre > extent - r):
                continue
        if centres:
            dist = np.linalg.norm(np.asarray(centres) - centre, axis=1)
            if np.any(dist < 0.75 * (np.asarray(radii) + r)):
                continue
        centres.append(centre)
        radii.append(r)
        colony.append(c_id)
    lab = np.zeros(shape, dtype=np.int32)
    best = np.full(shape, np.inf)
    for i, (centre, r) in enumerate(zip(centres, radii, strict=True)):
        lo = np.maximum(np.floor((centre - r) / sp).astype(int), 0)
        hi = np.minimum(np.ceil((centre + r) / sp).astype(int) + 1, shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        grids = np.ogrid[sl]
        power = sum(((g * s) - c) ** 2 for g, s, c in zip(grids, sp, centre, strict=True)) - r * r
        take = (power <= 0) & (power < best[sl])
        best[sl][take] = power[take]
        lab[sl][take] = i + 1
    return lab


def cases(quick: bool) -> list[tuple[str, np.ndarray, tuple[float, ...]]]:
    if quick:
        return [
            ("256^2, 30 cells r 8-20", colony_cells((256, 256), 30, (8, 20), 3, (1, 1), 1), (1, 1)),
            (
                "48^3, 20 blobs sp (1,.5,.5)",
                colony_cells((48, 48, 48), 20, (2.5, 5), 2, (1, 0.5, 0.5), 3),
                (1, 0.5, 0.5),
            ),
        ]
    return [
        (
            "1024^2, 250 cells r 8-20",
            colony_cells((1024, 1024), 250, (8, 20), 10, (1, 1), 1),
            (1.0, 1.0),
        ),
        (
            "1024^2, 2000 cells r 4-8",
            colony_cells((1024, 1024), 2000, (4, 8), 40, (1, 1), 2),
            (1.0, 1.0),
        ),
        (
            "128^3, 300 blobs sp (1,.5,.5)",
            colony_cells((128, 128, 128), 300, (2.5, 5), 10, (1, 0.5, 0.5), 3),
            (1.0, 0.5, 0.5),
        ),
    ]


def _weights(d1: np.ndarray, d2: np.ndarray, region_mask: np.ndarray, sigma: float) -> np.ndarray:
    w = W0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
    w[region_mask] = 0.0
    return w.astype(np.float32)


def floor(lab: np.ndarray, sigma: float) -> np.ndarray:
    """Two float32 distance images allocated and the border term evaluated over them."""
    d1 = np.full(lab.shape, 1.0, dtype=np.float32)
    d2 = np.full(lab.shape, 2.0, dtype=np.float32)
    s = d1 + d2
    return np.float32(W0) * np.exp(-(s * s) / np.float32(2.0 * sigma**2))


def public_full(lab: np.ndarray, sp: tuple[float, ...], sigma: float) -> np.ndarray:
    ids = np.unique(lab)
    ids = ids[ids != 0]
    stack = np.empty((ids.size, *lab.shape))
    for k, i in enumerate(ids):
        stack[k] = ndimage.distance_transform_edt(lab != i, sampling=sp)
    stack.sort(axis=0)
    return _weights(stack[0], stack[1], lab != 0, sigma)


def _crops(
    lab: np.ndarray, sp: tuple[float, ...], sigma: float
) -> list[tuple[int, tuple[slice, ...]]]:
    cutoff = sigma * np.sqrt(2.0 * np.log(1.0 / TOLERANCE))
    margins = [int(np.ceil(cutoff / s)) for s in sp]
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab)):
        if sl is None:
            continue
        grown = tuple(
            slice(max(0, s.start - m), min(n, s.stop + m))
            for s, m, n in zip(sl, margins, lab.shape, strict=True)
        )
        out.append((k + 1, grown))
    return out


def crop_method(
    edt_fn: Callable[[np.ndarray, tuple[float, ...]], np.ndarray], sigma: float
) -> Callable:
    def run(lab: np.ndarray, sp: tuple[float, ...]) -> np.ndarray:
        d1 = np.full(lab.shape, np.inf)
        d2 = np.full(lab.shape, np.inf)
        for i, grown in _crops(lab, sp, sigma):
            d = edt_fn(lab[grown] != i, sp)
            a = d1[grown]
            b = d2[grown]
            np.minimum(b, np.maximum(a, d), out=b)
            np.minimum(a, d, out=a)
        return _weights(d1, d2, lab != 0, sigma)

    return run


def _scipy_edt(mask: np.ndarray, sp: tuple[float, ...]) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=sp)


def _seung_edt(mask: np.ndarray, sp: tuple[float, ...]) -> np.ndarray:
    return seung_edt.edt(np.ascontiguousarray(mask, dtype=np.uint8), anisotropy=sp)


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: dict[str, int]
) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds per function, calling each once per round (``repeats[name]`` rounds)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    results: dict[str, object] = {}
    for r in range(max(repeats.values())):
        for name, fn in fns.items():
            if r >= repeats[name]:
                continue
            t0 = time.perf_counter()
            c0 = time.thread_time()
            results[name] = fn()
            CPU_TIMES.setdefault(name, []).append(time.thread_time() - c0)
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}, results


# Thread CPU seconds per call of the last interleaved() run (the caller's
# thread only: a threads=2 run's second thread is not counted).
CPU_TIMES: dict[str, list[float]] = {}


def auto_choice(lab: np.ndarray, sp: tuple[float, ...], sigma: float) -> tuple[str, float]:
    """The transform ``method="auto"`` picks for this image, and the cover it decides on."""
    arr, sp_n = border_mod._check_args(lab, W0, sigma, sp, "background")
    lab3, sp3, _ = border_mod._prepare(arr, sp_n)
    _, boxes = _kernels.scan_boxes(lab3)
    cutoff = sigma * np.sqrt(2.0 * np.log(1.0 / TOLERANCE))
    margins = [int(min(np.ceil(cutoff / s), n)) for s, n in zip(sp3, lab3.shape, strict=True)]
    cover = border_mod._cover(lab3.shape, boxes, margins)
    return border_mod._choose_method(lab3.shape, boxes, margins), cover


def scaling(repeats: int) -> None:
    """Time of both transforms against instance count, sigma and image size, one thread."""
    rows = []
    for n in (25, 100, 400, 1000):
        rows.append((f"512^2 cells={n}", (512, 512), n, 5.0))
    for sigma in (1.0, 2.5, 10.0, 20.0):
        rows.append((f"512^2 cells=400 sigma={sigma:g}", (512, 512), 400, sigma))
    for side, n in ((256, 100), (1024, 1600), (2048, 6400)):
        rows.append((f"{side}^2 cells={n}", (side, side), n, 5.0))
    for n in (20, 80, 320):
        rows.append((f"64^3 blobs={n}", (64, 64, 64), n, 5.0))
    for sigma in (1.0, 2.5):
        rows.append((f"64^3 blobs=80 sigma={sigma:g}", (64, 64, 64), 80, sigma))
    for side, n in ((96, 270), (128, 640)):
        rows.append((f"{side}^3 blobs={n}", (side, side, side), n, 5.0))
    print()
    print(
        "scaling: spacing 1, radius 3-6 px (2D) or 2-4 (3D), colonies of ~20 cells; one thread; "
        "ms = median wall clock, cpu = by thread CPU time (steadier on a loaded machine)"
    )
    header = (
        f"{'case':30s} {'cover':>7s} {'windowed ms':>12s} {'separable ms':>13s} "
        f"{'sep/win':>8s} {'cpu sep/win':>12s} {'auto':>10s}"
    )
    print(header)
    print("-" * len(header))
    for name, shape, n, sigma in rows:
        radius = (3.0, 6.0) if len(shape) == 2 else (2.0, 4.0)
        lab = colony_cells(shape, n, radius, max(1, n // 20), (1.0,) * len(shape), seed=n)
        sp = (1.0,) * len(shape)
        fns = {
            m: (lambda lab=lab, m=m, sigma=sigma: border_weights(lab, sigma=sigma, method=m))
            for m in ("windowed", "separable")
        }
        for fn in fns.values():
            fn()
        CPU_TIMES.clear()
        t, _ = interleaved(fns, dict.fromkeys(fns, repeats))
        cpu = {k: float(np.median(v)) for k, v in CPU_TIMES.items()}
        choice, cover = auto_choice(lab, sp, sigma)
        w, s = t["windowed"], t["separable"]
        ratio = cpu["separable"] / cpu["windowed"]
        # "(slower)": auto took the method that used more CPU time here.
        mark = "" if (choice == "separable") == (ratio < 1) else " (slower)"
        print(
            f"{name:30s} {cover:7.1f} {w * 1e3:12.2f} {s * 1e3:13.2f} {s / w:8.2f} "
            f"{ratio:12.2f} {choice + mark:>10s}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small cases, few repeats")
    parser.add_argument("--skip-public", action="store_true", help="skip the full-image method")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per method")
    parser.add_argument(
        "--public-max-gb", type=float, default=3.0, help="largest EDT stack to really time"
    )
    parser.add_argument("--sigma", type=float, default=SIGMA, help="sigma, in spacing units")
    parser.add_argument("--only", type=int, default=None, help="run only case number N (0-based)")
    args = parser.parse_args(argv)
    sigma = args.sigma
    repeats = args.repeats or (3 if args.quick else 21)
    crop_repeats = max(1, repeats // 5)
    notes = []
    if seung_edt is None:
        notes.append("edt-crop skipped: seung-lab `edt` is not importable (pip install edt).")
    if args.skip_public:
        notes.append("public skipped (--skip-public).")

    # Compile (or load from cache) every kernel variant outside the timings.
    for _, lab, sp in cases(quick=True):
        for method in ("windowed", "separable"):
            border_weights(lab, spacing=sp, sigma=sigma, method=method)
            border_weights(lab, spacing=sp, sigma=sigma, method=method, threads=2)
    print(
        f"w0={W0} sigma={sigma} tolerance={TOLERANCE} region=background; median of repeats "
        "(wall clock; cpu = this thread's CPU time); load average at start "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    header = (
        f"{'case':30s} {'method':20s} {'median ms':>11s} {'cpu ms':>9s} {'Mpix/s':>9s} "
        f"{'x maskprep':>11s}"
    )
    print(header)
    print("-" * len(header))
    summary = []
    for number, (name, lab, sp) in enumerate(cases(args.quick)):
        if args.only is not None and number != args.only:
            continue
        n_inst = int(lab.max())
        choice, cover = auto_choice(lab, sp, sigma)
        fns: dict[str, Callable[[], object]] = {
            "maskprep": lambda lab=lab, sp=sp: border_weights(lab, spacing=sp, sigma=sigma),
            "windowed": lambda lab=lab, sp=sp: border_weights(
                lab, spacing=sp, sigma=sigma, method="windowed"
            ),
            "separable": lambda lab=lab, sp=sp: border_weights(
                lab, spacing=sp, sigma=sigma, method="separable"
            ),
            "maskprep-2thr": lambda lab=lab, sp=sp: border_weights(
                lab, spacing=sp, sigma=sigma, threads=2
            ),
            "floor": lambda lab=lab: floor(lab, sigma),
            "scipy-crop": lambda lab=lab, sp=sp: crop_method(_scipy_edt, sigma)(lab, sp),
        }
        reps = dict.fromkeys(fns, repeats)
        reps["scipy-crop"] = crop_repeats
        if seung_edt is not None:
            fns["edt-crop"] = lambda lab=lab, sp=sp: crop_method(_seung_edt, sigma)(lab, sp)
            reps["edt-crop"] = crop_repeats
        CPU_TIMES.clear()
        t, res = interleaved(fns, reps)
        cpu = {k: float(np.median(v)) for k, v in CPU_TIMES.items()}
        ref = np.asarray(res["maskprep"])
        if np.asarray(res["maskprep-2thr"]).tobytes() != ref.tobytes():
            notes.append(f"{name}: threads=2 differs from threads=1")
        for label in ("windowed", "separable", "scipy-crop", "edt-crop"):
            if label in res:
                err = float(np.abs(np.asarray(res[label]) - ref).max())
                if err > 1e-4 * W0:
                    notes.append(f"{name}: {label} differs from maskprep by {err:.2e}")
        t_mp = t["maskprep"]
        rows: list[tuple[str, str, float, str]] = []
        for label in fns:
            shown = f"maskprep ({choice})" if label == "maskprep" else label
            rows.append((shown, f"{t[label] * 1e3:11.2f}", t[label], f"{cpu[label] * 1e3:9.2f}"))
        if not args.skip_public:
            stack_gb = n_inst * lab.size * 8 / 1e9
            if stack_gb <= args.public_max_gb:
                tp, res_p = interleaved(
                    {"p": lambda lab=lab, sp=sp: public_full(lab, sp, sigma)}, {"p": 1}
                )
                err = float(np.abs(np.asarray(res_p["p"]) - ref).max())
                notes.append(f"{name}: public timed once; max |public - maskprep| = {err:.2e}")
                rows.append(("public", f"{tp['p'] * 1e3:11.2f}", tp["p"], f"{'-':>9s}"))
            else:
                k = 5
                sample = [i for i in range(1, n_inst + 1)][:k]
                t0 = time.perf_counter()
                for i in sample:
                    ndimage.distance_transform_edt(lab != i, sampling=sp)
                tp_est = (time.perf_counter() - t0) / k * n_inst
                notes.append(
                    f"{name}: public not run (its stack needs {stack_gb:.0f} GB); "
                    f"~ = {k} full-image EDTs x {n_inst} instances, sort not included"
                )
                rows.append(("public", f"~{tp_est * 1e3:10.0f}", tp_est, f"{'-':>9s}"))
        for label, shown, tt, cpu_shown in rows:
            mpix = lab.size / tt / 1e6
            print(f"{name:30s} {label:20s} {shown} {cpu_shown} {mpix:9.1f} {tt / t_mp:10.1f}x")
        summary.append(
            f"{name}: auto={choice} (cover {cover:.1f}), {t_mp * 1e3:.2f} ms, "
            f"{lab.size / t_mp / 1e6:.1f} Mpix/s, {t['scipy-crop'] / t_mp:.1f}x scipy-crop, "
            f"{t_mp / t['floor']:.2f}x the floor ({t['floor'] * 1e3:.2f} ms); by thread CPU time "
            f"{cpu['scipy-crop'] / cpu['maskprep']:.1f}x scipy-crop, "
            f"{cpu['maskprep'] / cpu['floor']:.2f}x the floor"
        )
    print()
    for line in summary:
        print("summary:", line)
    for note in notes:
        print("note:", note)
    if not args.no_scaling and args.only is None:
        scaling(3 if args.quick else 7)


if __name__ == "__main__":
    main()
