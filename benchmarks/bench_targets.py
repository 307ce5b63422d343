"""Benchmark ``maskprep.targets`` against each target's peer on the same image.

Run from the repository root::

    python benchmarks/bench_targets.py              # full run
    python benchmarks/bench_targets.py --quick      # smoke test, small image

The image is the border benchmark's first case (``bench_border.colony_cells``,
1024x1024, 250 touching cells of radius 8-20, ids 1..250, since stardist
casts ids to uint16 and MONAI compares them in float32), plus one small 3D
volume for StarDist 3D. Every maskprep call and its peer run alternately in
the same process on the same array, each warmed up first (numba compiles,
caches fill); the table gives medians. Each row also checks that both
produce the same target.

Peers:

* ``boundary``: ``skimage.segmentation.find_boundaries(mode="inner")`` made
  into the 3-class map; width 3 by applying it three times.
* ``distance``: ``stardist.utils.edt_prob`` on its default scipy path, and
  on seung-lab ``edt`` (``_edt_prob_edt``) when that package is importable
  (not a maskprep dependency).
* ``stardist``: ``stardist.geometry.star_dist(mode="cpp")`` (OpenMP, all
  cores) and ``star_dist3D(Rays_GoldenSpiral(96), mode="cpp")``.
* ``hover``: ``monai.transforms.ComputeHoVerMaps``.
* ``affinities``: gunpowder's ``seg_to_affgraph`` (channel-first int32)
  re-typed here as numpy slices: gunpowder pins zarr 2, so it cannot be
  installed next to maskprep (checked equal to gunpowder 1.4.4's own
  function, run in a separate environment, and about as fast).
* ``cellpose``: ``cellpose.dynamics.masks_to_flows_gpu`` on the CPU device
  (cellpose 4; the flows of ``labels_to_flows``), when cellpose is
  importable (a test dependency). torch sums the last ``N % 16`` instance
  pixels' neighbours in another order (see tests/test_cellpose_flows.py),
  hence a difference in the last bits there.
* ``void``: the border pixels found with numpy neighbour comparisons
  (``between``) or ``find_boundaries(mode="thick")`` (``around``), then
  ``scipy.ndimage.distance_transform_edt`` of their complement ``<= width``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_border import colony_cells
from monai.transforms import ComputeHoVerMaps
from stardist import Rays_GoldenSpiral
from stardist.geometry import star_dist, star_dist3D
from stardist.utils import _edt_prob_scipy

from maskprep.targets.affinities import affinities
from maskprep.targets.boundary import boundary_map
from maskprep.targets.distance import distance_map
from maskprep.targets.hover import hover_maps
from maskprep.targets.stardist import star_distances
from maskprep.targets.voidband import void_border_mask

try:
    import torch
    from cellpose.dynamics import masks_to_flows_gpu

    from maskprep.targets.cellpose import cellpose_flows
except ImportError:  # pragma: no cover - depends on the environment
    masks_to_flows_gpu = None

try:
    import edt as _edt  # type: ignore[import-not-found]  # noqa: F401
    from stardist.utils import _edt_prob_edt
except ImportError:  # pragma: no cover - depends on the environment
    _edt_prob_edt = None

LONG_OFFSETS = [(-1, 0), (0, -1), (-3, 0), (0, -3), (-9, 0), (0, -9)]
VOID_WIDTH = 3.0


def skimage_boundary(lab: np.ndarray, width: int) -> np.ndarray:
    rest = lab
    bnd = np.zeros(lab.shape, bool)
    for _ in range(width):
        found = find_boundaries(rest, mode="inner")
        bnd |= found
        if width > 1:
            rest = np.where(found, 0, rest)
    return np.where(lab == 0, 0, np.where(bnd, 2, 1)).astype(np.uint8)


def numpy_affinities(lab: np.ndarray, offsets: list[tuple[int, ...]]) -> np.ndarray:
    """gunpowder's seg_to_affgraph as written there: channel-first int32, products of tests."""
    aff = np.zeros((len(offsets), *lab.shape), np.int32)
    for c, off in enumerate(offsets):
        dst = tuple(slice(max(0, -o), min(n, n - o)) for o, n in zip(off, lab.shape, strict=True))
        src = tuple(slice(max(0, o), min(n, n + o)) for o, n in zip(off, lab.shape, strict=True))
        a, b = lab[dst], lab[src]
        aff[(c, *dst)] = (a == b) * (a > 0) * (b > 0)
    return aff


def scipy_void(lab: np.ndarray, width: float, mode: str) -> np.ndarray:
    if mode == "around":
        seeds = find_boundaries(lab, mode="thick")
    else:
        seeds = np.zeros(lab.shape, bool)
        for axis in range(lab.ndim):
            a = np.moveaxis(lab, axis, 0)
            s = np.moveaxis(seeds, axis, 0)
            pair = (a[1:] != a[:-1]) & (a[1:] != 0) & (a[:-1] != 0)
            s[1:] |= pair
            s[:-1] |= pair
    return ndimage.distance_transform_edt(~seeds) <= width


