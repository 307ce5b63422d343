"""Encoding whole zarr v3 shards in one go, byte-identical to zarr-python's.

zarr-python spends most of a shard write on per-chunk asyncio bookkeeping, more
than on compression. maskprep's arrays all use one codec chain (sharding with
one chunk per sample, inner ``bytes`` little endian + ``zstd``, index ``bytes``
+ ``crc32c`` at the end), and a build always writes whole shards, so it encodes
them here directly: each non-empty chunk compressed with the same numcodecs
Zstd zarr uses, followed by the index of ``(offset, nbytes)`` pairs and its
crc32c. Like zarr's default ``write_empty_chunks=False``, chunks equal to the
fill value are left out (index entry ``2**64 - 1``) and an all-empty shard is
not written at all. A test compares the bytes with zarr-python's for the same
data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["encode_shard"]

_MISSING = np.uint64(2**64 - 1)


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


def _is_fill(chunk: np.ndarray, fill_value: Any) -> bool:
    if chunk.dtype.kind == "f" and np.isnan(fill_value):
        return bool(np.isnan(chunk).all())
    return bool((chunk == fill_value).all())


def encode_shard(block: np.ndarray, n_slots: int, fill_value: Any, zstd_level: int) -> bytes | None:
    """Bytes of one shard holding ``block`` (samples along axis 0), or None if all fill.

    ``n_slots`` is the shard's chunk count (the store's shard size); a last
    shard shorter than that leaves the remaining slots empty.

    Examples
    --------
    >>> import numpy as np
    >>> shard = encode_shard(np.arange(8, dtype=np.uint8).reshape(2, 4), 4, 0, 3)
    >>> len(shard) > 4 * 16 + 4  # two chunks, an index of 4 slots, its crc32c
    True
    >>> encode_shard(np.zeros((2, 4), np.uint8), 4, 0, 3) is None
    True
    """
    from numcodecs import Zstd

    codec = Zstd(level=zstd_level, checksum=False)
    little = block.dtype.newbyteorder("<")
    index = np.full((n_slots, 2), _MISSING, dtype="<u8")
    parts: list[bytes] = []
    offset = 0
    for j in range(block.shape[0]):
        chunk = block[j]
        if _is_fill(chunk, fill_value):
            continue
        raw = np.ascontiguousarray(chunk, dtype=little)
        data = bytes(codec.encode(raw))
        index[j] = (offset, len(data))
        parts.append(data)
        offset += len(data)
    if not parts:
        return None
    index_bytes = index.tobytes()
    crc = _crc32c(index_bytes).to_bytes(4, "little")
    return b"".join(parts) + index_bytes + crc
