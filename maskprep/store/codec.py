"""The shard codec: decoding zarr v3 shards, and what encoding shares with it.

zarr-python spends most of a shard write on per-chunk asyncio bookkeeping, more
than on compression. maskprep's arrays all use one codec chain (sharding with
one chunk per sample, or tiles of a sample in formats 2 and 3; inner ``bytes``
little endian + ``zstd``, in formats 2 and 3 + ``crc32c``; index ``bytes`` +
``crc32c`` at the end), and a build always writes whole shards, so it encodes
them directly (:mod:`maskprep.store.encode`): each non-empty chunk compressed
with the same numcodecs Zstd zarr uses (followed, in formats 2 and 3, by its crc32c, zarr v3's
``crc32c`` codec), then the index of ``(offset, nbytes)`` pairs and its
crc32c. Like zarr's default ``write_empty_chunks=False``, chunks equal to the
fill value are left out (index entry ``2**64 - 1``) and an all-empty shard is
not written at all. A test compares the bytes with zarr-python's for the same
data.

This module holds what both halves use (index layout, Morton order, crc32c)
and the decoding half (used by :mod:`maskprep.reader`), which is pure: it
parses and checks a shard index (:func:`decode_index`), checks a chunk's
crc32c and decompresses it into a buffer (:func:`decode_chunk_into`), lists
the chunks of a shard whose crc32c fails (:func:`corrupt_chunks`) and parses
the ``bytes`` codec's endianness and the array's fill value from
``zarr.json``. Reading the bytes is the caller's business.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from maskprep.errors import StoreError

__all__ = [
    "CHUNK_CHECKSUM_NBYTES",
    "CRC32C_RESIDUE",
    "MISSING",
    "ZSTD_MAGIC",
    "UnsupportedFormat",
    "corrupt_chunks",
    "crc32c",
    "decode_chunk_into",
    "decode_index",
    "frame_content_size",
    "index_nbytes",
    "morton_order",
    "parse_endian",
    "parse_fill_value",
]

#: Index entry (offset and nbytes) of a chunk absent from its shard.
MISSING = 2**64 - 1
#: The first four bytes of a zstd frame.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Bytes of the crc32c (little endian) that zarr v3's ``crc32c`` codec appends to a chunk.
CHUNK_CHECKSUM_NBYTES = 4

_SPECIAL_FLOATS = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


class UnsupportedFormat(Exception):
    """The array's on-disk format is not one the direct decoder handles."""


@functools.cache
def _crc32c_impl() -> Callable[[Any], int] | None:
    try:
        import google_crc32c

        return google_crc32c.value
    except ImportError:  # pragma: no cover - zarr>=3.1 depends on google-crc32c
        pass
    try:  # pragma: no cover - zarr<3.1 used the crc32c package
        import crc32c as crc32c_package

        return crc32c_package.crc32c
    except ImportError:  # pragma: no cover
        return None


