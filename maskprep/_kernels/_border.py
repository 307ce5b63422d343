"""Numba kernels for the U-Net border weight map.

Everything here trusts its caller (``maskprep.targets.border.border_weights``): label
arrays are C-contiguous, 3D (a 2D image arrives as shape ``(1, H, W)``) and
unsigned (signed labels are viewed as unsigned of the same width, since they
are only compared for equality), spacings are positive, and no argument is
checked.

Per instance, the distance transform is computed in its bounding box grown
by the cutoff: ``windowed_2d`` with lower envelopes along every row,
``windowed_3d`` with envelopes along x and a brute-force minimum across the
few slices the instance spans (2D instances spanning few rows use it too,
rows standing in for slices).

Distances are kept squared until the very end. ``d1 <= d2`` hold, per
pixel, the two smallest squared distances to distinct instances merged so
far, with ``inf`` meaning "farther than the cutoff R" (``r2 = R**2``).
Values above ``r2`` are dropped as soon as they appear: any pair involving
them sums to more than R, which the caller maps to zero.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "exponents",
    "merge_smallest",
    "scan_boxes",
    "windowed_2d",
    "windowed_3d",
]

_INF = np.inf
_INF32 = np.float32(np.inf)
# Larger than any line length, so "no instance pixel on this line" never looks near.
_FAR = np.int64(1) << np.int64(40)
_GOLDEN = np.uint64(11400714819323198485)


@numba.njit(nogil=True, cache=True, inline="always")
def _slot(keys: np.ndarray, used: np.ndarray, value: int, shift: np.uint64) -> int:
    """Index of ``value`` in the open-addressing table, or of the empty slot for it."""
    # Fibonacci hashing: ids are often small consecutive integers, and the
    # multiplication spreads them over the table.
    mask = keys.size - 1
    h = np.int64((np.uint64(np.int64(value)) * _GOLDEN) >> shift) & mask
    while used[h] >= 0 and keys[h] != value:
        h = (h + 1) & mask
    return int(h)


@numba.njit(nogil=True, cache=True, inline="always")
def _run_end(row: np.ndarray, x: int, v: int) -> int:
    """First index >= x where ``row`` differs from ``v`` (or ``row.size``)."""
    nx = row.size
    # Long runs (mostly background) are skipped 16 at a time with a
    # branch-free test that LLVM vectorises.
    while x + 16 <= nx:
        blk = row[x : x + 16]
        diff = False
        for j in range(16):
            diff |= blk[j] != v
        if diff:
            break
        x += 16
    while x < nx and row[x] == v:
        x += 1
    return x


@numba.njit(nogil=True, cache=True)
def _hash_shift(size: int) -> np.uint64:
    """Right shift that maps a 64-bit product to an index of a power-of-two table."""
    bits = 0
    while (1 << bits) < size:
        bits += 1
    return np.uint64(64 - bits)


@numba.njit(nogil=True, cache=True)
def _row_runs(row: np.ndarray, runs: np.ndarray) -> int:
    """Store the nonzero runs of ``row`` as (start, end) pairs; return 2 * their number."""
    nx = row.size
    x = 0
    c = 0
    while x < nx:
        v = row[x]
        xs = x
        x = _run_end(row, x + 1, v)
        if v != 0:
            runs[c] = xs
            runs[c + 1] = x
            c += 2
    return c


@numba.njit(nogil=True, cache=True)
def _scan_rows(
    lab: np.ndarray,
    start: int,
    keys: np.ndarray,
    used: np.ndarray,
    ids: np.ndarray,
    boxes: np.ndarray,
    n: int,
) -> tuple[int, int]:
    """Record ids and boxes from row ``start`` (rows numbered z * ny + y) onwards.

    Stops at the row where a new id would overfill ``ids`` or the hash table
    and returns ``(n, that row)``, or ``(n, -1)`` when done. Re-scanning a row
    is harmless (box updates are min/max), so the caller grows the arrays and
    calls again from that row. The arrays are never reassigned in here:
    numba then keeps them out of reference counting in the hot loop, which
    made a growable version several times slower.
    """
    nz, ny, nx = lab.shape
    shift = _hash_shift(keys.size)
    runs = np.empty(2 * nx, dtype=np.int64)
    prev = lab.dtype.type(0)
    k = -1
    for r in range(start, nz * ny):
        z = r // ny
        y = r - z * ny
        row = lab[z, y]
        c = _row_runs(row, runs)
        for i in range(0, c, 2):
            xs = runs[i]
            x = runs[i + 1]
            v = row[xs]
            # Consecutive runs often belong to the same id.
            if k < 0 or v != prev:
                h = _slot(keys, used, v, shift)
                k = used[h]
                if k < 0:
                    if n == ids.size or 2 * (n + 1) > keys.size:
                        return n, r
                    k = n
                    n += 1
                    keys[h] = v
                    used[h] = k
                    ids[k] = v
                    boxes[k, 0] = z
                    boxes[k, 2] = y
                    boxes[k, 3] = y + 1
                    boxes[k, 4] = xs
                    boxes[k, 5] = x
                prev = v
            # Slices are visited in order, so z0 is final already.
            boxes[k, 1] = z + 1
            boxes[k, 2] = min(boxes[k, 2], y)
            boxes[k, 3] = max(boxes[k, 3], y + 1)
            boxes[k, 4] = min(boxes[k, 4], xs)
            boxes[k, 5] = max(boxes[k, 5], x)
    return n, -1


@numba.njit(nogil=True, cache=True)
def scan_boxes(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct nonzero ids (in order of first appearance) and their bounding boxes.

    ``boxes[k] = (z0, z1, y0, y1, x0, x1)`` with exclusive upper ends. Ids of
    any size work: they go through an open-addressing hash table (load at
    most one half) rather than an array indexed by id.
    """
    cap = 64
    keys = np.zeros(2 * cap, dtype=lab.dtype)
    used = np.full(2 * cap, -1, dtype=np.int64)
    ids = np.zeros(cap, dtype=lab.dtype)
    boxes = np.zeros((cap, 6), dtype=np.int64)
    # np.int64, not a literal 0: a literal would compile a second specialisation
    # of _scan_rows (the call below passes int64s), doubling a cold-cache compile.
    n, row = _scan_rows(lab, np.int64(0), keys, used, ids, boxes, np.int64(0))
    while row >= 0:
        cap *= 4
        ids2 = np.zeros(cap, dtype=lab.dtype)
        ids2[:n] = ids[:n]
        boxes2 = np.zeros((cap, 6), dtype=np.int64)
        boxes2[:n] = boxes[:n]
        keys = np.zeros(2 * cap, dtype=lab.dtype)
        used = np.full(2 * cap, -1, dtype=np.int64)
        shift = _hash_shift(keys.size)
        for j in range(n):
            h = _slot(keys, used, ids2[j], shift)
            keys[h] = ids2[j]
            used[h] = j
        ids = ids2
        boxes = boxes2
        n, row = _scan_rows(lab, row, keys, used, ids, boxes, n)
    return ids[:n].copy(), boxes[:n].copy()


