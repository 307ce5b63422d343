"""Finding the samples of the volume layouts (``hdf5``, ``ome-zarr``).

Without a :class:`~maskprep.ingest.SourceSpec` every entry of the dataset
directory with the layout's suffix is a sample, named by its stem, and
``valid.txt`` lists validation samples; a source's ``images`` pattern
chooses the entries instead (with ``{split}`` directories or a split file).
"""

from __future__ import annotations

from pathlib import Path

from maskprep.errors import DataError
from maskprep.ingest.paths import PathPattern, check_name, find_volumes, inside, read_valid
from maskprep.ingest.source import SourceSpec
from maskprep.ingest.splits import all_left_out, split_of

__all__ = ["find_volume_entries"]


def find_volume_entries(
    root: Path, suffixes: tuple[str, ...], *, directories: bool, source: SourceSpec | None
) -> list[tuple[str, Path, str]]:
    """``(sample_id, path, split)`` of every sample entry, sorted by id.

    Raises
    ------
    DataError
        Naming the directory, if two entries share an id, or a source's
        pattern matches nothing.
    """
    if source is None:
        entries = find_volumes(root, suffixes, directories=directories)
        valid = read_valid(root, [s for s, _ in entries], "valid.txt", suffixes)
        return [(s, p, "valid" if s in valid else "train") for s, p in entries]
    pattern = PathPattern(source.images)
    out: list[tuple[str, Path, str]] = []
    left_out: list[str] = []
    seen: dict[str, Path] = {}
    for path in sorted(root.glob(pattern.glob())):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if (path.is_dir() if directories else path.is_file()) is False:
            continue
        values = pattern.match(rel.as_posix())
        if values is None:
            continue
        check_name(path)
        if not inside(root, path):
            raise DataError(f"{path}: resolves outside the dataset directory {root}")
        split = split_of(values, source)
        if split is None:
            left_out.append(values["split"])
            continue
        stem = values["stem"]
        if stem in seen:
            raise DataError(f"{path}: sample id {stem!r} is also that of {seen[stem]}")
        seen[stem] = path
        out.append((stem, path, split))
    if not out and left_out:
        all_left_out(root, left_out, source)
    if not out:
        kind = "directory" if directories else "file"
        raise DataError(f"{root}: no {kind} matches the images pattern {source.images!r}")
    if source.split not in ("directory", "none"):
        valid = read_valid(root, list(seen), source.split, suffixes)
        out = [(s, p, "valid" if s in valid else "train") for s, p, _ in out]
    return sorted(out, key=lambda e: e[0])
