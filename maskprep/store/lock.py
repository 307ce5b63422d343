"""One writer at a time: an exclusive lock file beside a local store.

The lock is ``.<name>.maskprep-lock`` in the store's parent directory (beside
the store, so it exists before the store does and survives the store being
replaced). It is created with ``O_CREAT | O_EXCL``, which the filesystem makes
atomic, and holds the writer's pid and host as JSON.

A lock left by a writer that died (kill -9, power loss) is *stale*. When the
recorded host is this host and the recorded pid is no longer running, the lock
is removed and taken. A lock from another host, or one whose content cannot be
read, is never taken over: the error names the lock file so a user who knows
no build is running can delete it.

Object-store URLs (``s3://...``) have no atomic create-if-absent that every
fsspec backend offers, so they are not locked: one writer per URL is the
user's responsibility there (documented in ``docs/reliability.md``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from maskprep.errors import StoreError
from maskprep.store.location import Location

__all__ = ["LOCK_SUFFIX", "lock_path", "writer_lock"]

LOCK_SUFFIX = ".maskprep-lock"


def lock_path(loc: Location) -> Path:
    """The lock file of a local store."""
    p = loc.path
    return p.parent / f".{p.name}{LOCK_SUFFIX}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _holder(path: Path) -> dict[str, object] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _try_create(path: Path, what: str, store: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreError(
            f"{store}: cannot create the output store's lock file {path} for {what} "
            f"({exc.strerror or exc}); is {path.parent} writable?"
        ) from None
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "for": what}, f)
    return True


@contextlib.contextmanager
def writer_lock(loc: Location, what: str = "a build") -> Iterator[None]:
    """Hold the single-writer lock of ``loc`` (local stores) for the ``with`` block.

    Raises
    ------
    StoreError
        If another live writer holds it (naming its pid and host and the lock
        file), or the lock cannot be created.
    """
    if not loc.is_local:
        yield
        return
    path = lock_path(loc)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"{path.parent}: cannot create the directory ({exc.strerror or exc})"
        ) from None
    if not _try_create(path, what, loc.path):
        holder = _holder(path)
        stale = (
            holder is not None
            and holder.get("host") == socket.gethostname()
            and isinstance(holder.get("pid"), int)
            and not _alive(int(holder["pid"]))  # type: ignore[call-overload]
        )
        if stale:
            path.unlink(missing_ok=True)
        if not stale or not _try_create(path, what, loc.path):
            who = (
                f"pid {holder.get('pid')} on {holder.get('host')}"
                if holder is not None
                else "an unknown process"
            )
            raise StoreError(
                f"{loc}: another maskprep writer ({who}) is writing this store; "
                f"wait for it to finish (if none is running, delete the lock file {path})"
            )
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