@numba.njit(nogil=True, cache=True, inline="always")
def _envelope(f: np.ndarray, s2: float, env: np.ndarray) -> tuple[int, float]:
    """Lower envelope of the parabolas ``s2*(p - j)**2 + f[j]`` over finite ``f[j]``.

    Felzenszwalb-Huttenlocher. Parabola ``k`` has apex ``env[0, k]`` and
    height ``env[1, k]``; ``env[2, k]`` caches ``height + s2*apex**2``. For
    k >= 1 it is lowest from ``env[3, k] / env[4, k]`` on (denominator > 0)
    up to where parabola k+1 takes over.

    The breakpoints are kept as fractions and compared by cross-multiplying:
    a division here would sit on the critical path (its result decides
    whether to pop again); :func:`_fill_line` divides instead, where the
    divisions are independent of each other.

    Returns the number of parabolas (0 if every ``f`` is infinite) and the
    smallest ``f``.
    """
    v = env[0]
    fv = env[1]
    hv = env[2]
    zn = env[3]
    zd = env[4]
    k = -1
    fmin = _INF
    two_s2 = 2.0 * s2
    for j in range(f.size):
        fq = f[j]
        if fq == _INF:
            continue
        fmin = min(fmin, fq)
        q = np.float64(j)
        hq = fq + s2 * q * q
        if k >= 0:
            while True:
                num = hq - hv[k]
                den = two_s2 * (q - v[k])
                # Pop parabola k if the newcomer overtakes k-1 before k does.
                if k == 0 or num * zd[k] > zn[k] * den:
                    break
                k -= 1
            zn[k + 1] = num
            zd[k + 1] = den
        k += 1
        v[k] = q
        fv[k] = fq
        hv[k] = hq
    return k + 1, fmin


