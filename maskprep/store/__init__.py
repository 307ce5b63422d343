"""Store: the on-disk format, a zarr v3 group of sample-sharded arrays.

Layout of ``OUT.zarr``::

    image      (N, *S[, C])  input dtype   tiles of each sample, ``shard_size`` samples a shard
    labels     (N, *S)       uint8/uint16  semantic classes, void pixels = ``void_label``
    instances  (N, *S)       int32         instance ids as in the input, 0 = none
    weights    (N, *S)       float32       class weight + border term, 0 on void
    <target>   (N, *S[, C])  per target    further training targets, when built
    shapes     (N, ndim)     int32         true spatial shape of each sample
    class_locations (N, n_classes, K, ndim)  int32  up to K pixels per class (builds with
                                           class_locations=K; see maskprep.store.training)
    metadata/  sample_ids, split, instance_counts, sample_class_counts, void_pixels,
               input_paths, input_bytes, notes, quarantine, shard_checksums: the records
               (format 3, one chunk each; see maskprep.store.records)
    _maskprep/shards/K.json                written after shard K of every array is written
    _maskprep/partials/K.npz               shard K's partial training statistics (written before
                                           K.json, removed once the store is complete)

Format 3 (the default, ``tile="auto"``: ``T`` = 256 in 2D, 64 in 3D) chunks
every array ``(1, T, ..., T[, C])`` (``T`` clipped to ``S`` per axis) and
shards it ``(shard_size, *E[, C])``, where ``E`` is ``S`` rounded up to whole
tiles along an axis of at most ``block`` pixels (:func:`default_block`: 2048
in 2D, 256 in 3D; stores made before blocks:
:data:`~maskprep.store.metadata.MAX_TILES_PER_SHARD` tiles), else ``block``:
a shard holds several small samples or one region of a big sample, and
shard ``K`` of an array is the set of files ``name/c/K/y/x[/0]`` over the
spatial shard grid. A sample longer than ``block`` is built one spatial
shard per task (``_maskprep/shards/K.P.json`` marks part ``P``). Tiles that
hold only the fill value (all tiles outside a sample's true shape) are
never written and never read. The layout records ``tile``, ``tile_shape``,
``shard_spatial_shape`` and ``block``; a shard's checksum covers all its
files. Format 1 (``tile=None``, every store before tiles) stores one chunk
per sample. Format 3 keeps the per-sample, per-input and per-shard records in
the arrays of the group ``metadata`` (:mod:`maskprep.store.records`); formats
1 and 2 (tiles as format 3, written before it) keep them in the group's
metadata JSON, and are read as they are. All formats are standard zarr v3.

``S`` is the largest spatial shape in the dataset: smaller samples are padded at
the end of each axis (image 0, labels ``void_label``, instances 0, targets
their fill value), so padding is never trained on even without cropping;
readers crop to ``shapes``. In format 1 shards split only the sample axis; in
every format each shard is written by exactly one task. Group attribute ``maskprep`` holds the
metadata (:class:`StoreMetadata`, which lists the arrays and, in format 3, the
record arrays' shapes and sha256 sums). Its ``stage`` goes
``creating`` -> ``writing`` -> ``complete``; ``complete: true`` is written
last, after every shard, together with the per-shard checksums and a digest of
the metadata itself.

Owns the metadata schema, store locations (local or fsspec URLs), the shard
codec and the writer. Must never import dask, numba, or the pipeline, reader
or tools stages.
"""

from maskprep.store.codec import (
    CHUNK_CHECKSUM_NBYTES,
    MISSING,
    ZSTD_MAGIC,
    UnsupportedFormat,
    corrupt_chunks,
    crc32c,
    decode_chunk_into,
    decode_index,
    frame_content_size,
    index_nbytes,
    morton_order,
    parse_endian,
    parse_fill_value,
)
from maskprep.store.encode import ShardEncoder, encode_shard
from maskprep.store.location import Location, check_directory, make_directory
from maskprep.store.lock import lock_path, writer_lock
from maskprep.store.metadata import (
    CHUNK_CHECKSUM,
    CORE_ARRAYS,
    DEFAULT_ARRAYS,
    DEFAULT_BLOCK,
    DEFAULT_TILE,
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    MAX_TILES_PER_SHARD,
    RECORD_FIELDS,
    RECORDS_FORMAT_VERSION,
    RECORDS_GROUP,
    SHAPES_KEY,
    SPLITS,
    TILED_FORMAT_VERSION,
    ArraySpec,
    ClassLocationInfo,
    StoreLayout,
    StoreMetadata,
    StoreRecords,
    default_block,
    default_tile,
)
from maskprep.store.training import (
    CLASS_LOCATIONS,
    PARTIALS,
    class_locations_key,
    create_class_locations,
    delete_partials,
    partial_files,
    read_partial,
    write_class_locations,
    write_partial,
)
from maskprep.store.writer import (
    combine_checksums,
    create_store,
    done_parts,
    done_shards,
    is_maskprep_store,
    mark_complete,
    put_shard_file,
    read_attrs,
    read_metadata,
    read_store_metadata,
    record_part,
    record_shard,
    shapes_checksum,
    shard_checksums,
    shard_encoder,
    write_metadata,
    write_shard,
)

__all__ = [
    "CHUNK_CHECKSUM",
    "CHUNK_CHECKSUM_NBYTES",
    "CLASS_LOCATIONS",
    "CORE_ARRAYS",
    "DEFAULT_ARRAYS",
    "DEFAULT_BLOCK",
    "DEFAULT_TILE",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "MAX_TILES_PER_SHARD",
    "MISSING",
    "PARTIALS",
    "RECORDS_FORMAT_VERSION",
    "RECORDS_GROUP",
    "RECORD_FIELDS",
    "SHAPES_KEY",
    "SPLITS",
    "TILED_FORMAT_VERSION",
    "ZSTD_MAGIC",
    "ArraySpec",
    "ClassLocationInfo",
    "Location",
    "ShardEncoder",
    "StoreLayout",
    "StoreMetadata",
    "StoreRecords",
    "UnsupportedFormat",
    "check_directory",
    "class_locations_key",
    "combine_checksums",
    "corrupt_chunks",
    "crc32c",
    "create_class_locations",
    "create_store",
    "decode_chunk_into",
    "decode_index",
    "default_block",
    "default_tile",
    "delete_partials",
    "done_parts",
    "done_shards",
    "encode_shard",
    "frame_content_size",
    "index_nbytes",
    "is_maskprep_store",
    "lock_path",
    "make_directory",
    "mark_complete",
    "morton_order",
    "parse_endian",
    "parse_fill_value",
    "partial_files",
    "put_shard_file",
    "read_attrs",
    "read_metadata",
    "read_partial",
    "read_store_metadata",
    "record_part",
    "record_shard",
    "shapes_checksum",
    "shard_checksums",
    "shard_encoder",
    "write_class_locations",
    "write_metadata",
    "write_partial",
    "write_records",
    "write_shard",
    "writer_lock",
]
