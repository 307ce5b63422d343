"""Numba kernels for StarDist ray distances, bit-identical to stardist's C++.

stardist's ``c_star_dist`` walks every ray of every pixel in float32:
``p_n = p_{n-1} + step`` (``p_0 = 0``), visiting pixel ``lrint(i + p_n)``
until it leaves the image or the instance, and returns a distance that
depends only on the ray and on the step ``n`` at which it stopped. So the
per-ray tables (``ray_tables``) hold, for every step ``n``, that distance
and the offset ``nearest(p_n)`` as a flat index into a copy of the labels
padded by one background pixel: the walk becomes one load and one compare
per step, and the padding ends it at the image border with no bounds check.

``lrint(float32(i + p_n)) == i + nearest(p_n)`` for every pixel ``i`` unless
the fraction of ``p_n`` lies within ``eps`` of one half (``eps`` bounds the
rounding error of ``i + p_n`` for the image size; exactly one half is a tie,
whose rounding depends on the parity of ``i``). Those steps are marked
``unsafe`` and the pixel's own float32 coordinate is computed there, as the
C++ does.

Everything here trusts its caller; no argument is checked.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "chessboard_inside",
    "first_steps",
    "ray_tables",
    "star_dist_2d",
    "star_dist_3d",
    "steps_2d",
]

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)


@numba.njit(nogil=True, cache=True, inline="always")
def _near_half(p: np.float32, eps: float) -> bool:
    f = p - np.floor(p)
    return bool(abs(np.float64(f) - 0.5) <= eps)


@numba.njit(nogil=True, cache=True, inline="always")
def _nearest(p: np.float32) -> int:
    fl = np.floor(p)
    return int(fl) + (1 if p - fl > _HALF else 0)


@numba.njit(nogil=True, cache=True)
def steps_2d(n_rays: int) -> np.ndarray:
    """``(n_rays, 2)`` float32 (row, column) steps: ``sin`` and ``cos`` of ``k * 2 pi / n_rays``.

    In float32 throughout with libm's ``sinf``/``cosf``, as ``c_star_dist``
    (numpy's own float32 ``sin`` differs in the last bit for some angles).
    """
    st = np.float32((2 * np.pi) / n_rays)
    out = np.empty((n_rays, 2), np.float32)
    for k in range(n_rays):
        phi = np.float32(k) * st
        out[k, 0] = np.sin(phi)
        out[k, 1] = np.cos(phi)
    return out


@numba.njit(nogil=True, cache=True)
def ray_tables(
    steps: np.ndarray, shape: np.ndarray, eps: float, corrected: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-ray walk tables for an image of ``shape`` (2 or 3 axes).

    ``steps`` is ``(n_rays, ndim)`` float32, one step per axis (C order).
    Returns ``pos`` ``(n_rays, L, ndim)`` float32 (the walk's coordinates),
    ``delta`` ``(n_rays, L)`` int64 (flat offsets into the padded image),
    ``unsafe`` ``(n_rays, L)`` bool and ``dist`` ``(n_rays, L)`` float32.
    Row 0 is the start; each ray's table runs until every pixel's walk has
    left the image. ``corrected``: the 2D distance (pulled back half a
    pixel along the ray, as ``c_star_dist``); else the 3D one (norm of the
    rounded offset, as ``c_star_dist3d``).
    """
    n_rays, ndim = steps.shape
    lens = np.zeros(n_rays, np.int64)
    for r in range(n_rays):
        p = np.zeros(ndim, np.float32)
        n = 0
        inside = True
        while inside:
            n += 1
            for a in range(ndim):
                p[a] = p[a] + steps[r, a]
            for a in range(ndim):
                if abs(p[a]) >= shape[a] + 1:
                    inside = False
        lens[r] = n
    length = lens.max() + 1
    pos = np.zeros((n_rays, length, ndim), np.float32)
    delta = np.zeros((n_rays, length), np.int64)
    unsafe = np.zeros((n_rays, length), np.bool_)
    dist = np.zeros((n_rays, length), np.float32)
    strides = np.ones(ndim, np.int64)
    for a in range(ndim - 2, -1, -1):
        strides[a] = strides[a + 1] * (shape[a + 1] + 2)
    for r in range(n_rays):
        p = np.zeros(ndim, np.float32)
        big = _F0
        for a in range(ndim):
            big = max(big, abs(steps[r, a]))
        t_corr = _HALF / big
        for n in range(1, lens[r] + 1):
            d = 0
            bad = False
            for a in range(ndim):
                p[a] = p[a] + steps[r, a]
                pos[r, n, a] = p[a]
                d += _nearest(p[a]) * strides[a]
                bad |= _near_half(p[a], eps)
            delta[r, n] = d
            unsafe[r, n] = bad
            if corrected:
                # c_star_dist: x += (t_corr - 1) * dx, all in float32.
                x = p[0] + (t_corr - _F1) * steps[r, 0]
                y = p[1] + (t_corr - _F1) * steps[r, 1]
                dist[r, n] = np.sqrt(x * x + y * y)
            else:
                s = 0
                for a in range(ndim):
                    k = int(np.rint(p[a]))
                    s += k * k
                dist[r, n] = np.float32(np.sqrt(np.float64(s)))
    return pos, delta, unsafe, dist


@numba.njit(nogil=True, cache=True)
def _minmax_pass(lab: np.ndarray, c: np.ndarray, stride: int, n: int) -> np.ndarray:
    """``min over d of max(|d|, c[p + d * stride])``, with 0 where the label differs.

    One step of the separable chessboard distance: along the first axis, ``c``
    is the half-length of the label's run through the pixel; after this pass
    along a second axis, the half-width of the largest square of the label
    centred on it. The search stops at ``|d| >= best``.
    """
    lf = lab.ravel()
    cf = c.ravel()
    out = np.zeros(cf.size, np.int32)
    m = cf.size
    for p in range(m):
        v = lf[p]
        if v == 0:
            continue
        best = cf[p]
        pos = (p // stride) % n
        d = 1
        while d < best:
            if pos - d < 0 or lf[p - d * stride] != v:
                best = d
                break
            best = min(best, max(d, cf[p - d * stride]))
            if pos + d >= n or lf[p + d * stride] != v:
                best = d
                break
            best = min(best, max(d, cf[p + d * stride]))
            d += 1
        out[p] = best
    return out


@numba.njit(nogil=True, cache=True)
def chessboard_inside(padded: np.ndarray) -> np.ndarray:
    """int32 ``c`` per pixel: every pixel within chessboard distance ``< c`` has its label.

    ``padded`` has a background border, so the image edge counts as outside.
    Exact chessboard distance to the nearest pixel of another label,
    computed separably (run half-lengths along x, then min-max passes).
    Starting the walks there cuts the steps walked by 28% on the 1024^2
    benchmark image.
    """
    lf = padded.ravel()
    nx = padded.shape[-1]
    c: np.ndarray = np.zeros(lf.size, np.int32)
    p = 0
    while p < lf.size:
        v = lf[p]
        e = p + 1
        while e < lf.size and lf[e] == v and e % nx != 0:
            e += 1
        if v != 0:
            for t in range(p, e):
                c[t] = min(t - p + 1, e - t)
        p = e
    c = c.reshape(padded.shape)
    stride = nx
    for a in range(padded.ndim - 2, -1, -1):
        c = _minmax_pass(padded, c, stride, padded.shape[a]).reshape(padded.shape)
        stride *= padded.shape[a]
    return c


@numba.njit(nogil=True, cache=True)
def first_steps(pos: np.ndarray, unsafe: np.ndarray, c_max: int) -> np.ndarray:
    """``first[r, c]``: first step of ray ``r`` whose pixel may lie at chessboard distance ``>= c``.

    Steps before it stay strictly within distance ``c`` of the start, so a
    pixel whose ``chessboard_inside`` is ``c`` can start its walk there. An
    unsafe step may land one pixel further than its nominal offset.
    """
    n_rays, length, ndim = pos.shape
    first = np.zeros((n_rays, c_max + 1), np.int64)
    for r in range(n_rays):
        c = 0
        for n in range(1, length):
            norm = 0
            for a in range(ndim):
                norm = max(norm, abs(_nearest(pos[r, n, a])))
            if unsafe[r, n]:
                norm += 1
            while c <= c_max and c <= norm:
                first[r, c] = n
                c += 1
        while c <= c_max:
            first[r, c] = length - 1
            c += 1
    return first


@numba.njit(nogil=True, cache=True)
def first_unsafe(unsafe: np.ndarray) -> np.ndarray:
    """Per ray, the first unsafe step (the table length if none)."""
    n_rays, length = unsafe.shape
    out = np.full(n_rays, length, np.int64)
    for r in range(n_rays):
        for n in range(1, length):
            if unsafe[r, n]:
                out[r] = n
                break
    return out


@numba.njit(nogil=True, cache=True, inline="always")
def _walk(
    pf: np.ndarray,
    v: np.uint64,
    base: int,
    df: np.ndarray,
    off: int,
    start: int,
) -> int:
    """Step at which the nominal walk from ``base`` leaves label ``v``.

    The exact answer only when below the ray's first unsafe step.
    """
    n = start
    while pf[base + df[off + n]] == v:
        n += 1
    return n


@numba.njit(nogil=True, cache=True)
def star_dist_2d(
    padded: np.ndarray,
    pos: np.ndarray,
    delta: np.ndarray,
    unsafe: np.ndarray,
    dist: np.ndarray,
    inside: np.ndarray,
    first: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out`` (``(H, W, n_rays)`` float32 zeros) with the ray distances.

    ``padded`` is the labels with a zero border; ``inside`` / ``first``
    (``chessboard_inside``, ``first_steps``) let each walk start where it
    may first leave the instance. ``out`` comes from the caller: numpy's
    large allocations get huge pages, so writing it faults far less.
    """
    ny = padded.shape[0] - 2
    nx = padded.shape[1] - 2
    n_rays, length = delta.shape
    row = nx + 2
    pf = padded.ravel()
    cf = inside.ravel()
    df = delta.ravel()
    distf = dist.ravel()
    u = first_unsafe(unsafe)
    for i in range(ny):
        fi = np.float32(i)
        for j in range(nx):
            base = (i + 1) * row + j + 1
            v = pf[base]
            if v == 0:
                continue
            fj = np.float32(j)
            c = cf[base]
            o = out[i, j]
            for r in range(n_rays):
                off = r * length
                n = _walk(pf, v, base, df, off, first[r, c])
                if n >= u[r]:
                    # Rare: the walk reached an unsafe step; redo it with
                    # the pixel's own float32 coordinates there.
                    n = first[r, c] - 1
                    while True:
                        n += 1
                        if unsafe[r, n]:
                            ii = int(np.rint(fi + pos[r, n, 0]))
                            jj = int(np.rint(fj + pos[r, n, 1]))
                            k = (ii + 1) * row + jj + 1
                        else:
                            k = base + df[off + n]
                        if pf[k] != v:
                            break
                o[r] = distf[off + n]


@numba.njit(nogil=True, cache=True)
def star_dist_3d(
    padded: np.ndarray,
    pos: np.ndarray,
    delta: np.ndarray,
    unsafe: np.ndarray,
    dist: np.ndarray,
    inside: np.ndarray,
    first: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out`` (``(Z, Y, X, n_rays)`` float32 zeros); ``padded`` has a zero border."""
    nz = padded.shape[0] - 2
    ny = padded.shape[1] - 2
    nx = padded.shape[2] - 2
    n_rays, length = delta.shape
    row = nx + 2
    plane = (ny + 2) * row
    pf = padded.ravel()
    cf = inside.ravel()
    df = delta.ravel()
    distf = dist.ravel()
    u = first_unsafe(unsafe)
    for i in range(nz):
        fi = np.float32(i)
        for j in range(ny):
            fj = np.float32(j)
            for m in range(nx):
                base = (i + 1) * plane + (j + 1) * row + m + 1
                v = pf[base]
                if v == 0:
                    continue
                fm = np.float32(m)
                c = cf[base]
                o = out[i, j, m]
                for r in range(n_rays):
                    off = r * length
                    n = _walk(pf, v, base, df, off, first[r, c])
                    if n >= u[r]:
                        n = first[r, c] - 1
                        while True:
                            n += 1
                            if unsafe[r, n]:
                                ii = int(np.rint(fi + pos[r, n, 0]))
                                jj = int(np.rint(fj + pos[r, n, 1]))
                                mm = int(np.rint(fm + pos[r, n, 2]))
                                k = (ii + 1) * plane + (jj + 1) * row + mm + 1
                            else:
                                k = base + df[off + n]
                            if pf[k] != v:
                                break
                    o[r] = distf[off + n]
