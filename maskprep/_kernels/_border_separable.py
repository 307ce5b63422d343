"""Separable "two nearest distinct instances" transform for the border weight map.

Same contract as :mod:`maskprep._kernels._border` (no checks, C-contiguous
labels viewed as unsigned, ``r2 = R**2``). Per pixel, four flat arrays carry
the two smallest squared distances to distinct instances found so far and
their ids (``f1 <= f2``; ids differ wherever both are finite; the id of an
``inf`` distance is never read, so it may be anything).

:func:`sep_x_pass` reads the labels along x; :func:`sep_line_pass` then
combines the pairs along one more axis at a time, exactly: the squared
distance is a sum over axes, and keeping two pairs per position loses
nothing, since a third id at one position is beaten there by two others and
so, after adding the same offset, everywhere the next pass carries it.
Values above ``r2`` are dropped as in the windowed kernels (any pair
involving them sums to more than R). The last pass writes the exponent of
the border term. The cost per pixel does not depend on how many instances
are near it, unlike the per-instance windowed kernels.

Why these 1D passes: a first version found the nearest by a lower envelope
of parabolas (Felzenszwalb-Huttenlocher) and the nearest of another id by a
search outwards from each pixel; it took 360 ms on the 128^3 benchmark case
(windowed kernels: 200 ms in the same run), the search dominating. Scalar
sweeps keeping, per line, the pairs not yet beaten were faster but branchy
(285 ms; windowed 205 ms). Sweeping blocks of lines in SIMD lanes, as here,
took 55-75 ms in runs where the windowed kernels took 190-260 ms.
"""

from __future__ import annotations

import numba
import numpy as np

from maskprep._kernels._border import _row_runs

__all__ = ["sep_line_pass", "sep_x_pass"]

_INF32 = np.float32(np.inf)
# Stands for "no such run" in pixel positions: its squared distance is far above any r2.
_NOWHERE = 1e15


@numba.njit(nogil=True, cache=True, inline="always")
def _fill(
    g1: np.ndarray,
    b1: np.ndarray,
    g2: np.ndarray,
    b2: np.ndarray,
    a: int,
    b: int,
    inside: bool,
    p1: float,
    k1: int,
    p2: float,
    k2: int,
    p3: float,
    k3: int,
    sx2: float,
    r2: float,
) -> None:
    """Pixels ``[a, b)`` of a row: nearest id ``k1`` at pixel ``p1`` (0 if ``inside``),
    second the nearer of ``k2`` at ``p2`` and ``k3`` at ``p3``.

    One branch-free loop per stretch of the row (vectorised by LLVM).
    """
    # Local names are distinct from the caller's (see _fold_rows).
    for fl_x in range(a, b):
        fl_f = np.float64(fl_x)
        fl_d1 = 0.0 if inside else sx2 * (fl_f - p1) * (fl_f - p1)
        fl_d2 = sx2 * (fl_f - p2) * (fl_f - p2)
        fl_d3 = sx2 * (fl_f - p3) * (fl_f - p3)
        fl_near = fl_d3 < fl_d2
        fl_d2 = fl_d3 if fl_near else fl_d2
        g1[fl_x] = fl_d1 if fl_d1 <= r2 else _INF32
        b1[fl_x] = k1
        g2[fl_x] = fl_d2 if fl_d2 <= r2 else _INF32
        b2[fl_x] = k3 if fl_near else k2


@numba.njit(nogil=True, cache=True, inline="always")
def _fill_inf(g1: np.ndarray, g2: np.ndarray, a: int, b: int) -> None:
    for fi_x in range(a, b):
        g1[fi_x] = _INF32
        g2[fi_x] = _INF32