@numba.njit(nogil=True, cache=True, inline="always")
def _fill_line(
    m: int, lo: int, hi: int, s2: float, env: np.ndarray, line: np.ndarray, owner: np.ndarray
) -> None:
    """Write the envelope's values at ``p`` in ``[lo, hi)`` into ``line[p - lo]``.

    Positions are relative to the first source, as in :func:`_envelope`.
    Most parabolas own one or two pixels, so a loop per parabola (or a walk
    that advances to the next one) mispredicts a branch at almost every
    pixel. Instead each parabola marks the first pixel it owns in ``owner``,
    and a running sum turns the marks into the owner of every pixel. (Filling
    the long margins owned by the end parabolas with vectorised loops
    measured slower.) ``owner`` must be all zero on entry and is left so.
    """
    zn = env[3]
    zd = env[4]
    v = env[0]
    fv = env[1]
    n = hi - lo
    own = owner[:n]
    own[0] = 1
    flo = np.float64(lo)
    fhi = np.float64(hi - 1)
    for k in range(1, m):
        # Parabola k is lowest after its breakpoint; at a tie either is right.
        z = zn[k] / zd[k]
        if z >= fhi:
            break
        own[0 if z < flo else int(np.floor(z)) + 1 - lo] += 1
    k = -1
    for p in range(n):
        k += own[p]
        own[p] = 0
        dp = np.float64(p + lo) - v[k]
        line[p] = fv[k] + s2 * dp * dp


@numba.njit(nogil=True, cache=True, inline="always")
def _merge_line(line: np.ndarray, r2: float, d1: np.ndarray, d2: np.ndarray) -> None:
    """Fold ``line`` (values above r2 ignored) into the running two smallest d1 <= d2.

    Branch-free so that LLVM vectorises it.
    """
    r2f = np.float32(r2)
    for j in range(line.size):
        val = line[j]
        val = val if val <= r2f else _INF32
        a = d1[j]
        b = d2[j]
        hi = val if val > a else a
        d2[j] = hi if hi < b else b
        d1[j] = val if val < a else a


@numba.njit(nogil=True, cache=True, inline="always")
def _line_range(
    g: np.ndarray, q0: int, s2: float, lo: int, hi: int, r2: float, env: np.ndarray
) -> tuple[int, int, int, float]:
    """Envelope of line ``g`` (apexes from ``q0``) and the part of ``[lo, hi)`` it can reach.

    Returns ``(m, a, b, fmin)``: outside ``[a, b)`` every value exceeds r2.
    """
    m, fmin = _envelope(g, s2, env)
    if m == 0:
        return 0, lo, lo, fmin
    reach = int(np.sqrt((r2 - fmin) / s2))
    a = max(lo, q0 + int(env[0, 0]) - reach)
    b = min(hi, q0 + int(env[0, m - 1]) + reach + 1)
    return m, a, max(a, b), fmin


@numba.njit(nogil=True, cache=True, inline="always")
def _line_to_d12(
    g: np.ndarray,
    q0: int,
    s2: float,
    lo: int,
    hi: int,
    r2: float,
    d1: np.ndarray,
    d2: np.ndarray,
    env: np.ndarray,
    line: np.ndarray,
    owner: np.ndarray,
) -> None:
    """Evaluate the envelope of line ``g`` (apexes from ``q0``) on ``[lo, hi)``.

    Values <= r2 are merged into ``d1``/``d2``, which are the matching line of
    the image (index ``p`` is position ``p``).
    """
    m, a, b, _ = _line_range(g, q0, s2, lo, hi, r2, env)
    if a < b:
        _fill_line(m, a - q0, b - q0, s2, env, line, owner)
        _merge_line(line[: b - a], r2, d1[a:b], d2[a:b])


