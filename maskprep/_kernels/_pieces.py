"""Numba kernel finding the connected pieces of every instance in one pass.

Everything here trusts its caller: the label array is 3D (a 2D image is a
single plane), C-contiguous, of an unsigned integer dtype (signed ids are
viewed as unsigned of the same width, since ids are only compared for
equality), and no argument is checked.

The pieces are found on *runs*: maximal segments of one nonzero id along a
row (the last axis). Two runs of the same id touch (full connectivity: 8
neighbours in 2D, 26 in 3D) when their rows are neighbours and their
columns overlap or meet diagonally. The rows before a row in raster order
that can touch it are the one above it and the three of the plane before
(above, same, below), so one sweep that joins each new run with the runs of
those rows (union-find over runs) sees every touching pair once. Memory is
12 bytes a run plus 8 a row, not a label per pixel.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["piece_ids"]


@numba.njit(nogil=True, cache=True)
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@numba.njit(nogil=True, cache=True)
def _grow(a: np.ndarray, n: int) -> np.ndarray:
    b = np.empty(2 * a.size, a.dtype)
    b[:n] = a[:n]
    return b


@numba.njit(nogil=True, cache=True)
def _sweep(
    lab: np.ndarray,
    row: int,
    n: int,
    start: np.ndarray,
    stop: np.ndarray,
    parent: np.ndarray,
    row_first: np.ndarray,
) -> tuple[int, int]:
    """Runs and unions from row ``row`` (flat over the first two axes) with ``n``
    runs so far; stops before a row that might not fit (a row has at most
    ``nx`` runs). Returns the next row and run count. The run arrays are
    arguments, never reassigned here: that keeps them in registers."""
    nz, ny, nx = lab.shape
    lo = np.zeros(4, np.int64)  # per earlier row: the first run that may still touch
    hi = np.zeros(4, np.int64)
    rz = np.zeros(4, np.int64)
    ry = np.zeros(4, np.int64)
    for r in range(row, nz * ny):
        if n + nx > start.size:
            return r, n
        z = r // ny
        y = r - z * ny
        row_first[r] = n
        # The earlier rows this one can touch: (z, y-1) and (z-1, y-1..y+1).
        for k in range(4):
            zz, yy = (z, y - 1) if k == 0 else (z - 1, y + k - 2)
            rz[k], ry[k] = zz, yy
            if zz < 0 or yy < 0 or yy >= ny:
                lo[k] = hi[k] = 0
            else:
                lo[k] = row_first[zz * ny + yy]
                hi[k] = row_first[zz * ny + yy + 1]
        x = 0
        while x < nx:
            v = lab[z, y, x]
            if v == 0:
                x += 1
                continue
            s = x
            x += 1
            while x < nx and lab[z, y, x] == v:
                x += 1
            start[n] = s
            stop[n] = x
            parent[n] = n
            root = n  # the root of the new run's set (only roots are ever linked)
            for k in range(4):
                # Runs ending before column s - 1 touch no later run of this row.
                while lo[k] < hi[k] and stop[lo[k]] < s:
                    lo[k] += 1
                m = lo[k]
                while m < hi[k] and start[m] <= x:  # x is one past the run's end
                    if parent[m] != root and lab[rz[k], ry[k], start[m]] == v:
                        other = _find(parent, m)
                        # The smaller index becomes the root: deterministic.
                        if other < root:
                            parent[root] = other
                            root = other
                        elif root < other:
                            parent[other] = root
                    m += 1
            n += 1
    return nz * ny, n


@numba.njit(nogil=True, cache=True)
def piece_ids(lab: np.ndarray) -> np.ndarray:
    """The id of every connected piece of every nonzero id of ``lab`` (3D), one entry
    a piece, in order of each piece's first run in C order.

    An id listed twice or more is in several separate pieces; the distinct
    values are the instance ids.
    """
    nz, ny, nx = lab.shape
    rows = nz * ny
    cap = max(4096, ny * nx, 2 * nx)
    start = np.empty(cap, np.int32)
    stop = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    row_first = np.zeros(rows + 1, np.int64)
    row, n = 0, 0
    while row < rows:
        row, n = _sweep(lab, row, n, start, stop, parent, row_first)
        if row < rows:
            start = _grow(start, n)
            stop = _grow(stop, n)
            parent = _grow(parent, n)
    row_first[rows] = n
    roots = 0
    for i in range(n):
        if parent[i] == i:
            roots += 1
    out = np.empty(roots, lab.dtype)
    j = 0
    for r in range(rows):
        z = r // ny
        y = r - z * ny
        for i in range(row_first[r], row_first[r + 1]):
            if parent[i] == i:
                out[j] = lab[z, y, start[i]]
                j += 1
    return out
