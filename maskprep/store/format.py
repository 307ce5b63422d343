"""The on-disk format: a zarr v3 group of sample-sharded arrays.

Layout of ``OUT.zarr``::

    image      (N, *S[, C])  input dtype   one chunk per sample, ``shard_size`` samples a shard
    labels     (N, *S)       uint8/uint16  semantic classes, void pixels = ``void_label``
    instances  (N, *S)       int32         instance ids as in the input, 0 = none
    weights    (N, *S)       float32       class weight + border term, 0 on void
    shapes     (N, ndim)     int32         true spatial shape of each sample
    _maskprep/shards/K.json                written after shard K of every array is written

``S`` is the largest spatial shape in the dataset: smaller samples are padded at
the end of each axis (image 0, labels ``void_label``, instances 0, weights 0), so
padding is never trained on even without cropping; readers crop to ``shapes``.
Shards split only the sample axis, and each shard is written by exactly one
task. Group attribute ``maskprep`` holds the metadata. Its ``stage`` goes
``creating`` -> ``writing`` -> ``complete``; ``complete: true`` is written last,
after every shard, together with the per-shard checksums and a digest of the
metadata itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskprep.errors import StoreError
from maskprep.store.location import Location

__all__ = [
    "ARRAY_NAMES",
    "FORMAT_VERSION",
    "StoreLayout",
    "create_store",
    "done_shards",
    "is_maskprep_store",
    "mark_complete",
    "metadata_digest",
    "read_attrs",
    "read_metadata",
    "record_shard",
    "shard_checksums",
    "write_attrs",
    "write_shard",
]

FORMAT_VERSION = 1
ARRAY_NAMES = ("image", "labels", "instances", "weights")
_MARKERS = "_maskprep/shards"


def _loc(target: str | os.PathLike[str] | Location) -> Location:
    return target if isinstance(target, Location) else Location.parse(target)


@dataclass(frozen=True)
class StoreLayout:
    """Shapes and dtypes of the arrays of one store."""

    n_samples: int
    spatial_shape: tuple[int, ...]
    channels: int | None
    image_dtype: str
    labels_dtype: str
    shard_size: int
    void_label: int

    def array_shape(self, name: str) -> tuple[int, ...]:
        base = (self.n_samples, *self.spatial_shape)
        if name == "image" and self.channels is not None:
            return (*base, self.channels)
        return base

    def dtype(self, name: str) -> np.dtype[Any]:
        return np.dtype(
            {
                "image": self.image_dtype,
                "labels": self.labels_dtype,
                "instances": "int32",
                "weights": "float32",
            }[name]
        )

    def fill_value(self, name: str) -> int | float:
        return self.void_label if name == "labels" else 0

    def shard_bounds(self) -> list[tuple[int, int]]:
        """``(start, stop)`` sample ranges, one per shard."""
        s = self.shard_size
        return [(a, min(a + s, self.n_samples)) for a in range(0, self.n_samples, s)]

    def shard_key(self, name: str, shard: int) -> str:
        """Store key of one shard of one array (zarr v3 default chunk key encoding)."""
        zeros = "/0" * (len(self.array_shape(name)) - 1)
        return f"{name}/c/{shard}{zeros}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_samples": self.n_samples,
            "spatial_shape": list(self.spatial_shape),
            "channels": self.channels,
            "image_dtype": self.image_dtype,
            "labels_dtype": self.labels_dtype,
            "shard_size": self.shard_size,
            "void_label": self.void_label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoreLayout:
        return cls(
            n_samples=int(d["n_samples"]),
            spatial_shape=tuple(int(s) for s in d["spatial_shape"]),
            channels=None if d["channels"] is None else int(d["channels"]),
            image_dtype=str(d["image_dtype"]),
            labels_dtype=str(d["labels_dtype"]),
            shard_size=int(d["shard_size"]),
            void_label=int(d["void_label"]),
        )


def read_attrs(target: str | os.PathLike[str] | Location) -> dict[str, Any] | None:
    """The ``maskprep`` attributes of the group at ``target``, complete or not.

    None if there is no readable zarr group with maskprep metadata there.
    """
    raw = _loc(target).read_bytes("zarr.json")
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    meta = doc.get("attributes", {}).get("maskprep") if isinstance(doc, dict) else None
    return meta if isinstance(meta, dict) else None


def is_maskprep_store(target: str | os.PathLike[str] | Location) -> bool:
    """True if ``target`` holds a zarr group written by maskprep."""
    return read_attrs(target) is not None


def write_attrs(target: Location, meta: dict[str, Any]) -> None:
    """Replace the group's ``maskprep`` attributes (one atomic zarr.json write)."""
    import zarr

    group = zarr.open_group(target.zarr_store(), mode="r+")
    group.attrs["maskprep"] = meta