@numba.njit(nogil=True, cache=True)
def sep_x_pass(
    lab: np.ndarray,
    sx2: float,
    r2: float,
    r0: int,
    r1: int,
    f1: np.ndarray,
    a1: np.ndarray,
    f2: np.ndarray,
    a2: np.ndarray,
) -> None:
    """Two nearest distinct ids along each row ``r0 <= r < r1`` of ``lab`` (rows, nx).

    The outputs may be wider than ``nx``; the padding gets ``inf``. Per
    row: the runs of equal ids, then for every stretch between run ends the
    candidates are fixed (the runs on either side, and beyond each the
    nearest run of another id), so each stretch is one vectorised loop;
    stretches farther than the cutoff from their nearest run are only
    filled with ``inf``. Ids where the distance is ``inf`` are left as
    they are: an ``inf`` pair never enters the two nearest, whatever its id.
    """
    nx = lab.shape[1]
    wide = f1.shape[1]
    # In float first: a tiny spacing must not overflow the integer.
    reach = int(min(np.float64(nx), np.sqrt(r2 / sx2))) + 1
    runs = np.empty(2 * nx + 2, dtype=np.int64)
    prev = np.empty(nx + 1, dtype=np.int64)
    nxt = np.empty(nx + 1, dtype=np.int64)
    far = _NOWHERE
    for r in range(r0, r1):
        row = lab[r]
        g1 = f1[r]
        g2 = f2[r]
        b1 = a1[r]
        b2 = a2[r]
        zero = row[0] - row[0]
        c = _row_runs(row, runs)
        m = c // 2
        _fill_inf(g1, g2, nx, wide)
        if m == 0:
            _fill_inf(g1, g2, 0, nx)
            continue
        # prev[i] / nxt[i]: nearest run to the left / right of run i with another id.
        prev[0] = -1
        for i in range(1, m):
            prev[i] = i - 1 if row[runs[2 * i - 2]] != row[runs[2 * i]] else prev[i - 1]
        nxt[m - 1] = -1
        for i in range(m - 2, -1, -1):
            nxt[i] = i + 1 if row[runs[2 * i + 2]] != row[runs[2 * i]] else nxt[i + 1]
        # Before the first run.
        s0 = runs[0]
        j = nxt[0]
        pj = np.float64(runs[2 * j]) if j >= 0 else far
        kj = row[runs[2 * j]] if j >= 0 else zero
        lo = max(0, s0 - reach)
        _fill_inf(g1, g2, 0, lo)
        _fill(g1, b1, g2, b2, lo, s0, False, np.float64(s0), row[s0], pj, kj, far, zero, sx2, r2)
        for i in range(m):
            s = runs[2 * i]
            e = runs[2 * i + 1]
            k = row[s]
            jp = prev[i]
            jn = nxt[i]
            pp = np.float64(runs[2 * jp + 1] - 1) if jp >= 0 else -far
            kp = row[runs[2 * jp]] if jp >= 0 else zero
            pn = np.float64(runs[2 * jn]) if jn >= 0 else far
            kn = row[runs[2 * jn]] if jn >= 0 else zero
            _fill(g1, b1, g2, b2, s, e, True, 0.0, k, pp, kp, pn, kn, sx2, r2)
            # The gap after run i, up to the next run (or the row's end).
            ea = e - 1
            if i == m - 1:
                hi = min(nx, ea + reach + 1)
                _fill(g1, b1, g2, b2, e, hi, False, np.float64(ea), k, pp, kp, -far, zero, sx2, r2)
                _fill_inf(g1, g2, hi, nx)
                continue
            sb = runs[2 * i + 2]
            if sb == e:
                continue
            kb = row[sb]
            jb = nxt[i + 1]
            pb2 = np.float64(runs[2 * jb]) if jb >= 0 else far
            kb2 = row[runs[2 * jb]] if jb >= 0 else zero
            mid = (ea + sb) // 2 + 1
            # Left half: nearest is run i; right half: run i + 1.
            hi = min(mid, ea + reach + 1)
            lo = max(mid, sb - reach)
            if k == kb:
                _fill(g1, b1, g2, b2, e, hi, False, np.float64(ea), k, pp, kp, pb2, kb2, sx2, r2)
                _fill_inf(g1, g2, hi, lo)
                _fill(g1, b1, g2, b2, lo, sb, False, np.float64(sb), k, pp, kp, pb2, kb2, sx2, r2)
            else:
                _fill(
                    g1,
                    b1,
                    g2,
                    b2,
                    e,
                    hi,
                    False,
                    np.float64(ea),
                    k,
                    pp,
                    kp,
                    np.float64(sb),
                    kb,
                    sx2,
                    r2,
                )
                _fill_inf(g1, g2, hi, lo)
                _fill(
                    g1,
                    b1,
                    g2,
                    b2,
                    lo,
                    sb,
                    False,
                    np.float64(sb),
                    kb,
                    pb2,
                    kb2,
                    np.float64(ea),
                    k,
                    sx2,
                    r2,
                )


