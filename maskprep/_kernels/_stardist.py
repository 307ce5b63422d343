"""Numba kernels for StarDist ray distances, bit-identical to stardist's C++.

stardist's ``c_star_dist`` walks every ray of every pixel in float32:
``p_n = p_{n-1} + step`` (``p_0 = 0``), visiting pixel ``lrint(i + p_n)``
until it leaves the image or the instance, and returns a distance that
depends only on the ray and on the step ``n`` at which it stopped. So the
per-ray tables (``ray_tables``) hold, for every step ``n``, that distance
and the pixel offset ``nearest(p_n)``, the same for every pixel: the walks
of all the pixels of a row of one instance can then advance together, 64
to a machine word of a bit mask of the instance (``star_dist_rows``), one
load, shift and AND per step for all of them.

``lrint(float32(i + p_n)) == i + nearest(p_n)`` for every pixel ``i`` unless
the fraction of ``p_n`` lies within ``eps`` of one half (``eps`` bounds the
rounding error of ``i + p_n`` for the image size; exactly one half is a tie,
whose rounding depends on the parity of ``i``). Those steps are marked
``unsafe`` and each pixel's own float32 coordinate is computed there, as the
C++ does.

Everything here trusts its caller; no argument is checked.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["instance_boxes", "ray_tables", "star_dist_rows", "steps_2d"]

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U58 = np.uint64(58)
_U63 = np.uint64(63)
#: Zero pixels around an instance's bit crop along y and x (and z in 3D), and
#: the zero words on each side of a crop row (they hold the x guard).
_GUARD = 2
_GUARD_WORDS = 2
#: The shift of an unsafe step's entry (a real shift is 0..63).
_UNSAFE = 64
#: ``(bit * _DEBRUIJN) >> 58`` is distinct for each of the 64 single bits.
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_TABLE = np.zeros(64, np.int64)
for _b in range(64):
    _DEBRUIJN_TABLE[((1 << _b) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = _b


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
    ``off`` ``(n_rays, L, ndim)`` int64 (their nearest pixel offsets),
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
    off = np.zeros((n_rays, length, ndim), np.int64)
    unsafe = np.zeros((n_rays, length), np.bool_)
    dist = np.zeros((n_rays, length), np.float32)
    for r in range(n_rays):
        p = np.zeros(ndim, np.float32)
        big = _F0
        for a in range(ndim):
            big = max(big, abs(steps[r, a]))
        t_corr = _HALF / big
        for n in range(1, lens[r] + 1):
            bad = False
            for a in range(ndim):
                p[a] = p[a] + steps[r, a]
                pos[r, n, a] = p[a]
                off[r, n, a] = _nearest(p[a])
                bad |= _near_half(p[a], eps)
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
    return pos, off, unsafe, dist


@numba.njit(nogil=True, cache=True)
def instance_boxes(idx: np.ndarray, count: int) -> np.ndarray:
    """``(count + 1, 3, 2)`` int64: per dense index (``dense_ids``), first and last
    position along each axis of ``idx`` (3 axes); row 0 unused."""
    box = np.empty((count + 1, 3, 2), np.int64)
    for a in range(3):
        box[:, a, 0] = idx.shape[a]
        box[:, a, 1] = -1
    for z in range(idx.shape[0]):
        for y in range(idx.shape[1]):
            for x in range(idx.shape[2]):
                k = idx[z, y, x]
                if k:
                    b = box[k]
                    b[0, 0] = min(b[0, 0], z)
                    b[0, 1] = max(b[0, 1], z)
                    b[1, 0] = min(b[1, 0], y)
                    b[1, 1] = max(b[1, 1], y)
                    b[2, 0] = min(b[2, 0], x)
                    b[2, 1] = max(b[2, 1], x)
    return box


@numba.njit(nogil=True, cache=True, inline="always")
def _low_bit(x: np.uint64) -> int:
    """Index of the lowest set bit of nonzero ``x`` (de Bruijn multiplication)."""
    low = x & (~x + _U1)
    return int(_DEBRUIJN_TABLE[np.int64((low * _DEBRUIJN) >> _U58)])


@numba.njit(nogil=True, cache=True)
def _entries(
    off: np.ndarray, unsafe: np.ndarray, dist: np.ndarray, plane: int, row: int
) -> tuple[np.ndarray, np.ndarray]:
    """The steps of each ray a walk must test, as word offsets into a bit crop.

    A safe step whose nominal pixel is that of the step before (itself safe)
    cannot end a walk, so it is left out. Returns per ray and entry (from
    1): ``entry[r, e]`` the offset in words from a pixel's word to the word
    holding its pixel at that step and the shift right that brings it to
    the pixel's bit (see ``star_dist_rows``), or for an unsafe step the step
    and 64; ``d[r, e]`` the distance of a walk ending there. Entries past a
    ray's last step are never reached: every walk has left the image there.
    """
    n_rays, length, _ = off.shape
    entry = np.zeros((n_rays, length, 2), np.int64)
    d = np.zeros((n_rays, length), np.float32)
    for r in range(n_rays):
        e = 0
        for n in range(1, length):
            same = not unsafe[r, n - 1]
            for a in range(3):
                same &= off[r, n, a] == off[r, n - 1, a]
            if same and not unsafe[r, n]:
                continue
            e += 1
            d[r, e] = dist[r, n]
            if unsafe[r, n]:
                entry[r, e, 0] = n
                entry[r, e, 1] = _UNSAFE
            else:
                entry[r, e, 0] = off[r, n, 0] * plane + off[r, n, 1] * row + (off[r, n, 2] >> 6)
                entry[r, e, 1] = off[r, n, 2] & 63
    return entry, d


@numba.njit(nogil=True, cache=True)
def star_dist_rows(
    idx: np.ndarray,
    count: int,
    pos: np.ndarray,
    off: np.ndarray,
    unsafe: np.ndarray,
    dist: np.ndarray,
    guard_z: int,
    out: np.ndarray,
) -> None:
    """Fill ``out`` (``idx.shape + (n_rays,)`` float32 zeros) with the ray distances.

    ``idx`` is 3D (a 2D image as one plane, ``guard_z`` 0, its tables with a
    zero first axis), dense ids 1..``count``. Each instance is copied into a
    bit crop (one bit per pixel along x, 64 to a word, a zero guard of 2
    pixels around it: a step moves at most one pixel, so no walk of a pixel
    still inside reaches further), and the walks of the up to 64 pixels of
    one word advance together: at each step, the crop word at that step's
    offset, shifted, says which of them are still inside; those that are not
    stop there. Steps flagged ``unsafe`` are done pixel by pixel with each
    pixel's own float32 coordinates, as the C++ does.
    """
    ny, nx = idx.shape[1:]
    n_rays = dist.shape[0]
    box = instance_boxes(idx, count)
    big = np.zeros(3, np.int64)
    for k in range(1, count + 1):
        for a in range(3):
            big[a] = max(big[a], box[k, a, 1] - box[k, a, 0] + 1)
    guard = (guard_z, _GUARD, _GUARD_WORDS * 64)
    row = (big[2] + 63) // 64 + 2 * _GUARD_WORDS
    plane = (big[1] + 2 * _GUARD) * row
    crop = np.zeros((big[0] + 2 * guard_z) * plane, np.uint64)
    entry, edist = _entries(off, unsafe, dist, plane, row)
    of = out.ravel()
    for k in range(1, count + 1):
        lo = box[k, :, 0]
        hi = box[k, :, 1] + 1
        words = (hi[2] - lo[2] + 63) // 64
        crop[: (hi[0] - lo[0] + 2 * guard_z) * plane] = 0
        for z in range(lo[0], hi[0]):
            for y in range(lo[1], hi[1]):
                base = (z - lo[0] + guard_z) * plane + (y - lo[1] + _GUARD) * row
                for x in range(lo[2], hi[2]):
                    if idx[z, y, x] == k:
                        b = x - lo[2] + guard[2]
                        crop[base + (b >> 6)] |= _U1 << np.uint64(b & 63)
        for z in range(lo[0], hi[0]):
            for y in range(lo[1], hi[1]):
                base = (z - lo[0] + guard_z) * plane + (y - lo[1] + _GUARD) * row
                for w in range(_GUARD_WORDS, _GUARD_WORDS + words):
                    pixels = crop[base + w]
                    if pixels == _U0:
                        continue
                    x0 = lo[2] + (w - _GUARD_WORDS) * 64
                    first = ((z * ny + y) * nx + x0) * n_rays
                    here = base + w
                    for r in range(n_rays):
                        ent = entry[r]
                        ray_dist = edist[r]
                        alive = pixels
                        e = 0
                        while alive != _U0:
                            e += 1
                            if ent[e, 1] == _UNSAFE:
                                at = pos[r, ent[e, 0]]
                                inside = _exact_step(
                                    crop, alive, at, (z, y, x0), lo, guard, plane, row
                                )
                            else:
                                p = here + ent[e, 0]
                                s = np.uint64(ent[e, 1])
                                # (hi << 1) << (63 - s): no shift by 64 when s == 0.
                                inside = (crop[p] >> s) | ((crop[p + 1] << _U1) << (_U63 - s))
                            dead = alive & ~inside
                            alive &= inside
                            d = ray_dist[e]
                            while dead != _U0:
                                b = _low_bit(dead)
                                dead &= dead - _U1
                                of[first + b * n_rays + r] = d


@numba.njit(nogil=True, cache=True)
def _exact_step(
    crop: np.ndarray,
    alive: np.uint64,
    p: np.ndarray,
    origin: tuple[int, int, int],
    lo: np.ndarray,
    guard: tuple[int, int, int],
    plane: int,
    row: int,
) -> np.uint64:
    """Which ``alive`` pixels of one word are inside at an unsafe step at ``p``:
    each pixel's own ``lrint(float32(coordinate) + p)`` per axis."""
    inside = _U0
    rest = alive
    fz = np.float32(origin[0])
    fy = np.float32(origin[1])
    while rest != _U0:
        b = _low_bit(rest)
        bit = _U1 << np.uint64(b)
        rest ^= bit
        zz = int(np.rint(fz + p[0])) - lo[0] + guard[0]
        yy = int(np.rint(fy + p[1])) - lo[1] + guard[1]
        xx = int(np.rint(np.float32(origin[2] + b) + p[2])) - lo[2] + guard[2]
        if (crop[zz * plane + yy * row + (xx >> 6)] >> np.uint64(xx & 63)) & _U1:
            inside |= bit
    return inside