#: The crc32c function, looked up once (None without an implementation).
_CRC32C = _crc32c_impl()


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (the shard index checksum); ImportError without an implementation.

    >>> crc32c(b"123456789")
    3808858755
    """
    impl = _crc32c_impl()
    if impl is None:  # pragma: no cover
        raise ImportError("no crc32c implementation (install google-crc32c)")
    return int(impl(data))


def index_nbytes(n_chunks: int) -> int:
    """Size of the index of a shard of ``n_chunks`` chunks: 16 bytes a chunk, a 4-byte crc32c."""
    return n_chunks * 16 + 4


# --------------------------------------------------------------------------- encoding


@functools.lru_cache(maxsize=64)
def morton_order(grid: tuple[int, ...]) -> tuple[int, ...]:
    """Flat C-order positions of a shard's chunks in the order zarr-python stores them.

    zarr's sharding codec writes a shard's chunks one after another in Morton
    (Z) order over its chunk grid ``grid``, interleaving one bit of each axis
    whose extent needs it, lowest bit first; the index stays in C order.

    >>> morton_order((2, 2)), morton_order((3, 1))
    ((0, 2, 1, 3), (0, 1, 2))
    """
    n = int(np.prod(grid, dtype=np.int64))
    if n == 0:
        return ()
    coords = np.indices(grid).reshape(len(grid), -1)
    bits = [(g - 1).bit_length() for g in grid]
    code = np.zeros(n, dtype=np.int64)
    out_bit = 0
    for b in range(max(bits, default=0)):
        for axis, nbits in enumerate(bits):
            if b < nbits:
                code |= ((coords[axis] >> b) & 1) << out_bit
                out_bit += 1
    return tuple(int(i) for i in np.argsort(code, kind="stable"))


def decode_index(
    raw: bytes,
    n_chunks: int,
    shard_nbytes: int,
    path: str,
    *,
    index_dtype: np.dtype[Any] | str = "<u8",
    at_end: bool = True,
) -> list[tuple[int, int]]:
    """The ``(offset, nbytes)`` of every chunk from a shard's index bytes, checked.

    ``raw`` is the index with its crc32c (:func:`index_nbytes`), read from the
    end (``at_end``) or start of a shard file of ``shard_nbytes`` bytes at
    ``path`` (named in errors). Absent chunks are ``(MISSING, MISSING)``.
    Raises StoreError if the checksum does not match or an entry points
    outside the chunk data.

    >>> from maskprep.store.encode import encode_shard
    >>> shard = encode_shard(np.arange(8, dtype=np.uint8).reshape(2, 4), 3, 0, 3)
    >>> index = decode_index(shard[-index_nbytes(3):], 3, len(shard), "s")
    >>> index[2] == (MISSING, MISSING), index[0][0]
    (True, 0)
    """
    n = index_nbytes(n_chunks)
    if len(raw) != n:
        raise StoreError(f"{path}: shard index of {len(raw)} bytes, expected {n}")
    stored_crc = int.from_bytes(raw[-4:], "little")
    if crc32c(raw[:-4]) != stored_crc:
        raise StoreError(f"{path}: shard index checksum mismatch (corrupt shard)")
    table = np.frombuffer(raw, dtype=index_dtype, count=2 * n_chunks)
    index = [(int(a), int(b)) for a, b in table.reshape(-1, 2).tolist()]
    lo, hi = (0, shard_nbytes - n) if at_end else (n, shard_nbytes)
    for off, nb in index:
        if off == MISSING and nb == MISSING:
            continue
        if off < lo or off + nb > hi:
            raise StoreError(
                f"{path}: shard index entry ({off}, {nb}) outside the data (corrupt shard)"
            )
    return index


def frame_content_size(data: bytes | memoryview) -> int | None:
    """Decompressed size declared in a zstd frame header, or None if not declared."""
    if len(data) < 6 or data[:4] != ZSTD_MAGIC:
        return None
    fhd = data[4]
    single = (fhd >> 5) & 1
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]
    size = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    if size == 0 or len(data) < pos + size:
        return None
    value = int.from_bytes(data[pos : pos + size], "little")
    return value + 256 if size == 2 else value


_zstandard: Any
try:
    import zstandard as _zstandard
except ImportError:  # pragma: no cover - optional speed-up
    _zstandard = None

#: zstd implementation: python-zstandard (a reused context per thread, about 20 us
#: faster a chunk) when installed, else numcodecs.
_ZSTD = "zstandard" if _zstandard is not None else "numcodecs"
_local = threading.local()


def _chunk_name(chunk: tuple[int, ...] | None) -> str:
    return "a chunk" if chunk is None else f"chunk {tuple(chunk)}"


#: CRC-32C of any bytes followed by their own CRC-32C (4 bytes, little endian): the
#: CRC register after the appended checksum depends only on (crc XOR checksum), so a
#: chunk is intact exactly when the CRC over all of it, checksum included, is this.
CRC32C_RESIDUE = 0x48674BC7


def _checked(data: Any, path: str, chunk: tuple[int, ...] | None) -> Any:
    """``data`` (bytes, or a 1-D uint8 array viewing them) without its trailing
    crc32c, which must match; StoreError otherwise.

    One CRC over the whole chunk (:data:`CRC32C_RESIDUE`): nothing is copied.
    """
    n = len(data) - CHUNK_CHECKSUM_NBYTES
    if n < 0 or crc32c(data) != CRC32C_RESIDUE:
        raise StoreError(
            f"{path}: {_chunk_name(chunk)} fails its crc32c checksum (the shard file is "
            "corrupt; restore it or rebuild the store)"
        )
    return data[:n] if isinstance(data, np.ndarray) else memoryview(data)[:n]


def _declared_size(frame: Any) -> int | None:
    """:func:`frame_content_size`, by python-zstandard's C parser when installed."""
    if _zstandard is None:
        return frame_content_size(bytes(frame[:18]))
    try:
        size = int(_zstandard.frame_content_size(frame))
    except Exception:  # not a zstd frame header: decompressing it says what is wrong
        return None
    return None if size < 0 else size


