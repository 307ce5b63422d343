"""The on-disk format: a zarr v3 group of sample-sharded arrays.

Layout of ``OUT.zarr``::

    image      (N, *S[, C])  input dtype   one chunk per sample, ``shard_size`` samples a shard
    labels     (N, *S)       uint8/uint16  semantic classes, void pixels = ``void_label``
    instances  (N, *S)       int32         instance ids as in the input, 0 = none
    weights    (N, *S)       float32       class weight + border term, 0 on void
    shapes     (N, ndim)     int32         true spatial shape of each sample

``S`` is the largest spatial shape in the dataset: smaller samples are padded at
the end of each axis (image 0, labels ``void_label``, instances 0, weights 0), so
padding is never trained on even without cropping; readers crop to ``shapes``.
Shards split only the sample axis, and each shard is written by exactly one
task. Group attribute ``maskprep`` holds the metadata; its ``complete`` flag is
written last, after every shard.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskprep._errors import StoreError

__all__ = [
    "ARRAY_NAMES",
    "FORMAT_VERSION",
    "StoreLayout",
    "create_store",
    "is_maskprep_store",
    "mark_complete",
    "prepare_output",
    "read_metadata",
]

FORMAT_VERSION = 1
ARRAY_NAMES = ("image", "labels", "instances", "weights")


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


def is_maskprep_store(path: Path) -> bool:
    """True if ``path`` holds a zarr group written by maskprep."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc.get("attributes", {}).get("maskprep"), dict)


def prepare_output(out: Path, *, overwrite: bool) -> None:
    """Make ``out`` ready for a new store, refusing to touch anything not ours.

    An existing maskprep store is removed only with ``overwrite``; any other
    existing, non-empty path is refused and never deleted.
    """
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    if not is_maskprep_store(out):
        raise StoreError(
            f"{out}: exists and is not a maskprep store; refusing to write into it "
            "(choose another --out path)"
        )
    if not overwrite:
        raise StoreError(f"{out}: a maskprep store already exists; pass --overwrite to replace it")
    shutil.rmtree(out)


def create_store(out: Path, layout: StoreLayout, metadata: dict[str, Any], zstd_level: int) -> None:
    """Create the group and its (empty) arrays, with ``complete`` false."""
    import zarr
    from zarr.codecs import ZstdCodec

    group = zarr.open_group(str(out), mode="w", zarr_format=3)
    for name in ARRAY_NAMES:
        shape = layout.array_shape(name)
        chunk = (1, *shape[1:])
        group.create_array(
            name,
            shape=shape,
            chunks=chunk,
            shards=(layout.shard_size, *shape[1:]),
            dtype=layout.dtype(name),
            fill_value=layout.fill_value(name),
            compressors=ZstdCodec(level=zstd_level),
        )
    ndim = len(layout.spatial_shape)
    group.create_array(
        "shapes",
        shape=(layout.n_samples, ndim),
        chunks=(max(1, layout.n_samples), ndim),
        dtype="int32",
        fill_value=0,
        compressors=ZstdCodec(level=zstd_level),
    )
    group.attrs["maskprep"] = {**metadata, "complete": False}


def mark_complete(out: Path, extra: dict[str, Any] | None = None) -> None:
    """Set ``complete`` (and any final metadata) once every shard is written."""
    import zarr

    group = zarr.open_group(str(out), mode="r+")
    meta = dict(group.attrs["maskprep"])  # type: ignore[arg-type]
    meta.update(extra or {})
    meta["complete"] = True
    group.attrs["maskprep"] = meta


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``maskprep`` group attributes of a store, checked to be complete."""
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    if not is_maskprep_store(path):
        raise StoreError(f"{path}: not a maskprep store (no maskprep metadata in zarr.json)")
    doc = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    meta: dict[str, Any] = doc["attributes"]["maskprep"]
    if meta.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{path}: store format version {meta.get('format_version')} is not supported "
            f"(this maskprep reads version {FORMAT_VERSION})"
        )
    if not meta.get("complete"):
        raise StoreError(
            f"{path}: the store is incomplete (its build did not finish); "
            "re-run maskprep build-weights to complete it"
        )
    return meta
