"""Creating a store, writing whole shards with checksums, marking it complete."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from maskprep.errors import StoreError
from maskprep.store.encode import ShardEncoder
from maskprep.store.location import Location
from maskprep.store.metadata import RECORDS_GROUP, SHAPES_KEY, StoreLayout, StoreMetadata

_MARKERS = "_maskprep/shards"


def _loc(target: str | os.PathLike[str] | Location) -> Location:
    return target if isinstance(target, Location) else Location.parse(target)


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


def read_store_metadata(target: str | os.PathLike[str] | Location) -> StoreMetadata | None:
    """The metadata of the store at ``target`` in any stage; None if not a maskprep store.

    Raises
    ------
    StoreError
        If the store's format version is not supported or its metadata is invalid.
    """
    loc = _loc(target)
    raw = read_attrs(loc)
    return None if raw is None else StoreMetadata.from_dict(raw, str(loc), loc.read_bytes)


def write_records(target: Location, meta: StoreMetadata) -> None:
    """Write the record arrays of a format-3 store that are not in it yet.

    Their sha256 sums are in :meth:`StoreMetadata.to_dict`, so they are
    written before the ``zarr.json`` that lists them.
    """
    if not meta.records_in_arrays:
        return
    pending = meta.records.pending_files(str(target))
    if not pending:
        return
    import zarr
    from zarr.codecs import ZstdCodec

    group = zarr.open_group(target.zarr_store(), mode="r+").require_group(RECORDS_GROUP)
    for col, (key, shape, dtype, data) in pending.items():
        old = target.read_bytes(f"{RECORDS_GROUP}/{col}/zarr.json")
        if old is None or json.loads(old).get("shape") != shape:
            group.create_array(
                col,
                shape=tuple(shape),
                chunks=tuple(max(1, s) for s in shape),
                dtype=dtype,
                fill_value=0,
                compressors=ZstdCodec(level=3),
                overwrite=True,
            )
        if data is None:
            target.delete(key)
        else:
            target.write_bytes(key, data)
    meta.records.mark_stored(list(pending), str(target))


def write_metadata(target: Location, meta: StoreMetadata) -> None:
    """Replace the group's ``maskprep`` attributes (one atomic zarr.json write),
    after the record arrays it lists (:func:`write_records`)."""
    import zarr

    write_records(target, meta)
    group = zarr.open_group(target.zarr_store(), mode="r+")
    group.attrs["maskprep"] = meta.to_dict()


def create_store(
    target: str | os.PathLike[str] | Location,
    metadata: StoreMetadata,
    zstd_level: int,
    shapes: np.ndarray | None = None,
) -> StoreMetadata:
    """Create the group and its empty arrays, then mark the store ready for shards.

    The group's metadata is written first (``stage: creating``), so an
    interrupted creation is still recognisable as ours and safely redone.
    """
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    loc = _loc(target)
    layout = metadata.layout_info
    # Format 2 checks every chunk: zstd, then zarr's crc32c codec over the frame.
    compressors: list[Any] = [ZstdCodec(level=zstd_level)]
    if layout.chunk_checksum:
        compressors.append(Crc32cCodec())
    meta = replace(metadata, complete=False, stage="creating")
    # The group's first zarr.json already carries our metadata (no moment when
    # a killed build leaves a group that is not recognisably ours); zarr
    # attributes are JSON: fail here, before anything is written, if not.
    attrs = {"maskprep": json.loads(json.dumps(meta.to_dict()))}
    group = zarr.open_group(loc.zarr_store(), mode="w", zarr_format=3, attributes=attrs)
    for name in layout.array_names:
        shape = layout.array_shape(name)
        group.create_array(
            name,
            shape=shape,
            chunks=layout.chunk_shape(name),
            shards=layout.shard_shape(name),
            dtype=layout.dtype(name),
            fill_value=layout.fill_value(name),
            compressors=compressors,
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
    meta = replace(meta, stage="writing", shapes_checksum=shapes_checksum(loc))
    write_metadata(loc, meta)
    return meta


def shapes_checksum(loc: Location) -> str | None:
    """sha256 of the ``shapes`` array's chunk file (None if there is none)."""
    data = loc.read_bytes(SHAPES_KEY)
    return None if data is None else hashlib.sha256(data).hexdigest()


