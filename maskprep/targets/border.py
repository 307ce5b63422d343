"""U-Net border weight maps (Ronneberger et al. 2015, eq. 2).

``border_weights`` is the public, validated entry point; the arithmetic lives in
``maskprep._kernels``. ``border_weights_reference`` is the slow, obviously
correct scipy implementation kept as the test oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from maskprep import _kernels as _k

__all__ = ["border_weights", "border_weights_reference", "compile_kernels", "kernels_compiled"]

_REGIONS = ("background", "all")

# In 3D, instances spanning at most this many slices get their z pass by
# brute force vectorised across x (cost grows with the slice count); taller
# ones use lower envelopes. About where the two cost the same here.
_BRUTE_Z_MAX = 64
# In 2D, an instance whose box has bh rows and bx columns is transformed by a
# minimum over its rows when bh <= _ROWS_RATIO * bx + 16; taller ones at most
# _BRUTE_X_MAX columns wide by a minimum over their columns, wider ones by
# lower envelopes (see maskprep._kernels.windowed_2d). Measured on colony
# cells of radius 3-120 and on ellipses 40-300 wide and 300-900 tall: the
# row minimum was the fastest for every roundish shape (25-45% faster than
# envelopes), the column minimum for tall narrow ones.
_ROWS_RATIO = 2.0
_BRUTE_X_MAX = 64

_METHODS = ("auto", "windowed", "separable")
# method="auto" picks the separable transform when the grown boxes of the
# instances cover each pixel this many times on average (their summed
# volume over the image's): the windowed kernels cost about that many
# per-instance updates per pixel, the separable one a fixed number of
# passes. At the crossovers of the scaling table in BENCHMARKS.md: in 2D,
# with the row-minimum kernel, separable/windowed was 1.3-1.9 up to cover
# 6 (1.22 on the 2000-cell case, cover 8.1), 0.9-1.1 at 14, 1.1-1.3 at
# 18.5 (a large sigma) and 0.7-0.8 at 59; in 3D 1.2-1.3 at 1.6 and 0.8-0.9
# at 8-9.
_SEPARABLE_MIN_COVER_2D = 32.0
_SEPARABLE_MIN_COVER_3D = 4.0
# Lines swept together by the separable passes (SIMD lanes and then some:
# per-row overheads dominate below 64, and wider blocks fold more rows).
_SEPARABLE_LANES = 128


def _check_args(
    instances: np.ndarray,
    w0: float,
    sigma: float,
    spacing: Sequence[float] | None,
    region: str,
) -> tuple[np.ndarray, tuple[float, ...]]:
    arr = np.asarray(instances)
    if arr.ndim not in (2, 3):
        raise ValueError(f"instances must be a 2D or 3D label image, got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"instances must have an integer dtype, got {arr.dtype}")
    if not np.isfinite(w0) or w0 < 0:
        raise ValueError(f"w0 must be a finite number >= 0, got {w0}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    if region not in _REGIONS:
        raise ValueError(f"region must be one of {_REGIONS}, got {region!r}")
    if spacing is None:
        sp = (1.0,) * arr.ndim
    else:
        sp = tuple(float(s) for s in spacing)
        if len(sp) != arr.ndim:
            raise ValueError(f"spacing {spacing} has {len(sp)} values for a {arr.ndim}D image")
        if not all(np.isfinite(s) and s > 0 for s in sp):
            raise ValueError(f"spacing values must be finite and > 0, got {spacing}")
    return arr, sp


def border_weights_reference(
    instances: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    spacing: Sequence[float] | None = None,
    region: str = "background",
) -> np.ndarray:
    """Border term by one full-image distance transform per instance (slow oracle).

    Computes ``w0 * exp(-(d1 + d2)**2 / (2 * sigma**2))`` in float64, where
    ``d_i(x)`` is the Euclidean distance (with ``spacing``) from ``x`` to the
    nearest pixel of instance ``i`` (0 inside it) and ``d1 <= d2`` are the two
    smallest over all instances. Fewer than two instances give zeros. With
    ``region="background"`` the term is zero on instance pixels.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((1, 5), dtype=np.int32)
    >>> lab[0, 0], lab[0, 4] = 1, 2
    >>> w = border_weights_reference(lab, w0=1.0, sigma=2.0)
    >>> float(np.round(w[0, 2], 4))  # d1 = d2 = 2 -> exp(-16 / 8)
    0.1353
    """
    arr, sp = _check_args(instances, w0, sigma, spacing, region)
    ids = np.unique(arr)
    ids = ids[ids != 0]
    out = np.zeros(arr.shape, dtype=np.float64)
    if ids.size < 2:
        return out
    d1 = np.full(arr.shape, np.inf)
    d2 = np.full(arr.shape, np.inf)
    for i in ids:
        d = ndimage.distance_transform_edt(arr != i, sampling=sp)
        d2 = np.where(d < d1, d1, np.minimum(d2, d))
        d1 = np.minimum(d1, d)
    out = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
    if region == "background":
        out[arr != 0] = 0.0
    return out


def _prepare(arr: np.ndarray, sp: tuple[float, ...]) -> tuple[np.ndarray, tuple[float, ...], bool]:
    """A C-contiguous 3D uint32 (or uint64) copy or view of ``arr``; spacing; transposed?

    An F-ordered input is transposed (free) instead of copied: the map is
    symmetric in the axes, so the caller transposes the result back. Labels
    are only ever compared for equality, so they are viewed as the unsigned
    integer of the same width and then widened (1 and 2 bytes) or narrowed
    (8 bytes, when every id fits) to uint32: one compiled variant of each
    kernel, uint64 only for ids beyond 2**32. The copy of small dtypes costs
    less than the float32 maps the kernels fill.
    """
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    transposed = False
    if not arr.flags.c_contiguous and arr.flags.f_contiguous:
        arr = arr.T
        sp = sp[::-1]
        transposed = True
    arr = np.ascontiguousarray(arr).view(f"u{arr.dtype.itemsize}")
    if arr.dtype.itemsize < 4 or (arr.dtype.itemsize == 8 and _fits_uint32(arr)):
        arr = arr.astype(np.uint32)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
        sp = (1.0, *sp)
    return arr, sp, transposed


def _fits_uint32(arr: np.ndarray) -> bool:
    return arr.size == 0 or int(arr.max()) <= np.iinfo(np.uint32).max


def _kernels_used() -> tuple[object, ...]:
    """The numba dispatchers a 2D build of ordinary images calls (threads=1, windowed)."""
    return (_k.scan_boxes, _k.windowed_2d_weights)


def kernels_compiled() -> bool:
    """Whether the border kernels' compiled code is in numba's on-disk cache.

    False on a fresh install (or after the kernels changed): then the first
    :func:`border_weights` call compiles them, which takes seconds.
    """
    try:
        files = [d._cache._cache_file for d in _kernels_used()]  # type: ignore[attr-defined]
        return all(len(f._load_index()) > 0 for f in files)
    except Exception:  # numba internals moved: assume cached rather than guess
        return True


def compile_kernels() -> None:
    """Compile (or load from numba's cache) the kernels a 2D build uses, on a tiny image.

    Labels reach the kernels as uint32 and boxes C-ordered whatever the
    input, so one call compiles every specialisation (the 2D kernel is one
    compiled function whichever of its paths an instance takes). 3D volumes
    and images dense enough for the separable transform compile theirs on
    first use: compiling them here too would add about 15 s to every cold
    first build, most of which never need them.
    """
    lab = np.zeros((8, 8), dtype=np.int32)
    lab[:, 0] = 1
    lab[0, 4] = 2
    border_weights(lab, sigma=1.0)


def border_weights(
    instances: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    spacing: Sequence[float] | None = None,
    region: str = "background",
    tolerance: float = 1e-6,
    threads: int = 1,
    method: str = "auto",
) -> np.ndarray:
    """U-Net border term ``w0 * exp(-(d1 + d2)**2 / (2 * sigma**2))`` as float32.

    ``d_i(x)`` is the Euclidean distance (in units of ``spacing``) from ``x`` to
    the nearest pixel of instance ``i`` (0 inside it) and ``d1 <= d2`` are the
    two smallest over all instances (Ronneberger et al. 2015, eq. 2).

    Parameters
    ----------
    instances : ndarray of int, 2D or 3D
        Instance label image: 0 is background, every other value one instance.
        Ids need not be sequential and may be any integer of the dtype.
    w0, sigma : float
        Amplitude and width of the border term (U-Net paper: 10 and 5 pixels).
    spacing : sequence of float, optional
        Physical voxel size per axis; distances and ``sigma`` are in these units.
    region : {"background", "all"}
        Where the term applies: only background pixels (as in the paper), or everywhere.
    tolerance : float
        Absolute accuracy relative to ``w0``, in (0, 1): the result is within
        ``tolerance * w0`` (plus float32 rounding) of the exact value.
    threads : int
        Threads working on one image (the kernels release the GIL). The
        windowed transform splits the instances into groups whose running
        two-smallest distances are merged exactly, the separable one splits
        the lines of each pass, so the result is byte-identical for any value.
        Keep 1 where images are already processed in parallel (the pipeline).
    method : {"auto", "windowed", "separable"}
        Which exact transform computes the distances (see Notes); the result
        agrees within the tolerance either way. "auto" picks the faster one
        for the image at hand; the others are for tests and benchmarks.

    Returns
    -------
    ndarray of float32, same shape as ``instances``.
        Zero everywhere when there are fewer than two instances.

    Notes
    -----
    Let ``R = sigma * sqrt(2 * ln(1 / tolerance))``, so that
    ``w0 * exp(-R**2 / (2 * sigma**2)) = tolerance * w0``. The result is
    computed exactly (up to rounding) wherever ``d1 + d2 <= R`` and set to 0
    elsewhere. Since the term decreases in ``d1 + d2``, the zeroed pixels have
    exact values in ``[0, tolerance * w0)``, which bounds the error.

    This allows each instance's distance transform to be computed only inside
    its bounding box grown by ``ceil(R / spacing[k])`` pixels along axis ``k``:
    outside that box ``d_i > R``, so any pair involving ``i`` has
    ``d1 + d2 > R`` and the pixel is zeroed regardless. Inside the box, an
    exact separable transform restricted to the box is exact, because the box
    holds every pixel of the instance. In 2D the distance along x to the
    instance's pixels in each of its rows is a closed form, and each output
    row takes the minimum over the instance's rows, skipping those that
    cannot be nearest (above or below an instance, a row whose pixels lie
    within the columns of rows nearer the output); tall instances use lower
    envelopes of parabolas (Felzenszwalb and Huttenlocher 2012) or a minimum
    over columns, and in 3D envelopes along x and a minimum over the few
    slices an instance spans. Values beyond
    ``R**2`` are discarded as soon as they appear, for the same reason. The
    two smallest values per pixel are kept in float32, so memory is
    O(pixels), and the result does not depend on the order of the instances
    and is the same on every call. In 2D with one thread the transform
    sweeps down the image, instances by first row: rows no later instance
    reaches are final, and their term is computed at once, so the two
    distances are held only for the rows still open (as many as the
    tallest grown box), in cache; the values are those of whole-image
    passes, which several threads use.

    That windowed transform costs, per pixel, about as many updates as there
    are instances whose grown box covers the pixel, which in dense scenes, in
    3D and at large ``sigma`` is many. The separable transform
    (``method="separable"``) instead carries, per pixel, the two nearest
    distinct instances and their squared distances through one pass per
    axis: exact, because a third instance at one position is beaten there by
    two others and so wherever the next pass carries it. Its cost per pixel
    is fixed, but higher than one windowed update, and it needs two to three
    times the memory (two distances and two ids, of the labels' width, per
    pixel, against two distances). "auto" uses it when the grown boxes
    cover a pixel at least 32 times on average in 2D (4 in 3D): 3D blobs at
    sigma 5 or dense 2D cells at a large sigma, but not 1024^2 with 250
    cells of radius 8-20 or 2000 of radius 4-8 (see BENCHMARKS.md).

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((1, 5), dtype=np.int32)
    >>> lab[0, 0], lab[0, 4] = 1, 2
    >>> border_weights(lab, w0=1.0, sigma=2.0).round(4)  # d1 + d2 = 4 between them
    array([[0.    , 0.1353, 0.1353, 0.1353, 0.    ]], dtype=float32)
    """
    if not (0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    arr, sp = _check_args(instances, w0, sigma, spacing, region)
    lab, sp3, transposed = _prepare(arr, sp)
    if lab.size == 0 or w0 == 0:
        return _finish(np.zeros(lab.shape, dtype=np.float32), arr.shape, transposed)
    ids, boxes = _k.scan_boxes(lab)
    if ids.size < 2:
        return _finish(np.zeros(lab.shape, dtype=np.float32), arr.shape, transposed)
    cutoff = float(sigma * np.sqrt(2.0 * np.log(1.0 / tolerance)))
    r2 = cutoff * cutoff
    # Clipped to the image so that a tiny spacing cannot overflow int64.
    margins = [int(min(np.ceil(cutoff / s), n)) for s, n in zip(sp3, lab.shape, strict=True)]
    if method == "auto":
        method = _choose_method(lab.shape, boxes, margins)
    if method == "separable":
        out = _separable(lab, sp3, cutoff, w0, sigma, region, threads)
        return _finish(out, arr.shape, transposed)
    groups = _split_work(boxes, margins, threads)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    sz, sy, sx = sp3
    mz, my, mx = margins
    logw0, inv2s2, background = float(np.log(w0)), 0.5 / sigma**2, region == "background"
    if lab.shape[0] == 1 and len(groups) == 1:
        # One sweep down the image: distances and exponents of each row as
        # soon as it is final, in a ring of rows that stays in cache (the
        # same values as the two passes below). The sweep needs the
        # instances by first row, the order scan_boxes finds them in.
        if boxes.shape[0] > 1 and np.any(boxes[1:, 2] < boxes[:-1, 2]):
            order = np.argsort(boxes[:, 2], kind="stable")
            ids, boxes = ids[order], boxes[order]
        out = np.empty(lab.shape, dtype=np.float32)
        _k.windowed_2d_weights(
            lab,
            ids,
            boxes,
            sy,
            sx,
            my,
            mx,
            r2,
            _ROWS_RATIO,
            _BRUTE_X_MAX,
            out[0],
            cutoff,
            logw0,
            inv2s2,
            background,
        )
        np.exp(out, out=out)
        return _finish(out, arr.shape, transposed)

    def spread(g: int) -> tuple[np.ndarray, np.ndarray]:
        # Allocated here, so that with several threads the pages are touched in parallel.
        e1 = np.full(lab.shape, np.inf, dtype=np.float32)
        e2 = np.full(lab.shape, np.inf, dtype=np.float32)
        sel = groups[g]
        if lab.shape[0] == 1:
            _spread_2d(lab, ids[sel], boxes[sel], sy, sx, my, mx, r2, e1, e2)
        else:
            _k.windowed_3d(
                lab, ids[sel], boxes[sel], sz, sy, sx, mz, my, mx, r2, e1, e2, _BRUTE_Z_MAX
            )
        return e1, e2

    def finish(part: slice) -> None:
        # d1 (the first pair) becomes the output: no third image is touched.
        d1, d2 = pairs[0][0].reshape(-1)[part], pairs[0][1].reshape(-1)[part]
        for e1, e2 in pairs[1:]:
            _k.merge_smallest(d1, d2, e1.reshape(-1)[part], e2.reshape(-1)[part])
        _k.exponents(d1, d2, cutoff, logw0, inv2s2, background)
        np.exp(d1, out=d1)

    if len(groups) == 1:
        pairs.append(spread(0))
        finish(slice(None))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(groups)) as pool:
            pairs.extend(pool.map(spread, range(len(groups))))
            step = -(-lab.size // len(groups))
            list(pool.map(finish, [slice(a, a + step) for a in range(0, lab.size, step)]))
    d1 = pairs[0][0]
    return _finish(d1, arr.shape, transposed)


def _cover(shape: tuple[int, ...], boxes: np.ndarray, margins: list[int]) -> float:
    """Summed volume of the instances' boxes grown by ``margins`` (clipped), over the image's."""
    lo = np.maximum(boxes[:, 0::2] - np.asarray(margins), 0)
    hi = np.minimum(boxes[:, 1::2] + np.asarray(margins), np.asarray(shape))
    vol = np.prod((hi - lo).astype(np.float64), axis=1).sum()
    return float(vol / np.prod(np.asarray(shape, dtype=np.float64)))


def _choose_method(shape: tuple[int, ...], boxes: np.ndarray, margins: list[int]) -> str:
    """``"separable"`` where the windowed kernels would update each pixel many times."""
    least = _SEPARABLE_MIN_COVER_2D if shape[0] == 1 else _SEPARABLE_MIN_COVER_3D
    return "separable" if _cover(shape, boxes, margins) >= least else "windowed"


def _separable(
    lab: np.ndarray,
    sp3: tuple[float, ...],
    cutoff: float,
    w0: float,
    sigma: float,
    region: str,
    threads: int,
) -> np.ndarray:
    """Border term of the ``(Z, Y, X)`` label image by the separable transform (float32)."""
    nz, ny, nx = lab.shape
    # Rows padded to a multiple of 16 pixels, so that every block of lines
    # but the last in a row is a whole number of SIMD vectors.
    wide = -(-nx // 16) * 16
    size = nz * ny * wide
    f1 = np.empty(size, dtype=np.float32)
    f2 = np.empty(size, dtype=np.float32)
    a1 = np.empty(size, dtype=lab.dtype)
    a2 = np.empty(size, dtype=lab.dtype)
    r2 = cutoff * cutoff
    rows = lab.reshape(nz * ny, nx)
    views = [x.reshape(nz * ny, wide) for x in (f1, a1, f2, a2)]
    # Passes: x from the labels, then y, then z (the last writes the exponent).
    lines = [(nz, ny, wide, sp3[1])]
    if nz > 1:
        lines.append((1, nz, ny * wide, sp3[0]))
    consts = (cutoff, float(np.log(w0)), 0.5 / sigma**2, region == "background")

    def x_pass(r0: int, r1: int) -> None:
        _k.sep_x_pass(rows, sp3[2] ** 2, r2, r0, r1, *views)

    def line_pass(k: int, i0: int, i1: int) -> None:
        _, n, inner, s = lines[k]
        lanes = min(_SEPARABLE_LANES, inner)
        final = k == len(lines) - 1
        _k.sep_line_pass(f1, a1, f2, a2, n, inner, lanes, s * s, r2, i0, i1, final, *consts)

    def items(k: int) -> int:
        outer, _, inner, _ = lines[k]
        return outer * -(-inner // min(_SEPARABLE_LANES, inner))

    def exp(i0: int, i1: int) -> None:
        np.exp(f1[i0:i1], out=f1[i0:i1])

    if threads == 1:
        x_pass(0, nz * ny)
        for k in range(len(lines)):
            line_pass(k, 0, items(k))
        exp(0, size)
    else:
        from concurrent.futures import ThreadPoolExecutor

        # Every work item is computed the same way whichever thread runs it,
        # so the split cannot change the result.
        def run(pool: ThreadPoolExecutor, fn: Callable[..., None], total: int, *head: int) -> None:
            step = -(-total // threads)
            jobs = [pool.submit(fn, *head, a, min(total, a + step)) for a in range(0, total, step)]
            for job in jobs:
                job.result()

        with ThreadPoolExecutor(threads) as pool:
            run(pool, x_pass, nz * ny)
            for k in range(len(lines)):
                run(pool, line_pass, items(k), k)
            run(pool, exp, size)
    out = f1.reshape(nz, ny, wide)
    if wide != nx:
        out = np.ascontiguousarray(out[:, :, :nx])
    return out


def _split_work(boxes: np.ndarray, margins: list[int], threads: int) -> list[np.ndarray]:
    """Instances in up to ``threads`` groups of similar work (grown-box volume).

    Deterministic: greedy largest-first assignment; the split never changes
    the result (see :func:`maskprep._kernels.merge_smallest`).
    """
    n = boxes.shape[0]
    k = min(threads, n)
    if k <= 1:
        return [np.arange(n)]
    extent = boxes[:, 1::2] - boxes[:, 0::2] + 2 * np.asarray(margins)
    work = np.prod(extent.astype(np.float64), axis=1)
    load = np.zeros(k)
    owner = np.empty(n, dtype=np.int64)
    for i in np.argsort(-work, kind="stable"):
        g = int(np.argmin(load))
        owner[i] = g
        load[g] += work[i]
    return [np.flatnonzero(owner == g) for g in range(k)]


def _spread_2d(
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
    """Merge every instance of the ``(1, H, W)`` image ``lab`` into d1/d2."""
    _k.windowed_2d(lab, ids, boxes, sy, sx, my, mx, r2, d1[0], d2[0], _ROWS_RATIO, _BRUTE_X_MAX)


def _finish(out: np.ndarray, shape: tuple[int, ...], transposed: bool) -> np.ndarray:
    out = out.reshape(shape[::-1] if transposed else shape)
    return out.T if transposed else out