def _read_into(reader: Any, view: Any, wanted: int, got: int = 0) -> int:
    """Bytes of ``view`` (``wanted`` long, ``got`` already there) filled from ``reader``."""
    while got < wanted:
        k = reader.readinto(view[got:])
        if not k:
            break
        got += k
    return got


def decode_chunk_into(
    data: Any,
    dest: np.ndarray,
    path: str,
    *,
    checksum: bool = False,
    chunk: tuple[int, ...] | None = None,
    prefix: int | None = None,
) -> None:
    """Decompress one zstd frame into C-contiguous ``dest``; its size must match exactly.

    ``data`` is the chunk's bytes (or a 1-D uint8 array viewing them). With
    ``checksum``, it ends with the frame's crc32c (zarr's ``crc32c``
    codec), checked before anything is decompressed. ``chunk`` (the chunk's
    coordinates in the array's chunk grid) is named in errors. Raises
    StoreError (naming ``path``) if the checksum fails, or the frame is
    corrupt or of another size.

    ``prefix`` (bytes, with ``checksum`` only) asks for just the first
    ``prefix`` bytes of ``dest``: zstd decodes a frame front to back, so it
    stops there (the rest of ``dest`` is left as it was). The checksum covers
    the whole chunk, so a damaged chunk is refused all the same; a frame that
    declares another size too.

    >>> from maskprep.store.encode import encode_shard
    >>> raw = np.arange(6, dtype=np.uint8)
    >>> shard = encode_shard(raw[None], 1, 0, 3, checksum=True)
    >>> chunk = shard[: -index_nbytes(1)]
    >>> out = np.empty(6, np.uint8)
    >>> decode_chunk_into(chunk, out, "a/c/0/0", checksum=True, chunk=(0, 0))
    >>> out.tolist()
    [0, 1, 2, 3, 4, 5]
    >>> flipped = bytes([chunk[0] ^ 1]) + chunk[1:]
    >>> try:
    ...     decode_chunk_into(flipped, out, "a/c/0/0", checksum=True, chunk=(0, 0))
    ... except StoreError as e:
    ...     print(str(e).split(" (the")[0])
    a/c/0/0: chunk (0, 0) fails its crc32c checksum
    """
    if checksum:  # _checked, inlined: this runs for every tile read
        crc = _CRC32C
        if len(data) < CHUNK_CHECKSUM_NBYTES or crc is None or crc(data) != CRC32C_RESIDUE:
            _checked(data, path, chunk)  # raises the error
        end = len(data) - CHUNK_CHECKSUM_NBYTES
        frame = data[:end] if isinstance(data, np.ndarray) else memoryview(data)[:end]
    else:
        frame = data
    expected = dest.nbytes
    declared = _declared_size(frame)
    if declared is not None and declared != expected:
        raise StoreError(
            f"{path}: {_chunk_name(chunk)} decompresses to {declared} bytes, expected "
            f"{expected} (corrupt)"
        )
    try:
        if declared is not None and _ZSTD == "zstandard":
            dctx = getattr(_local, "dctx", None)
            if dctx is None:
                dctx = _local.dctx = _zstandard.ZstdDecompressor()
            reader = dctx.stream_reader(frame)
            if prefix is not None and checksum and 0 <= prefix < expected:
                # A shorter buffer stops decoding after the block that fills it;
                # the frame's size was checked above and its bytes by the crc.
                view = dest.reshape(-1).view(np.uint8)
                got = _read_into(reader, view[:prefix], prefix)
                got = expected if got == prefix else got
            else:
                # A buffer that holds the whole frame is decoded in one pass,
                # straight into it (zstd's single-pass shortcut).
                got = reader.readinto(dest)
                if 0 < got < expected:
                    got = _read_into(reader, dest.reshape(-1).view(np.uint8), expected, got)
        elif declared is not None:
            from numcodecs import zstd

            zstd.decompress(frame, dest)
            got = expected
        else:
            from numcodecs import zstd

            raw = zstd.decompress(frame)
            got = len(raw)
            if got == expected:
                dest.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)
    except StoreError:
        raise
    except Exception as e:
        raise StoreError(f"{path}: cannot decompress {_chunk_name(chunk)} ({e})") from None
    if got != expected:
        raise StoreError(
            f"{path}: {_chunk_name(chunk)} decompresses to {got} bytes, expected {expected}"
        )


