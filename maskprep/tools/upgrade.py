"""``maskprep upgrade``: rewrite a format-2 store's records as arrays (format 3), in place."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from maskprep.errors import StoreError
from maskprep.store import (
    FORMAT_VERSION,
    RECORDS_FORMAT_VERSION,
    TILED_FORMAT_VERSION,
    Location,
    read_metadata,
    write_metadata,
    writer_lock,
)

__all__ = ["UpgradeReport", "upgrade_store"]


@dataclass(frozen=True)
class UpgradeReport:
    """Outcome of :func:`upgrade_store`: the format before and after, and the
    size of the group's ``zarr.json`` before and after, in bytes."""

    store: str
    format_before: int
    format_after: int
    json_bytes_before: int
    json_bytes_after: int

    @property
    def changed(self) -> bool:
        return self.format_before != self.format_after


def upgrade_store(
    target: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> UpgradeReport:
    """Move a format-2 store's per-sample records from ``zarr.json`` into arrays.

    Format 2 (tiled stores written before format 3) lists every sample's id,
    split and counts, every input file and every shard checksum in the
    group's ``zarr.json``, which every reader parses on opening. This writes
    them as the arrays of format 3 (:mod:`maskprep.store.records`), then the
    new ``zarr.json``; the image, labels, instances and target arrays are not
    touched. A format-3 store is left as it is. Format 1 (untiled,
    ``tile=None``) is refused: its arrays would have to be rewritten in
    tiles, which a new build does.

    Raises
    ------
    StoreError
        If the store is not complete, is format 1, or its records are damaged
        (then nothing was written).

    Examples
    --------
    >>> from maskprep import example_store
    >>> upgrade_store(example_store(n_images=2)).changed  # built as format 3
    False
    """
    loc = Location.parse(target, storage_options)
    with writer_lock(loc, "upgrade"):
        before = loc.read_bytes("zarr.json") or b""
        meta = read_metadata(loc)
        fmt = meta.format_version
        if fmt == FORMAT_VERSION:
            raise StoreError(
                f"{loc}: a format-1 (untiled) store cannot be upgraded in place, because its "
                "arrays would have to be rewritten in tiles; it reads as it is, or build it "
                "again with tiles (the default) to get format 3"
            )
        if fmt == RECORDS_FORMAT_VERSION:
            return UpgradeReport(str(loc), fmt, fmt, len(before), len(before))
        assert fmt == TILED_FORMAT_VERSION
        meta.records.load_all()
        upgraded = replace(meta, format_version=RECORDS_FORMAT_VERSION, metadata_digest=None)
        upgraded = replace(upgraded, metadata_digest=upgraded.digest())
        write_metadata(loc, upgraded)  # the record arrays first, then zarr.json
        after = loc.read_bytes("zarr.json") or b""
    return UpgradeReport(str(loc), fmt, RECORDS_FORMAT_VERSION, len(before), len(after))
