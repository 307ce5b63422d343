"""Where a store lives: a local directory or any fsspec URL (``s3://...``).

Dask tasks receive a :class:`Location` (it pickles as its URL and options) and
open their own handles, so nothing unpicklable crosses process boundaries.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskprep.errors import OutputError

__all__ = ["TEMP_TAG", "Location", "check_directory", "make_directory"]

# Marks the temporary files of atomic local writes; a writer killed mid-write
# leaves one behind, and completed builds sweep them away.
TEMP_TAG = ".maskprep-tmp-"


@functools.cache
def _umask() -> int:
    """The process umask, read once.

    Linux reports it in /proc without changing it; elsewhere it is read by
    setting it and setting it back, once, so that no other thread's file is
    ever created under a temporary umask during a build.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class Location:
    """A store root: local path or URL, with fsspec ``storage_options`` for URLs.

    Examples
    --------
    >>> Location.parse("out.zarr").is_local
    True
    >>> Location.parse("s3://bucket/data.zarr").is_local
    False
    """

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, target: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> Location:
        text = os.fspath(target)
        if "://" not in text or text.startswith("file://"):
            text = text.removeprefix("file://")
            return cls(str(Path(text).absolute()), {})
        return cls(text.rstrip("/"), dict(storage_options or {}))

    @property
    def is_local(self) -> bool:
        return "://" not in self.url

    @property
    def path(self) -> Path:
        """Local path (only for local locations)."""
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local path")
        return Path(self.url)

    def __str__(self) -> str:
        return self.url

    def filesystem(self) -> tuple[Any, str]:
        """The fsspec filesystem of a URL location and the root path within it."""
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(self.url, **self.storage_options)
        return fs, root

    def zarr_store(self, *, read_only: bool = False) -> Any:
        """A zarr v3 store object for this location."""
        from zarr.storage import FsspecStore, LocalStore

        if self.is_local:
            return LocalStore(self.path, read_only=read_only)
        return FsspecStore.from_url(
            self.url, storage_options=self.storage_options, read_only=read_only
        )

    def exists(self, key: str = "") -> bool:
        if self.is_local:
            return (self.path / key).exists() if key else self.path.exists()
        fs, root = self.filesystem()
        return bool(fs.exists(f"{root}/{key}" if key else root))

    def read_bytes(self, key: str) -> bytes | None:
        """Contents of ``key`` under the root, or None if absent."""
        if self.is_local:
            p = self.path / key
            return p.read_bytes() if p.is_file() else None
        fs, root = self.filesystem()
        try:
            data: bytes = fs.cat_file(f"{root}/{key}")
        except FileNotFoundError:
            return None
        return data

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write ``key`` atomically (locally: temp file + rename; object stores are atomic)."""
        if self.is_local:
            p = self.path / key
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}{TEMP_TAG}")
            try:
                # mkstemp makes 0600 files; a store is shared like any other
                # file the user writes, so it gets the umask's mode (as zarr.json).
                os.fchmod(fd, 0o666 & ~_umask())
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, p)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        fs, root = self.filesystem()
        fs.pipe_file(f"{root}/{key}", data)

    def sweep_temporaries(self) -> int:
        """Remove temporary files left by writers killed mid-write; return how many."""
        if not self.is_local or not self.path.is_dir():
            return 0
        stale = [p for p in self.path.rglob(f"*{TEMP_TAG}*") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def delete(self, key: str) -> None:
        """Remove ``key`` if it exists."""
        if self.is_local:
            (self.path / key).unlink(missing_ok=True)
            return
        fs, root = self.filesystem()
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(f"{root}/{key}")

    def list(self, prefix: str) -> list[str]:
        """Keys directly under ``prefix`` (names only), sorted."""
        if self.is_local:
            d = self.path / prefix
            return sorted(p.name for p in d.iterdir()) if d.is_dir() else []
        fs, root = self.filesystem()
        try:
            entries = fs.ls(f"{root}/{prefix}", detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def is_empty(self) -> bool:
        if self.is_local:
            return not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))
        fs, root = self.filesystem()
        try:
            return not fs.ls(root, detail=False)
        except FileNotFoundError:
            return True

    def remove(self) -> None:
        """Delete the whole store (callers check it is a maskprep store first)."""
        if self.is_local:
            if self.path.exists():
                shutil.rmtree(self.path)
            return
        fs, root = self.filesystem()
        if fs.exists(root):
            fs.rm(root, recursive=True)

    def sibling(self, tag: str) -> Location:
        """A hidden local location beside this one (``.<name>.maskprep-tmp-<tag>``)."""
        p = self.path
        return Location(str(p.parent / f".{p.name}{TEMP_TAG}{tag}"), {})

    def replace_with(self, new: Location) -> None:
        """Put the local store ``new`` (a sibling) where this one is, then delete the old one.

        Two renames within one directory: the old store is moved aside, the new
        one takes its name, and only then is the old one deleted. If the process
        dies between the renames, the old store is still whole under its
        ``.<name>.maskprep-tmp-old`` name.
        """
        old = self.sibling("old")
        if old.path.exists():
            shutil.rmtree(old.path)
        if self.path.exists():
            os.replace(self.path, old.path)
        os.replace(new.path, self.path)
        if old.path.exists():
            shutil.rmtree(old.path)

    def tree_size(self, prefix: str = "") -> tuple[int, int]:
        """Total bytes and number of objects under ``prefix`` (the whole store by default)."""
        if self.is_local:
            total = files = 0
            for dirpath, _, names in os.walk(self.path / prefix if prefix else self.path):
                for name in names:
                    try:
                        total += os.path.getsize(os.path.join(dirpath, name))
                    except OSError:  # removed while we walk
                        continue
                    files += 1
            return total, files
        fs, root = self.filesystem()
        base = f"{root}/{prefix}" if prefix else root
        try:
            found = fs.find(base, detail=True)
        except FileNotFoundError:
            return 0, 0
        return sum(int(v.get("size") or 0) for v in found.values()), len(found)

    def size(self) -> int:
        """Total bytes of all objects under the root."""
        return self.tree_size()[0]


def check_directory(path: str | os.PathLike[str], what: str) -> Path:
    """OutputError unless the local directory ``path`` exists or could be created.

    Creates nothing. ``what`` says what the directory is for (``"the output
    store"``), for the message, which names the file in the way or the
    directory that is not writable.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "taken").write_text("x")
    >>> try:
    ...     check_directory(d / "taken" / "sub", "the preview directory")
    ... except OutputError as exc:
    ...     print(str(exc).replace(str(d), "D"))
    D/taken/sub: cannot create the preview directory: D/taken is a file, not a directory
    """
    out = Path(path)
    if out.exists():
        if not out.is_dir():
            raise OutputError(
                f"{out}: is a file, and {what} must be a directory (choose another path)"
            )
        return out
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(
                    f"{out}: cannot create {what}: {parent} is a file, not a directory"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"{out}: cannot create {what}: {parent} is not writable")
            break
    return out


def make_directory(path: str | os.PathLike[str], what: str) -> Path:
    """Create the local directory ``path`` and its parents; OutputError naming the obstacle."""
    out = check_directory(path, what)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(
            f"{out}: cannot create {what} ({reason}; is {out.parent} writable?)"
        ) from None
    return out
