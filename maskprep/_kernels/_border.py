"""Numba kernels for the U-Net border weight map.

Everything here trusts its caller (``maskprep.targets.border.border_weights``): label
arrays are C-contiguous, 3D (a 2D image arrives as shape ``(1, H, W)``) and
unsigned (signed labels are viewed as unsigned of the same width, since they
are only compared for equality), spacings are positive, and no argument is
checked.

Per instance, the distance transform is computed in its bounding box grown
by the cutoff: ``windowed_2d`` by a minimum over the instance's rows (or,
for tall instances, a binary pass along y then a minimum or lower envelopes
along x), ``windowed_3d`` with envelopes along x and a brute-force minimum
across the few slices the instance spans.

``windowed_2d_weights`` does the 2D transform in one sweep down the image
and writes each row's exponent once no later instance can reach it, so the
distances live in a ring of rows that stays in cache.

Distances are kept squared until the very end. ``d1 <= d2`` hold, per
pixel, the two smallest squared distances to distinct instances merged so
far, with ``inf`` meaning "farther than the cutoff R" (``r2 = R**2``).
Values above ``r2`` are dropped as soon as they appear: any pair involving
them sums to more than R, which the caller maps to zero.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "exponents",
    "merge_smallest",
    "scan_boxes",
    "windowed_2d",
    "windowed_2d_weights",
    "windowed_3d",
]

_INF = np.inf
_INF32 = np.float32(np.inf)
# Larger than any line length, so "no instance pixel on this line" never looks near.
_FAR = np.int64(1) << np.int64(40)
_GOLDEN = np.uint64(11400714819323198485)


@intrinsic
def _prefetch(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Hint that ``arr[idx]`` (1D) will be read soon (``llvm.prefetch``; changes no value)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # A read, kept in every cache level, of data.
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True, inline="always")
def _prefetch_box(flat: np.ndarray, nx: int, y0: int, y1: int, x0: int, x1: int) -> None:
    """Prefetch rows ``[y0, y1)``, columns ``[x0, x1)`` of the image whose flat view is ``flat``.

    An instance's rows are an image row apart, a stride the hardware
    prefetcher does not follow: asked for one instance ahead, the reads of
    its labels no longer wait on memory one row at a time (the 2D sweep
    went 8-9% faster on the benchmark's images).
    """
    for y in range(y0, y1):
        base = y * nx
        for x in range(x0, x1, 16):
            _prefetch(flat, base + x)  # type: ignore[call-arg]
        _prefetch(flat, base + x1 - 1)  # type: ignore[call-arg]


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
    zero = np.int64(0)
    n, row = _scan_rows(lab, zero, keys, used, ids, boxes, zero)  # type: ignore[arg-type]
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
def _merge_flat(
    line: np.ndarray, r2: float, d1: np.ndarray, d2: np.ndarray, at: int, n: int
) -> None:
    """:func:`_merge_line` of ``line[:n]`` into flat ``d1[at : at + n]`` and ``d2``, no views."""
    r2f = np.float32(r2)
    base = np.uint64(at)
    for j in range(n):
        u = np.uint64(j)
        val = line[u]
        val = val if val <= r2f else _INF32
        a = d1[base + u]
        b = d2[base + u]
        hi = val if val > a else a
        d2[base + u] = hi if hi < b else b
        d1[base + u] = val if val < a else a


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

    Image row y is row ``y % len(d1)`` of ``d1`` and ``d2`` (see
    :func:`windowed_2d_weights`). Kept apart from the label-reading code so
    that it is compiled once, not once per label dtype.
    """
    hr = d1.shape[0]
    for r in range(g.shape[0]):
        q = (yy0 + r) % hr
        _line_to_d12(g[r], x0, sx2, xx0, xx1, r2, d1[q], d2[q], env, line, owner)


@numba.njit(nogil=True, cache=True, inline="always")
def _min_parabolas4(
    out: np.ndarray,
    ramp: np.ndarray,
    n: int,
    g: np.ndarray,
    c: np.ndarray,
    j: int,
    s2: np.float32,
    first: bool,
) -> None:
    """``out[i] = min(out[i], min_t g[j + t] + s2 * (i + c[j + t])**2)`` over t < 4.

    With ``first``, ``out`` is overwritten instead. ``ramp[i] == i``: LLVM
    vectorises a load of it, not a conversion of the index. Four parabolas
    share a sweep over ``out``, as in :func:`_min4`.
    """
    g0 = g[j]
    g1 = g[j + 1]
    g2 = g[j + 2]
    g3 = g[j + 3]
    # float32 offsets: an int64 one would promote the whole sweep to float64.
    c0 = np.float32(c[j])
    c1 = np.float32(c[j + 1])
    c2 = np.float32(c[j + 2])
    c3 = np.float32(c[j + 3])
    if first:
        for i in range(n):
            t = ramp[i]
            d = t + c0
            v = g0 + s2 * d * d
            d = t + c1
            w = g1 + s2 * d * d
            v = w if w < v else v
            d = t + c2
            w = g2 + s2 * d * d
            v = w if w < v else v
            d = t + c3
            w = g3 + s2 * d * d
            out[i] = w if w < v else v
    else:
        for i in range(n):
            t = ramp[i]
            v = out[i]
            d = t + c0
            w = g0 + s2 * d * d
            v = w if w < v else v
            d = t + c1
            w = g1 + s2 * d * d
            v = w if w < v else v
            d = t + c2
            w = g2 + s2 * d * d
            v = w if w < v else v
            d = t + c3
            w = g3 + s2 * d * d
            out[i] = w if w < v else v


@numba.njit(nogil=True, cache=True)
def _rows_brute_to_d12(
    g: np.ndarray,
    x0: int,
    yy0: int,
    xx0: int,
    xx1: int,
    sx2: float,
    r2: float,
    d1: np.ndarray,
    d2: np.ndarray,
    line: np.ndarray,
    ramp: np.ndarray,
    sg: np.ndarray,
    sc: np.ndarray,
) -> None:
    """:func:`_rows_to_d12` by brute force: each output the minimum over the row's sources.

    For a narrow instance this beats the lower envelope, whose construction
    and fill branch at almost every source and pixel: per row, the finite
    sources ``g[r, c]`` (column ``x0 + c``) are gathered, and every output
    within reach takes the minimum of their parabolas, four at a time,
    vectorised across the outputs (in float32: the result is stored in
    float32 anyway). ``line``, ``ramp`` (``ramp[i] == i``), ``sg`` and ``sc``
    are scratch of at least the image width plus 16 and the box width plus 4.
    Image row y is row ``y % len(d1)`` of ``d1`` and ``d2``.
    """
    s2 = np.float32(sx2)
    for r in range(g.shape[0]):
        gr = g[r]
        ns = 0
        fmin = _INF
        for c in range(gr.size):
            v = gr[c]
            if v != _INF:
                sg[ns] = v
                sc[ns] = c
                ns += 1
                fmin = min(fmin, v)
        if ns == 0:
            continue
        reach = int(np.sqrt((r2 - fmin) / sx2))
        a = max(xx0, x0 + sc[0] - reach)
        b = min(xx1, x0 + sc[ns - 1] + reach + 1)
        if a >= b:
            continue
        # Output i is column a + i; source k sits at x0 + sc[k], so its offset is
        # i + (a - x0 - sc[k]). Sources are padded to a multiple of 4 with inf.
        for k in range(ns):
            sc[k] = a - x0 - sc[k]
        while ns % 4 != 0:
            sg[ns] = _INF32
            sc[ns] = 0
            ns += 1
        n = b - a
        # Whole vectors, so that no scalar remainder runs (the extra outputs
        # are never merged).
        nv = (n + 15) // 16 * 16
        for k in range(0, ns, 4):
            _min_parabolas4(line, ramp, nv, sg, sc, k, s2, k == 0)
        q = (yy0 + r) % d1.shape[0]
        _merge_line(line[:n], r2, d1[q, a:b], d2[q, a:b])


@numba.njit(nogil=True, cache=True, inline="always")
def _min_rows4(
    out: np.ndarray,
    hx: np.ndarray,
    at: np.ndarray,
    v: np.ndarray,
    j: int,
    n: int,
    first: bool,
) -> None:
    """``out[i] = min(out[i], min_t hx[at[j + t] + i] + v[j + t])`` over t < 4.

    With ``first``, ``out`` is overwritten instead. Flat, unsigned indices,
    so that LLVM vectorises the sweep across ``i``.
    """
    a0 = np.uint64(at[j])
    a1 = np.uint64(at[j + 1])
    a2 = np.uint64(at[j + 2])
    a3 = np.uint64(at[j + 3])
    v0 = v[j]
    v1 = v[j + 1]
    v2 = v[j + 2]
    v3 = v[j + 3]
    if first:
        for i in range(n):
            u = np.uint64(i)
            w = hx[a0 + u] + v0
            t = hx[a1 + u] + v1
            w = t if t < w else w
            t = hx[a2 + u] + v2
            w = t if t < w else w
            t = hx[a3 + u] + v3
            out[u] = t if t < w else w
    else:
        for i in range(n):
            u = np.uint64(i)
            w = out[u]
            t = hx[a0 + u] + v0
            w = t if t < w else w
            t = hx[a1 + u] + v1
            w = t if t < w else w
            t = hx[a2 + u] + v2
            w = t if t < w else w
            t = hx[a3 + u] + v3
            out[u] = t if t < w else w


@numba.njit(nogil=True, cache=True, inline="always")
def _min_rows4x2(
    out: np.ndarray,
    out2: np.ndarray,
    hx: np.ndarray,
    at: np.ndarray,
    v: np.ndarray,
    v2: np.ndarray,
    j: int,
    n: int,
    first: bool,
) -> None:
    """:func:`_min_rows4` for two output rows at once (``v`` into ``out``, ``v2`` into ``out2``)."""
    a0 = np.uint64(at[j])
    a1 = np.uint64(at[j + 1])
    a2 = np.uint64(at[j + 2])
    a3 = np.uint64(at[j + 3])
    v0 = v[j]
    v1 = v[j + 1]
    vv2 = v[j + 2]
    v3 = v[j + 3]
    w0 = v2[j]
    w1 = v2[j + 1]
    w2 = v2[j + 2]
    w3 = v2[j + 3]
    for i in range(n):
        u = np.uint64(i)
        h0 = hx[a0 + u]
        h1 = hx[a1 + u]
        h2 = hx[a2 + u]
        h3 = hx[a3 + u]
        p = h0 + v0
        t = h1 + v1
        p = t if t < p else p
        t = h2 + vv2
        p = t if t < p else p
        t = h3 + v3
        p = t if t < p else p
        q = h0 + w0
        t = h1 + w1
        q = t if t < q else q
        t = h2 + w2
        q = t if t < q else q
        t = h3 + w3
        q = t if t < q else q
        if not first:
            t = out[u]
            p = t if t < p else p
            t = out2[u]
            q = t if t < q else q
        out[u] = p
        out2[u] = q


@numba.njit(nogil=True, cache=True, inline="always")
def _keep_row(runs: np.ndarray, nruns: np.ndarray, r: int, span: np.ndarray) -> bool:
    """Whether row ``r`` of the instance can be the nearest somewhere, given the rows before it.

    ``span = [lo, hi)`` is an interval covered by the runs of rows already
    taken (all at most as far from the output row). If every run of row
    ``r`` lies in it, each pixel of the row has a pixel of an earlier row
    at least as near along x and no farther along y: the row never wins.
    Otherwise the row is kept and ``span`` grows by its runs that touch it
    (or becomes its widest run, if empty), staying inside the union.
    """
    m = nruns[r]
    if m == 0:
        return False
    lo = span[0]
    hi = span[1]
    inside = True
    for i in range(0, m, 2):
        inside &= (runs[r, i] >= lo) & (runs[r, i + 1] <= hi)
    if inside:
        return False
    if lo >= hi:
        best = 0
        for i in range(2, m, 2):
            if runs[r, i + 1] - runs[r, i] > runs[r, best + 1] - runs[r, best]:
                best = i
        lo = runs[r, best]
        hi = runs[r, best + 1]
    # Runs are sorted; one sweep each way takes in every run touching the span.
    for i in range(0, m, 2):
        if runs[r, i] <= hi and runs[r, i + 1] >= lo:
            lo = min(lo, runs[r, i])
            hi = max(hi, runs[r, i + 1])
    for i in range(m - 2, -1, -2):
        if runs[r, i] <= hi and runs[r, i + 1] >= lo:
            lo = min(lo, runs[r, i])
            hi = max(hi, runs[r, i + 1])
    span[0] = lo
    span[1] = hi
    return True


@numba.njit(nogil=True, cache=True)
def _pruned_rows_to_d12(
    lab: np.ndarray,
    lid: int,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    yy0: int,
    yy1: int,
    xx0: int,
    xx1: int,
    sy2: float,
    sx2: float,
    r2: float,
    d1: np.ndarray,
    d2: np.ndarray,
    runs: np.ndarray,
    nruns: np.ndarray,
    hx: np.ndarray,
    order: np.ndarray,
    at: np.ndarray,
    v: np.ndarray,
    span: np.ndarray,
    line: np.ndarray,
    vtab: np.ndarray,
    rtab: np.ndarray,
    dymax: int,
    hull: np.ndarray,
    line2: np.ndarray,
    v2: np.ndarray,
) -> None:
    """Merge instance ``lid`` (box rows ``[y0, y1)``, columns ``[x0, x1)``) into d1/d2 (2D).

    Transposed order, by brute force: ``hx[r]`` is the squared distance
    along x to the instance's runs in its row ``y0 + r`` (closed form), and
    output row ``y`` takes the minimum over the source rows of ``hx[r] +
    vtab[|y - y0 - r|]``, four rows per sweep, vectorised across x. Above
    and below the instance only the rows that can win there are taken
    (:func:`_keep_row`, scanning from the row nearest the output): for a
    roundish instance its half towards the output. Rows level with the
    instance take every row (pruning per output row cost more than it
    saved). ``vtab[d]`` is the float32 squared distance of d rows (inf
    beyond r2) and ``rtab[d]`` how many columns a pixel d rows away reaches
    within r2 (-1: none, from ``dymax + 1`` on). ``hx`` holds ``bh + 1`` rows of width ``wx`` (the
    last all inf, for padding); the outputs are columns ``[xx0, xx1)``. Image
    row y is row ``y % len(d1)`` of ``d1`` and ``d2``.
    """
    bh = y1 - y0
    gx = xx1 - xx0
    wx = hx.size // (nruns.size + 1)
    nxd = d1.shape[1]
    hr = d1.shape[0]
    d1f = d1.reshape(-1)
    d2f = d2.reshape(-1)
    for r in range(bh):
        row = lab[0, y0 + r, x0:x1]
        # Most rows of an instance are one run: its ends and pixel count by
        # vectorised reductions, the run-by-run scan only when they disagree.
        first = x1 - x0
        last = -1
        count = 0
        for c in range(x1 - x0):
            hit = row[np.uint64(c)] == lid
            first = min(first, c if hit else x1 - x0)
            last = max(last, c if hit else -1)
            count += hit
        m = 0
        if count == last - first + 1:
            if count > 0:
                runs[r, 0] = x0 + first
                runs[r, 1] = x0 + last + 1
                m = 2
        else:
            x = first
            while x <= last:
                if row[x] == lid:
                    st = x
                    while x <= last and row[x] == lid:
                        x += 1
                    runs[r, m] = x0 + st
                    runs[r, m + 1] = x0 + x
                    m += 2
                else:
                    x += 1
        nruns[r] = m
        if m == 0:
            continue
        base = r * wx
        lo = xx0
        for i in range(0, m, 2):
            st = runs[r, i] - lo
            en = runs[r, i + 1] - 1 - lo
            # Up to the midpoint with the next run, this run is the nearest.
            hi = xx1 if i + 2 >= m else (runs[r, i + 1] - 1 + runs[r, i + 2]) // 2 + 1
            out = np.uint64(base + lo - xx0)
            for c in range(hi - lo):
                # As vtab: the float64 product, rounded once. The float32 sum
                # of the two terms is then the same with the axes swapped (a
                # transposed input gives the transposed map).
                dd = max(st - c, c - en, 0)
                hx[out + np.uint64(c)] = np.float32(sx2 * np.float64(dd * dd))
            lo = hi
    pad = bh * wx
    for c in range(gx + 16):
        hx[pad + c] = _INF32
    # The rows that can win above the instance (scanned from its top row
    # down), below it (from the bottom up), and inside it: all rows with
    # pixels (pruning per output row there cost more than it saved).
    n_up = 0
    span[0] = 0
    span[1] = 0
    for r in range(bh):
        if _keep_row(runs, nruns, r, span):
            order[n_up] = r
            n_up += 1
    n_down = 0
    span[0] = 0
    span[1] = 0
    for r in range(bh - 1, -1, -1):
        if _keep_row(runs, nruns, r, span):
            order[bh + n_down] = r
            n_down += 1
    n_all = 0
    for r in range(bh):
        if nruns[r] > 0:
            order[2 * bh + n_all] = r
            n_all += 1
            hull[0, r] = runs[r, 0]
            hull[1, r] = runs[r, nruns[r] - 1]
    # Output rows two at a time (when both lie on the same side of the
    # instance, or both level with it): they take the same source rows, so
    # each source row is loaded once for both (about 20% faster).
    y = yy0
    while y < yy1:
        side = 0 if y < y0 else (1 if y >= y1 else 2)
        yb = y + 1
        if yb >= yy1 or (0 if yb < y0 else (1 if yb >= y1 else 2)) != side:
            yb = y
        # The taken rows within dymax rows of y or yb: a prefix of the list
        # above or below the instance (nearest first), a window of the rows
        # level with it (in order).
        if side != 2:
            o0 = 0 if side == 0 else bh
            t0 = 0
            t1 = n_up if side == 0 else n_down
            while (
                t1 > 0
                and min(abs(y - y0 - order[o0 + t1 - 1]), abs(yb - y0 - order[o0 + t1 - 1])) > dymax
            ):
                t1 -= 1
        else:
            o0 = 2 * bh
            t0 = 0
            t1 = n_all
            while t0 < t1 and y - y0 - order[o0 + t0] > dymax:
                t0 += 1
            while t1 > t0 and order[o0 + t1 - 1] - (yb - y0) > dymax:
                t1 -= 1
        if t0 >= t1:
            y = yb + 1
            continue
        # Outputs: the columns some taken row reaches within r2 (for a round
        # instance a rounded shape, about 15% less than its grown box).
        a = xx1
        b = xx0
        nk = t1 - t0
        for j in range(nk):
            r = order[o0 + t0 + j]
            da = abs(y - y0 - r)
            db = abs(yb - y0 - r)
            reach = max(rtab[da], rtab[db])
            a = min(a, hull[0, r] - reach if reach >= 0 else xx1)
            b = max(b, hull[1, r] + reach if reach >= 0 else xx0)
            at[j] = r * wx
            v[j] = vtab[da]
            v2[j] = vtab[db]
        a = max(a, xx0)
        b = min(b, xx1)
        if a >= b:
            y = yb + 1
            continue
        shift = a - xx0
        for j in range(nk):
            at[j] += shift
        while nk % 4 != 0:
            at[nk] = pad
            v[nk] = _INF32
            v2[nk] = _INF32
            nk += 1
        n = b - a
        nv = (n + 15) // 16 * 16
        if yb == y:
            for t in range(0, nk, 4):
                _min_rows4(line, hx, at, v, t, nv, t == 0)
        else:
            for t in range(0, nk, 4):
                _min_rows4x2(line, line2, hx, at, v, v2, t, nv, t == 0)
            _merge_flat(line2, r2, d1f, d2f, (yb % hr) * nxd + a, n)
        _merge_flat(line, r2, d1f, d2f, (y % hr) * nxd + a, n)
        y = yb + 1


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
    rows_ratio: float,
    brute_x_max: int,
) -> None:
    """Merge every instance's squared distance (<= r2) into ``d1``/``d2`` (2D, z size 1).

    ``d1`` and ``d2`` have shape ``(H, W)``; see :func:`_windowed_2d`.
    """
    _windowed_2d(
        lab,
        ids,
        boxes,
        sy,
        sx,
        my,
        mx,
        r2,
        d1,
        d2,
        rows_ratio,
        brute_x_max,
        d1[:0],
        0.0,
        0.0,
        0.0,
        False,
    )


