"""Encoding whole zarr v3 shards, byte for byte as zarr-python writes them.

See :mod:`maskprep.store.codec` for the codec chain and why a build encodes
shards itself; :class:`ShardEncoder` builds one shard chunk by chunk,
:func:`encode_shard` a whole shard from one array.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from typing import Any

import numpy as np

from maskprep.store.codec import CHUNK_CHECKSUM_NBYTES, MISSING, crc32c, morton_order

__all__ = ["ShardEncoder", "encode_shard"]


def _is_fill(chunk: np.ndarray, fill_value: Any) -> bool:
    nan = chunk.dtype.kind == "f" and np.isnan(fill_value)
    if chunk.size:
        # Most chunks of a target hold no fill at their first pixel: skip the pass.
        first = chunk[(0,) * chunk.ndim]
        if not (np.isnan(first) if nan else first == fill_value):
            return False
    if nan:
        return bool(np.isnan(chunk).all())
    return bool((chunk == fill_value).all())


class ShardEncoder:
    """One shard's bytes, built chunk by chunk, as zarr-python writes them.

    A task adds each sample's part of the shard as it computes it
    (:meth:`add`) and keeps only compressed chunks, so its memory is one
    sample's block plus the shard's compressed size, not the shard
    uncompressed; :meth:`finish` lays the chunks out in zarr's Morton order
    with the index and its crc32c. ``shard_shape`` and ``chunk_shape`` are
    the shapes after the sample axis (``shard_shape`` a multiple of
    ``chunk_shape``); ``extent`` is the part of the shard inside the array
    (default: all of it): chunks beyond it are never written. Chunks equal
    to ``fill_value`` are left out, as with zarr's default
    ``write_empty_chunks=False``. With ``checksum`` every chunk ends with its
    crc32c (zarr's ``crc32c`` codec after ``zstd``). :meth:`add` can hand the
    chunks to threads (zstd releases the GIL); each chunk's bytes are the
    same whichever thread made them, so the shard is too.

    Examples
    --------
    >>> import numpy as np
    >>> enc = ShardEncoder(2, (4, 4), (2, 4), np.dtype("uint8"), 0, 3)
    >>> enc.add(1, (2, 0), np.ones((2, 4), np.uint8))  # sample 1, the second chunk row
    >>> data = enc.finish()
    >>> from maskprep.store.codec import index_nbytes
    >>> len(data) > index_nbytes(4), ShardEncoder(1, (4,), (4,), np.dtype("u1"), 0, 3).finish()
    (True, None)
    """

    def __init__(
        self,
        n_slots: int,
        shard_shape: tuple[int, ...],
        chunk_shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fill_value: Any,
        zstd_level: int,
        *,
        extent: tuple[int, ...] | None = None,
        checksum: bool = False,
    ) -> None:
        from numcodecs import Zstd

        self.shard_shape = tuple(int(e) for e in shard_shape)
        self.chunk_shape = tuple(int(c) for c in chunk_shape)
        self.extent = self.shard_shape if extent is None else tuple(int(e) for e in extent)
        if (
            len(self.chunk_shape) != len(self.shard_shape)
            or len(self.extent) != len(self.shard_shape)
            or any(c < 1 or e % c for c, e in zip(self.chunk_shape, self.shard_shape, strict=True))
            or any(b > e for b, e in zip(self.extent, self.shard_shape, strict=True))
            or n_slots < 1
        ):
            raise ValueError(
                f"no shard of {n_slots} samples of {self.shard_shape} in chunks of "
                f"{self.chunk_shape} with extent {self.extent}"
            )
        self.n_slots = int(n_slots)
        self.dtype = np.dtype(dtype)
        self.fill_value = fill_value
        self.grid = (
            self.n_slots,
            *(e // c for e, c in zip(self.shard_shape, self.chunk_shape, strict=True)),
        )
        self._codec = Zstd(level=zstd_level, checksum=False)
        self._checksum = bool(checksum)
        self._little = self.dtype.newbyteorder("<")
        self._chunks: dict[int, bytes | Future[bytes | None]] = {}

    def add(
        self,
        slot: int,
        origin: tuple[int, ...],
        data: np.ndarray,
        *,
        executor: Executor | None = None,
    ) -> None:
        """Add the chunks of ``data``: sample ``slot``'s values from ``origin`` in the shard.

        ``origin`` lies on the chunk grid (trailing axes left out are 0, as for
        a channel axis held whole); ``data`` covers whole chunks, except
        where it ends at :attr:`extent` or at the end of the sample (the rest
        of such a chunk is ``fill_value``: padding). With ``executor``, the
        chunks are compressed by its threads and ``data`` must not change
        until :meth:`wait` (or :meth:`finish`) returns.
        """
        origin = (*origin, *(0,) * (len(self.chunk_shape) - len(origin)))  # channels: whole
        if not 0 <= slot < self.n_slots or len(origin) != len(self.chunk_shape):
            raise ValueError(f"no slot {slot} / origin {origin} in a shard of {self.grid}")
        if any(o % c for o, c in zip(origin, self.chunk_shape, strict=True)):
            raise ValueError(f"origin {origin} is not on the chunk grid {self.chunk_shape}")
        first = [o // c for o, c in zip(origin, self.chunk_shape, strict=True)]
        counts = [
            -(-min(n, e - o) // c) if e > o else 0
            for n, o, e, c in zip(data.shape, origin, self.extent, self.chunk_shape, strict=True)
        ]
        whole = data.shape == self.chunk_shape
        for rel in np.ndindex(*counts):
            window = tuple(
                slice(r * c, min((r + 1) * c, n, e - o))
                for r, c, n, o, e in zip(
                    rel, self.chunk_shape, data.shape, origin, self.extent, strict=True
                )
            )
            piece = data if whole else data[window]
            pos = (slot, *(f + r for f, r in zip(first, rel, strict=True)))
            flat = int(np.ravel_multi_index(pos, self.grid))
            if executor is not None:
                self._chunks[flat] = executor.submit(self._chunk_bytes, piece)
                continue
            chunk = self._chunk_bytes(piece)
            if chunk is not None:
                self._chunks[flat] = chunk
            else:
                self._chunks.pop(flat, None)

    def _chunk_bytes(self, piece: np.ndarray) -> bytes | None:
        """One chunk's stored bytes (padded to the chunk shape), None if all fill."""
        if piece.shape != self.chunk_shape:
            padded = np.full(self.chunk_shape, self.fill_value, dtype=self.dtype)
            padded[tuple(slice(0, k) for k in piece.shape)] = piece
            piece = padded
        if _is_fill(piece, self.fill_value):
            return None
        raw = np.ascontiguousarray(piece, dtype=self._little)
        return _encode_chunk(raw, self._codec, self._checksum)

    def wait(self) -> None:
        """Wait for the chunks handed to threads (raising what they raised)."""
        for flat, chunk in list(self._chunks.items()):
            if isinstance(chunk, Future):
                data = chunk.result()
                if data is None:
                    del self._chunks[flat]
                else:
                    self._chunks[flat] = data

    def finish(self) -> bytes | None:
        """The shard's bytes (chunks, index, crc32c), or None if every chunk is fill."""
        self.wait()
        if not self._chunks:
            return None
        n_chunks = int(np.prod(self.grid, dtype=np.int64))
        index = np.full((n_chunks, 2), MISSING, dtype="<u8")
        parts: list[bytes] = []
        offset = 0
        for flat in morton_order(self.grid):
            data = self._chunks.get(flat)
            if data is None:
                continue
            assert isinstance(data, bytes)
            index[flat] = (offset, len(data))
            parts.append(data)
            offset += len(data)
        index_bytes = index.tobytes()
        crc = crc32c(index_bytes).to_bytes(4, "little")
        return b"".join(parts) + index_bytes + crc


def _encode_chunk(raw: np.ndarray, codec: Any, checksum: bool) -> bytes:
    """One chunk's bytes: ``raw`` (C-contiguous, stored byte order) through ``codec``
    (zstd), then, with ``checksum``, the crc32c of those bytes (zarr's ``crc32c`` codec)."""
    data = bytes(codec.encode(raw))
    if checksum:
        data += crc32c(data).to_bytes(CHUNK_CHECKSUM_NBYTES, "little")
    return data


def encode_shard(
    block: np.ndarray,
    n_slots: int,
    fill_value: Any,
    zstd_level: int,
    *,
    chunk_shape: tuple[int, ...] | None = None,
    shard_shape: tuple[int, ...] | None = None,
    checksum: bool = False,
) -> bytes | None:
    """Bytes of one shard holding ``block`` (samples along axis 0), or None if all fill.

    ``n_slots`` is the shard's sample count (the store's shard size); a last
    shard shorter than that leaves the remaining slots empty. By default a
    chunk is one whole sample. ``chunk_shape`` and ``shard_shape`` (shapes
    after the sample axis) give a grid of several chunks per sample: the
    shard spans ``shard_shape`` (a multiple of ``chunk_shape``), ``block`` its
    part inside the array (it may end earlier along any axis, at the array's
    edge). Chunks crossing that edge are padded with ``fill_value``; chunks
    beyond it, and chunks equal to the fill value, are left out. The bytes
    are zarr-python's for the same data, chunks in Morton order
    (:class:`ShardEncoder` does the work).

    Examples
    --------
    >>> import numpy as np
    >>> shard = encode_shard(np.arange(8, dtype=np.uint8).reshape(2, 4), 4, 0, 3)
    >>> from maskprep.store.codec import index_nbytes
    >>> len(shard) > index_nbytes(4)  # two chunks, an index of 4 slots, its crc32c
    True
    >>> encode_shard(np.zeros((2, 4), np.uint8), 4, 0, 3) is None
    True
    >>> tiled = encode_shard(np.ones((1, 5, 4), np.uint8), 2, 0, 3,
    ...                      chunk_shape=(2, 4), shard_shape=(6, 4))
    >>> len(tiled) - index_nbytes(2 * 3)  > 0  # 3 tiles of 1 sample written, 3 slots empty
    True
    """
    sample = tuple(block.shape[1:])
    chunk = sample if chunk_shape is None else tuple(chunk_shape)
    if shard_shape is None:  # the sample rounded up to whole chunks
        extent = tuple(-(-b // c) * c for b, c in zip(sample, chunk, strict=False))
    else:
        extent = tuple(shard_shape)
    if len(chunk) != len(sample) or len(extent) != len(sample) or block.shape[0] > n_slots:
        raise ValueError(
            f"a block of shape {block.shape} does not fit a shard of {n_slots} samples "
            f"of {extent} in chunks of {chunk}"
        )
    try:
        enc = ShardEncoder(
            n_slots,
            extent,
            chunk,
            block.dtype,
            fill_value,
            zstd_level,
            extent=sample,
            checksum=checksum,
        )
    except ValueError:
        raise ValueError(
            f"a block of shape {block.shape} does not fit a shard of {n_slots} samples "
            f"of {extent} in chunks of {chunk}"
        ) from None
    origin = (0,) * len(sample)
    for j in range(block.shape[0]):
        enc.add(j, origin, block[j])
    return enc.finish()


# --------------------------------------------------------------------------- decoding