def corrupt_chunks(
    data: bytes,
    n_chunks: int,
    path: str,
    *,
    index_dtype: np.dtype[Any] | str = "<u8",
    at_end: bool = True,
) -> list[int]:
    """Positions (C order in the shard's chunk grid) of the chunks of the shard file
    ``data`` whose crc32c fails; every chunk must end with one (format 2).

    Nothing is decompressed. Raises StoreError if the index itself is corrupt
    (:func:`decode_index`).

    >>> from maskprep.store.encode import encode_shard
    >>> shard = bytearray(encode_shard(np.arange(8, dtype=np.uint8).reshape(2, 4), 3, 0, 3,
    ...                                checksum=True))
    >>> corrupt_chunks(bytes(shard), 3, "s")
    []
    >>> shard[0] ^= 0x10
    >>> corrupt_chunks(bytes(shard), 3, "s")
    [0]
    """
    n = index_nbytes(n_chunks)
    raw = data[-n:] if at_end else data[:n]
    index = decode_index(raw, n_chunks, len(data), path, index_dtype=index_dtype, at_end=at_end)
    bad = []
    for k, (off, nb) in enumerate(index):
        if off == MISSING and nb == MISSING:
            continue
        try:
            _checked(data[off : off + nb], path, None)
        except StoreError:
            bad.append(k)
    return bad


def parse_endian(codec: dict[str, Any], itemsize: int) -> Literal["<", ">"]:
    """Byte order of a ``bytes`` codec entry of ``zarr.json``; UnsupportedFormat if odd.

    >>> parse_endian({"name": "bytes", "configuration": {"endian": "big"}}, 4)
    '>'
    """
    config = codec.get("configuration") or {}
    endian = config.get("endian")
    if endian is None and itemsize == 1:
        return "<"
    if endian not in ("little", "big") or set(config) - {"endian"}:
        raise UnsupportedFormat(f"bytes codec {codec}")
    return "<" if endian == "little" else ">"


def parse_fill_value(value: Any, dtype: np.dtype[Any]) -> Any:
    """The fill value of ``zarr.json`` as a Python scalar of ``dtype``; UnsupportedFormat if odd.

    >>> parse_fill_value("NaN", np.dtype("float32"))
    nan
    """
    if dtype.kind == "b":
        ok = isinstance(value, bool)
    elif isinstance(value, str):
        if dtype.kind == "f" and value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        ok = False
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and (dtype.kind == "f" or float(value).is_integer())
    if not ok:
        raise UnsupportedFormat(f"fill value {value!r}")
    return value
