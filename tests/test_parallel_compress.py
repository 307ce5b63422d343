"""Chunks compressed by a task's threads: the shards' bytes do not change."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from maskprep import BuildConfig, build_weights
from maskprep.pipeline import write
from maskprep.store.encode import ShardEncoder


@pytest.mark.parametrize(
    ("dtype", "fill"), [("uint8", 0), ("int32", 0), ("float32", 0), ("float32", float("nan"))]
)
def test_encoder_with_threads_gives_the_same_bytes(dtype: str, fill: float) -> None:
    rng = np.random.default_rng(3)
    data = (rng.random((2, 21, 30, 17)) * 9).astype(dtype)
    data[0, :8] = fill  # whole chunks of fill: left out
    data[1, 8:16, :10] = fill
    shard, chunk = (24, 32, 24), (8, 8, 8)
    with ThreadPoolExecutor(3) as pool:
        outs = []
        for executor in (None, pool):
            enc = ShardEncoder(
                3, shard, chunk, np.dtype(dtype), fill, 3, extent=(21, 30, 20), checksum=True
            )
            for slot in (2, 0):  # out of order, and the shard's last slot left empty
                enc.add(slot, (0, 0, 0), data[slot // 2], executor=executor)
            enc.add(1, (8, 8, 8), data[1, 8:16, 8:16, 8:16], executor=executor)
            outs.append(enc.finish())
    assert outs[0] is not None and outs[0] == outs[1]


def test_an_error_in_a_compression_thread_is_raised_by_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from maskprep.store import encode

    def broken(*args: object) -> bytes:
        raise ValueError("zstd failed")

    monkeypatch.setattr(encode, "_encode_chunk", broken)
    enc = ShardEncoder(1, (4,), (4,), np.dtype("uint8"), 0, 3)
    with ThreadPoolExecutor(1) as pool:
        enc.add(0, (0,), np.ones(4, np.uint8), executor=pool)  # does not raise here
        with pytest.raises(ValueError, match="zstd failed"):
            enc.finish()


def test_compress_pool_follows_the_config() -> None:
    import dask

    assert write.compress_pool() is None
    with dask.config.set({write.COMPRESS_THREADS: 2}):
        pool = write.compress_pool()
        assert pool is not None and pool is write.compress_pool()
    with dask.config.set({write.COMPRESS_THREADS: 1}):
        assert write.compress_pool() is None


def test_build_with_compression_threads_is_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every array of a 3D volume built whole and block by block goes through the pool
    (threshold lowered to 0) under the threaded scheduler; files equal the sync build's."""
    monkeypatch.setattr(write, "_POOL_MIN_NBYTES", 0)
    threads: set[str] = set()
    chunk_bytes = ShardEncoder._chunk_bytes

    def recorded(self: ShardEncoder, piece: np.ndarray) -> bytes | None:
        threads.add(threading.current_thread().name)
        return chunk_bytes(self, piece)

    monkeypatch.setattr(ShardEncoder, "_chunk_bytes", recorded)
    rng = np.random.default_rng(5)
    lab = np.zeros((24, 40, 36), np.int32)
    pts = rng.integers(0, 24, (30, 3)) * [1, 40 // 24, 36 // 24]
    lab[tuple(pts.T)] = rng.permutation(30) * 5 + 2
    from skimage.segmentation import expand_labels

    lab = expand_labels(lab, 5).astype(np.int32)
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    tifffile.imwrite(root / "images" / "v.tif", rng.integers(0, 200, lab.shape, np.uint8))
    tifffile.imwrite(root / "masks" / "v.tif", lab)
    tifffile.imwrite(root / "images" / "w.tif", rng.integers(0, 200, (8, 9, 10), np.uint8))
    tifffile.imwrite(root / "masks" / "w.tif", lab[:8, :9, :10])
    for block in (16, 64):
        stores = []
        for scheduler in ("sync", "threads"):
            out = tmp_path / f"{block}-{scheduler}.zarr"
            config = BuildConfig(
                tile=8,
                block=block,
                spacing=(2.0, 1.0, 1.0),
                sigma=2.0,
                shard_size=2,
                targets=("weights", "boundary", "distance", "affinities"),
            )
            threads.clear()
            build_weights(root, out, config, scheduler=scheduler, workers=2)
            stores.append(out)
            pooled = any(t.startswith("maskprep-zstd") for t in threads)
            assert pooled == (scheduler == "threads"), threads
        files = [
            sorted(p.relative_to(s) for p in s.rglob("*") if p.is_file() and "c" in p.parts)
            for s in stores
        ]
        assert files[0] == files[1] and files[0]
        for rel in files[0]:
            assert (stores[0] / rel).read_bytes() == (stores[1] / rel).read_bytes(), rel
