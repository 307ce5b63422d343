"""The arrays of a store: shapes, dtypes, fill values, tiles, blocks and shard keys.

:class:`StoreLayout` is part of the store's metadata (``layout_info``,
:class:`~maskprep.store.metadata.StoreMetadata`); it knows where every shard
file of every array is and what it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "CHUNK_CHECKSUM",
    "CORE_ARRAYS",
    "DEFAULT_ARRAYS",
    "DEFAULT_BLOCK",
    "DEFAULT_TILE",
    "MAX_TILES_PER_SHARD",
    "ArraySpec",
    "StoreLayout",
    "default_block",
    "default_tile",
]

#: A tiled store's shards span at most this many tiles along each spatial axis.
MAX_TILES_PER_SHARD = 8
#: The per-chunk checksum of format 2: zarr v3's ``crc32c`` codec after ``zstd``.
CHUNK_CHECKSUM = "crc32c"
#: Arrays every store has: the input image, void-filled labels, instance ids.
CORE_ARRAYS = ("image", "labels", "instances")
#: Arrays of a store whose metadata lists none (every store before targets).
DEFAULT_ARRAYS = (*CORE_ARRAYS, "weights")
#: Default tile (chunk extent along each spatial axis, in pixels) by dimensionality.
DEFAULT_TILE = {2: 256, 3: 64}


def default_tile(ndim: int) -> int:
    """The tile of a build with ``tile="auto"``: :data:`DEFAULT_TILE`.

    nnU-Net sizes its chunks from the patch size for the same reason: a
    training patch of 128^2 to 512^2 (or 64^3 to 128^3) touches few tiles.

    >>> default_tile(2), default_tile(3)
    (256, 64)
    """
    return DEFAULT_TILE.get(ndim, DEFAULT_TILE[3])


#: Default block (shard extent along each spatial axis, in pixels) by dimensionality.
DEFAULT_BLOCK = {2: 2048, 3: 256}


def default_block(ndim: int, tile: int) -> int:
    """The default block of a tiled store: :data:`DEFAULT_BLOCK`, in whole tiles.

    >>> default_block(2, 256), default_block(3, 64), default_block(3, 100)
    (2048, 256, 300)
    """
    return -(-DEFAULT_BLOCK.get(ndim, DEFAULT_BLOCK[3]) // tile) * tile


@dataclass(frozen=True)
class ArraySpec:
    """dtype, fill value and trailing channel count of one stored target array."""

    name: str
    dtype: str
    fill_value: int | float = 0
    channels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArraySpec:
        return cls(**dict(d))


_WEIGHTS = ArraySpec("weights", "float32", 0, None)


@dataclass(frozen=True)
class StoreLayout:
    """Shapes and dtypes of the arrays of one store.

    ``targets`` describes the arrays after the core three (default: the
    border weight map only, and then it is not written, so stores made
    before targets existed keep their exact metadata).

    ``tile`` (format 2) chunks every array in tiles of ``tile`` pixels per
    spatial axis (:attr:`tile_shape`, clipped to the spatial shape); a shard
    then spans ``shard_size`` samples and :attr:`shard_spatial_shape`: the
    whole padded spatial shape, rounded up to whole tiles, along each axis
    of at most ``block`` pixels (a multiple of ``tile``; None in stores made
    before blocks: :data:`MAX_TILES_PER_SHARD` tiles), else ``block``. A
    sample longer than ``block`` along an axis is built block by block, one
    task per spatial shard. With
    ``tile=None`` (format 1) a chunk is a whole sample and shards split only
    the sample axis; the tile keys are then not written.

    ``chunk_checksum`` says every chunk ends with its crc32c (zarr's
    ``crc32c`` codec after ``zstd``), checked by the readers and ``verify``.
    None means the format's default: on for format 2, off for format 1, whose
    bytes predate it and stay as they are. Format-2 stores written before
    checksums read back with ``False``.

    Examples
    --------
    >>> lay = StoreLayout(4, (1040, 1388), None, "uint8", "uint8", 64, 255, tile=256)
    >>> lay.tile_shape, lay.shard_spatial_shape, lay.spatial_shard_grid
    ((256, 256), (1280, 1536), (1, 1))
    >>> lay.chunk_shape("image"), lay.shard_shape("labels"), lay.chunk_checksum
    ((1, 256, 256), (64, 1280, 1536), True)
    >>> StoreLayout(4, (5000, 100), None, "uint8", "uint8", 8, 255, tile=256).spatial_shard_grid
    (3, 1)
    """

    n_samples: int
    spatial_shape: tuple[int, ...]
    channels: int | None
    image_dtype: str
    labels_dtype: str
    shard_size: int
    void_label: int
    targets: tuple[ArraySpec, ...] = (_WEIGHTS,)
    tile: int | None = None
    block: int | None = None
    chunk_checksum: bool | None = None

    def __post_init__(self) -> None:
        if self.tile is not None and (not isinstance(self.tile, int) or self.tile < 1):
            raise ValueError(f"tile must be a positive integer or None, got {self.tile!r}")
        if self.block is not None and (
            self.tile is None or not isinstance(self.block, int) or self.block % self.tile
        ):
            raise ValueError(f"block must be a multiple of tile {self.tile}, got {self.block!r}")
        if self.chunk_checksum is None:
            object.__setattr__(self, "chunk_checksum", self.tile is not None)
        elif self.chunk_checksum and self.tile is None:
            raise ValueError("chunk checksums need a tiled layout (format 2); format 1 has none")

    @property
    def tiled(self) -> bool:
        """True for format 2: arrays chunked in tiles rather than whole samples."""
        return self.tile is not None

    @property
    def tile_shape(self) -> tuple[int, ...]:
        """Spatial shape of one chunk: the tile clipped to the spatial shape
        (the whole spatial shape when untiled)."""
        if self.tile is None:
            return self.spatial_shape
        return tuple(min(self.tile, s) for s in self.spatial_shape)

    @property
    def shard_spatial_shape(self) -> tuple[int, ...]:
        """Spatial extent of one shard: whole tiles, at most ``block`` pixels per axis."""
        if self.tile is None:
            return self.spatial_shape
        most = MAX_TILES_PER_SHARD if self.block is None else self.block // self.tile
        return tuple(
            t * min(-(-s // t), most)
            for s, t in zip(self.spatial_shape, self.tile_shape, strict=True)
        )

    @property
    def spatial_shard_grid(self) -> tuple[int, ...]:
        """Number of shards along each spatial axis (all 1 when untiled)."""
        return tuple(
            -(-s // e) for s, e in zip(self.spatial_shape, self.shard_spatial_shape, strict=True)
        )

    def _channels(self, name: str) -> tuple[int, ...]:
        return tuple(self.array_shape(name)[1 + len(self.spatial_shape) :])

    def chunk_shape(self, name: str) -> tuple[int, ...]:
        """zarr chunk shape of array ``name``: one sample, one tile (channels whole)."""
        return (1, *self.tile_shape, *self._channels(name))

    def shard_shape(self, name: str) -> tuple[int, ...]:
        """zarr shard shape of array ``name``."""
        return (self.shard_size, *self.shard_spatial_shape, *self._channels(name))

    @property
    def array_names(self) -> tuple[str, ...]:
        """Every stored array but ``shapes``, core arrays first."""
        return (*CORE_ARRAYS, *(t.name for t in self.targets))

    def _target(self, name: str) -> ArraySpec | None:
        return next((t for t in self.targets if t.name == name), None)

    def array_shape(self, name: str) -> tuple[int, ...]:
        base = (self.n_samples, *self.spatial_shape)
        channels = self.channels if name == "image" else None
        spec = self._target(name)
        if spec is not None:
            channels = spec.channels
        return base if channels is None else (*base, channels)

    def dtype(self, name: str) -> np.dtype[Any]:
        core = {"image": self.image_dtype, "labels": self.labels_dtype, "instances": "int32"}
        if name in core:
            return np.dtype(core[name])
        spec = self._target(name)
        if spec is None:
            raise KeyError(f"the store has no array {name!r}")
        return np.dtype(spec.dtype)

    def fill_value(self, name: str) -> int | float:
        """Padding of array ``name``: ``void_label`` for labels, the target's fill, else 0."""
        if name == "labels":
            return self.void_label
        spec = self._target(name)
        return 0 if spec is None else spec.fill_value

    def shard_bounds(self) -> list[tuple[int, int]]:
        """``(start, stop)`` sample ranges, one per shard."""
        s = self.shard_size
        return [(a, min(a + s, self.n_samples)) for a in range(0, self.n_samples, s)]

    def shard_key(self, name: str, shard: int, spatial: tuple[int, ...] | None = None) -> str:
        """Store key of one shard file of one array (zarr v3 default chunk key encoding).

        ``spatial`` is the shard's position on :attr:`spatial_shard_grid`
        (default the first; an untiled store has only that one).
        """
        ndim = len(self.spatial_shape)
        pos = (0,) * ndim if spatial is None else tuple(spatial)
        rest = (*pos, *(0 for _ in self._channels(name)))
        return f"{name}/c/{shard}" + "".join(f"/{p}" for p in rest)

    def spatial_shards(self) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
        """Every spatial shard: its grid position and the spatial region it covers
        (clipped to the spatial shape), in C order."""
        import itertools

        ext = self.shard_spatial_shape
        out = []
        for pos in itertools.product(*(range(g) for g in self.spatial_shard_grid)):
            region = tuple(
                slice(p * e, min((p + 1) * e, s))
                for p, e, s in zip(pos, ext, self.spatial_shape, strict=True)
            )
            out.append((pos, region))
        return out

    @staticmethod
    def in_sample(region: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...] | None:
        """The part of a spatial shard's ``region`` inside a sample of ``shape``; None if empty.

        >>> StoreLayout.in_sample((slice(0, 8), slice(8, 16)), (5, 20))
        (slice(0, 5, None), slice(8, 16, None))
        >>> StoreLayout.in_sample((slice(8, 16),), (5,)) is None
        True
        """
        mine = tuple(
            slice(r.start, min(r.stop, int(n))) for r, n in zip(region, shape, strict=True)
        )
        return mine if all(m.start < m.stop for m in mine) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n_samples": self.n_samples,
            "spatial_shape": list(self.spatial_shape),
            "channels": self.channels,
            "image_dtype": self.image_dtype,
            "labels_dtype": self.labels_dtype,
            "shard_size": self.shard_size,
            "void_label": self.void_label,
        }
        if self.targets != (_WEIGHTS,):
            out["targets"] = [t.to_dict() for t in self.targets]
        if self.tile is not None:
            out["tile"] = self.tile
            out["tile_shape"] = list(self.tile_shape)
            out["shard_spatial_shape"] = list(self.shard_spatial_shape)
        if self.block is not None:
            out["block"] = self.block
        if self.chunk_checksum:
            out["chunk_checksum"] = CHUNK_CHECKSUM
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoreLayout:
        targets = tuple(ArraySpec.from_dict(t) for t in d.get("targets", [_WEIGHTS.to_dict()]))
        tile = d.get("tile")
        layout = cls(
            n_samples=int(d["n_samples"]),
            spatial_shape=tuple(int(s) for s in d["spatial_shape"]),
            channels=None if d["channels"] is None else int(d["channels"]),
            image_dtype=str(d["image_dtype"]),
            labels_dtype=str(d["labels_dtype"]),
            shard_size=int(d["shard_size"]),
            void_label=int(d["void_label"]),
            targets=targets,
            tile=None if tile is None else int(tile),
            block=None if d.get("block") is None else int(d["block"]),
            chunk_checksum=_chunk_checksum(d.get("chunk_checksum")),
        )
        for key in ("tile_shape", "shard_spatial_shape"):
            if key in d and tuple(int(v) for v in d[key]) != getattr(layout, key):
                raise ValueError(f"layout {key} {d[key]} disagrees with tile {tile}")
        return layout


def _chunk_checksum(value: Any) -> bool:
    if value not in (None, CHUNK_CHECKSUM):
        raise ValueError(f"chunk_checksum {value!r} is not {CHUNK_CHECKSUM!r}")
    return value is not None
