"""Reading a built store back as numpy arrays, fast.

zarr-python's per-call overhead dominates small random reads, so for the codec
chain maskprep writes (``sharding_indexed`` over one chunk per sample, inner
codecs ``bytes`` + ``zstd``, index codecs ``bytes`` + ``crc32c``) the reader
decodes the shards itself: each shard's index is read once (its crc32c
checked) and cached, and each sample's chunk is read with one ``pread`` and
zstd-decompressed straight into its output array. Any other codec chain is read
through zarr-python, with the same results. File descriptors are opened lazily
in the process that reads (a forked DataLoader worker opens its own), at most
:data:`MAX_OPEN_FILES` at a time.
"""

from __future__ import annotations

import json
import operator
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from maskprep.errors import StoreError
from maskprep.store import Location, StoreMetadata, read_metadata

__all__ = ["MAX_OPEN_FILES", "Shards", "epoch_order", "open_shards"]

#: Shard files kept open per :class:`Shards` (least recently used are closed).
MAX_OPEN_FILES = 256

_MISSING = 2**64 - 1
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BACKENDS = ("auto", "direct", "zarr")
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
_SPECIAL_FLOATS = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


def _crc32c_function() -> Any:
    try:
        import google_crc32c

        return google_crc32c.value
    except ImportError:  # pragma: no cover - zarr>=3.1 depends on google-crc32c
        pass
    try:  # pragma: no cover - zarr<3.1 used the crc32c package
        import crc32c

        return crc32c.crc32c
    except ImportError:  # pragma: no cover
        return None


class _Unsupported(Exception):
    """The array's on-disk format is not one the direct decoder handles."""


class _SampleSource(Protocol):
    """Reads one sample (a chunk along axis 0) of one array, padded, native dtype."""

    name: str
    backend: str
    sample_shape: tuple[int, ...]
    dtype: np.dtype[Any]
    n_samples: int

    def read(self, j: int, out: np.ndarray | None = None) -> np.ndarray: ...


def _pread(fd: int, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset``; without ``os.pread`` (Windows) the caller's lock serialises."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - not POSIX
    return os.read(fd, n)  # pragma: no cover


class _Files:
    """Per-process LRU cache of read-only file descriptors, with one lock for reads.

    After a fork the child finds a different pid and starts afresh (it never
    uses the parent's descriptors or lock); pickling drops the descriptors.
    """

    def __init__(self, max_open: int = MAX_OPEN_FILES) -> None:
        self.max_open = max(1, int(max_open))
        self._init()

    def _init(self) -> None:
        self._pid = os.getpid()
        self._fds: OrderedDict[str, int] = OrderedDict()
        self.lock = threading.Lock()

    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            self._init()  # inherited descriptors belong to the parent: leave them

    def fd(self, path: str) -> int:
        """Descriptor of ``path``, opening it if needed; call with :attr:`lock` held."""
        fd = self._fds.get(path)
        if fd is not None:
            self._fds.move_to_end(path)
            return fd
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._fds[path] = fd
        while len(self._fds) > self.max_open:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def pread(self, path: str, n: int, offset: int) -> bytes:
        self._check_pid()
        with self.lock:
            data = _pread(self.fd(path), n, offset)
        if len(data) != n:
            raise StoreError(f"{path}: truncated shard (wanted {n} bytes at offset {offset})")
        return data

    def read_index(self, path: str, n: int, at_end: bool) -> tuple[bytes, int] | None:
        """``n`` index bytes of a shard file and the file size, or None if absent."""
        self._check_pid()
        with self.lock:
            try:
                fd = self.fd(path)
            except FileNotFoundError:
                return None
            size = os.fstat(fd).st_size
            if size < n:
                raise StoreError(f"{path}: shard file of {size} bytes is shorter than its index")
            data = _pread(fd, n, size - n if at_end else 0)
        return data, size

    def close(self) -> None:
        if self._pid == os.getpid():
            with self.lock:
                for fd in self._fds.values():
                    os.close(fd)
                self._fds.clear()

    def __del__(self) -> None:
        try:  # noqa: SIM105 - no contextlib at interpreter shutdown
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_open = state["max_open"]
        self._init()


class _RemoteFiles:
    """Byte-range reads of shard objects through fsspec (``s3://`` and the like).

    The same interface as :class:`_Files`: one ranged request per chunk, and
    per shard one size request plus one for its index (cached by the caller).
    The filesystem object is looked up per process, so forks and pickles are safe.
    """

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self._pid = -1
        self._fs: Any = None

    def _filesystem(self) -> Any:
        if self._fs is None or self._pid != os.getpid():
            self._fs, _ = self.loc.filesystem()
            self._pid = os.getpid()
        return self._fs

    def pread(self, path: str, n: int, offset: int) -> bytes:
        data: bytes = self._filesystem().cat_file(path, start=offset, end=offset + n)
        if len(data) != n:
            raise StoreError(f"{path}: truncated shard (wanted {n} bytes at offset {offset})")
        return data

    def read_index(self, path: str, n: int, at_end: bool) -> tuple[bytes, int] | None:
        fs = self._filesystem()
        try:
            size = int(fs.size(path))
        except FileNotFoundError:
            return None
        if size < n:
            raise StoreError(f"{path}: shard file of {size} bytes is shorter than its index")
        start = size - n if at_end else 0
        data: bytes = fs.cat_file(path, start=start, end=start + n)
        return data, size

    def close(self) -> None:
        self._fs = None

    def __getstate__(self) -> dict[str, Any]:
        return {"loc": self.loc}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["loc"])  # type: ignore[misc]