@numba.njit(nogil=True, cache=True)
def windowed_2d_weights(
    lab: np.ndarray,
    ids: np.ndarray,
    boxes: np.ndarray,
    sy: float,
    sx: float,
    my: int,
    mx: int,
    r2: float,
    rows_ratio: float,
    brute_x_max: int,
    out: np.ndarray,
    cutoff: float,
    logw0: float,
    inv2s2: float,
    background: bool,
) -> None:
    """:func:`windowed_2d` and :func:`exponents` in one sweep down the image, into ``out``.

    The instances must come in order of their first row (as
    :func:`scan_boxes` returns them). Then no instance after one starting
    at row y0 reaches a row above ``y0 - my``: those rows are final, and
    their exponents are written to ``out`` (shape ``(H, W)``, float32) at
    once. ``d1`` and ``d2`` only hold the rows still open, in a ring of as
    many rows as the tallest grown box: in cache, where two whole images
    were not (the merges waited on memory), and no full-image fill. The
    values are those of :func:`windowed_2d` and then :func:`exponents`.
    """
    ny = lab.shape[1]
    nx = lab.shape[2]
    hr = 1
    for k in range(ids.size):
        hr = max(hr, min(ny, boxes[k, 3] + my) - max(0, boxes[k, 2] - my))
    d1 = np.full((hr, nx), _INF32, dtype=np.float32)
    d2 = np.full((hr, nx), _INF32, dtype=np.float32)
    _windowed_2d(
        lab,
        ids,
        boxes,
        sy,
        sx,
        my,
        mx,
        r2,
        d1,
        d2,
        rows_ratio,
        brute_x_max,
        out,
        cutoff,
        logw0,
        inv2s2,
        background,
    )