def _combined(digests: Sequence[tuple[str, str | None]]) -> str | None:
    """One checksum for the files of a tiled shard: sha256 over ``key digest`` lines."""
    if all(d is None for _, d in digests):
        return None
    text = "".join(f"{key} {d or '-'}\n" for key, d in digests)
    return hashlib.sha256(text.encode()).hexdigest()


def shard_checksums(
    loc: Location, layout: StoreLayout, shard: int, names: Sequence[str] | None = None
) -> dict[str, str | None]:
    """sha256 of each array's file for one shard (None where nothing was written).

    A tiled store's shard is one file per spatial shard: its checksum is a
    sha256 over each file's key and sha256. ``names`` limits it to those arrays.
    """
    out: dict[str, str | None] = {}
    for name in layout.array_names if names is None else names:
        digests: list[tuple[str, str | None]] = []
        for pos, _ in layout.spatial_shards():
            key = layout.shard_key(name, shard, pos)
            data = loc.read_bytes(key)
            digests.append((key, None if data is None else hashlib.sha256(data).hexdigest()))
        out[name] = digests[0][1] if not layout.tiled else _combined(digests)
    return out


def shard_encoder(
    layout: StoreLayout, name: str, position: tuple[int, ...], zstd_level: int
) -> ShardEncoder:
    """An encoder of the file of array ``name`` at spatial shard ``position``.

    Samples are added with their values in that spatial shard's region,
    origin 0 (:meth:`ShardEncoder.add`).
    """
    ndim = len(layout.spatial_shape)
    channels = layout.chunk_shape(name)[1 + ndim :]
    region = dict(layout.spatial_shards())[tuple(position)]
    return ShardEncoder(
        layout.shard_size,
        (*layout.shard_spatial_shape, *channels),
        (*layout.tile_shape, *channels),
        layout.dtype(name),
        layout.fill_value(name),
        zstd_level,
        extent=(*(r.stop - r.start for r in region), *channels),
        checksum=bool(layout.chunk_checksum),
    )


def put_shard_file(loc: Location, key: str, data: bytes | None) -> str | None:
    """Write (or, for an all-fill shard, delete) one shard file; its sha256 or None."""
    if data is None:
        loc.delete(key)
        return None
    loc.write_bytes(key, data)
    return hashlib.sha256(data).hexdigest()


def combine_checksums(layout: StoreLayout, digests: Sequence[tuple[str, str | None]]) -> str | None:
    """One array's shard checksum from its files' ``(key, sha256)``, in spatial-shard order."""
    return digests[0][1] if not layout.tiled else _combined(digests)


def write_shard(
    loc: Location, layout: StoreLayout, shard: int, name: str, block: np.ndarray, zstd_level: int
) -> str | None:
    """Write one whole shard of one array; return its sha256 (None: all fill, no file).

    ``block`` holds the shard's samples at the full padded shape; a tiled
    store's shard is written as one file per spatial shard (files that would
    hold only fill are not written), with the combined checksum of
    :func:`shard_checksums`.
    """
    digests: list[tuple[str, str | None]] = []
    origin = (0,) * len(layout.spatial_shape)
    for pos, region in layout.spatial_shards():
        enc = shard_encoder(layout, name, pos, zstd_level)
        for j in range(block.shape[0]):
            enc.add(j, origin, block[(j, *region)])  # type: ignore[arg-type]
        key = layout.shard_key(name, shard, pos)
        digests.append((key, put_shard_file(loc, key, enc.finish())))
    return combine_checksums(layout, digests)


def record_shard(loc: Location, shard: int, record: dict[str, Any]) -> None:
    """Mark one shard as fully written (atomic), with its checksums."""
    loc.write_bytes(f"{_MARKERS}/{shard:06d}.json", json.dumps(record, sort_keys=True).encode())


