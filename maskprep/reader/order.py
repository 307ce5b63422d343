"""The order of an epoch: a seeded permutation, split into disjoint parts per rank, in batches."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

__all__ = ["check_int", "epoch_order"]


def check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return v


def epoch_order(
    n: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """The batches of sample positions ``0..n-1`` that ``rank`` reads in ``epoch``.

    All ranks draw the same permutation (from ``seed`` and ``epoch``) and take
    disjoint contiguous slices of it. Without ``drop_last`` every position is
    in exactly one batch of exactly one rank; slices differ by at most one
    sample, so ranks may get different numbers of batches and each rank's last
    batch may be short. With ``drop_last`` every rank gets the same number
    ``n // (world_size * batch_size)`` of full batches and the remainder of the
    permutation (different samples each epoch) is skipped.

    Examples
    --------
    >>> [b.tolist() for b in epoch_order(7, 2, shuffle=False, rank=0, world_size=2)]
    [[0, 1], [2]]
    >>> [b.tolist() for b in epoch_order(7, 2, shuffle=False, rank=1, world_size=2)]
    [[3, 4], [5, 6]]
    >>> [b.tolist() for b in epoch_order(7, 2, shuffle=False, rank=1, world_size=2,
    ...                                   drop_last=True)]
    [[2, 3]]
    """
    n = check_int("n", n, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    world_size = check_int("world_size", world_size, 1)
    rank = check_int("rank", rank, 0)
    epoch = check_int("epoch", epoch, 0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size={world_size}, got {rank}")
    if shuffle:
        if seed is None:
            if world_size > 1:
                raise ValueError(
                    "shuffle with world_size > 1 needs a seed, so every rank draws "
                    "the same permutation"
                )
            order = np.random.default_rng().permutation(n)
        else:
            seed = check_int("seed", seed, 0)
            order = np.random.default_rng([seed, epoch]).permutation(n)
    else:
        order = np.arange(n, dtype=np.int64)
    if drop_last:
        per_rank = n // (world_size * batch_size) * batch_size
        mine = order[rank * per_rank : (rank + 1) * per_rank]
    else:
        mine = order[rank * n // world_size : (rank + 1) * n // world_size]
    mine = mine.astype(np.int64, copy=False)
    return [mine[a : a + batch_size] for a in range(0, mine.size, batch_size)]