@numba.njit(nogil=True, cache=True, inline="always")
def _binary_pass(
    lab: np.ndarray,
    z: int,
    lid: int,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    yy0: int,
    yy1: int,
    sy: float,
    r2: float,
    g: np.ndarray,
    last: np.ndarray,
) -> None:
    """Squared distance along y to instance ``lid`` in slice ``z`` (inf above r2).

    Fills ``g[y - yy0, x - x0]`` for y in ``[yy0, yy1)`` and x in ``[x0, x1)``;
    the instance lies in rows ``[y0, y1)``. Scans rows, not columns, so the
    label reads stay contiguous.
    """
    bx = x1 - x0
    for c in range(bx):
        last[c] = -_FAR
    for y in range(y0, y1):
        r = y - yy0
        for c in range(bx):
            if lab[z, y, x0 + c] == lid:
                last[c] = y
            g[r, c] = y - last[c]
    # ``last`` now holds each column's last hit; the rows after the box count from it.
    for y in range(y1, yy1):
        r = y - yy0
        for c in range(bx):
            d = (y - last[c]) * sy
            d = d * d
            g[r, c] = d if d <= r2 else _INF
    for c in range(bx):
        last[c] = _FAR
    for y in range(y1 - 1, y0 - 1, -1):
        r = y - yy0
        for c in range(bx):
            if lab[z, y, x0 + c] == lid:
                last[c] = y
            d = min(g[r, c], last[c] - y) * sy
            d = d * d
            g[r, c] = d if d <= r2 else _INF
    for y in range(yy0, y0):
        r = y - yy0
        for c in range(bx):
            d = (last[c] - y) * sy
            d = d * d
            g[r, c] = d if d <= r2 else _INF


@numba.njit(nogil=True, cache=True)
def _rows_to_d12(
    g: np.ndarray,
    x0: int,
    yy0: int,
    xx0: int,
    xx1: int,
    sx2: float,
    r2: float,
    d1: np.ndarray,
    d2: np.ndarray,
    env: np.ndarray,
    line: np.ndarray,
    owner: np.ndarray,
) -> None:
    """Spread each row of ``g`` (columns from ``x0``) along x and merge it into row ``yy0 + r``.

    Kept apart from the label-reading code so that it is compiled once, not
    once per label dtype.
    """
    for r in range(g.shape[0]):
        _line_to_d12(g[r], x0, sx2, xx0, xx1, r2, d1[yy0 + r], d2[yy0 + r], env, line, owner)


@numba.njit(nogil=True, cache=True)
def windowed_2d(
    lab: np.ndarray,
    ids: np.ndarray,
    boxes: np.ndarray,
    sy: float,
    sx: float,
    my: int,
    mx: int,
    r2: float,
    d1: np.ndarray,
    d2: np.ndarray,
) -> None:
    """Merge every instance's squared distance (<= r2) into ``d1``/``d2`` (2D, z size 1).

    Each instance is transformed only inside its box grown by ``(my, mx)``
    pixels: beyond that its distance exceeds the cutoff anyway. ``d1`` and
    ``d2`` have shape ``(H, W)``.
    """
    ny = lab.shape[1]
    nx = lab.shape[2]
    n = ids.size
    gy_max = 1
    bx_max = 1
    for k in range(n):
        gy_max = max(gy_max, min(ny, boxes[k, 3] + my) - max(0, boxes[k, 2] - my))
        bx_max = max(bx_max, boxes[k, 5] - boxes[k, 4])
    g = np.empty((gy_max, bx_max), dtype=np.float64)
    last = np.empty(bx_max, dtype=np.int64)
    env = np.empty((5, bx_max + 1), dtype=np.float64)
    line = np.empty(nx, dtype=np.float32)
    owner = np.zeros(nx + 1, dtype=np.int64)
    sx2 = sx * sx
    for k in range(n):
        y0, y1, x0, x1 = boxes[k, 2], boxes[k, 3], boxes[k, 4], boxes[k, 5]
        yy0 = max(0, y0 - my)
        yy1 = min(ny, y1 + my)
        _binary_pass(lab, 0, ids[k], y0, y1, x0, x1, yy0, yy1, sy, r2, g, last)
        xx0 = max(0, x0 - mx)
        xx1 = min(nx, x1 + mx)
        _rows_to_d12(
            g[: yy1 - yy0, : x1 - x0], x0, yy0, xx0, xx1, sx2, r2, d1, d2, env, line, owner
        )


