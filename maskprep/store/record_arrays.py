"""How each record of a store is laid out as a zarr array (store format 3).

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

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "RECORDS_GROUP",
    "RECORD_FIELDS",
    "SPLITS",
    "TEXT_COLUMNS",
    "chunk_key",
    "column_dtype",
    "decode_record",
    "encode_record",
    "frozen",
    "normalised",
]

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
COLUMNS: dict[str, tuple[str, ...]] = {
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
_NO_FILE = bytes(32)


def frozen(a: np.ndarray) -> np.ndarray:
    """``a``, made read-only (records are immutable)."""
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


TEXT_COLUMNS = (
    "sample_ids",
    "input_paths",
    "quarantine_ids",
    "quarantine_errors",
    "note_samples",
    "notes",
)


def column_dtype(col: str) -> str:
    """The dtype of array ``col``."""
    return _DTYPES.get(col, "int64" if col in _INTS else "uint8")


def chunk_key(col: str, ndim: int) -> str:
    """Store key of array ``col``'s one chunk (``metadata/COL/c/0...``)."""
    return f"{RECORDS_GROUP}/{col}/c" + "/0" * max(ndim, 1)


def normalised(name: str, value: Any) -> Any:
    """Record ``name`` as :class:`~maskprep.store.StoreRecords` holds it (tuples, int64 arrays)."""
    if name in ("sample_ids", "split"):
        return tuple(str(v) for v in value)
    if name in ("instance_counts", "void_pixels"):
        return frozen(np.asarray(value, dtype=np.int64).reshape(-1).copy())
    if name == "sample_class_counts":
        a = np.asarray(value, dtype=np.int64)
        if a.ndim != 2:
            a = a.reshape(len(value), -1) if len(value) else np.zeros((0, 0), np.int64)
        return frozen(a.copy())
    if name == "shard_checksums":
        return None if value is None else tuple(dict(c) for c in value)
    return tuple(dict(d) for d in value)


def encode_record(name: str, value: Any, array_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Record ``name`` as its arrays, by name (``array_names``: the order of shard checksums)."""
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


def decode_record(
    name: str, cols: list[np.ndarray], counts: list[int], n: int, array_names: Sequence[str]
) -> Any:
    """Record ``name`` from its arrays ``cols`` (``counts``: strings per text array).

    Raises ValueError if they do not hold ``n`` samples' worth.
    """
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