def metadata_digest(meta: dict[str, Any]) -> str:
    """sha256 of the metadata without its own digest and completion flags."""
    body = {k: v for k, v in meta.items() if k not in ("metadata_digest", "complete", "stage")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def create_store(
    target: str | os.PathLike[str] | Location,
    layout: StoreLayout,
    metadata: dict[str, Any],
    zstd_level: int,
    shapes: np.ndarray | None = None,
) -> None:
    """Create the group and its empty arrays, then mark the store ready for shards.

    The group's metadata is written first (``stage: creating``), so an
    interrupted creation is still recognisable as ours and safely redone.
    """
    import zarr
    from zarr.codecs import ZstdCodec

    loc = _loc(target)
    group = zarr.open_group(loc.zarr_store(), mode="w", zarr_format=3)
    meta = {**metadata, "layout_info": layout.to_dict(), "complete": False, "stage": "creating"}
    group.attrs["maskprep"] = meta
    for name in ARRAY_NAMES:
        shape = layout.array_shape(name)
        group.create_array(
            name,
            shape=shape,
            chunks=(1, *shape[1:]),
            shards=(layout.shard_size, *shape[1:]),
            dtype=layout.dtype(name),
            fill_value=layout.fill_value(name),
            compressors=ZstdCodec(level=zstd_level),
        )
    ndim = len(layout.spatial_shape)
    arr = group.create_array(
        "shapes",
        shape=(layout.n_samples, ndim),
        chunks=(max(1, layout.n_samples), ndim),
        dtype="int32",
        fill_value=0,
        compressors=ZstdCodec(level=zstd_level),
    )
    if shapes is not None:
        arr[:] = np.asarray(shapes, dtype=np.int32)
    group.attrs["maskprep"] = {**meta, "stage": "writing"}


def shard_checksums(loc: Location, layout: StoreLayout, shard: int) -> dict[str, str | None]:
    """sha256 of each array's file for one shard (None where zarr wrote nothing)."""
    out: dict[str, str | None] = {}
    for name in ARRAY_NAMES:
        data = loc.read_bytes(layout.shard_key(name, shard))
        out[name] = None if data is None else hashlib.sha256(data).hexdigest()
    return out


def write_shard(
    loc: Location, layout: StoreLayout, shard: int, name: str, block: np.ndarray, zstd_level: int
) -> str | None:
    """Write one whole shard of one array; return its sha256 (None: all fill, no file)."""
    from maskprep.store.codec import encode_shard

    data = encode_shard(block, layout.shard_size, layout.fill_value(name), zstd_level)
    key = layout.shard_key(name, shard)
    if data is None:
        loc.delete(key)
        return None
    loc.write_bytes(key, data)
    return hashlib.sha256(data).hexdigest()


def record_shard(loc: Location, shard: int, record: dict[str, Any]) -> None:
    """Mark one shard as fully written (atomic), with its checksums."""
    loc.write_bytes(f"{_MARKERS}/{shard:06d}.json", json.dumps(record, sort_keys=True).encode())


def done_shards(loc: Location) -> dict[int, dict[str, Any]]:
    """Shards whose marker exists, with their records."""
    out: dict[int, dict[str, Any]] = {}
    for name in loc.list(_MARKERS):
        if not name.endswith(".json") or name.startswith("."):
            continue
        raw = loc.read_bytes(f"{_MARKERS}/{name}")
        if raw is None:
            continue
        try:
            out[int(name[:-5])] = json.loads(raw)
        except ValueError:
            continue  # a torn marker means the shard is redone
    return out


def mark_complete(loc: Location, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the final metadata with ``complete: true`` and its digest; return it."""
    final = {k: v for k, v in meta.items() if k not in ("complete", "stage", "metadata_digest")}
    final["metadata_digest"] = metadata_digest(final)
    final["stage"] = "complete"
    final["complete"] = True
    write_attrs(loc, final)
    return final


def read_metadata(target: str | os.PathLike[str] | Location) -> dict[str, Any]:
    """The ``maskprep`` group attributes of a store, checked to be complete."""
    loc = _loc(target)
    if loc.is_local and not loc.path.exists():
        raise StoreError(f"{loc}: no such store")
    meta = read_attrs(loc)
    if meta is None:
        raise StoreError(f"{loc}: not a maskprep store (no maskprep metadata in zarr.json)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{loc}: store format version {meta.get('format_version')} is not supported "
            f"(this maskprep reads version {FORMAT_VERSION})"
        )
    if not meta.get("complete"):
        raise StoreError(
            f"{loc}: the store is incomplete (its build did not finish); "
            "re-run the same maskprep build-weights command to complete it"
        )
    return meta