def record_part(loc: Location, shard: int, part: int, record: dict[str, Any]) -> None:
    """Mark spatial shard ``part`` (flat, C order) of shard ``shard`` as written (atomic).

    A shard of a sample built block by block is written one spatial shard
    per task; its record's checksums are those of each array's one file.
    """
    loc.write_bytes(
        f"{_MARKERS}/{shard:06d}.{part:06d}.json", json.dumps(record, sort_keys=True).encode()
    )


def _markers(loc: Location) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in loc.list(_MARKERS):
        if not name.endswith(".json") or name.startswith("."):
            continue
        raw = loc.read_bytes(f"{_MARKERS}/{name}")
        if raw is None:
            continue
        try:
            out[name[:-5]] = json.loads(raw)
        except ValueError:
            continue  # a torn marker means the shard is redone
    return out


def done_shards(loc: Location) -> dict[int, dict[str, Any]]:
    """Shards whose marker exists, with their records."""
    return {int(k): v for k, v in _markers(loc).items() if k.isdigit()}


def done_parts(loc: Location) -> dict[tuple[int, int], dict[str, Any]]:
    """Spatial shards written by their own task (:func:`record_part`), with their records."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for key, record in _markers(loc).items():
        shard, _, part = key.partition(".")
        if shard.isdigit() and part.isdigit():
            out[int(shard), int(part)] = record
    return out


def _from_parts(
    layout: StoreLayout, shard: int, parts: dict[tuple[int, int], dict[str, Any]]
) -> dict[str, Any] | None:
    """A shard's record from the records of all its spatial shards; None if one is missing."""
    positions = [pos for pos, _ in layout.spatial_shards()]
    records = [parts.get((shard, flat)) for flat in range(len(positions))]
    if any(r is None for r in records):
        return None
    checksums = {
        name: combine_checksums(
            layout,
            [
                (layout.shard_key(name, shard, pos), r["checksums"][name])  # type: ignore[index]
                for pos, r in zip(positions, records, strict=True)
            ],
        )
        for name in layout.array_names
    }
    return {"shard": shard, "samples": records[0]["samples"], "checksums": checksums}  # type: ignore[index]


def mark_complete(loc: Location, meta: StoreMetadata) -> StoreMetadata:
    """Write the final metadata with the shards' checksums, its digest and
    ``complete: true`` (read from the shard markers); return it.

    Raises
    ------
    StoreError
        If a shard has no marker (it was not written).
    """
    records = done_shards(loc)
    parts = done_parts(loc)
    n_shards = len(meta.layout_info.shard_bounds())
    for k in range(n_shards):
        if k not in records:
            whole = _from_parts(meta.layout_info, k, parts)
            if whole is not None:
                records[k] = whole
    missing = [k for k in range(n_shards) if k not in records]
    if missing:
        raise StoreError(f"{loc}: shards {missing[:10]} were not written; re-run to complete")
    loc.sweep_temporaries()
    final = meta.completed([records[k]["checksums"] for k in range(n_shards)])
    write_metadata(loc, final)
    return final


def read_metadata(target: str | os.PathLike[str] | Location) -> StoreMetadata:
    """The metadata of a store, checked to be complete."""
    loc = _loc(target)
    if loc.is_local and (not loc.path.exists() or loc.is_empty()):
        empty = ": the directory is empty (not a maskprep store yet)" if loc.path.exists() else ""
        raise StoreError(f"{loc}: no such store{empty}")
    meta = read_store_metadata(loc)
    if meta is None:
        raise StoreError(f"{loc}: not a maskprep store (no maskprep metadata in zarr.json)")
    if not meta.complete and meta.stage == "reweighting":
        raise StoreError(
            f"{loc}: the store is incomplete (a reweight did not finish); "
            "run the same reweight again to complete it"
        )
    if not meta.complete:
        raise StoreError(
            f"{loc}: the store is incomplete (its build did not finish); "
            "re-run the same maskprep build-weights command to complete it"
        )
    if meta.metadata_digest is not None and meta.metadata_digest != meta.digest():
        raise StoreError(
            f"{loc}/zarr.json: the metadata was edited after the build (digest mismatch); "
            "rebuild the store"
        )
    return meta