@numba.njit(nogil=True, cache=True)
def _windowed_2d(
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
    rows_ratio: float,
    brute_x_max: int,
    out: np.ndarray,
    cutoff: float,
    logw0: float,
    inv2s2: float,
    background: bool,
) -> None:
    """Merge every instance's squared distance (<= r2) into ``d1``/``d2`` (2D, z size 1).

    With an empty ``out``, ``d1`` and ``d2`` are the whole ``(H, W)`` image;
    otherwise a ring of rows (image row y is row ``y % len(d1)``) whose rows
    are written to ``out`` as exponents when final (:func:`windowed_2d_weights`).

    Each instance is transformed only inside its box grown by ``(my, mx)``
    pixels: beyond that its distance exceeds the cutoff anyway. ``d1`` and
    ``d2`` have shape ``(H, W)``. Three exact ways, by the instance's box
    (``bh`` rows, ``bx`` columns), each the fastest where it is used:

    * ``bh <= rows_ratio * bx + 16`` (roundish, or wide): the minimum over
      the instance's rows, pruned (:func:`_pruned_rows_to_d12`);
    * taller, at most ``brute_x_max`` columns: a binary pass along y, then
      the minimum over the columns (:func:`_rows_brute_to_d12`);
    * taller and wider: a binary pass, then lower envelopes along x.
    """
    ny = lab.shape[1]
    nx = lab.shape[2]
    n = ids.size
    # Scratch sized by the instances of each path only (the box of a big
    # instance would otherwise size both).
    gy_max = 1
    bx_max = 1
    bh_max = 1
    gx_max = 1
    bxr_max = 1
    for k in range(n):
        bh = boxes[k, 3] - boxes[k, 2]
        bx = boxes[k, 5] - boxes[k, 4]
        if bh <= rows_ratio * bx + 16:
            bh_max = max(bh_max, bh)
            bxr_max = max(bxr_max, bx)
            gx_max = max(gx_max, min(nx, boxes[k, 5] + mx) - max(0, boxes[k, 4] - mx))
        else:
            gy_max = max(gy_max, min(ny, boxes[k, 3] + my) - max(0, boxes[k, 2] - my))
            bx_max = max(bx_max, bx)
    g = np.empty((gy_max, bx_max), dtype=np.float64)
    last = np.empty(bx_max, dtype=np.int64)
    env = np.empty((5, bx_max + 1), dtype=np.float64)
    line = np.empty(nx + 16, dtype=np.float32)
    owner = np.zeros(nx + 1, dtype=np.int64)
    ramp = np.arange(nx + 16).astype(np.float32)
    sg = np.empty(bx_max + 4, dtype=np.float32)
    sc = np.empty(bx_max + 4, dtype=np.int64)
    runs = np.empty((bh_max, bxr_max + 2), dtype=np.int64)
    nruns = np.empty(bh_max, dtype=np.int64)
    wx = gx_max + 16
    hx = np.empty((bh_max + 1) * wx, dtype=np.float32)
    order = np.empty(3 * bh_max, dtype=np.int64)
    at = np.empty(bh_max + 4, dtype=np.int64)
    vv = np.empty(bh_max + 4, dtype=np.float32)
    span = np.empty(2, dtype=np.int64)
    sx2 = sx * sx
    sy2 = sy * sy
    # Per row offset d: the squared distance and how far along x it reaches.
    vtab = np.empty(ny, dtype=np.float32)
    rtab = np.empty(ny, dtype=np.int64)
    for dy in range(ny):
        vert = sy2 * np.float64(dy * dy)
        vtab[dy] = np.float32(vert) if vert <= r2 else _INF32
        rtab[dy] = int(np.sqrt((r2 - vert) / sx2)) if vert <= r2 else -1
    dymax = 0
    while dymax + 1 < ny and rtab[dymax + 1] >= 0:
        dymax += 1
    hull = np.empty((2, bh_max), dtype=np.int64)
    line2 = np.empty(nx + 16, dtype=np.float32)
    vv2 = np.empty(bh_max + 4, dtype=np.float32)
    stream = out.size > 0
    hr = d1.shape[0]
    done = 0
    flat = lab.reshape(-1)
    for k in range(n):
        y0, y1, x0, x1 = boxes[k, 2], boxes[k, 3], boxes[k, 4], boxes[k, 5]
        if k + 1 < n:
            _prefetch_box(
                flat, nx, boxes[k + 1, 2], boxes[k + 1, 3], boxes[k + 1, 4], boxes[k + 1, 5]
            )
        yy0 = max(0, y0 - my)
        yy1 = min(ny, y1 + my)
        if stream:
            done = _emit_rows(d1, d2, out, done, yy0, hr, cutoff, logw0, inv2s2, background)
        if y1 - y0 <= rows_ratio * (x1 - x0) + 16:
            _pruned_rows_to_d12(
                lab,
                ids[k],
                y0,
                y1,
                x0,
                x1,
                yy0,
                yy1,
                max(0, x0 - mx),
                min(nx, x1 + mx),
                sy2,
                sx2,
                r2,
                d1,
                d2,
                runs[: y1 - y0],
                nruns[: y1 - y0],
                hx[: (y1 - y0 + 1) * wx],
                order,
                at,
                vv,
                span,
                line,
                vtab,
                rtab,
                dymax,
                hull,
                line2,
                vv2,
            )
            continue
        _binary_pass(lab, 0, ids[k], y0, y1, x0, x1, yy0, yy1, sy, r2, g, last)
        xx0 = max(0, x0 - mx)
        xx1 = min(nx, x1 + mx)
        rows = g[: yy1 - yy0, : x1 - x0]
        if x1 - x0 <= brute_x_max:
            _rows_brute_to_d12(rows, x0, yy0, xx0, xx1, sx2, r2, d1, d2, line, ramp, sg, sc)
        else:
            _rows_to_d12(rows, x0, yy0, xx0, xx1, sx2, r2, d1, d2, env, line, owner)
    if stream:
        _emit_rows(d1, d2, out, done, ny, hr, cutoff, logw0, inv2s2, background)


