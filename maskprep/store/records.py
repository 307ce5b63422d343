"""Per-sample, per-input-file and per-shard records of a store, as arrays.

A store of 10^6 samples lists 10^6 sample ids, splits and class counts, a
few 10^6 input files and 10^4 shard checksums: as JSON in ``zarr.json`` that
is ~275 MB that every reader (every DataLoader worker) parses on opening.
Format 3 keeps them in small zarr v3 arrays of the group ``metadata``
(:data:`RECORDS_GROUP`), one chunk each, and ``zarr.json`` keeps only each
array's shape and the sha256 of its chunk (a few kB whatever the size of the
dataset); they are read, column by column, the first time they are used,
and checked against those sha256 sums. Formats 1 and 2 keep the same
records in the JSON, as they always did.

The arrays and their layout: :mod:`maskprep.store.record_arrays`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from maskprep.errors import StoreError
from maskprep.store.record_arrays import (
    COLUMNS,
    RECORD_FIELDS,
    RECORDS_GROUP,
    SPLITS,
    TEXT_COLUMNS,
    chunk_key,
    column_dtype,
    decode_record,
    encode_record,
    frozen,
    normalised,
)

__all__ = ["RECORDS_GROUP", "RECORD_FIELDS", "SPLITS", "StoreRecords"]

_ZSTD_LEVEL = 3


class StoreRecords:
    """The records of one store: sample ids, splits and counts, input files,
    notes, quarantine and shard checksums (:data:`RECORD_FIELDS`).

    Values are given (a build), or read from the store the first time each
    is used (:meth:`from_store`). Counts are read-only int64 arrays, the
    rest tuples. Records are immutable: :meth:`replace` returns new ones.
    :meth:`summary` is what ``zarr.json`` says of format 3's arrays (shape
    and sha256 of each) and :meth:`pending_files` their chunk files.

    Examples
    --------
    >>> r = StoreRecords(sample_ids=("a", "b"), split=("train", "valid"),
    ...     instance_counts=(3, 0), sample_class_counts=((5, 2), (7, 0)),
    ...     void_pixels=(1, 0))
    >>> r.sample_ids, r.split, r.sample_class_counts.tolist(), r.notes
    (('a', 'b'), ('train', 'valid'), [[5, 2], [7, 0]], ())
    >>> files = {key: data for key, _, _, data in r.pending_files().values()}
    >>> back = StoreRecords.from_store(r.summary(), files.get, 2, ())
    >>> back == r, back.split_codes.tolist()
    (True, [0, 1])
    """

    def __init__(
        self,
        *,
        array_names: Sequence[str] = (),
        where: str = "store",
        **values: Any,
    ) -> None:
        unknown = set(values) - set(RECORD_FIELDS)
        if unknown:
            raise TypeError(f"unknown record(s): {', '.join(sorted(unknown))}")
        self._start(where, array_names, None)
        for name in RECORD_FIELDS:
            self._values[name] = normalised(name, values.get(name, _EMPTY.get(name)))
        self._n = len(self._values["sample_ids"])
        for name in ("split", "instance_counts", "sample_class_counts", "void_pixels"):
            if len(self._values[name]) != self._n:
                raise ValueError(
                    f"{name} has {len(self._values[name])} entries for {self._n} samples"
                )
        bad = [s for s in self._values["split"] if s not in SPLITS]
        if bad:
            raise ValueError(f"split must be 'train' or 'valid', got {bad[0]!r}")

    def _start(
        self, where: str, array_names: Sequence[str], read: Callable[[str], bytes | None] | None
    ) -> None:
        self._where = where
        self._array_names = tuple(array_names)
        self._read = read
        self._values: dict[str, Any] = {}
        self._summary: dict[str, dict[str, Any]] = {}  # per array: shape, sha256, strings
        self._files: dict[str, bytes | None] = {}  # encoded chunk files, by array
        self._stored: set[tuple[str, str]] = set()  # (store, array) written or read there

    @classmethod
    def from_store(
        cls,
        summary: Mapping[str, Any],
        read: Callable[[str], bytes | None],
        n_samples: int,
        array_names: Sequence[str],
        where: str = "store",
    ) -> StoreRecords:
        """Records of a format-3 store, read lazily with ``read(key)``.

        ``summary`` is the ``records`` entry of ``zarr.json`` (:meth:`summary`).
        """
        self = cls.__new__(cls)
        self._start(where, array_names, read)
        self._n = int(n_samples)
        for col, info in summary.items():
            if not isinstance(info, Mapping) or "shape" not in info:
                raise ValueError(f"records entry {col!r} is not a shape and sha256")
            sha = info.get("sha256")
            entry: dict[str, Any] = {
                "shape": [int(v) for v in info["shape"]],
                "sha256": None if sha is None else str(sha),
            }
            if col in TEXT_COLUMNS:
                entry["strings"] = int(info["strings"])
            self._summary[str(col)] = entry
        self._stored = {(where, c) for c in self._summary}
        missing = [c for f in RECORD_FIELDS if f != "shard_checksums" for c in COLUMNS[f]]
        missing = [c for c in missing if c not in self._summary]
        if missing:
            raise ValueError(f"records lack the array(s) {', '.join(missing)}")
        return self

    # -- values ---------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The value of record ``name`` (read from the store on first use)."""
        if name not in self._values:
            self._values[name] = self._load(name)
        return self._values[name]

    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def sample_ids(self) -> tuple[str, ...]:
        return self.get("sample_ids")

    @property
    def split(self) -> tuple[str, ...]:
        return self.get("split")

    @property
    def split_codes(self) -> np.ndarray:
        """uint8 per sample: 0 train, 1 valid (the stored ``split`` array)."""
        if "split" not in self._values and self._read is not None:
            return self._column("split")
        codes = [SPLITS.index(s) for s in self.split]
        return frozen(np.asarray(codes, dtype=np.uint8).reshape(-1))

    @property
    def instance_counts(self) -> np.ndarray:
        return self.get("instance_counts")

    @property
    def sample_class_counts(self) -> np.ndarray:
        return self.get("sample_class_counts")

    @property
    def void_pixels(self) -> np.ndarray:
        return self.get("void_pixels")

    @property
    def inputs(self) -> tuple[dict[str, Any], ...]:
        return self.get("inputs")

    @property
    def quarantine(self) -> tuple[dict[str, str], ...]:
        return self.get("quarantine")

    @property
    def notes(self) -> tuple[dict[str, str], ...]:
        return self.get("notes")

    @property
    def shard_checksums(self) -> tuple[dict[str, str | None], ...] | None:
        return self.get("shard_checksums")

    def replace(self, **values: Any) -> StoreRecords:
        """These records with some values replaced (the others shared, unread)."""
        out = StoreRecords.__new__(StoreRecords)
        out.__dict__.update(self.__dict__)
        out._values = dict(self._values)
        out._summary = dict(self._summary)
        out._files = dict(self._files)
        out._stored = set(self._stored)
        for name, value in values.items():
            if name not in RECORD_FIELDS or name in ("sample_ids", "split"):
                raise TypeError(f"record {name!r} cannot be replaced")
            out._values[name] = normalised(name, value)
            for col in COLUMNS[name]:
                out._summary.pop(col, None)
                out._files.pop(col, None)
        out._stored = {(w, c) for w, c in out._stored if c in out._summary}
        return out

    def load_all(self) -> StoreRecords:
        """Read every record now (an error surfaces here, not at first use)."""
        for name in RECORD_FIELDS:
            self.get(name)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoreRecords):
            return NotImplemented
        return all(_same(self.get(n), other.get(n)) for n in RECORD_FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StoreRecords({self._n} samples)"

    # -- JSON of formats 1 and 2 ----------------------------------------------
    def to_json(self, name: str) -> Any:
        """Record ``name`` as formats 1 and 2 write it in ``zarr.json``."""
        v = self.get(name)
        if name in ("sample_ids", "split"):
            return list(v)
        if name in ("instance_counts", "void_pixels", "sample_class_counts"):
            return v.tolist()
        if name == "shard_checksums":
            return None if v is None else [dict(c) for c in v]
        return [dict(d) for d in v]

    # -- arrays of format 3 ---------------------------------------------------
    def _encoded(self, name: str) -> None:
        """Encode record ``name``'s arrays (once) into their chunk files and summaries."""
        from numcodecs import Zstd

        codec = Zstd(level=_ZSTD_LEVEL)
        for col, arr in encode_record(name, self.get(name), self._array_names).items():
            data = bytes(codec.encode(np.ascontiguousarray(arr))) if arr.size else None
            info: dict[str, Any] = {
                "shape": list(arr.shape),
                "sha256": None if data is None else hashlib.sha256(data).hexdigest(),
            }
            if col in TEXT_COLUMNS:
                info["strings"] = len(self.get(name))  # one string per entry
            self._summary[col] = info
            self._files[col] = data

    def _known(self, name: str) -> bool:
        """False only for shard checksums not yet known (checked without reading them)."""
        if name != "shard_checksums":
            return True
        if name in self._values:
            return self._values[name] is not None
        return "shard_checksums" in self._summary

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{array: {"shape": [...], "sha256": ...}}`` as ``zarr.json`` records it
        (text arrays also give their number of ``strings``)."""
        for name in RECORD_FIELDS:
            if self._known(name) and any(c not in self._summary for c in COLUMNS[name]):
                self._encoded(name)
        return {
            c: dict(self._summary[c]) for f in RECORD_FIELDS if self._known(f) for c in COLUMNS[f]
        }

    def pending_files(
        self, store: str | None = None
    ) -> dict[str, tuple[str, list[int], str, bytes | None]]:
        """Arrays not yet written to ``store`` (default: the store these records
        were read from): ``{array: (chunk key, shape, dtype, chunk file)}``
        (no file, None, for an empty array)."""
        self.summary()
        store = self._where if store is None else store
        out = {}
        for c in self._summary:
            if (store, c) not in self._stored:
                if c not in self._files:
                    name = next(f for f, cols in COLUMNS.items() if c in cols)
                    self._encoded(name)
                data = self._files[c]
                shape = list(self._summary[c]["shape"])
                out[c] = (chunk_key(c, len(shape)), shape, column_dtype(c), data)
        return out

    def mark_stored(self, columns: Sequence[str], store: str | None = None) -> None:
        """Note that ``columns`` were written to ``store`` (:meth:`pending_files`)."""
        store = self._where if store is None else store
        self._stored.update((store, c) for c in columns)

    # -- reading ----------------------------------------------------------------
    def _column(self, col: str) -> np.ndarray:
        info = self._summary.get(col)
        if info is None or self._read is None:
            raise StoreError(f"{self._where}: the store's metadata lists no array {col!r}")
        shape = tuple(info["shape"])
        dtype = np.dtype(column_dtype(col)).newbyteorder("<")
        out = np.zeros(shape, dtype=dtype)
        key = chunk_key(col, len(shape))
        if out.size == 0:
            return frozen(out)
        data = self._read(key)
        where = f"{self._where}/{key}"
        if data is None:
            raise StoreError(f"{where}: missing (the store is damaged; rebuild it)")
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise StoreError(
                f"{where}: checksum mismatch (the store's records were modified after the "
                "build; rebuild the store)"
            )
        from maskprep.store.codec import decode_chunk_into

        decode_chunk_into(data, out, where)
        return frozen(out.astype(dtype.newbyteorder("="), copy=False))

    def _load(self, name: str) -> Any:
        if self._read is None:
            raise StoreError(f"{self._where}: record {name!r} is not available")
        if name == "shard_checksums" and "shard_checksums" not in self._summary:
            return None
        cols = [self._column(c) for c in COLUMNS[name]]
        counts = [int(self._summary[c].get("strings", -1)) for c in COLUMNS[name]]
        try:
            return decode_record(name, cols, counts, self._n, self._array_names)
        except ValueError as e:
            raise StoreError(
                f"{self._where}/{RECORDS_GROUP}/{COLUMNS[name][0]}: unreadable records ({e})"
            ) from None


_EMPTY: dict[str, Any] = {
    "sample_ids": (),
    "split": (),
    "instance_counts": (),
    "sample_class_counts": (),
    "void_pixels": (),
    "inputs": (),
    "quarantine": (),
    "notes": (),
    "shard_checksums": None,
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)
