"""Dataset paths: ``{field}`` patterns, files by stem, split files, escapes refused."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from maskprep.errors import DataError
from maskprep.ingest.model import IMAGE_SUFFIXES, RECIPE_IMAGE_SUFFIXES

__all__ = [
    "PathPattern",
    "check_inside",
    "check_name",
    "files_by_stem",
    "find_volumes",
    "inside",
    "read_valid",
]

_FIELD_RE = re.compile(r"\{([^{}]*)\}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class PathPattern:
    """A dataset-relative path with ``{field}`` placeholders.

    Each field stands for part of one path component (never a ``/``); a field
    may appear more than once and must then have the same value everywhere.
    Glob wildcards, ``..`` and absolute paths are refused.

    Examples
    --------
    >>> p = PathPattern("gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png")
    >>> p.fields
    ('split', 'city', 'stem')
    >>> p.match("gtFine/val/ulm/ulm_000001_000019_gtFine_instanceIds.png")
    {'split': 'val', 'city': 'ulm', 'stem': 'ulm_000001_000019'}
    >>> p.format({"split": "train", "city": "a", "stem": "a_1"})
    'gtFine/train/a/a_1_gtFine_instanceIds.png'
    >>> PathPattern("images/*.png")
    Traceback (most recent call last):
    ...
    ValueError: path pattern 'images/*.png': use {field} placeholders, not glob wildcards
    """

    text: str

    def __post_init__(self) -> None:
        t = self.text
        where = f"path pattern {t!r}"
        if not isinstance(t, str) or not t:
            raise ValueError(f"path pattern must be a non-empty string, got {t!r}")
        if "\\" in t or t.startswith("/") or re.match(r"[A-Za-z]:", t):
            raise ValueError(f"{where}: must be a relative path with / separators")
        if any(part in ("", ".", "..") for part in t.split("/")):
            raise ValueError(f"{where}: empty, '.' or '..' path components are not allowed")
        names = _FIELD_RE.findall(t)
        bad = [n for n in names if not _NAME_RE.match(n)]
        if bad:
            raise ValueError(f"{where}: {{{bad[0]}}} is not a valid field name")
        rest = _FIELD_RE.sub("", t)
        if "{" in rest or "}" in rest:
            raise ValueError(f"{where}: unbalanced {{ or }}")
        if any(c in rest for c in "*?[]"):
            raise ValueError(f"{where}: use {{field}} placeholders, not glob wildcards")
        if "}{" in t:
            raise ValueError(f"{where}: two fields need text between them")

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names in order of first appearance."""
        return tuple(dict.fromkeys(_FIELD_RE.findall(self.text)))

    @property
    def _regex(self) -> re.Pattern[str]:
        return _pattern_regex(self.text)

    def glob(self) -> str:
        """The pattern with every field replaced by ``*``."""
        return _FIELD_RE.sub("*", self.text)

    def match(self, relpath: str) -> dict[str, str] | None:
        """Field values if ``relpath`` (``/``-separated) matches, else None."""
        m = self._regex.match(relpath)
        return None if m is None else {k: m.group(k) for k in self.fields}

    def format(self, values: Mapping[str, str]) -> str:
        """The path for these field values."""
        return _FIELD_RE.sub(lambda m: values[m.group(1)], self.text)

    def find(self, root: Path) -> list[tuple[dict[str, str], Path]]:
        """Files under ``root`` matching the pattern, sorted by path.

        Names starting with ``.`` are skipped; names that are not UTF-8 and
        paths resolving outside ``root`` are errors.
        """
        found = []
        for path in sorted(root.glob(self.glob())):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            check_name(path)
            values = self.match(rel.as_posix())
            if values is None:
                continue
            check_inside(root, path)
            found.append((values, path))
        return found


@functools.lru_cache(maxsize=64)
def _pattern_regex(text: str) -> re.Pattern[str]:
    out = []
    seen: set[str] = set()
    pos = 0
    for m in _FIELD_RE.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out) + r"\Z")