@numba.njit(nogil=True, cache=True, inline="always")
def _min4(
    h: np.ndarray, j0: int, lo: int, hi: int, cz: np.ndarray, w: np.ndarray, first: bool
) -> None:
    """``w[i] = min(w[i], min_t h[j0 + t, lo + i] + cz[j0 + t])`` over t < 4.

    With ``first``, ``w`` is overwritten instead. Four source slices share a
    sweep over ``w``; more made LLVM give up vectorising (too many run-time
    overlap checks between the sources and ``w``).
    """
    n = hi - lo
    s0 = h[j0, lo:hi]
    s1 = h[j0 + 1, lo:hi]
    s2 = h[j0 + 2, lo:hi]
    s3 = h[j0 + 3, lo:hi]
    c0 = cz[j0]
    c1 = cz[j0 + 1]
    c2 = cz[j0 + 2]
    c3 = cz[j0 + 3]
    out = w[:n]
    # Two loops rather than a test inside one, which also blocked vectorising.
    if first:
        for i in range(n):
            v = s0[i] + c0
            t = s1[i] + c1
            v = t if t < v else v
            t = s2[i] + c2
            v = t if t < v else v
            t = s3[i] + c3
            out[i] = t if t < v else v
    else:
        for i in range(n):
            v = out[i]
            t = s0[i] + c0
            v = t if t < v else v
            t = s1[i] + c1
            v = t if t < v else v
            t = s2[i] + c2
            v = t if t < v else v
            t = s3[i] + c3
            out[i] = t if t < v else v


@numba.njit(nogil=True, cache=True)
def _x_pass(
    g: np.ndarray,
    x0: int,
    xx0: int,
    xx1: int,
    sx2: float,
    r2: float,
    h: np.ndarray,
    hlo: np.ndarray,
    hhi: np.ndarray,
    hmin: np.ndarray,
    env: np.ndarray,
    owner: np.ndarray,
) -> None:
    """Spread each row r of ``g`` along x into ``h[r * gx : (r + 1) * gx]``.

    ``h`` is flat, rows of the grown width ``gx`` back to back, and inf
    where out of reach. Records per row the columns ``[hlo, hhi)`` that may
    be within the cutoff and the row minimum.
    """
    gx = xx1 - xx0
    for r in range(g.shape[0]):
        m, a, b, fmin = _line_range(g[r], x0, sx2, xx0, xx1, r2, env)
        hlo[r] = a - xx0
        hhi[r] = b - xx0
        hmin[r] = fmin
        hr = h[r * gx : (r + 1) * gx]
        hr[: a - xx0] = _INF32
        hr[b - xx0 :] = _INF32
        if a < b:
            _fill_line(m, a - x0, b - x0, sx2, env, hr[a - xx0 : b - xx0], owner)


