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

======================  ========================  =====================================
array                   dtype, shape              holds
======================  ========================  =====================================
``sample_ids``          uint8 (bytes,)            sample ids, UTF-8, NUL-separated
``split``               uint8 (n,)                0 = train, 1 = valid
``instance_counts``     int64 (n,)                instances per sample
``sample_class_counts`` int64 (n, n_classes)      pixels per class per sample (void
                                                  excluded)
``void_pixels``         int64 (n,)                void pixels per sample
``input_paths``         uint8 (bytes,)            each input file once, as in the JSON
``input_bytes``         int64 (n_inputs,)         its size
``note_samples``        uint8 (bytes,)            the sample of each note
``notes``               uint8 (bytes,)            the note
``quarantine_ids``      uint8 (bytes,)            each sample left out (``on_error``)
``quarantine_errors``   uint8 (bytes,)            why
``shard_checksums``     uint8 (n_shards, a, 32)   sha256 of each shard of each of the
                                                  ``a`` arrays (all zero: no file)
======================  ========================  =====================================

Text columns are UTF-8 strings joined by NUL (``"\\0"``), which no file name
or sample id contains; a NUL inside a note or an error message is written
as the four characters ``\\x00``. Every array is standard zarr v3 (codecs
``bytes`` little endian + ``zstd``; an empty column has no chunk file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from maskprep.errors import StoreError

__all__ = ["RECORDS_GROUP", "RECORD_FIELDS", "SPLITS", "StoreRecords"]

#: The zarr group of a format-3 store that holds the record arrays.
RECORDS_GROUP = "metadata"
#: Split names by their code in the ``split`` array.
SPLITS = ("train", "valid")
#: The records, as :class:`StoreMetadata` attributes and keys of formats 1 and 2.
RECORD_FIELDS = (
    "sample_ids",
    "split",
    "instance_counts",
    "sample_class_counts",
    "void_pixels",
    "inputs",
    "quarantine",
    "notes",
    "shard_checksums",
)
# Each record field and the arrays that store it.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "sample_ids": ("sample_ids",),
    "split": ("split",),
    "instance_counts": ("instance_counts",),
    "sample_class_counts": ("sample_class_counts",),
    "void_pixels": ("void_pixels",),
    "inputs": ("input_paths", "input_bytes"),
    "quarantine": ("quarantine_ids", "quarantine_errors"),
    "notes": ("note_samples", "notes"),
    "shard_checksums": ("shard_checksums",),
}
_DTYPES = {"split": "uint8", "shard_checksums": "uint8"}
_INTS = ("instance_counts", "sample_class_counts", "void_pixels", "input_bytes")
_ZSTD_LEVEL = 3
_NO_FILE = bytes(32)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _text(values: Sequence[str], free: bool = False) -> np.ndarray:
    if free:
        values = [v.replace("\0", "\\x00") for v in values]
    elif any("\0" in v for v in values):
        bad = next(v for v in values if "\0" in v)
        raise ValueError(f"{bad!r} contains a NUL character")
    return np.frombuffer("\0".join(values).encode("utf-8"), dtype=np.uint8)


