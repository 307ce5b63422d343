"""On-disk parts of the training statistics: per-shard partial files and the
``class_locations`` array.

Pass 2 writes, before a shard's marker, one ``.npz`` of partial results per
shard (or per block of a big sample) under ``_maskprep/partials/``, named
``KKKKKK[.anything].npz`` after the shard ``K`` it belongs to. At completion
they are merged and ``class_locations`` is written::

    class_locations  (N, n_classes, K, ndim)  int32  coordinates, -1 in unused slots

one chunk per sample, sharded like the other arrays (``shard_size``
samples), same codecs, so readers decode it directly. The partial files are
removed once the store is complete (:func:`delete_partials`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections import defaultdict

import numpy as np

from maskprep.errors import StoreError
from maskprep.store.encode import encode_shard
from maskprep.store.location import Location
from maskprep.store.metadata import StoreLayout

__all__ = [
    "CLASS_LOCATIONS",
    "PARTIALS",
    "class_locations_key",
    "create_class_locations",
    "delete_partials",
    "partial_files",
    "read_partial",
    "write_class_locations",
    "write_partial",
]

#: Folder of the per-shard partial results.
PARTIALS = "_maskprep/partials"
#: Name of the class locations array.
CLASS_LOCATIONS = "class_locations"


def write_partial(loc: Location, name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write one partial result ``PARTIALS/name.npz`` (atomically)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    loc.write_bytes(f"{PARTIALS}/{name}.npz", buf.getvalue())


def partial_files(loc: Location) -> dict[int, list[str]]:
    """The partial files present, by shard: ``{shard: [name, ...]}`` (names sorted)."""
    out: dict[int, list[str]] = defaultdict(list)
    for name in sorted(loc.list(PARTIALS)):
        if not name.endswith(".npz") or name.startswith("."):
            continue
        head = name.split(".", 1)[0]
        if head.isdigit():
            out[int(head)].append(name)
    return dict(out)


def delete_partials(loc: Location) -> None:
    """Remove the partial results (after the store is complete: they are merged)."""
    for name in loc.list(PARTIALS):
        loc.delete(f"{PARTIALS}/{name}")
    if loc.is_local:
        with contextlib.suppress(OSError):
            (loc.path / PARTIALS).rmdir()


def read_partial(loc: Location, name: str) -> dict[str, np.ndarray]:
    """The arrays of one partial file; StoreError naming it if unreadable."""
    key = f"{PARTIALS}/{name}"
    raw = loc.read_bytes(key)
    if raw is None:
        raise StoreError(f"{loc}/{key}: partial result is missing; re-run the build")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise StoreError(f"{loc}/{key}: unreadable partial result ({exc})") from None


def class_locations_key(shard: int) -> str:
    """Store key of shard ``shard`` of the class locations array."""
    return f"{CLASS_LOCATIONS}/c/{shard}/0/0/0"


def create_class_locations(
    loc: Location, layout: StoreLayout, num_classes: int, per_class: int, zstd_level: int
) -> None:
    """Create the empty ``class_locations`` array (replacing one left by an earlier try)."""
    import zarr
    from zarr.codecs import ZstdCodec

    ndim = len(layout.spatial_shape)
    group = zarr.open_group(loc.zarr_store(), mode="r+")
    group.create_array(
        CLASS_LOCATIONS,
        shape=(layout.n_samples, num_classes, per_class, ndim),
        chunks=(1, num_classes, per_class, ndim),
        shards=(layout.shard_size, num_classes, per_class, ndim),
        dtype="int32",
        fill_value=-1,
        compressors=ZstdCodec(level=zstd_level),
        overwrite=True,
    )


def write_class_locations(
    loc: Location, layout: StoreLayout, shard: int, block: np.ndarray, zstd_level: int
) -> str | None:
    """Write one shard of ``class_locations``; its sha256 (None: all unused, no file)."""
    if block.dtype != np.int32 or block.ndim != 4:
        raise StoreError(f"class locations must be a 4D int32 block, got {block.dtype}")
    data = encode_shard(block, layout.shard_size, -1, zstd_level)
    key = class_locations_key(shard)
    if data is None:
        loc.delete(key)
        return None
    loc.write_bytes(key, data)
    return hashlib.sha256(data).hexdigest()