def inside(root: Path, path: Path) -> bool:
    """True if ``path`` resolves (symlinks and ``..`` followed) inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def check_inside(root: Path, path: Path) -> None:
    """Refuse ``path`` (DataError naming it) if it resolves outside the dataset ``root``.

    Every file maskprep reads from a dataset (images, masks, split and class
    files, annotations) passes here first: a symlink or ``..`` leading out of
    the dataset would let a crafted dataset read arbitrary files into a store
    or an error message.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> check_inside(root, root / "codes.txt")
    >>> try:
    ...     check_inside(root, root / ".." / "secret.txt")
    ... except DataError as e:
    ...     print("resolves outside the dataset directory" in str(e))
    True
    """
    if not inside(root, path):
        raise DataError(f"{path}: resolves outside the dataset directory {root}")


def check_name(path: Path) -> None:
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"{path.parent}: file name {path.name!r} is not valid UTF-8; rename the file"
        ) from None


def files_by_stem(root: Path, folder: Path, *, arrays: bool = False) -> dict[str, Path]:
    """Image files of ``folder`` by stem.

    An entry named like an image that is not a regular file (a FIFO, a
    directory, a dangling or looping symlink) is an error saying what it is,
    and so is a JPEG/BMP/WebP file whose stem has no supported file: these
    would otherwise surface as "has no mask" or "has no image". With
    ``arrays=True``, ``<stem>.zarr`` directories (zarr arrays) count too.
    """
    found: dict[str, Path] = {}
    unsupported: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if arrays and suffix == ".zarr" and not path.name.startswith("."):
            if not path.is_dir():
                raise DataError(f"{path}: is {_kind(path)}, not a zarr array directory")
            suffix = ".tif"  # from here on, checked like any image file
        elif path.name.startswith(".") or suffix not in RECIPE_IMAGE_SUFFIXES:
            continue
        elif not path.is_file():
            raise DataError(f"{path}: is {_kind(path)}, not an image file")
        if suffix not in IMAGE_SUFFIXES:
            unsupported.setdefault(path.stem, path)
            continue
        check_name(path)
        check_inside(root, path)
        stem = path.stem
        if stem in found:
            raise DataError(
                f"{folder}: two files share the stem {stem!r}: {found[stem].name} and {path.name}"
            )
        found[stem] = path
    for stem, path in unsupported.items():
        if stem not in found:
            raise DataError(
                f"{path}: {path.suffix} files are not read in {folder.name}/ (use "
                f"{', '.join(IMAGE_SUFFIXES)}; JPEG's lossy compression changes label values)"
            )
    return found


def _kind(path: Path) -> str:
    """What a path that is not a regular file is."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError as exc:  # dangling symlink, symlink loop
        return f"a broken symbolic link ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_valid(
    root: Path,
    stems: Sequence[str],
    name: str = "valid.txt",
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
) -> set[str]:
    path = root / name
    if not path.exists():
        return set()
    check_inside(root, path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the validation list: {exc}") from None
    known = set(stems)
    valid: set[str] = set()
    unknown: list[str] = []
    for line in lines:
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        # fastai lists file names; accept bare stems too.
        base = os.path.basename(name)
        # The longest suffix that matches: "a.ome.zarr" names sample "a".
        suffix = next(
            (s for s in sorted(suffixes, key=len, reverse=True) if base.lower().endswith(s)), ""
        )
        stem = base[: len(base) - len(suffix)] if suffix and len(suffix) < len(base) else base
        if stem in known:
            valid.add(stem)
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise DataError(f"{path}: names samples that do not exist: {shown}{more}")
    return valid



def find_volumes(
    root: Path, suffixes: tuple[str, ...], *, directories: bool
) -> list[tuple[str, Path]]:
    """``(stem, path)`` of the entries of ``root`` ending in one of ``suffixes``.

    ``directories`` says whether they must be directories (zarr) or files
    (HDF5); the other kind is an error naming the entry. The stem is the name
    without its suffix (the longest that matches: ``a.ome.zarr`` is ``a``).
    Names starting with ``.`` are skipped.
    """
    found: list[tuple[str, Path]] = []
    stems: dict[str, Path] = {}
    ordered = sorted(suffixes, key=len, reverse=True)
    for path in sorted(root.iterdir()):
        lower = path.name.lower()
        suffix = next((s for s in ordered if lower.endswith(s)), None)
        if path.name.startswith(".") or suffix is None or len(lower) == len(suffix):
            continue
        if directories and not path.is_dir():
            raise DataError(f"{path}: is {_kind(path)}, not a zarr directory")
        if not directories and not path.is_file():
            raise DataError(f"{path}: is {_kind(path)}, not an HDF5 file")
        check_name(path)
        if not inside(root, path):
            raise DataError(f"{path}: resolves outside the dataset directory {root}")
        stem = path.name[: -len(suffix)]
        if stem in stems:
            raise DataError(
                f"{root}: two samples share the id {stem!r}: {stems[stem].name} and {path.name}"
            )
        stems[stem] = path
        found.append((stem, path))
    return found
