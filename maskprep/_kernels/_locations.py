"""Class locations in one pass: per class, the K pixels of smallest (hash priority, flat index).

The same selection as :func:`maskprep.weighting.locations.class_location_partial`
(the numpy reference, which tests compare this with), without materialising
the priorities of every pixel: one max-heap of K entries per class, updated
only when a pixel beats the heap's largest (about ``K * ln(M / K)`` times for
``M`` pixels of a class).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["smallest_locations"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


@njit(nogil=True, cache=True)
def _less(p1: np.uint64, f1: np.int64, p2: np.uint64, f2: np.int64) -> bool:
    return bool(p1 < p2 or (p1 == p2 and f1 < f2))


@njit(nogil=True, cache=True)
def _sift_down(prio: np.ndarray, flat: np.ndarray, n: int, i: int) -> None:
    """Restore the max-heap below ``i`` (entries ``0..n-1``)."""
    while True:
        left = 2 * i + 1
        if left >= n:
            return
        big = left
        right = left + 1
        if right < n and _less(prio[left], flat[left], prio[right], flat[right]):
            big = right
        if not _less(prio[i], flat[i], prio[big], flat[big]):
            return
        prio[i], prio[big] = prio[big], prio[i]
        flat[i], flat[big] = flat[big], flat[i]
        i = big


@njit(nogil=True, cache=True)
def _sift_up(prio: np.ndarray, flat: np.ndarray, i: int) -> None:
    while i > 0:
        parent = (i - 1) // 2
        if not _less(prio[parent], flat[parent], prio[i], flat[i]):
            return
        prio[i], prio[parent] = prio[parent], prio[i]
        flat[i], flat[parent] = flat[parent], flat[i]
        i = parent


@njit(nogil=True, cache=True)
def smallest_locations(
    labels: np.ndarray,
    origin: np.ndarray,
    strides: np.ndarray,
    key: np.uint64,
    num_classes: int,
    prio: np.ndarray,
    flat: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Fill ``prio``/``flat`` (``(num_classes, K)``, unordered heaps) and ``counts``.

    ``labels`` is the ``(Z, Y, X)`` block (2D blocks as ``Z = 1``), ``origin``
    its position and ``strides`` the global flat strides, both of 3 values.
    """
    nz, ny, nx = labels.shape
    k = prio.shape[1]
    for z in range(nz):
        fz = (origin[0] + z) * strides[0]
        for y in range(ny):
            fy = fz + (origin[1] + y) * strides[1]
            for x in range(nx):
                c = labels[z, y, x]
                if c >= num_classes:
                    continue
                f = fy + (origin[2] + x) * strides[2]
                h = np.uint64(f) ^ key
                h += _GOLDEN
                h = (h ^ (h >> _S30)) * _MIX1
                h = (h ^ (h >> _S27)) * _MIX2
                h = h ^ (h >> _S31)
                n = counts[c]
                if n < k:
                    prio[c, n] = h
                    flat[c, n] = f
                    counts[c] = n + 1
                    _sift_up(prio[c], flat[c], n)
                elif _less(h, f, prio[c, 0], flat[c, 0]):
                    prio[c, 0] = h
                    flat[c, 0] = f
                    _sift_down(prio[c], flat[c], k, 0)