@numba.njit(nogil=True, cache=True, inline="always")
def _fold_rows(
    g1: np.ndarray,
    b1: np.ndarray,
    g2: np.ndarray,
    b2: np.ndarray,
    at: np.uint64,
    off: np.float32,
    r2: np.float32,
    t0: np.ndarray,
    l0: np.ndarray,
    t1: np.ndarray,
    l1: np.ndarray,
) -> bool:
    """Merge the pairs ``g[at + c]`` (plus ``off``) into lane ``c``; True if any was kept.

    Both sides are sorted with distinct ids, so the merge needs one
    comparison of the firsts and one between two candidates for second
    (about 13 vector operations for both pairs, against 20 for folding
    them one at a time). "Kept" means a pair of this row is now among the
    lane's two and within ``r2``; otherwise both are beaten by pairs of
    their own id or by two of other ids. Values above ``r2`` may stay in
    the lanes (nothing within ``r2`` is ever beaten by them); the caller
    drops them at the end. Indices are unsigned so that numba emits no
    negative-index wraparound, which kept LLVM from vectorising the loop
    (measured 3x slower).
    """
    # Names here are distinct from the caller's: numba's inlining merged
    # same-named variables of different types (an index became a float,
    # measured 40% slower).
    fr_kept = False
    for fr_c in range(t0.size):
        fr_i = at + np.uint64(fr_c)
        fr_u0 = g1[fr_i] + off
        fr_u1 = g2[fr_i] + off
        fr_k0 = b1[fr_i]
        fr_k1 = b2[fr_i]
        fr_a0 = t0[fr_c]
        fr_a1 = t1[fr_c]
        fr_m0 = l0[fr_c]
        fr_m1 = l1[fr_c]
        fr_lt = fr_u0 < fr_a0
        fr_same = fr_k0 == fr_m0
        # Second: the better of the two ids' runners-up, by case.
        fr_xa = (not fr_same) & fr_lt
        fr_ya = (not fr_same) & (not fr_lt)
        fr_x = fr_a0 if fr_xa else fr_a1
        fr_xl = fr_m0 if fr_xa else fr_m1
        fr_y = fr_u0 if fr_ya else fr_u1
        fr_yl = fr_k0 if fr_ya else fr_k1
        fr_ylt = fr_y < fr_x
        t1[fr_c] = fr_y if fr_ylt else fr_x
        l1[fr_c] = fr_yl if fr_ylt else fr_xl
        t0[fr_c] = fr_u0 if fr_lt else fr_a0
        l0[fr_c] = fr_k0 if fr_lt else fr_m0
        fr_kept |= (fr_lt | fr_ylt) & (fr_u0 <= r2)
    return fr_kept


@numba.njit(nogil=True, cache=True, inline="always")
def _start_row(
    f1: np.ndarray,
    a1: np.ndarray,
    f2: np.ndarray,
    a2: np.ndarray,
    at: np.uint64,
    rf1: np.ndarray,
    ra1: np.ndarray,
    rf2: np.ndarray,
    ra2: np.ndarray,
    h: np.uint64,
    t0: np.ndarray,
    l0: np.ndarray,
    t1: np.ndarray,
    l1: np.ndarray,
) -> bool:
    """Copy the pairs ``[at, at + lanes)`` to ``[h, h + lanes)`` of the ring and start the
    lanes from them; True if any is finite.

    The older rows are read from the ring, not in place: rows a power of two
    apart share L1 sets and evicted each other (measured 5x slower). On the
    way back the ring also keeps the input of rows already overwritten.
    """
    sr_kept = False
    for sr_c in range(t0.size):
        sr_i = at + np.uint64(sr_c)
        sr_r = h + np.uint64(sr_c)
        sr_v = f1[sr_i]
        sr_w = f2[sr_i]
        sr_k = a1[sr_i]
        sr_j = a2[sr_i]
        rf1[sr_r] = sr_v
        rf2[sr_r] = sr_w
        ra1[sr_r] = sr_k
        ra2[sr_r] = sr_j
        t0[sr_c] = sr_v
        t1[sr_c] = sr_w
        l0[sr_c] = sr_k
        l1[sr_c] = sr_j
        sr_kept |= sr_v != _INF32
    return sr_kept


