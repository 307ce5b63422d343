"""One array of a store, read a sample at a time: decoded directly, or through zarr-python."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from maskprep.errors import StoreError
from maskprep.reader.cache import TileCache
from maskprep.reader.files import RemoteFiles, ShardFiles
from maskprep.reader.tiles import ZSTD_BLOCK, window_plan
from maskprep.reader.zarr_backend import ZarrArray, zarr_open
from maskprep.store import (
    MISSING,
    Location,
    UnsupportedFormat,
    crc32c,
    decode_chunk_into,
    decode_index,
    index_nbytes,
    parse_endian,
    parse_fill_value,
)

__all__ = ["DirectArray", "SampleSource", "ZarrArray", "open_array", "zarr_open"]

_DTYPES = {
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
}


class SampleSource(Protocol):
    """Reads one sample of one array, padded, native dtype; or a window of it.

    ``tiled`` says the array is chunked in tiles, so a window decodes only
    the tiles it touches (else a window decodes the whole sample and crops).
    ``indexes_read`` counts the shard indexes read so far (it grows when a
    read touches a shard file for the first time).
    """

    name: str
    backend: str
    sample_shape: tuple[int, ...]
    dtype: np.dtype[Any]
    n_samples: int
    tiled: bool

    @property
    def indexes_read(self) -> int: ...

    def read(self, j: int, out: np.ndarray | None = None) -> np.ndarray: ...

    def read_window(
        self,
        j: int,
        start: tuple[int, ...],
        stop: tuple[int, ...],
        out: np.ndarray | None = None,
    ) -> np.ndarray: ...


class DirectArray:
    """Decodes one maskprep array's shards without zarr-python.

    Chunks are one sample each (format 1) or tiles of a sample (format 2,
    several per shard along the spatial axes too); a tile is read with one
    ``pread`` and decoded, and absent tiles are the fill value.
    """

    backend = "direct"
    #: Decoded tiles kept between reads (:meth:`maskprep.reader.Shards.cache_tiles`).
    tile_cache: TileCache | None = None

    def __init__(
        self,
        path: Path | str,
        name: str,
        files: ShardFiles,
        doc: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.files = files
        # Local shards are joined with the OS separator, object keys with "/".
        self._sep = os.sep if isinstance(path, Path) else "/"
        if doc is None:
            meta = Path(path) / "zarr.json"
            try:
                doc = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise StoreError(f"{meta}: cannot read array metadata ({e})") from None
        self._parse(doc)
        try:
            crc32c(b"")
        except ImportError:  # pragma: no cover
            raise UnsupportedFormat("no crc32c implementation") from None
        #: (path, chunk index or None if absent) of every shard read so far.
        self._indexes: dict[tuple[int, ...], tuple[str, list[tuple[int, int]] | None]] = {}
        self._index_lock = threading.Lock()
        self._local = threading.local()  # per-thread scratch tile (no page faults per tile)

    def _parse(self, doc: dict[str, Any]) -> None:
        if doc.get("zarr_format") != 3 or doc.get("node_type") != "array":
            raise UnsupportedFormat("not a zarr v3 array")
        if doc.get("storage_transformers"):
            raise UnsupportedFormat("storage transformers")
        dtype_name = doc.get("data_type")
        if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
            raise UnsupportedFormat(f"data type {dtype_name!r}")
        shape = tuple(int(n) for n in doc["shape"])
        if len(shape) < 2:
            raise UnsupportedFormat("fewer than 2 dimensions")
        grid = doc.get("chunk_grid", {})
        if grid.get("name") != "regular":
            raise UnsupportedFormat("irregular chunk grid")
        shard_shape = tuple(int(n) for n in grid["configuration"]["chunk_shape"])
        keys = doc.get("chunk_key_encoding", {})
        separator = (keys.get("configuration") or {}).get("separator", "/")
        if keys.get("name") != "default" or separator not in ("/", "."):
            raise UnsupportedFormat(f"chunk key encoding {keys}")
        codecs = doc.get("codecs", [])
        if len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
            raise UnsupportedFormat(f"codecs {[c.get('name') for c in codecs]}")
        config = codecs[0]["configuration"]
        inner_shape = tuple(int(n) for n in config["chunk_shape"])
        sample_shape = shape[1:]
        if (
            len(inner_shape) != len(shape)
            or len(shard_shape) != len(shape)
            or inner_shape[0] != 1
            or any(c < 1 or e % c for c, e in zip(inner_shape, shard_shape, strict=True))
        ):
            raise UnsupportedFormat(f"chunks {inner_shape} in shards {shard_shape}")
        inner = config.get("codecs", [])
        base = np.dtype(dtype_name)
        names = [c.get("name") for c in inner]
        if names not in (["bytes", "zstd"], ["bytes", "zstd", "crc32c"]) or (
            len(inner) == 3 and inner[2].get("configuration")
        ):
            raise UnsupportedFormat(f"inner codecs {names}")
        #: Every chunk ends with its crc32c (format 2), checked on every decode.
        self.chunk_checksum = len(inner) == 3
        stored = base.newbyteorder(parse_endian(inner[0], base.itemsize))
        if stored.isnative:
            stored = base  # the canonical native dtype: repr 'float32', not '<f4'
        index_codecs = config.get("index_codecs", [])
        if (
            len(index_codecs) != 2
            or index_codecs[0].get("name") != "bytes"
            or index_codecs[1].get("name") != "crc32c"
            or index_codecs[1].get("configuration")
        ):
            raise UnsupportedFormat(f"index codecs {[c.get('name') for c in index_codecs]}")
        location = config.get("index_location", "end")
        if location not in ("start", "end"):
            raise UnsupportedFormat(f"index location {location!r}")

        self.n_samples = shape[0]
        self.sample_shape: tuple[int, ...] = sample_shape
        self.shard_size = shard_shape[0]
        #: Chunk shape after the sample axis, and chunks per shard along each of those axes.
        self.tile_shape: tuple[int, ...] = inner_shape[1:]
        self.tiles_per_shard = tuple(
            e // c for e, c in zip(shard_shape[1:], inner_shape[1:], strict=True)
        )
        self.tiled = not (inner_shape[1:] == shard_shape[1:] == sample_shape)
        self._tiles_in_shard = int(np.prod(self.tiles_per_shard))
        self.chunks_per_shard = self.shard_size * self._tiles_in_shard
        self._whole_tile = tuple(slice(0, t) for t in self.tile_shape)
        tile_nbytes = int(np.prod(self.tile_shape)) * base.itemsize
        # A tile of one zstd block decodes whole however little of it is read.
        self._prefix_limit = tile_nbytes // 2 if tile_nbytes > ZSTD_BLOCK else 0
        self._itemsize = base.itemsize
        self._zeros = (0,) * len(self.tile_shape)
        self._native = stored.isnative
        self.stored_dtype: np.dtype[Any] = stored
        self.dtype: np.dtype[Any] = base.newbyteorder("=")
        self.fill_value = parse_fill_value(doc.get("fill_value"), base)
        self.nbytes = int(np.prod(sample_shape, dtype=np.int64)) * base.itemsize
        self.index_dtype = np.dtype(np.uint64).newbyteorder(parse_endian(index_codecs[0], 8))
        self.index_at_end = location == "end"
        self._key_prefix = f"{self.path}{self._sep}c{separator}"
        self._key_suffix = (separator + "0") * (len(shape) - 1)
        self._key_sep = separator

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_index_lock"], state["_local"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._index_lock = threading.Lock()
        self._local = threading.local()

    @property
    def indexes_read(self) -> int:
        """Shard indexes read (and cached) so far."""
        return len(self._indexes)

    def shard_path(self, s: int, spatial: tuple[int, ...] = ()) -> str:
        """Path of shard ``s`` (at position ``spatial`` of the spatial shard grid)."""
        if not spatial:
            return f"{self._key_prefix}{s}{self._key_suffix}"
        return f"{self._key_prefix}{s}" + "".join(f"{self._key_sep}{p}" for p in spatial)

    def _index(self, s: int, spatial: tuple[int, ...] = ()) -> list[tuple[int, int]] | None:
        """The chunk index of shard ``s`` (at ``spatial``), None if the shard is absent."""
        return self._shard(s, spatial)[1]

    def _shard(
        self, s: int, spatial: tuple[int, ...] = ()
    ) -> tuple[str, list[tuple[int, int]] | None]:
        """Path and chunk index of shard ``s`` (at ``spatial``), read once and cached."""
        key = (s, *spatial)
        try:
            return self._indexes[key]
        except KeyError:
            pass
        path = self.shard_path(s, spatial)
        n = index_nbytes(self.chunks_per_shard)
        got = self.files.read_index(path, n, self.index_at_end)
        index: list[tuple[int, int]] | None = None
        if got is not None:
            data, size = got
            index = decode_index(
                data,
                self.chunks_per_shard,
                size,
                path,
                index_dtype=self.index_dtype,
                at_end=self.index_at_end,
            )
        with self._index_lock:
            self._indexes[key] = (path, index)
        return path, index

    def read(self, j: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sample ``j`` at the padded sample shape, into ``out`` if given (C-contiguous)."""
        if self.tiled:
            zeros = (0,) * len(self.sample_shape)
            return self.read_window(j, zeros, self.sample_shape, out)
        s, k = divmod(j, self.shard_size)
        path, index = self._shard(s)
        entry = None if index is None else index[k]
        if entry is None or entry[0] == MISSING:
            if out is None:
                return np.full(self.sample_shape, self.fill_value, dtype=self.dtype)
            out[...] = self.fill_value
            return out
        return self._decode(path, entry, self.sample_shape, out, (j,))

    def _decode(
        self,
        path: str,
        entry: tuple[int, int],
        shape: tuple[int, ...],
        out: np.ndarray | None,
        chunk: tuple[int, ...],
    ) -> np.ndarray:
        """Decode one chunk of ``shape`` into ``out`` (C-contiguous) or a new array.

        ``chunk`` is its position in the array's chunk grid (sample, tile
        along each spatial axis), named in errors.
        """
        off, nb = entry
        data = self.files.pread(path, nb, off)
        if self.stored_dtype.isnative:
            dest = np.empty(shape, dtype=self.dtype) if out is None else out
            decode_chunk_into(data, dest, path, checksum=self.chunk_checksum, chunk=chunk)
            return dest
        raw = np.empty(shape, dtype=self.stored_dtype)
        decode_chunk_into(data, raw, path, checksum=self.chunk_checksum, chunk=chunk)
        if out is None:
            return raw.astype(self.dtype)
        out[...] = raw
        return out

    def _one_tile(
        self, s: int, k: int, lo: tuple[int, ...], out: np.ndarray | None
    ) -> np.ndarray | None:
        """The whole tile starting at ``lo``, decoded straight into ``out``; None if
        ``lo`` is not a tile corner."""
        j = s * self.shard_size + k
        if not any(lo):  # a small sample read whole: its first tile
            zeros = self._zeros
            path, index = self._indexes.get((s, *zeros)) or self._shard(s, zeros)
            flat = k * self._tiles_in_shard
            tiles: tuple[int, ...] = (j, *zeros)
        else:
            spatial = []
            pos = [j]
            flat = k
            for a, t, g in zip(lo, self.tile_shape, self.tiles_per_shard, strict=True):
                p, r = divmod(a, t)
                if r:
                    return None
                spatial.append(p // g)
                pos.append(p)
                flat = flat * g + p % g
            path, index = self._shard(s, tuple(spatial))
            tiles = tuple(pos)
        entry = None if index is None else index[flat]
        if entry is None or entry[0] == MISSING:
            if out is None:
                return np.full(self.tile_shape, self.fill_value, dtype=self.dtype)
            out[...] = self.fill_value
            return out
        return self._decode(path, entry, self.tile_shape, out, tiles)

    def _scratch(self) -> np.ndarray:
        """This thread's tile buffer (stored dtype), reused: no page faults per tile."""
        scratch: np.ndarray | None = getattr(self._local, "tile", None)
        if scratch is None:
            scratch = self._local.tile = np.empty(self.tile_shape, dtype=self.stored_dtype)
        return scratch

    def read_window(
        self,
        j: int,
        start: tuple[int, ...],
        stop: tuple[int, ...],
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The window ``[start, stop)`` (leading axes; later axes whole) of sample ``j``.

        The window must lie inside the padded sample shape. A tiled array
        decodes only the tiles the window touches; otherwise the sample is
        decoded and cropped. ``out`` (any strides) receives it if given.
        """
        shape = self.sample_shape
        if len(start) == len(shape):
            lo, hi = tuple(start), tuple(stop)
        else:
            lo = (*start, *(0 for _ in shape[len(start) :]))
            hi = (*stop, *shape[len(stop) :])
        wshape = tuple(b - a for a, b in zip(lo, hi, strict=True))
        if not self.tiled:
            if wshape == shape and (out is None or out.flags.c_contiguous):
                return self.read(j, out)
            full = self.read(j)[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
            if out is None:
                return full.copy()
            out[...] = full
            return out
        s, k = divmod(j, self.shard_size)
        tile, per = self.tile_shape, self.tiles_per_shard
        cache = self.tile_cache
        if wshape == tile and cache is None and (out is None or out.flags.c_contiguous):
            one = self._one_tile(s, k, lo, out)  # the common case, without the loop
            if one is not None:
                return one
        if out is None:
            out = np.empty(wshape, dtype=self.dtype)
        if 0 in wshape:
            return out
        base = k * self._tiles_in_shard
        shards = self._indexes
        jobs = []
        for spatial, rel, where, part, prefix, pos in window_plan(lo, hi, tile, per, shape):
            got = shards.get((s, *spatial))
            path, index = self._shard(s, spatial) if got is None else got
            entry = None if index is None else index[base + rel]
            if entry is None or entry[0] == MISSING:
                out[where] = self.fill_value
                continue
            jobs.append((path, entry[0], entry[1], where, part, prefix, pos))
        if cache is not None:
            self._read_cached(j, jobs, out, cache)
            return out
        if self.shard_size == 1 and len(jobs) > 1:
            # A shard of one sample (a region of a big one) stores its tiles in
            # Morton order, so neighbours often lie next to each other: read
            # each run of adjacent tiles with one request. (With more samples
            # per shard the sample axis interleaves them, so none do.)
            self._read_runs(j, sorted(jobs, key=_by_place), out)
            return out
        pread = self.files.pread
        for path, off, nb, where, part, prefix, pos in jobs:
            self._decode_part(pread(path, nb, off), path, out[where], part, prefix, (j, *pos))
        return out

    def _read_cached(self, j: int, jobs: list[Any], out: np.ndarray, cache: TileCache) -> None:
        """Decode ``jobs`` through ``cache``: whole tiles, each decoded once while kept."""
        for path, off, nb, where, part, _, pos in jobs:
            key = (self.path, j, pos)
            tile = cache.get(key)
            if tile is None:
                tile = self._decode(path, (off, nb), self.tile_shape, None, (j, *pos))
                cache.put(key, tile)
            out[where] = tile[part]

    def _read_runs(self, j: int, jobs: list[Any], out: np.ndarray) -> None:
        """Decode ``jobs`` (sorted by file and offset), each run of adjacent ones
        read with one ``pread``."""
        n_jobs = len(jobs)
        i = 0
        while i < n_jobs:
            path, first, end = jobs[i][0], jobs[i][1], jobs[i][1] + jobs[i][2]
            e = i + 1
            while e < n_jobs and jobs[e][0] == path and jobs[e][1] == end:
                end += jobs[e][2]
                e += 1
            data = self.files.pread(path, end - first, first)
            run = np.frombuffer(data, dtype=np.uint8)
            for _, off, nb, where, part, prefix, pos in jobs[i:e]:
                raw = data if e - i == 1 else run[off - first : off - first + nb]
                self._decode_part(raw, path, out[where], part, prefix, (j, *pos))
            i = e

    def _decode_part(
        self,
        data: Any,
        path: str,
        dst: np.ndarray,
        part: tuple[slice, ...],
        prefix: int,
        chunk: tuple[int, ...],
    ) -> None:
        """Decode one tile's bytes ``data`` and put its ``part`` into ``dst``.

        A whole tile goes straight into ``dst`` when it can; otherwise it is
        decoded into this thread's scratch tile. A part that ends in the first
        rows of a checksummed tile (the chunk is checked whole first, so no
        check is lost) stops decoding after its last element, ``prefix`` (C
        order), when that is less than half of a tile of several zstd blocks:
        zstd decodes whole blocks, and a bounded decode goes through its
        internal buffer, which costs more than skipping a few blocks saves.
        """
        if part == self._whole_tile and self._native and dst.flags.c_contiguous:
            decode_chunk_into(data, dst, path, checksum=self.chunk_checksum, chunk=chunk)
            return
        scratch = self._scratch()
        nbytes = prefix * self._itemsize
        limit = nbytes if nbytes < self._prefix_limit and self.chunk_checksum else None
        decode_chunk_into(
            data, scratch, path, checksum=self.chunk_checksum, chunk=chunk, prefix=limit
        )
        dst[...] = scratch[part]


def _by_place(job: tuple[Any, ...]) -> tuple[str, int]:
    return job[0], job[1]


def _try_direct(make: Callable[[], DirectArray], where: str, backend: str) -> DirectArray | None:
    """The direct decoder, or None to fall back to zarr-python (unless ``backend="direct"``)."""
    try:
        return make()
    except UnsupportedFormat as e:
        if backend == "direct":
            raise StoreError(f"{where}: cannot be decoded directly ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        if backend == "direct":
            raise StoreError(f"{where}: unexpected array metadata ({e})") from None
    return None


def open_array(loc: Location, name: str, files: ShardFiles, backend: str) -> SampleSource:
    if loc.is_local:
        path = loc.path / name
        if not (path / "zarr.json").is_file():
            raise StoreError(f"{path}: missing array {name!r}")
        if backend != "zarr":
            direct = _try_direct(lambda: DirectArray(path, name, files), str(path), backend)
            if direct is not None:
                return direct
    elif backend != "zarr":
        raw = loc.read_bytes(f"{name}/zarr.json")
        if raw is None:
            raise StoreError(f"{loc}/{name}: missing array {name!r}")
        _, root = loc.filesystem()
        remote = files if isinstance(files, RemoteFiles) else RemoteFiles(loc)
        doc = json.loads(raw)
        direct = _try_direct(
            lambda: DirectArray(f"{root}/{name}", name, remote, doc=doc), f"{loc}/{name}", backend
        )
        if direct is not None:
            return direct
    return ZarrArray(loc, name)