def compare(a: np.ndarray, b: np.ndarray) -> str:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        return f"shapes differ {a.shape} {b.shape}"
    if np.array_equal(a, b):
        return "identical"
    return f"max |diff| {np.abs(a.astype(np.float64) - b.astype(np.float64)).max():.1e}"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(
    ours: Callable[[], object], peer: Callable[[], object], repeats: int
) -> tuple[float, float, str]:
    """Medians (ms) of alternating runs after one warm-up of each, and the check."""
    a = ours()
    b = peer()
    check = compare(a, b)  # type: ignore[arg-type]
    t_ours: list[float] = []
    t_peer: list[float] = []
    for _ in range(repeats):
        t_ours.append(timed(ours)[0])
        t_peer.append(timed(peer)[0])
    return float(np.median(t_ours)) * 1e3, float(np.median(t_peer)) * 1e3, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="256x256 image, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per method")
    args = parser.parse_args()
    if args.quick:
        lab = colony_cells((256, 256), 30, (8, 20), 3, (1, 1), 1)
        lab3 = colony_cells((32, 32, 32), 10, (3, 6), 2, (1, 1, 1), 3)
        fast, slow = 3, 2
        name = "256^2, 30 cells r 8-20"
    else:
        lab = colony_cells((1024, 1024), 250, (8, 20), 10, (1, 1), 1)
        lab3 = colony_cells((64, 64, 64), 40, (4, 9), 4, (1, 1, 1), 3)
        fast, slow = 15, 5
        name = "1024^2, 250 cells r 8-20"
    if args.repeats is not None:
        fast = slow = args.repeats
    rays96 = Rays_GoldenSpiral(96)
    hover_peer = ComputeHoVerMaps()

    rows: list[tuple[str, str, Callable[[], object], Callable[[], object], int]] = [
        (
            "boundary w=1",
            "skimage find_boundaries",
            lambda: boundary_map(lab),
            lambda: skimage_boundary(lab, 1),
            fast,
        ),
        (
            "boundary w=3",
            "find_boundaries x3",
            lambda: boundary_map(lab, width=3),
            lambda: skimage_boundary(lab, 3),
            fast,
        ),
        (
            "distance",
            "stardist edt_prob (scipy)",
            lambda: distance_map(lab),
            lambda: _edt_prob_scipy(lab),
            fast,
        ),
    ]
    if _edt_prob_edt is not None:
        rows.append(
            (
                "distance",
                "stardist edt_prob (edt)",
                lambda: distance_map(lab),
                lambda: _edt_prob_edt(lab),
                fast,
            )
        )
    rows += [
        (
            "stardist 32 rays",
            "stardist C++ star_dist",
            lambda: star_distances(lab, n_rays=32),
            lambda: star_dist(lab, 32, mode="cpp"),
            slow,
        ),
        (
            "stardist3D 96 rays *",
            "stardist C++ star_dist3D",
            lambda: star_distances(lab3, n_rays=96),
            lambda: star_dist3D(lab3, rays96, mode="cpp"),
            slow,
        ),
        (
            "hover",
            "MONAI ComputeHoVerMaps",
            lambda: hover_maps(lab),
            lambda: np.moveaxis(np.asarray(hover_peer(lab[None])), 0, -1),
            slow,
        ),
        (
            "affinities -1",
            "numpy (gunpowder formula)",
            lambda: affinities(lab),
            lambda: np.moveaxis(numpy_affinities(lab, [(-1, 0), (0, -1)]), 0, -1),
            fast,
        ),
        (
            "affinities 6 long",
            "numpy (gunpowder formula)",
            lambda: affinities(lab, offsets=LONG_OFFSETS),
            lambda: np.moveaxis(numpy_affinities(lab, LONG_OFFSETS), 0, -1),
            fast,
        ),
    ]
    if masks_to_flows_gpu is not None:
        rows.append(
            (
                "cellpose flows",
                "cellpose masks_to_flows (CPU)",
                lambda: cellpose_flows(lab),
                lambda: np.moveaxis(
                    masks_to_flows_gpu(lab, device=torch.device("cpu"))[0], 0, -1
                ).astype(np.float32),
                min(slow, 3),
            )
        )
    rows += [
        (
            "void between w=3",
            "numpy seeds + scipy EDT",
            lambda: void_border_mask(lab, width=VOID_WIDTH, mode="between"),
            lambda: scipy_void(lab, VOID_WIDTH, "between"),
            fast,
        ),
        (
            "void around w=3",
            "find_boundaries + scipy EDT",
            lambda: void_border_mask(lab, width=VOID_WIDTH, mode="around"),
            lambda: scipy_void(lab, VOID_WIDTH, "around"),
            fast,
        ),
    ]
    n3 = len(np.unique(lab3)) - 1
    print(f"image: {name}; * 3D: {lab3.shape[0]}^3, {n3} blobs; medians of alternating runs")
    head = f"{'target':<22}{'peer':<28}{'maskprep ms':>12}{'peer ms':>10}{'peer/ours':>11}  check"
    print(head)
    print("-" * len(head))
    for target, peer_name, ours, peer, repeats in rows:
        t_ours, t_peer, check = bench(ours, peer, repeats)
        print(
            f"{target:<22}{peer_name:<28}{t_ours:>12.2f}{t_peer:>10.2f}"
            f"{t_peer / t_ours:>10.1f}x  {check}"
        )


if __name__ == "__main__":
    main()