@numba.njit(nogil=True, cache=True, inline="always")
def _row_empty(f1: np.ndarray, at: np.uint64, lanes: int) -> bool:
    """True if the pairs ``[at, at + lanes)`` are all ``inf``."""
    re_any = False
    for re_c in range(lanes):
        re_any |= f1[at + np.uint64(re_c)] != _INF32
    return not re_any


@numba.njit(nogil=True, cache=True)
def _sweep_block(
    f1: np.ndarray,
    a1: np.ndarray,
    f2: np.ndarray,
    a2: np.ndarray,
    base: int,
    n: int,
    inner: int,
    offs: np.ndarray,
    r2: np.float32,
    final: bool,
    consts: np.ndarray,
    rf1: np.ndarray,
    ra1: np.ndarray,
    rf2: np.ndarray,
    ra2: np.ndarray,
    sv0: np.ndarray,
    sl0: np.ndarray,
    sv1: np.ndarray,
    sl1: np.ndarray,
    t0: np.ndarray,
    l0: np.ndarray,
    t1: np.ndarray,
    l1: np.ndarray,
    rows: np.ndarray,
    empty: np.ndarray,
) -> None:
    """One block of lines: flat index ``base + p * inner + c`` is row p, lane c.

    The scratch arrays are arguments rather than allocated here, and the
    lane count is their run-time size: with a constant trip count LLVM
    unrolled the lane loops and then failed to vectorise them.
    """
    lanes = t0.size
    ul = np.uint64(lanes)
    reach = offs.size - 1
    ring = rf1.size // lanes
    lowest = consts[0]
    cut = consts[1]
    lw0 = consts[2]
    scale = consts[3]
    floor = consts[4]
    r2f = np.float32(r2)
    for side in range(2):
        # ``rows[:m]``: rows passed so far that some lane may still need, newest first.
        m = 0
        for step in range(n):
            p = step if side == 0 else n - 1 - step
            at = np.uint64(base + p * inner)
            if m == 0 and _row_empty(f1, at, lanes):
                # Nothing within reach on this side: often most of a sparse
                # image, so skip the copies (y pass 1.5x faster on the
                # 250-cell case: 7.2 against 10.6 ms).
                if side == 0:
                    empty[p] = True
                    continue
                if empty[p]:
                    if final:
                        for c in range(lanes):
                            f1[at + np.uint64(c)] = -_INF32
                    else:
                        for c in range(lanes):
                            f2[at + np.uint64(c)] = _INF32
                    continue
            if side == 0:
                empty[p] = False
            h = np.uint64(p % ring) * ul
            w = 1 - (step & 1)
            k = 0
            if _start_row(f1, a1, f2, a2, at, rf1, ra1, rf2, ra2, h, t0, l0, t1, l1):
                rows[w, 0] = p
                k = 1
            for ii in range(m):
                q = rows[1 - w, ii]
                age = p - q if side == 0 else q - p
                if age > reach:
                    break
                hq = np.uint64(q % ring) * ul
                if _fold_rows(rf1, ra1, rf2, ra2, hq, offs[age], r2f, t0, l0, t1, l1):
                    rows[w, k] = q
                    k += 1
            m = k
            kp = np.uint64(p) * ul
            if side == 0:
                for c in range(lanes):
                    u = kp + np.uint64(c)
                    sv0[u] = t0[c]
                    sl0[u] = l0[c]
                    sv1[u] = t1[c]
                    sl1[u] = l1[c]
                continue
            # Merge in the left side (which holds this row's own pairs as well).
            if not empty[p]:
                _fold_rows(sv0, sl0, sv1, sl1, kp, np.float32(0.0), r2f, t0, l0, t1, l1)
            if final:
                for c in range(lanes):
                    a = t0[c]
                    s = np.sqrt(a) + np.sqrt(t1[c])
                    e = lw0 - s * s * scale
                    keep = (s <= cut) & (e >= floor) & (a > lowest)
                    f1[at + np.uint64(c)] = e if keep else -_INF32
            else:
                for c in range(lanes):
                    u = at + np.uint64(c)
                    a = t0[c]
                    b = t1[c]
                    f1[u] = a if a <= r2f else _INF32
                    a1[u] = l0[c]
                    f2[u] = b if b <= r2f else _INF32
                    a2[u] = l1[c]


