"""maskprep writes whole shards itself: the bytes must equal zarr-python's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import ZstdCodec

from maskprep.store.codec import encode_shard


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
