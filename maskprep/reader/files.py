"""Shard files: cached descriptors read with ``pread`` locally, byte ranges through fsspec."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, TypeAlias

from maskprep.errors import StoreError
from maskprep.store import Location

__all__ = ["MAX_OPEN_FILES", "LocalFiles", "RemoteFiles", "ShardFiles"]

#: Shard files kept open per :class:`~maskprep.reader.Shards` (least recently used are closed).
MAX_OPEN_FILES = 256


#: This process's id, updated in a forked child (no ``getpid`` system call per
#: read; without ``fork`` there is no child to update).
_PID = os.getpid()


def _after_fork() -> None:
    global _PID
    _PID = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _pread(fd: int, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset``; without ``os.pread`` (Windows) the caller's lock serialises."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - not POSIX
    return os.read(fd, n)  # pragma: no cover


class LocalFiles:
    """Per-process LRU cache of read-only file descriptors, with one lock for reads.

    After a fork the child finds a different pid and starts afresh (it never
    uses the parent's descriptors or lock); pickling drops the descriptors.
    """

    def __init__(self, max_open: int = MAX_OPEN_FILES) -> None:
        self.max_open = max(1, int(max_open))
        self._init()

    def _init(self) -> None:
        self._pid = _PID
        self._fds: OrderedDict[str, int] = OrderedDict()
        self.lock = threading.Lock()

    def _check_pid(self) -> None:
        if self._pid != _PID:
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


class RemoteFiles:
    """Byte-range reads of shard objects through fsspec (``s3://`` and the like).

    The same interface as :class:`LocalFiles`: one ranged request per chunk, and
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


#: Either kind of shard file access.
ShardFiles: TypeAlias = LocalFiles | RemoteFiles