@numba.njit(nogil=True, cache=True)
def sep_line_pass(
    f1: np.ndarray,
    a1: np.ndarray,
    f2: np.ndarray,
    a2: np.ndarray,
    n: int,
    inner: int,
    lanes: int,
    s2: float,
    r2: float,
    i0: int,
    i1: int,
    final: bool,
    cutoff: float,
    logw0: float,
    inv2s2: float,
    background: bool,
) -> None:
    """Combine the pairs along the lines of the flat ``(outer, n, inner)`` arrays, in place.

    Work item ``i`` (``i0 <= i < i1``, outer-major) is a block of ``lanes``
    neighbouring lines (fewer in the last block of a row), swept together
    row by row, every lane doing the same arithmetic so that LLVM vectorises
    across them. A sweep from each end folds the rows it has passed into the
    two nearest distinct ids on that side, newest row first; the two sides
    are then merged.

    Only rows that may still matter are folded. A row's pairs that are
    beaten at one step (each by a pair of its own id, or by two of other
    ids, all from rows no older) are beaten at every later step, since an
    older parabola only falls further behind a newer one; so a row is
    dropped from the block's list as soon as no lane keeps any of its
    pairs, and for good once it is ``R / spacing`` rows behind. On the
    benchmark cases the list holds 4-9 rows, against 26-52 for a
    brute-force window of ``R / spacing`` rows each way, which measured
    twice the time (y pass: 11.4 against 5.7 ms at 1024^2 / 250 cells,
    37.8 against 18.4 ms at 128^3).

    With ``final``, ``f1`` receives the exponent of the border term instead,
    with the float32 arithmetic of :func:`maskprep._kernels.exponents`.
    """
    nblk = -(-inner // lanes)
    # Rows farther apart than this add more than r2 (in float first, so
    # that a tiny spacing cannot overflow the integer).
    reach = int(min(np.float64(n - 1), np.sqrt(r2 / s2)))
    while reach > 0 and s2 * reach * reach > r2:
        reach -= 1
    offs = np.empty(reach + 1, dtype=np.float32)
    for j in range(reach + 1):
        offs[j] = s2 * j * j
    ring = reach + 1
    rf1 = np.empty(ring * lanes, dtype=np.float32)
    rf2 = np.empty(ring * lanes, dtype=np.float32)
    ra1 = np.empty(ring * lanes, dtype=a1.dtype)
    ra2 = np.empty(ring * lanes, dtype=a1.dtype)
    sv0 = np.empty(n * lanes, dtype=np.float32)
    sv1 = np.empty(n * lanes, dtype=np.float32)
    sl0 = np.empty(n * lanes, dtype=a1.dtype)
    sl1 = np.empty(n * lanes, dtype=a1.dtype)
    t0 = np.empty(lanes, dtype=np.float32)
    t1 = np.empty(lanes, dtype=np.float32)
    l0 = np.empty(lanes, dtype=a1.dtype)
    l1 = np.empty(lanes, dtype=a1.dtype)
    rows = np.empty((2, ring), dtype=np.int64)
    empty = np.empty(n, dtype=np.bool_)
    consts = np.empty(5, dtype=np.float32)
    consts[0] = 0.0 if background else -1.0
    consts[1] = cutoff
    consts[2] = logw0
    consts[3] = inv2s2
    consts[4] = -87.0
    for it in range(i0, i1):
        o = it // nblk
        x0 = (it - o * nblk) * lanes
        w = min(lanes, inner - x0)
        _sweep_block(
            f1,
            a1,
            f2,
            a2,
            o * n * inner + x0,
            n,
            inner,
            offs,
            np.float32(r2),
            final,
            consts,
            rf1[: ring * w],
            ra1[: ring * w],
            rf2[: ring * w],
            ra2[: ring * w],
            sv0[: n * w],
            sl0[: n * w],
            sv1[: n * w],
            sl1[: n * w],
            t0[:w],
            l0[:w],
            t1[:w],
            l1[:w],
            rows,
            empty,
        )
