"""Numba kernel for cellpose's flows, bit-identical to ``cellpose.dynamics``.

cellpose (``masks_to_flows_gpu``, run on the CPU) diffuses heat from one
centre pixel per instance: ``n_iter`` times, add 1 at every centre, then set
every instance pixel to the sum of itself and its 8 neighbours of the same
instance, in a fixed order, divided by 9 (Jacobi: all from the values
before the step). The flow is the central difference of the heat along y
and x (neighbours of any instance included), divided by its length plus
``1e-60``. Instances never exchange heat, so each is diffused in its own
small crop (it stays in cache) and the heat is put back for the
differences.

Everything here trusts its caller; no argument is checked.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cellpose_flows_2d"]

#: cellpose's neighbour order (itself first): the sum is taken in this order.
_DY = (0, -1, 1, 0, 0, -1, -1, 1, 1)
_DX = (0, 0, 0, -1, 1, -1, 1, -1, 1)


@numba.njit(nogil=True, cache=True)
def _boxes(idx: np.ndarray, count: int) -> np.ndarray:
    """``(count + 1, 4)``: y0, y1, x0, x1 (stops exclusive) per dense index."""
    box = np.empty((count + 1, 4), np.int64)
    box[:, 0] = idx.shape[0]
    box[:, 1] = 0
    box[:, 2] = idx.shape[1]
    box[:, 3] = 0
    for y in range(idx.shape[0]):
        for x in range(idx.shape[1]):
            k = idx[y, x]
            if k:
                box[k, 0] = min(box[k, 0], y)
                box[k, 1] = max(box[k, 1], y + 1)
                box[k, 2] = min(box[k, 2], x)
                box[k, 3] = max(box[k, 3], x + 1)
    return box


@numba.njit(nogil=True, cache=True)
def _centre(idx: np.ndarray, k: int, y0: int, y1: int, x0: int, x1: int) -> tuple[int, int]:
    """cellpose's ``center_of_mass``: the rounded mean (in box coordinates, half to
    even), or the instance pixel nearest to it (first in C order)."""
    sy = 0
    sx = 0
    n = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            if idx[y, x] == k:
                sy += y - y0
                sx += x - x0
                n += 1
    my = int(np.rint(sy / n))
    mx = int(np.rint(sx / n))
    if idx[y0 + my, x0 + mx] == k:
        return y0 + my, x0 + mx
    best = -1
    by = 0
    bx = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            if idx[y, x] == k:
                d = (x - x0 - mx) ** 2 + (y - y0 - my) ** 2
                if best < 0 or d < best:
                    best = d
                    by = y
                    bx = x
    return by, bx


@numba.njit(nogil=True, cache=True)
def _step(a: np.ndarray, b: np.ndarray, same: np.ndarray, row: int, n: int) -> None:
    """One diffusion step over a crop of ``n`` pixels, rows of ``row``: ``b`` from ``a``,
    summed in cellpose's neighbour order."""
    for p in range(row + 1, n - row - 1):
        s = a[p]
        s += a[p - row] * same[1, p]
        s += a[p + row] * same[2, p]
        s += a[p - 1] * same[3, p]
        s += a[p + 1] * same[4, p]
        s += a[p - row - 1] * same[5, p]
        s += a[p - row + 1] * same[6, p]
        s += a[p + row - 1] * same[7, p]
        s += a[p + row + 1] * same[8, p]
        b[p] = (s / 9.0) * same[0, p]


@numba.njit(nogil=True, cache=True)
def cellpose_flows_2d(idx: np.ndarray, count: int) -> np.ndarray:
    """``(H, W, 2)`` float32 flows (y, x) of dense ids ``idx`` (1..``count``),
    diffused in float64."""
    ny, nx = idx.shape
    out = np.zeros((ny, nx, 2), np.float32)
    if count == 0:
        return out
    heat = np.zeros((ny + 2, nx + 2), np.float64)
    box = _boxes(idx, count)
    n_iter = 0
    hmax = 0
    wmax = 0
    for k in range(1, count + 1):
        h = box[k, 1] - box[k, 0]
        w = box[k, 3] - box[k, 2]
        n_iter = max(n_iter, 2 * (h + w + 2))
        hmax = max(hmax, h)
        wmax = max(wmax, w)
    # One instance at a time, in a crop of its box with a one-pixel border:
    # ``same[i]`` is 1 where a pixel and its neighbour i are both of the
    # instance, ``a``/``b`` the heat before and after a step. A step is the
    # same arithmetic over every pixel of the crop (x * 0 adds nothing, exactly,
    # and pixels outside the instance get 0): numba vectorises it.
    size = (hmax + 2) * (wmax + 2)
    a = np.zeros(size, np.float64)
    b = np.zeros(size, np.float64)
    same = np.zeros((9, size), np.uint8)
    for k in range(1, count + 1):
        y0, y1, x0, x1 = box[k, 0], box[k, 1], box[k, 2], box[k, 3]
        row = x1 - x0 + 2
        n = (y1 - y0 + 2) * row
        a[:n] = 0
        b[:n] = 0
        same[:, :n] = 0
        for y in range(y0, y1):
            for x in range(x0, x1):
                if idx[y, x] == k:
                    p = (y - y0 + 1) * row + (x - x0 + 1)
                    for i in range(9):
                        yy = y + _DY[i]
                        xx = x + _DX[i]
                        if 0 <= yy < ny and 0 <= xx < nx and idx[yy, xx] == k:
                            same[i, p] = 1
        cy, cx = _centre(idx, k, y0, y1, x0, x1)
        c = (cy - y0 + 1) * row + (cx - x0 + 1)
        for _ in range(n_iter):
            a[c] += 1.0
            _step(a, b, same, row, n)
            a, b = b, a
        for y in range(y0, y1):
            for x in range(x0, x1):
                if idx[y, x] == k:
                    heat[y + 1, x + 1] = a[(y - y0 + 1) * row + (x - x0 + 1)]
    for y in range(ny):
        for x in range(nx):
            if idx[y, x]:
                dy = heat[y + 2, x + 1] - heat[y, x + 1]
                dx = heat[y + 1, x + 2] - heat[y + 1, x]
                norm = 1e-60 + np.sqrt(dy * dy + dx * dx)
                out[y, x, 0] = dy / norm
                out[y, x, 1] = dx / norm
    return out