def _endian(codec: dict[str, Any], itemsize: int) -> Literal["<", ">"]:
    config = codec.get("configuration") or {}
    endian = config.get("endian")
    if endian is None and itemsize == 1:
        return "<"
    if endian not in ("little", "big") or set(config) - {"endian"}:
        raise _Unsupported(f"bytes codec {codec}")
    return "<" if endian == "little" else ">"


def _fill_value(value: Any, dtype: np.dtype[Any]) -> Any:
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
        raise _Unsupported(f"fill value {value!r}")
    return value


class _DirectArray:
    """Decodes one maskprep array's shards without zarr-python."""

    backend = "direct"

    def __init__(
        self,
        path: Path | str,
        name: str,
        files: _Files | _RemoteFiles,
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
        self.crc32c = _crc32c_function()
        if self.crc32c is None:  # pragma: no cover
            raise _Unsupported("no crc32c implementation")
        self._indexes: dict[int, list[tuple[int, int]] | None] = {}
        self._index_lock = threading.Lock()

    def _parse(self, doc: dict[str, Any]) -> None:
        if doc.get("zarr_format") != 3 or doc.get("node_type") != "array":
            raise _Unsupported("not a zarr v3 array")
        if doc.get("storage_transformers"):
            raise _Unsupported("storage transformers")
        dtype_name = doc.get("data_type")
        if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
            raise _Unsupported(f"data type {dtype_name!r}")
        shape = tuple(int(n) for n in doc["shape"])
        if len(shape) < 2:
            raise _Unsupported("fewer than 2 dimensions")
        grid = doc.get("chunk_grid", {})
        if grid.get("name") != "regular":
            raise _Unsupported("irregular chunk grid")
        shard_shape = tuple(int(n) for n in grid["configuration"]["chunk_shape"])
        keys = doc.get("chunk_key_encoding", {})
        separator = (keys.get("configuration") or {}).get("separator", "/")
        if keys.get("name") != "default" or separator not in ("/", "."):
            raise _Unsupported(f"chunk key encoding {keys}")
        codecs = doc.get("codecs", [])
        if len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
            raise _Unsupported(f"codecs {[c.get('name') for c in codecs]}")
        config = codecs[0]["configuration"]
        inner_shape = tuple(int(n) for n in config["chunk_shape"])
        sample_shape = shape[1:]
        if inner_shape != (1, *sample_shape) or shard_shape[1:] != sample_shape:
            raise _Unsupported(f"chunks {inner_shape} in shards {shard_shape}")
        inner = config.get("codecs", [])
        base = np.dtype(dtype_name)
        if len(inner) != 2 or inner[0].get("name") != "bytes" or inner[1].get("name") != "zstd":
            raise _Unsupported(f"inner codecs {[c.get('name') for c in inner]}")
        stored = base.newbyteorder(_endian(inner[0], base.itemsize))
        if stored.isnative:
            stored = base  # the canonical native dtype: repr 'float32', not '<f4'
        index_codecs = config.get("index_codecs", [])
        if (
            len(index_codecs) != 2
            or index_codecs[0].get("name") != "bytes"
            or index_codecs[1].get("name") != "crc32c"
            or index_codecs[1].get("configuration")
        ):
            raise _Unsupported(f"index codecs {[c.get('name') for c in index_codecs]}")
        location = config.get("index_location", "end")
        if location not in ("start", "end"):
            raise _Unsupported(f"index location {location!r}")

        self.n_samples = shape[0]
        self.sample_shape: tuple[int, ...] = sample_shape
        self.shard_size = shard_shape[0]
        self.stored_dtype: np.dtype[Any] = stored
        self.dtype: np.dtype[Any] = base.newbyteorder("=")
        self.fill_value = _fill_value(doc.get("fill_value"), base)
        self.nbytes = int(np.prod(sample_shape, dtype=np.int64)) * base.itemsize
        self.index_dtype = np.dtype(np.uint64).newbyteorder(_endian(index_codecs[0], 8))
        self.index_at_end = location == "end"
        self._key_prefix = f"{self.path}{self._sep}c{separator}"
        self._key_suffix = (separator + "0") * (len(shape) - 1)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_index_lock"], state["crc32c"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._index_lock = threading.Lock()
        self.crc32c = _crc32c_function()

    def shard_path(self, s: int) -> str:
        return f"{self._key_prefix}{s}{self._key_suffix}"

    def _index(self, s: int) -> list[tuple[int, int]] | None:
        try:
            return self._indexes[s]
        except KeyError:
            pass
        path = self.shard_path(s)
        n = self.shard_size * 16 + 4
        got = self.files.read_index(path, n, self.index_at_end)
        if got is None:
            index = None
        else:
            data, size = got
            stored_crc = int.from_bytes(data[-4:], "little")
            if self.crc32c(data[:-4]) != stored_crc:
                raise StoreError(f"{path}: shard index checksum mismatch (corrupt shard)")
            table = np.frombuffer(data, dtype=self.index_dtype, count=2 * self.shard_size)
            index = [(int(a), int(b)) for a, b in table.reshape(-1, 2).tolist()]
            lo, hi = (0, size - n) if self.index_at_end else (n, size)
            for off, nb in index:
                if off == _MISSING and nb == _MISSING:
                    continue
                if off < lo or off + nb > hi:
                    raise StoreError(
                        f"{path}: shard index entry ({off}, {nb}) outside the data (corrupt shard)"
                    )
        with self._index_lock:
            self._indexes[s] = index
        return index

    def read(self, j: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sample ``j`` at the padded sample shape, into ``out`` if given (C-contiguous)."""
        s, k = divmod(j, self.shard_size)
        index = self._index(s)
        entry = None if index is None else index[k]
        if entry is None or entry[0] == _MISSING:
            if out is None:
                return np.full(self.sample_shape, self.fill_value, dtype=self.dtype)
            out[...] = self.fill_value
            return out
        off, nb = entry
        path = self.shard_path(s)
        data = self.files.pread(path, nb, off)
        native = self.stored_dtype.isnative
        if out is None or not native:
            dest = np.empty(self.sample_shape, dtype=self.stored_dtype)
        else:
            dest = out
        _zstd_decode_into(data, dest, path)
        if native:
            return dest
        if out is None:
            return dest.astype(self.dtype)
        out[...] = dest
        return out


def _frame_content_size(data: bytes) -> int | None:
    """Decompressed size declared in a zstd frame header, or None if not declared."""
    if len(data) < 6 or data[:4] != _ZSTD_MAGIC:
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


def _zstd_decode_into(data: bytes, dest: np.ndarray, path: str) -> None:
    """Decompress one zstd frame into C-contiguous ``dest``; its size must match exactly."""
    expected = dest.nbytes
    declared = _frame_content_size(data)
    if declared is not None and declared != expected:
        raise StoreError(
            f"{path}: chunk decompresses to {declared} bytes, expected {expected} (corrupt)"
        )
    try:
        if declared is not None and _ZSTD == "zstandard":
            dctx = getattr(_local, "dctx", None)
            if dctx is None:
                dctx = _local.dctx = _zstandard.ZstdDecompressor()
            view = dest.data.cast("B")
            got = 0
            with dctx.stream_reader(data) as reader:
                while got < expected:
                    k = reader.readinto(view[got:])
                    if not k:
                        break
                    got += k
        elif declared is not None:
            from numcodecs import zstd

            zstd.decompress(data, dest)
            got = expected
        else:
            from numcodecs import zstd

            raw = zstd.decompress(data)
            got = len(raw)
            if got == expected:
                dest.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)
    except StoreError:
        raise
    except Exception as e:
        raise StoreError(f"{path}: cannot decompress chunk ({e})") from None
    if got != expected:
        raise StoreError(f"{path}: chunk decompresses to {got} bytes, expected {expected}")


class _ZarrArray:
    """Reads one array through zarr-python (any codec chain, any fsspec location)."""

    backend = "zarr"

    def __init__(self, loc: Location, name: str) -> None:
        self.name = name
        self.loc = loc
        self._array: Any = None
        arr = self._open()
        shape = tuple(int(n) for n in arr.shape)
        self.n_samples = shape[0]
        self.sample_shape: tuple[int, ...] = shape[1:]
        self.dtype: np.dtype[Any] = np.dtype(np.dtype(arr.dtype).newbyteorder("=").str)

    def _open(self) -> Any:
        if self._array is None:
            self._array = _zarr_open(self.loc, self.name)
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def read(self, j: int, out: np.ndarray | None = None) -> np.ndarray:
        a = np.asarray(self._open()[j])
        if out is None:
            if not a.dtype.isnative or not a.flags.writeable:
                return a.astype(self.dtype)
            return a.view(self.dtype)  # zarr says '<f4': give the canonical 'float32'
        out[...] = a
        return out


def _zarr_open(loc: Location, name: str) -> Any:
    import zarr

    try:
        if loc.is_local:
            return zarr.open_array(str(loc.path / name), mode="r")
        return zarr.open_array(loc.zarr_store(read_only=True), path=name, mode="r")
    except Exception as e:
        raise StoreError(f"{loc}/{name}: cannot open array ({e})") from None


def _open_array(
    loc: Location, name: str, files: _Files | _RemoteFiles, backend: str
) -> _SampleSource:
    if loc.is_local:
        path = loc.path / name
        if not (path / "zarr.json").is_file():
            raise StoreError(f"{path}: missing array {name!r}")
        if backend != "zarr":
            try:
                return _DirectArray(path, name, files)
            except _Unsupported as e:
                if backend == "direct":
                    raise StoreError(f"{path}: cannot be decoded directly ({e})") from None
            except (KeyError, TypeError, ValueError) as e:
                if backend == "direct":
                    raise StoreError(f"{path}: unexpected array metadata ({e})") from None
    elif backend != "zarr":
        raw = loc.read_bytes(f"{name}/zarr.json")
        if raw is None:
            raise StoreError(f"{loc}/{name}: missing array {name!r}")
        _, root = loc.filesystem()
        remote = files if isinstance(files, _RemoteFiles) else _RemoteFiles(loc)
        try:
            return _DirectArray(f"{root}/{name}", name, remote, doc=json.loads(raw))
        except _Unsupported as e:
            if backend == "direct":
                raise StoreError(f"{loc}/{name}: cannot be decoded directly ({e})") from None
        except (KeyError, TypeError, ValueError) as e:
            if backend == "direct":
                raise StoreError(f"{loc}/{name}: unexpected array metadata ({e})") from None
    return _ZarrArray(loc, name)


def _check_int(name: str, value: Any, low: int) -> int:
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
    n = _check_int("n", n, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    world_size = _check_int("world_size", world_size, 1)
    rank = _check_int("rank", rank, 0)
    epoch = _check_int("epoch", epoch, 0)
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
            seed = _check_int("seed", seed, 0)
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


class Shards:
    """A complete maskprep store, indexable by sample.

    ``shards[i]`` is a dict of numpy arrays (``image``, ``labels``,
    ``instances`` and ``weights``, or the ``arrays`` chosen at opening) cropped
    to the sample's true shape, in native byte order, freshly allocated and
    writable. :meth:`batches` iterates an epoch in stacked batches and
    :meth:`read_batch` reads given samples as one batch. Use :func:`open_shards`
    to create one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Location,
        split: str | None = None,
        arrays: Sequence[str] | None = None,
        *,
        backend: str = "auto",
        max_open_files: int = MAX_OPEN_FILES,
    ) -> None:
        loc = path if isinstance(path, Location) else Location.parse(path)
        #: The store: a ``Path`` for a local store, else its URL.
        self.path: Path | str = loc.url
        if loc.is_local:
            self.path = loc.path if isinstance(path, Location) else Path(path)
        self.location = loc
        #: The store's metadata, typed.
        self.store_metadata: StoreMetadata = read_metadata(loc)
        #: The same as the JSON dict stored in the group's ``maskprep`` attribute.
        self.metadata: dict[str, Any] = self.store_metadata.to_dict()
        stored = self.store_metadata.arrays
        if split is not None and split not in ("train", "valid"):
            raise ValueError(f"split must be 'train', 'valid' or None, got {split!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
        names = stored if arrays is None else tuple(arrays)
        if isinstance(arrays, str):
            names = (arrays,)
        unknown = [a for a in names if a not in stored]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"arrays must be distinct names among {', '.join(stored)}, got {list(names)}"
            )
        self.arrays: tuple[str, ...] = names
        self._files: _Files | _RemoteFiles = (
            _Files(max_open_files) if loc.is_local else _RemoteFiles(loc)
        )
        self._sources: dict[str, _SampleSource] = {
            name: _open_array(loc, name, self._files, backend) for name in names
        }
        try:
            self._shapes = np.asarray(_zarr_open(loc, "shapes")[:], dtype=np.int64)
        except Exception as e:
            raise StoreError(f"{loc}/shapes: cannot read sample shapes ({e})") from None
        n = self.store_metadata.n_samples
        ndim = self._shapes.shape[1] if self._shapes.ndim == 2 else -1
        for src in self._sources.values():
            if src.n_samples != n or self._shapes.shape[0] != n:
                raise StoreError(
                    f"{loc}/{src.name}: has {src.n_samples} samples, metadata lists {n}"
                )
            spatial = src.sample_shape[:ndim]
            if ndim < 1 or (n and (self._shapes > np.asarray(spatial)).any()):
                raise StoreError(f"{loc}/shapes: sample shapes exceed {src.name}'s {spatial}")
        splits = self.store_metadata.split
        self._index = np.asarray(
            [i for i, s in enumerate(splits) if split is None or s == split], dtype=np.int64
        )
        self.split = split
        self.ndim = ndim

    @property
    def class_names(self) -> list[str]:
        """Names of the semantic classes, index = label value."""
        return list(self.store_metadata.class_names)

    @property
    def void_label(self) -> int:
        """Label of unannotated pixels: pass it as the loss's ``ignore_index``."""
        return self.store_metadata.void_label

    @property
    def class_counts(self) -> np.ndarray:
        """Exact per-class pixel counts over the train split (void excluded)."""
        return np.asarray(self.store_metadata.class_counts, dtype=np.int64)

    @property
    def class_weights(self) -> np.ndarray:
        """Per-class weights of the store's scheme."""
        return np.asarray(self.store_metadata.class_weights, dtype=np.float64)

    @property
    def sample_ids(self) -> list[str]:
        """Sample ids (file stems) in this view's order."""
        ids = self.store_metadata.sample_ids
        return [ids[i] for i in self._index]

    @property
    def splits(self) -> list[str]:
        """``"train"`` or ``"valid"`` for every sample of this view."""
        s = self.store_metadata.split
        return [s[i] for i in self._index]

    @property
    def indices(self) -> list[int]:
        """Position in the whole store of every sample of this view."""
        return self._index.tolist()

    @property
    def shapes(self) -> np.ndarray:
        """True spatial shape of every sample of this view, shape ``(len, ndim)``."""
        return self._shapes[self._index].copy()

    @property
    def backend(self) -> dict[str, str]:
        """How each array is read: ``"direct"`` (own decoder) or ``"zarr"`` (zarr-python)."""
        return {name: src.backend for name, src in self._sources.items()}

    def __len__(self) -> int:
        return int(self._index.size)

    def __repr__(self) -> str:
        split = "" if self.split is None else f", split={self.split!r}"
        return f"Shards({str(self.path)!r}{split}, {len(self)} samples)"

    def pad_value(self, name: str) -> int | float:
        """Value that pads array ``name`` in batches: ``void_label`` for labels, a
        target's fill value, else 0."""
        return self.store_metadata.layout_info.fill_value(name)

    def _resolve(self, i: Any) -> int:
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return int(self._index[i % n])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        j = self._resolve(i)
        shape = tuple(int(s) for s in self._shapes[j])
        out = {}
        for name, src in self._sources.items():
            full = src.read(j)
            if shape != src.sample_shape[: len(shape)]:
                full = full[tuple(slice(0, s) for s in shape)].copy()
            out[name] = full
        return out

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def read_batch(self, indices: Iterable[int], *, threads: int = 1) -> dict[str, np.ndarray]:
        """Samples ``indices`` (positions in this view) stacked into one batch.

        Arrays are stacked to the largest true shape in the batch; the rest is
        padded with :meth:`pad_value` (labels void, everything else 0), so
        padding is ignored by a void-aware, weighted loss. The batch also holds
        ``shape`` (``(B, ndim)`` int64 true shapes) and ``index`` (``(B,)``
        int64, the positions given; ``shards.sample_ids[k]`` names them).
        ``threads > 1`` decodes samples in that many threads (zstd releases
        the GIL).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from maskprep import build_weights, make_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = build_weights(make_sample(tmp / "d", n_images=3, size=(16, 16)),
        ...                   tmp / "o.zarr", scheduler="sync")
        >>> batch = open_shards(tmp / "o.zarr").read_batch([2, 0])
        >>> batch["labels"].shape, batch["index"].tolist()
        ((2, 16, 16), [2, 0])
        """
        threads = _check_int("threads", threads, 1)
        pos = np.asarray([operator.index(i) for i in indices], dtype=np.int64).reshape(-1)
        n = len(self)
        if pos.size and ((pos < -n) | (pos >= n)).any():
            raise IndexError(f"sample index out of range for {n} samples")
        if threads == 1:
            return self._read_batch(pos % max(n, 1), None)
        with ThreadPoolExecutor(threads) as pool:
            return self._read_batch(pos % max(n, 1), pool)

    def _read_batch(
        self, pos: np.ndarray, pool: ThreadPoolExecutor | None
    ) -> dict[str, np.ndarray]:
        store_idx = self._index[pos]
        shapes = self._shapes[store_idx]
        ndim = self.ndim
        bshape = tuple(int(m) for m in shapes.max(axis=0)) if pos.size else (0,) * ndim
        out: dict[str, np.ndarray] = {}
        jobs = []
        for name, src in self._sources.items():
            full = src.sample_shape
            buf = np.empty((pos.size, *bshape, *full[ndim:]), dtype=src.dtype)
            out[name] = buf
            whole = bshape == full[:ndim]
            for b, j in enumerate(store_idx.tolist()):
                shape = tuple(int(s) for s in shapes[b])
                jobs.append((src, name, b, j, shape, whole and shape == bshape))
        if pool is None:
            for job in jobs:
                self._fill(out, *job)
        else:
            for f in [pool.submit(self._fill, out, *job) for job in jobs]:
                f.result()
        out["shape"] = shapes.copy()
        out["index"] = pos
        return out

    def _fill(
        self,
        out: dict[str, np.ndarray],
        src: _SampleSource,
        name: str,
        b: int,
        j: int,
        shape: tuple[int, ...],
        direct: bool,
    ) -> None:
        slot = out[name][b]
        if direct:  # same shape as the stored chunk: decode straight into the batch
            src.read(j, slot)
            return
        full = src.read(j)
        crop = tuple(slice(0, s) for s in shape)
        if shape != slot.shape[: len(shape)]:
            slot[...] = self.pad_value(name)
        slot[crop] = full[crop]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = None,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        threads: int = 1,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Iterate one epoch of this view in stacked batches (see :meth:`read_batch`).

        Every rank of ``world_size`` draws the same permutation from ``seed``
        and ``epoch`` (pass the same seed everywhere, a new epoch number each
        epoch) and reads a disjoint part of it: together the ranks read every
        sample exactly once. Ranks may get one batch more than others and the
        last batch may be short unless ``drop_last``, which gives every rank
        the same number of full batches and skips the remainder (see
        :func:`epoch_order`). ``shuffle=False`` reads in store order.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from maskprep import build_weights, make_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = build_weights(make_sample(tmp / "d", n_images=5, size=(16, 16)),
        ...                   tmp / "o.zarr", scheduler="sync")
        >>> shards = open_shards(tmp / "o.zarr", arrays=("image", "labels", "weights"))
        >>> for batch in shards.batches(2, seed=0, rank=1, world_size=2):
        ...     print(sorted(batch), batch["weights"].shape)
        ['image', 'index', 'labels', 'shape', 'weights'] (2, 16, 16)
        ['image', 'index', 'labels', 'shape', 'weights'] (1, 16, 16)
        """
        order = epoch_order(
            len(self),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            epoch=epoch,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
        )
        threads = _check_int("threads", threads, 1)
        if threads == 1:
            for positions in order:
                yield self._read_batch(positions, None)
            return
        with ThreadPoolExecutor(threads) as pool:
            for positions in order:
                yield self._read_batch(positions, pool)

    def close(self) -> None:
        """Close open shard files (reading again reopens them)."""
        self._files.close()

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_shards(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    arrays: Sequence[str] | None = None,
    backend: str = "auto",
    storage_options: dict[str, Any] | None = None,
    max_open_files: int = MAX_OPEN_FILES,
) -> Shards:
    """Open a complete maskprep store for reading.

    Parameters
    ----------
    path : path or URL
        The ``.zarr`` store written by ``maskprep build-weights``: a local
        directory, or an fsspec URL such as ``s3://bucket/train.zarr`` (decoded
        the same way: per shard one size and one index request, then one
        ranged request per chunk).
    split : {"train", "valid"}, optional
        Restrict the view to one split.
    arrays : sequence of str, optional
        Arrays to read, among ``image``, ``labels``, ``instances``, ``weights``
        (default all); the others are never decoded.
    backend : {"auto", "direct", "zarr"}
        ``auto`` decodes maskprep's own codec chain directly (local files or
        byte ranges of objects) and reads anything else through zarr-python; ``direct`` refuses
        anything else; ``zarr`` always uses zarr-python (slow, for comparison).
    storage_options : dict, optional
        fsspec options for a URL (credentials otherwise come from the
        environment).
    max_open_files : int
        Shard files kept open at once per process.

    Raises
    ------
    StoreError
        If the path is not a maskprep store or its build did not finish.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import build_weights, make_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = build_weights(make_sample(tmp / "d", n_images=2, size=(16, 16)), tmp / "o.zarr",
    ...                   scheduler="sync")
    >>> shards = open_shards(tmp / "o.zarr")
    >>> len(shards), shards.void_label, sorted(shards[0])
    (2, 255, ['image', 'instances', 'labels', 'weights'])
    """
    loc = Location.parse(path, storage_options)
    if loc.is_local and not loc.path.exists():
        raise StoreError(f"{path}: no such store")
    shards = Shards(loc, split, arrays, backend=backend, max_open_files=max_open_files)
    if loc.is_local:
        shards.path = Path(path)  # as given
    return shards