@numba.njit(nogil=True, cache=True)
def _z_pass(
    h: np.ndarray,
    hlo: np.ndarray,
    hhi: np.ndarray,
    hmin: np.ndarray,
    z0: int,
    zz0: int,
    zz1: int,
    yy0: int,
    xx0: int,
    xx1: int,
    sz2: float,
    r2: float,
    brute_z_max: int,
    d1: np.ndarray,
    d2: np.ndarray,
    env: np.ndarray,
    owner: np.ndarray,
) -> None:
    """Spread the slices ``h[j]`` (plane ``z0 + j``) along z over ``[zz0, zz1)`` into d1/d2.

    ``h[j]`` holds ``gy`` rows of width ``gx`` back to back (see
    :func:`_x_pass`), and has a multiple of 4 slices, inf beyond the real
    ones. This pass covers the whole grown box, so it is a brute-force
    minimum over the (few) source slices, vectorised over each output plane's
    block of rows at once: per-row loops cost more in set-up than in
    arithmetic. Rows and slices that cannot come within the cutoff are
    skipped. With more than ``brute_z_max`` slices, a lower envelope per
    column is cheaper.
    """
    bz = hlo.shape[0]
    gy = hlo.shape[1]
    gx = xx1 - xx0
    nx = d1.shape[2]
    r2f = np.float32(r2)
    if bz <= brute_z_max:
        nzg = (bz + 3) // 4
        gz = zz1 - zz0
        # Rows [rlo[i], rhi[i]) of plane zz0 + i are the only ones some slice
        # reaches; zfar[j] is the farthest plane slice j reaches at all.
        rlo = np.full(gz, gy, dtype=np.int64)
        rhi = np.zeros(gz, dtype=np.int64)
        zfar = np.full(4 * nzg, -1, dtype=np.int64)
        for r in range(gy):
            for j in range(bz):
                if hlo[j, r] < hhi[j, r]:
                    reach = int(np.sqrt((r2 - hmin[j, r]) / sz2))
                    zfar[j] = max(zfar[j], reach)
                    for zo in range(max(zz0, z0 + j - reach), min(zz1, z0 + j + reach + 1)):
                        rlo[zo - zz0] = min(rlo[zo - zz0], r)
                        rhi[zo - zz0] = max(rhi[zo - zz0], r + 1)
        cz = np.empty(4 * nzg, dtype=np.float32)
        w = np.empty(gy * gx, dtype=np.float32)
        for zo in range(zz0, zz1):
            r0 = rlo[zo - zz0]
            r1 = rhi[zo - zz0]
            if r0 >= r1:
                continue
            # Slices out of reach get +inf, which drops them from the minimum;
            # within a reachable slice, rows out of reach come out above r2.
            for j in range(4 * nzg):
                dz = zo - z0 - j
                cz[j] = sz2 * dz * dz if abs(dz) <= zfar[j] else _INF32
            lo = r0 * gx
            hi = r1 * gx
            _min4(h, 0, lo, hi, cz, w, True)
            for grp in range(1, nzg):
                j = 4 * grp
                if min(cz[j], cz[j + 1], cz[j + 2], cz[j + 3]) < _INF32:
                    _min4(h, j, lo, hi, cz, w, False)
            if gx == nx:
                # The block is contiguous in the image too: one merge.
                e1 = d1[zo].reshape(-1)[(yy0 + r0) * nx : (yy0 + r1) * nx]
                e2 = d2[zo].reshape(-1)[(yy0 + r0) * nx : (yy0 + r1) * nx]
                _merge_line(w[: hi - lo], r2, e1, e2)
            else:
                for r in range(r0, r1):
                    ua = (r - r0) * gx
                    _merge_line(
                        w[ua : ua + gx], r2, d1[zo, yy0 + r, xx0:xx1], d2[zo, yy0 + r, xx0:xx1]
                    )
    else:
        col = np.empty(bz, dtype=np.float64)
        colout = np.empty(zz1 - zz0, dtype=np.float32)
        for r in range(gy):
            y = yy0 + r
            for c in range(gx):
                for j in range(bz):
                    col[j] = h[j, r * gx + c]
                m, a, b, _ = _line_range(col, z0, sz2, zz0, zz1, r2, env)
                if a >= b:
                    continue
                out = colout[: b - a]
                _fill_line(m, a - z0, b - z0, sz2, env, out, owner)
                for i in range(b - a):
                    val = out[i]
                    if val <= r2f:
                        zo = a + i
                        p = d1[zo, y, xx0 + c]
                        if val < p:
                            d2[zo, y, xx0 + c] = p
                            d1[zo, y, xx0 + c] = val
                        elif val < d2[zo, y, xx0 + c]:
                            d2[zo, y, xx0 + c] = val


