"""Which tiles of a tiled store a window of a sample touches, and which part of each."""

from __future__ import annotations

import functools
import itertools

__all__ = ["ZSTD_BLOCK", "window_plan"]


#: zstd's largest block (128 KiB): a frame decodes block by block.
ZSTD_BLOCK = 1 << 17


@functools.lru_cache(maxsize=512)
def window_plan(
    lo: tuple[int, ...],
    hi: tuple[int, ...],
    tile: tuple[int, ...],
    per: tuple[int, ...],
    shape: tuple[int, ...],
) -> tuple[
    tuple[tuple[int, ...], int, tuple[slice, ...], tuple[slice, ...], int, tuple[int, ...]], ...
]:
    """The tiles the window ``[lo, hi)`` of a sample of ``shape`` (tiles ``tile``, ``per``
    tiles per shard along each axis) touches, C order.

    Each: its shard's position in the spatial shard grid, its flat position in
    the shard's tile grid (C order, after the sample axis), where its part goes
    in the window, which part of the tile that is, how many elements of the
    tile (C order) end with the part's last one, and the tile's coordinates.
    The arrays of a store share tiles, so one patch computes this once.

    >>> for _, rel, where, part, prefix, _ in window_plan((6,), (10,), (4,), (3,), (12,)):
    ...     print(rel, where[0], part[0], prefix)
    1 slice(0, 2, None) slice(2, 4, None) 4
    2 slice(2, 4, None) slice(0, 2, None) 2
    """
    axes = []
    for a, b, t, g, n in zip(lo, hi, tile, per, shape, strict=True):
        steps = []
        for p in range(a // t, (b - 1) // t + 1):
            t0 = p * t
            i0, i1 = max(a, t0), min(b, t0 + t, n)
            steps.append((p // g, p % g, slice(i0 - a, i1 - a), slice(i0 - t0, i1 - t0), p))
        axes.append(steps)
    plan = []
    for combo in itertools.product(*axes):
        rel = last = 0
        for c, g, t in zip(combo, per, tile, strict=True):
            rel = rel * g + c[1]
            last = last * t + c[3].stop - 1
        plan.append(
            (
                tuple(c[0] for c in combo),
                rel,
                tuple(c[2] for c in combo),
                tuple(c[3] for c in combo),
                last + 1,
                tuple(c[4] for c in combo),
            )
        )
    return tuple(plan)
