"""Numba kernel mapping arbitrary instance ids to dense indices.

Everything here trusts its caller: the label array is C-contiguous and
unsigned (signed ids are viewed as unsigned of the same width, since they are
only compared for equality), and no argument is checked.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["dense_ids"]

_GOLDEN = np.uint64(11400714819323198485)


@numba.njit(nogil=True, cache=True)
def _rehash(
    keys: np.ndarray, vals: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray, np.uint64]:
    """The same open-addressing table with ``2**bits`` slots."""
    size = 1 << bits
    shift = np.uint64(64 - bits)
    mask = size - 1
    new_keys = np.zeros(size, keys.dtype)
    new_vals = np.zeros(size, np.int32)
    for s in range(keys.size):
        if vals[s] != 0:
            h = np.int64((np.uint64(keys[s]) * _GOLDEN) >> shift) & mask
            while new_vals[h] != 0:
                h = (h + 1) & mask
            new_keys[h] = keys[s]
            new_vals[h] = vals[s]
    return new_keys, new_vals, shift


@numba.njit(nogil=True, cache=True)
def dense_ids(lab: np.ndarray, out: np.ndarray) -> int:
    """Fill ``out`` (int32, same shape) with 0 on background, 1..K per nonzero id; return K.

    Indices are given in order of first appearance (C order). Ids are looked
    up in an open-addressing hash table with Fibonacci hashing (small
    consecutive ids spread over the table), and only where the id changes
    along the raster, since instances come in runs.
    """
    flat = lab.ravel()
    of = out.ravel()
    bits = 10
    keys = np.zeros(1 << bits, lab.dtype)
    vals = np.zeros(1 << bits, np.int32)
    shift = np.uint64(64 - bits)
    count = 0
    prev = flat[0] if flat.size else lab.dtype.type(0)
    prev_idx = 0
    for i in range(flat.size):
        v = flat[i]
        if v == 0:
            of[i] = 0
            continue
        if v == prev and prev_idx != 0:
            of[i] = prev_idx
            continue
        mask = keys.size - 1
        h = np.int64((np.uint64(v) * _GOLDEN) >> shift) & mask
        while vals[h] != 0 and keys[h] != v:
            h = (h + 1) & mask
        if vals[h] == 0:
            count += 1
            keys[h] = v
            vals[h] = count
            prev_idx = count
            if 2 * count > keys.size:
                bits += 1
                keys, vals, shift = _rehash(keys, vals, bits)
        else:
            prev_idx = vals[h]
        prev = v
        of[i] = prev_idx
    return count