@numba.njit(nogil=True, cache=True)
def _emit_rows(
    d1: np.ndarray,
    d2: np.ndarray,
    out: np.ndarray,
    done: int,
    upto: int,
    hr: int,
    cutoff: float,
    logw0: float,
    inv2s2: float,
    background: bool,
) -> int:
    """Exponents of the final image rows ``[done, upto)`` into ``out``; their ring rows reset."""
    for y in range(done, upto):
        q = y % hr
        _exponents_into(d1[q], d2[q], out[y], cutoff, logw0, inv2s2, background)
        d1[q, :] = _INF32
        d2[q, :] = _INF32
    return max(done, upto)


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
    _exponents_into(d1, d2, d1, cutoff, logw0, inv2s2, background)


@numba.njit(nogil=True, cache=True, inline="always")
def _exponents_into(
    d1: np.ndarray,
    d2: np.ndarray,
    out: np.ndarray,
    cutoff: float,
    logw0: float,
    inv2s2: float,
    background: bool,
) -> None:
    """:func:`exponents` of flat ``d1``, ``d2`` into ``out`` (which may be ``d1``)."""
    # float32 throughout and no branches, so that LLVM vectorises; the
    # float32 error (relative 1e-6 in the result) is far below tolerance.
    lowest = np.float32(0.0) if background else np.float32(-1.0)
    cut = np.float32(cutoff)
    lw0 = np.float32(logw0)
    scale = np.float32(inv2s2)
    floor = np.float32(-87.0)
    # By segments: where no second instance is within the cutoff (most of a
    # sparse image) the square roots are skipped (a third of the time there).
    seg = 512
    for s0 in range(0, d1.size, seg):
        s1 = min(d1.size, s0 + seg)
        far = True
        for i in range(s0, s1):
            far &= d2[np.uint64(i)] == _INF32
        if far:
            for i in range(s0, s1):
                out[np.uint64(i)] = -_INF32
            continue
        for i in range(s0, s1):
            u = np.uint64(i)
            a = d1[u]
            s = np.sqrt(a) + np.sqrt(d2[u])
            t = lw0 - s * s * scale
            keep = (s <= cut) & (t >= floor) & (a > lowest)
            out[u] = t if keep else -_INF32