def _untext(data: np.ndarray, n: int) -> tuple[str, ...]:
    if n == 0:
        return ()
    out = tuple(data.tobytes().decode("utf-8").split("\0"))
    if len(out) != n:
        raise ValueError(f"holds {len(out)} strings, expected {n}")
    return out


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
        self._where = where
        self._array_names = tuple(array_names)
        self._values: dict[str, Any] = {}
        self._summary: dict[str, dict[str, Any]] = {}
        self._read: Callable[[str], bytes | None] | None = None
        self._files: dict[str, bytes | None] = {}
        self._stored: set[tuple[str, str]] = set()
        for name in RECORD_FIELDS:
            self._values[name] = _normalised(name, values.get(name, _EMPTY.get(name)))
        self._n = len(self._values["sample_ids"])
        for name in ("split", "instance_counts", "sample_class_counts", "void_pixels"):
            if len(self._values[name]) != self._n:
                raise ValueError(
                    f"{name} has {len(self._values[name])} entries for {self._n} samples"
                )
        bad = [s for s in self._values["split"] if s not in SPLITS]
        if bad:
            raise ValueError(f"split must be 'train' or 'valid', got {bad[0]!r}")

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
        self._where = where
        self._array_names = tuple(array_names)
        self._values = {}
        self._read = read
        self._n = int(n_samples)
        self._summary = {}
        self._files = {}
        for col, info in summary.items():
            if not isinstance(info, Mapping) or "shape" not in info:
                raise ValueError(f"records entry {col!r} is not a shape and sha256")
            sha = info.get("sha256")
            entry: dict[str, Any] = {
                "shape": [int(v) for v in info["shape"]],
                "sha256": None if sha is None else str(sha),
            }
            if col in _TEXT:
                entry["strings"] = int(info["strings"])
            self._summary[str(col)] = entry
        self._stored = {(where, c) for c in self._summary}
        missing = [c for f in RECORD_FIELDS if f != "shard_checksums" for c in _COLUMNS[f]]
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
        return _frozen(np.asarray(codes, dtype=np.uint8).reshape(-1))

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
            out._values[name] = _normalised(name, value)
            for col in _COLUMNS[name]:
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
        for col, arr in _encode(name, self.get(name), self._array_names).items():
            data = bytes(codec.encode(np.ascontiguousarray(arr))) if arr.size else None
            info: dict[str, Any] = {
                "shape": list(arr.shape),
                "sha256": None if data is None else hashlib.sha256(data).hexdigest(),
            }
            if col in _TEXT:
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
            if self._known(name) and any(c not in self._summary for c in _COLUMNS[name]):
                self._encoded(name)
        return {
            c: dict(self._summary[c]) for f in RECORD_FIELDS if self._known(f) for c in _COLUMNS[f]
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
                    name = next(f for f, cols in _COLUMNS.items() if c in cols)
                    self._encoded(name)
                data = self._files[c]
                shape = list(self._summary[c]["shape"])
                out[c] = (_chunk_key(c, len(shape)), shape, _dtype(c), data)
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
        dtype = np.dtype(_dtype(col)).newbyteorder("<")
        out = np.zeros(shape, dtype=dtype)
        key = _chunk_key(col, len(shape))
        if out.size == 0:
            return _frozen(out)
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
        return _frozen(out.astype(dtype.newbyteorder("="), copy=False))

    def _load(self, name: str) -> Any:
        if self._read is None:
            raise StoreError(f"{self._where}: record {name!r} is not available")
        if name == "shard_checksums" and "shard_checksums" not in self._summary:
            return None
        cols = [self._column(c) for c in _COLUMNS[name]]
        counts = [int(self._summary[c].get("strings", -1)) for c in _COLUMNS[name]]
        try:
            return _decode(name, cols, counts, self._n, self._array_names)
        except ValueError as e:
            raise StoreError(
                f"{self._where}/{RECORDS_GROUP}/{_COLUMNS[name][0]}: unreadable records ({e})"
            ) from None


_TEXT = (
    "sample_ids",
    "input_paths",
    "quarantine_ids",
    "quarantine_errors",
    "note_samples",
    "notes",
)


def _dtype(col: str) -> str:
    return _DTYPES.get(col, "int64" if col in _INTS else "uint8")


def _chunk_key(col: str, ndim: int) -> str:
    return f"{RECORDS_GROUP}/{col}/c" + "/0" * max(ndim, 1)


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


def _normalised(name: str, value: Any) -> Any:
    if name in ("sample_ids", "split"):
        return tuple(str(v) for v in value)
    if name in ("instance_counts", "void_pixels"):
        return _frozen(np.asarray(value, dtype=np.int64).reshape(-1).copy())
    if name == "sample_class_counts":
        a = np.asarray(value, dtype=np.int64)
        if a.ndim != 2:
            a = a.reshape(len(value), -1) if len(value) else np.zeros((0, 0), np.int64)
        return _frozen(a.copy())
    if name == "shard_checksums":
        return None if value is None else tuple(dict(c) for c in value)
    return tuple(dict(d) for d in value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def _encode(name: str, value: Any, array_names: Sequence[str]) -> dict[str, np.ndarray]:
    if name == "sample_ids":
        return {"sample_ids": _text(value)}
    if name == "split":
        return {"split": np.asarray([SPLITS.index(s) for s in value], dtype=np.uint8)}
    if name in ("instance_counts", "void_pixels", "sample_class_counts"):
        return {name: np.asarray(value, dtype="<i8")}
    if name == "inputs":
        return {
            "input_paths": _text([str(d["path"]) for d in value]),
            "input_bytes": np.asarray([int(d["bytes"]) for d in value], dtype="<i8"),
        }
    if name in ("quarantine", "notes"):
        ids, texts = (
            ("quarantine_ids", "quarantine_errors")
            if name == "quarantine"
            else (
                "note_samples",
                "notes",
            )
        )
        key = "error" if name == "quarantine" else "note"
        return {
            ids: _text([str(d["sample_id"]) for d in value], free=True),
            texts: _text([str(d[key]) for d in value], free=True),
        }
    assert name == "shard_checksums"
    out = np.zeros((len(value), len(array_names), 32), dtype=np.uint8)
    for k, record in enumerate(value):
        if sorted(record) != sorted(array_names):
            raise ValueError(f"shard {k} has checksums of {list(record)}, not {list(array_names)}")
        for a, name in enumerate(array_names):
            sha = record[name]
            if sha is not None:
                out[k, a] = np.frombuffer(bytes.fromhex(sha), dtype=np.uint8)
    return {"shard_checksums": out}


def _decode(
    name: str, cols: list[np.ndarray], counts: list[int], n: int, array_names: Sequence[str]
) -> Any:
    (first, *rest) = cols
    if name == "sample_ids":
        if counts[0] != n:
            raise ValueError(f"{counts[0]} sample ids for {n} samples")
        return _untext(first, n)
    if name == "split":
        if first.shape != (n,) or (first >= len(SPLITS)).any():
            raise ValueError(f"split codes of shape {first.shape} for {n} samples")
        return tuple(SPLITS[c] for c in first.tolist())
    if name in ("instance_counts", "void_pixels", "sample_class_counts"):
        if first.shape[:1] != (n,):
            raise ValueError(f"shape {first.shape} for {n} samples")
        return first
    if name == "inputs":
        sizes = rest[0]
        paths = _untext(first, counts[0])
        return tuple({"path": p, "bytes": b} for p, b in zip(paths, sizes.tolist(), strict=True))
    if name in ("quarantine", "notes"):
        ids, texts = _untext(first, counts[0]), _untext(rest[0], counts[1])
        key = "error" if name == "quarantine" else "note"
        return tuple({"sample_id": i, key: t} for i, t in zip(ids, texts, strict=True))
    assert name == "shard_checksums"
    if first.ndim != 3 or first.shape[1:] != (len(array_names), 32):
        raise ValueError(f"shape {first.shape} for arrays {list(array_names)}")
    # Keys sorted, as the shard markers list them.
    order = sorted(range(len(array_names)), key=lambda j: array_names[j])
    return tuple(
        {
            array_names[j]: (None if row[j].tobytes() == _NO_FILE else row[j].tobytes().hex())
            for j in order
        }
        for row in first
    )