@numba.njit(nogil=True, cache=True)
def windowed_3d(
    lab: np.ndarray,
    ids: np.ndarray,
    boxes: np.ndarray,
    sz: float,
    sy: float,
    sx: float,
    mz: int,
    my: int,
    mx: int,
    r2: float,
    d1: np.ndarray,
    d2: np.ndarray,
    brute_z_max: int,
) -> None:
    """3D version of :func:`windowed_2d`; ``d1`` and ``d2`` have shape ``(Z, Y, X)``.

    Per instance: a binary pass along y and an envelope pass along x, both
    only on the slices the instance occupies, then :func:`_z_pass`.
    """
    nz, ny, nx = lab.shape
    n = ids.size
    gy_max = 1
    gx_max = 1
    gz_max = 1
    bz_max = 1
    bx_max = 1
    area_max = 1
    for k in range(n):
        gz = min(nz, boxes[k, 1] + mz) - max(0, boxes[k, 0] - mz)
        gy = min(ny, boxes[k, 3] + my) - max(0, boxes[k, 2] - my)
        gx = min(nx, boxes[k, 5] + mx) - max(0, boxes[k, 4] - mx)
        gz_max = max(gz_max, gz)
        gy_max = max(gy_max, gy)
        gx_max = max(gx_max, gx)
        area_max = max(area_max, gy * gx)
        bz_max = max(bz_max, boxes[k, 1] - boxes[k, 0])
        bx_max = max(bx_max, boxes[k, 5] - boxes[k, 4])
    g = np.empty((gy_max, bx_max), dtype=np.float64)
    # Padded to whole groups of 4 slices for _min4; each slice is a flat
    # block of gy rows of width gx for the instance at hand.
    bzp = (bz_max + 3) // 4 * 4
    h = np.empty((bzp, area_max), dtype=np.float32)
    hlo = np.empty((bz_max, gy_max), dtype=np.int64)
    hhi = np.empty((bz_max, gy_max), dtype=np.int64)
    hmin = np.empty((bz_max, gy_max), dtype=np.float64)
    last = np.empty(bx_max, dtype=np.int64)
    env = np.empty((5, max(bz_max, bx_max) + 1), dtype=np.float64)
    owner = np.zeros(max(gx_max, gz_max) + 1, dtype=np.int64)
    sx2 = sx * sx
    for k in range(n):
        z0, z1 = boxes[k, 0], boxes[k, 1]
        y0, y1, x0, x1 = boxes[k, 2], boxes[k, 3], boxes[k, 4], boxes[k, 5]
        yy0 = max(0, y0 - my)
        yy1 = min(ny, y1 + my)
        xx0 = max(0, x0 - mx)
        xx1 = min(nx, x1 + mx)
        bz = z1 - z0
        gy = yy1 - yy0
        for j in range(bz):
            _binary_pass(lab, z0 + j, ids[k], y0, y1, x0, x1, yy0, yy1, sy, r2, g, last)
            _x_pass(
                g[:gy, : x1 - x0],
                x0,
                xx0,
                xx1,
                sx2,
                r2,
                h[j],
                hlo[j, :gy],
                hhi[j, :gy],
                hmin[j, :gy],
                env,
                owner,
            )
        # Slices up to the next multiple of 4 must read as inf in _z_pass.
        for j in range(bz, (bz + 3) // 4 * 4):
            h[j, : gy * (xx1 - xx0)] = _INF32
        _z_pass(
            h,
            hlo[:bz, :gy],
            hhi[:bz, :gy],
            hmin[:bz, :gy],
            z0,
            max(0, z0 - mz),
            min(nz, z1 + mz),
            yy0,
            xx0,
            xx1,
            sz * sz,
            r2,
            brute_z_max,
            d1,
            d2,
            env,
            owner,
        )


@numba.njit(nogil=True, cache=True)
def merge_smallest(d1: np.ndarray, d2: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> None:
    """Merge the two-smallest pair ``(e1, e2)`` into ``(d1, d2)`` (flat float32).

    The pairs come from disjoint sets of instances, so the two smallest of the
    union are ``min(d1, e1)`` and ``min(max(d1, e1), min(d2, e2))``: exact, and
    independent of how the instances were split.
    """
    for i in range(d1.size):
        a = d1[i]
        b = e1[i]
        lo = a if a < b else b
        hi = a if a > b else b
        c = d2[i] if d2[i] < e2[i] else e2[i]
        d1[i] = lo
        d2[i] = hi if hi < c else c


@numba.njit(nogil=True, cache=True)
def exponents(
    d1: np.ndarray, d2: np.ndarray, cutoff: float, logw0: float, inv2s2: float, background: bool
) -> None:
    """Overwrite ``d1`` with the exponent ``log(w0) - (d1 + d2)**2 / (2 sigma**2)``.

    ``d1`` and ``d2`` are flat float32 arrays of squared distances. The
    caller then applies ``np.exp`` in place: numpy's exp is vectorised,
    numba's scalar one is not. Pixels that must come out exactly zero get
    ``-inf``, which numpy's exp handles at full speed: no second instance
    within the cutoff (``d2`` is inf), ``d1 + d2`` above it, instance pixels
    (``d1 == 0``) when ``background``, and results below the float32 normal
    range, where numpy's exp would slow down about 12x.
    """
    # float32 throughout and no branches, so that LLVM vectorises; the
    # float32 error (relative 1e-6 in the result) is far below tolerance.
    lowest = np.float32(0.0) if background else np.float32(-1.0)
    cut = np.float32(cutoff)
    lw0 = np.float32(logw0)
    scale = np.float32(inv2s2)
    floor = np.float32(-87.0)
    for i in range(d1.size):
        a = d1[i]
        s = np.sqrt(a) + np.sqrt(d2[i])
        t = lw0 - s * s * scale
        keep = (s <= cut) & (t >= floor) & (a > lowest)
        d1[i] = t if keep else -_INF32
