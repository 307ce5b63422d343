"""Store: the on-disk format, a zarr v3 group of sample-sharded arrays.

Layout of ``OUT.zarr``::

    image      (N, *S[, C])  input dtype   one chunk per sample, ``shard_size`` samples a shard
    labels     (N, *S)       uint8/uint16  semantic classes, void pixels = ``void_label``
    instances  (N, *S)       int32         instance ids as in the input, 0 = none
    weights    (N, *S)       float32       class weight + border term, 0 on void
    <target>   (N, *S[, C])  per target    further training targets, when built
    shapes     (N, ndim)     int32         true spatial shape of each sample
    _maskprep/shards/K.json                written after shard K of every array is written

``S`` is the largest spatial shape in the dataset: smaller samples are padded at
the end of each axis (image 0, labels ``void_label``, instances 0, targets
their fill value), so padding is never trained on even without cropping;
readers crop to ``shapes``. Shards split only the sample axis, and each shard
is written by exactly one task. Group attribute ``maskprep`` holds the
metadata (:class:`StoreMetadata`, which lists the arrays). Its ``stage`` goes
``creating`` -> ``writing`` -> ``complete``; ``complete: true`` is written
last, after every shard, together with the per-shard checksums and a digest of
the metadata itself.

Owns the metadata schema, store locations (local or fsspec URLs), the shard
codec and the writer. Must never import dask, numba, or the pipeline, reader
or tools stages.
"""

from maskprep.store.codec import (
    MISSING,
    ZSTD_MAGIC,
    UnsupportedFormat,
    crc32c,
    decode_chunk_into,
    decode_index,
    encode_shard,
    frame_content_size,
    index_nbytes,
    parse_endian,
    parse_fill_value,
)
from maskprep.store.location import Location, check_directory, make_directory
from maskprep.store.metadata import (
    CORE_ARRAYS,
    DEFAULT_ARRAYS,
    FORMAT_VERSION,
    ArraySpec,
    StoreLayout,
    StoreMetadata,
)
from maskprep.store.writer import (
    create_store,
    done_shards,
    is_maskprep_store,
    mark_complete,
    read_attrs,
    read_metadata,
    read_store_metadata,
    record_shard,
    shard_checksums,
    write_metadata,
    write_shard,
)

__all__ = [
    "CORE_ARRAYS",
    "DEFAULT_ARRAYS",
    "FORMAT_VERSION",
    "MISSING",
    "ZSTD_MAGIC",
    "ArraySpec",
    "Location",
    "StoreLayout",
    "StoreMetadata",
    "UnsupportedFormat",
    "check_directory",
    "crc32c",
    "create_store",
    "decode_chunk_into",
    "decode_index",
    "done_shards",
    "encode_shard",
    "frame_content_size",
    "index_nbytes",
    "is_maskprep_store",
    "make_directory",
    "mark_complete",
    "parse_endian",
    "parse_fill_value",
    "read_attrs",
    "read_metadata",
    "read_store_metadata",
    "record_shard",
    "shard_checksums",
    "write_metadata",
    "write_shard",
]
