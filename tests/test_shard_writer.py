"""maskprep writes whole shards itself: the bytes must equal zarr-python's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import Crc32cCodec, ZstdCodec

from maskprep.store.encode import encode_shard


def _zarr_shards(tmp: Path, data: np.ndarray, shard: int, fill: object, level: int) -> list:
    arr = zarr.create_array(
        str(tmp),
        shape=data.shape,
        chunks=(1, *data.shape[1:]),
        shards=(shard, *data.shape[1:]),
        dtype=data.dtype,
        fill_value=fill,
        compressors=ZstdCodec(level=level),
    )
    arr[:] = data
    out = []
    zeros = "/0" * (data.ndim - 1)
    for k in range(-(-data.shape[0] // shard)):
        p = tmp / f"c/{k}{zeros}"
        out.append(p.read_bytes() if p.exists() else None)
    return out


@pytest.mark.parametrize(
    ("dtype", "fill"), [("uint8", 255), ("uint16", 0), ("int32", 0), ("float32", 0.0)]
)
@pytest.mark.parametrize("level", [1, 3])
def test_shards_equal_zarr_python(tmp_path: Path, dtype: str, fill: object, level: int) -> None:
    rng = np.random.default_rng(1)
    data = (rng.random((11, 9, 7)) * 100).astype(dtype)
    data[2] = fill  # an empty chunk inside a shard
    data[4:8] = fill  # a whole empty shard
    expected = _zarr_shards(tmp_path / "z", data, 4, fill, level)
    ours = [encode_shard(data[a : a + 4], 4, fill, level) for a in range(0, 11, 4)]
    assert expected[1] is None
    assert ours == expected


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 9),
    shard=st.integers(1, 5),
    channels=st.sampled_from([(), (3,)]),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_equal_zarr_python(
    tmp_path_factory: pytest.TempPathFactory, n: int, shard: int, channels: tuple, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3, size=(n, 5, 6, *channels)).astype(np.uint8)
    tmp = tmp_path_factory.mktemp("z")
    expected = _zarr_shards(tmp / "a", data, shard, 0, 3)
    ours = [encode_shard(data[a : a + shard], shard, 0, 3) for a in range(0, n, shard)]
    assert ours == expected


def _zarr_tiled(
    tmp: Path,
    data: np.ndarray,
    chunk: tuple,
    shard: tuple,
    fill: object,
    level: int,
    checksum: bool = False,
) -> dict[str, bytes | None]:
    compressors: list = [ZstdCodec(level=level)]
    if checksum:  # format 2: zarr's crc32c codec after zstd, per chunk
        compressors.append(Crc32cCodec())
    arr = zarr.create_array(
        str(tmp),
        shape=data.shape,
        chunks=chunk,
        shards=shard,
        dtype=data.dtype,
        fill_value=fill,
        compressors=compressors,
    )
    arr[:] = data
    out: dict[str, bytes | None] = {}
    grid = [-(-n // s) for n, s in zip(data.shape, shard, strict=True)]
    for pos in np.ndindex(*grid):
        p = tmp / ("c/" + "/".join(map(str, pos)))
        out["/".join(map(str, pos))] = p.read_bytes() if p.exists() else None
    return out


def _ours_tiled(
    data: np.ndarray, chunk: tuple, shard: tuple, fill: object, level: int, checksum: bool = False
) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    grid = [-(-n // s) for n, s in zip(data.shape, shard, strict=True)]
    for pos in np.ndindex(*grid):
        window = tuple(slice(p * s, (p + 1) * s) for p, s in zip(pos, shard, strict=True))
        out["/".join(map(str, pos))] = encode_shard(
            data[window],
            shard[0],
            fill,
            level,
            chunk_shape=chunk[1:],
            shard_shape=shard[1:],
            checksum=checksum,
        )
    return out


@pytest.mark.parametrize(
    ("shape", "chunk", "shard"),
    [
        ((5, 37, 50), (1, 8, 16), (2, 40, 64)),  # one spatial shard, 5x4 tiles, edges padded
        ((3, 37, 50), (1, 8, 16), (2, 16, 32)),  # several spatial shards, edge shards
        ((4, 9, 10, 11), (1, 4, 4, 4), (3, 8, 8, 12)),  # 3D
        ((3, 20, 21, 3), (1, 8, 8, 3), (2, 24, 24, 3)),  # channels last
    ],
)
@pytest.mark.parametrize(("dtype", "fill"), [("uint8", 255), ("float32", 0.0)])
@pytest.mark.parametrize("checksum", [True, False], ids=["crc32c", "no-checksum"])
def test_tiled_shards_equal_zarr_python(
    tmp_path: Path,
    shape: tuple,
    chunk: tuple,
    shard: tuple,
    dtype: str,
    fill: object,
    checksum: bool,
) -> None:
    rng = np.random.default_rng(3)
    data = (rng.random(shape) * 50).astype(dtype)
    data[1] = fill  # an empty sample: none of its tiles are written
    data[0, : chunk[1]] = fill  # empty tiles beside written ones
    data[2, 5:] = fill  # a small sample padded to the full shape
    expected = _zarr_tiled(tmp_path / "z", data, chunk, shard, fill, 3, checksum)
    assert _ours_tiled(data, chunk, shard, fill, 3, checksum) == expected


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 5),
    shard=st.integers(1, 3),
    spatial=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    tile=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    tiles_per_shard=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
    checksum=st.booleans(),
)
def test_random_tiled_shards_equal_zarr_python(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    shard: int,
    spatial: tuple,
    tile: tuple,
    tiles_per_shard: tuple,
    seed: int,
    checksum: bool,
) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 2, size=(n, *spatial)).astype(np.uint8)
    chunk = (1, *tile)
    shards = (shard, *(t * k for t, k in zip(tile, tiles_per_shard, strict=True)))
    expected = _zarr_tiled(tmp_path_factory.mktemp("z") / "a", data, chunk, shards, 0, 3, checksum)
    assert _ours_tiled(data, chunk, shards, 0, 3, checksum) == expected
