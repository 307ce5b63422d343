"""Patch reads of tiled stores by the direct decoder: equal to zarr-python and to crops
of the whole sample whatever shortcut a read takes (a tile decoded straight into the
patch, a tile's first rows only, adjacent tiles in one ``pread``), and the crc32c still
refusing a damaged tile whose part a patch needs is its first rows."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import maskprep.reader.arrays as arrays_mod
import maskprep.store.codec as codec_mod
from maskprep import BuildConfig, StoreError, build_weights, make_sample, open_shards
from maskprep.reader import TileCache
from maskprep.store import decode_chunk_into, encode_shard, index_nbytes

ARRAYS = ("image", "labels", "instances", "weights")


@pytest.fixture(scope="module", params=["2d", "3d"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Tiles of float32/int32 arrays spanning several zstd blocks (147 KiB in 2D, 250 KiB
    in 3D), so a patch ending in a tile's first rows decodes only those; a store of
    one sample per shard, where a sample's tiles lie next to each other."""
    tmp = tmp_path_factory.mktemp(f"patchreads{request.param}")
    if request.param == "2d":
        size: tuple[int, ...] = (400, 450)
        tile = 192
    else:
        size = (45, 60, 60)
        tile = 40
    data = make_sample(tmp / "d", n_images=2, size=size)
    many = tmp / "many.zarr"
    single = tmp / "single.zarr"
    build_weights(data, many, BuildConfig(shard_size=2, tile=tile), scheduler="sync")
    build_weights(data, single, BuildConfig(shard_size=1, tile=tile), scheduler="sync")
    return {"many": many, "single": single, "tile": tile, "size": size}


def _windows(size: tuple[int, ...], tile: int, rng: np.random.Generator) -> list[tuple]:
    """Random windows, and the ones at tile seams and borders that the shortcuts treat apart."""
    nd = len(size)
    cases: list[tuple] = [
        ((0,) * nd, size),  # the whole sample
        ((0,) * nd, (tile,) * nd),  # exactly one tile: decoded straight into the patch
        ((tile,) * nd, (tile,) * nd),
        ((tile - 3,) * nd, (6,) * nd),  # 2**nd tiles, a few rows of each
        ((1,) * nd, (tile + 1,) * nd),  # ends in the first row of the next tiles
        ((tile - 1,) * nd, (tile + 2,) * nd),  # starts in the last row, ends in the first
        (tuple(s - 5 for s in size), (tile,) * nd),  # across the end border
        ((-7,) * nd, (tile,) * nd),  # across the start border
    ]
    for _ in range(25):
        shape = tuple(int(rng.integers(1, min(s, 2 * tile))) for s in size)
        start = tuple(int(rng.integers(-10, s)) for s in size)
        cases.append((start, shape))
    return cases


def _crop(whole: np.ndarray, start: tuple, shape: tuple, pad: Any) -> np.ndarray:
    """``whole[start : start + shape]``, padded with ``pad`` outside it."""
    nd = len(start)
    out = np.full((*shape, *whole.shape[nd:]), pad, dtype=whole.dtype)
    src, dst = [], []
    for a, n, m in zip(start, shape, whole.shape, strict=False):
        lo, hi = max(a, 0), min(a + n, m)
        if lo >= hi:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - a, hi - a))
    out[tuple(dst)] = whole[tuple(src)]
    return out


@pytest.mark.parametrize("zstd_impl", ["zstandard", "numcodecs"])
@pytest.mark.parametrize("kind", ["many", "single"])
def test_patches_equal_crops_and_zarr_python(
    store: dict, kind: str, zstd_impl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codec_mod, "_ZSTD", zstd_impl)  # numcodecs ignores prefixes
    path = store[kind]
    shards = open_shards(path)
    rng = np.random.default_rng(3)
    decodes: list[int | None] = []
    real = arrays_mod.decode_chunk_into

    def spy(*args: Any, **kwargs: Any) -> None:
        decodes.append(kwargs.get("prefix"))
        real(*args, **kwargs)

    monkeypatch.setattr(arrays_mod, "decode_chunk_into", spy)
    for i in range(len(shards)):
        whole = shards[i]
        for start, shape in _windows(store["size"], store["tile"], rng):
            got = shards.patch(i, start, shape)
            for name in ARRAYS:
                want = _crop(whole[name], start, shape, shards.pad_value(name))
                np.testing.assert_array_equal(got[name], want, err_msg=f"{name} {start}")
    monkeypatch.setattr(arrays_mod, "decode_chunk_into", real)
    # the shortcut that stops decoding early was taken, and not always
    assert any(p is not None for p in decodes) and any(p is None for p in decodes)
    # zarr-python reads the same windows of the padded arrays
    for name in ARRAYS:
        z: Any = zarr.open_array(str(path / name), mode="r")
        for start, shape in _windows(store["size"], store["tile"], rng)[:10]:
            lo = tuple(max(a, 0) for a in start)
            hi = tuple(min(a + n, s) for a, n, s in zip(start, shape, store["size"], strict=True))
            if any(a >= b for a, b in zip(lo, hi, strict=True)):
                continue
            src = shards._sources[name]
            mine = src.read_window(1, lo, hi)
            window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            theirs = z[(1, *window)]
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{name} {lo} {hi}")


def test_adjacent_tiles_of_a_one_sample_shard_are_read_together(store: dict) -> None:
    shards = open_shards(store["single"], arrays=["weights"])
    src: Any = shards._sources["weights"]
    assert src.shard_size == 1
    reads: list[tuple[int, int]] = []
    real = src.files.pread

    def counting(path: str, n: int, offset: int) -> bytes:
        reads.append((offset, n))
        return real(path, n, offset)

    src.files.pread = counting
    tile, nd = store["tile"], len(store["size"])
    shards.patch(0, (tile - 3,) * nd, (6,) * nd)  # 2**nd tiles
    # the corner tiles (0/1 along every axis) come first in Morton order: adjacent
    assert len(reads) == 1
    index = src._index(0, (0,) * nd)  # sample 0: shard 0
    touched = [e for e in index if e[0] != codec_mod.MISSING]
    corner = sorted(touched)[: 2**nd]
    assert reads == [(corner[0][0], sum(nb for _, nb in corner))]  # those tiles' bytes only


def test_damaged_tile_is_refused_when_a_patch_needs_its_first_rows(
    store: dict, tmp_path: Path
) -> None:
    path = tmp_path / "s.zarr"
    shutil.copytree(store["many"], path)
    shards = open_shards(path, arrays=["weights"])
    src: Any = shards._sources["weights"]
    tile, nd = store["tile"], len(store["size"])
    index = src._index(0, (0,) * nd)
    # tile (1, 0, ...) of sample 0, whose first rows a patch from (tile - 2, 0, ...) needs
    flat = src.tiles_per_shard[-1] if nd == 2 else src.tiles_per_shard[1] * src.tiles_per_shard[2]
    off, nb = index[flat]
    shard = Path(src.shard_path(0, (0,) * nd))
    raw = bytearray(shard.read_bytes())
    raw[off + nb - 1] ^= 0x01  # the checksum itself: the frame decodes fine
    shard.write_bytes(bytes(raw))
    start = (tile - 2, *(0,) * (nd - 1))
    with pytest.raises(StoreError, match="crc32c"):
        open_shards(path, arrays=["weights"]).patch(0, start, (4,) * nd)


def test_decode_chunk_prefix() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 300)).astype(np.float32)  # 352 KiB: three zstd blocks
    chunk = encode_shard(a[None], 1, 0.0, 3, checksum=True)
    assert chunk is not None
    chunk = chunk[: -index_nbytes(1)]
    for prefix in (0, 1, 4 * 300, 130_000, 131_072, 200_001, a.nbytes - 1, a.nbytes):
        out = np.full_like(a, np.nan)
        decode_chunk_into(chunk, out, "p", checksum=True, prefix=prefix)
        got = out.reshape(-1).view(np.uint8)[:prefix]
        np.testing.assert_array_equal(got, a.reshape(-1).view(np.uint8)[:prefix])
    # as a view of a larger read (several tiles in one pread)
    run = np.frombuffer(b"xyz" + chunk + b"tail", dtype=np.uint8)
    out = np.empty_like(a)
    decode_chunk_into(run[3 : 3 + len(chunk)], out, "p", checksum=True, prefix=5000)
    np.testing.assert_array_equal(out.reshape(-1)[:1250], a.reshape(-1)[:1250])
    # without a checksum the whole frame is decoded, whatever prefix says
    plain = encode_shard(a[None], 1, 0.0, 3)
    assert plain is not None
    out = np.empty_like(a)
    decode_chunk_into(plain[: -index_nbytes(1)], out, "p", prefix=8)
    np.testing.assert_array_equal(out, a)
    # a damaged chunk or a frame of another size is refused with a prefix too
    bad = bytearray(chunk)
    bad[len(bad) // 2] ^= 0x40
    with pytest.raises(StoreError, match="crc32c"):
        decode_chunk_into(bytes(bad), np.empty_like(a), "p", checksum=True, prefix=8)
    with pytest.raises(StoreError, match="expected"):
        decode_chunk_into(chunk, np.empty((300, 299), np.float32), "p", checksum=True, prefix=8)


def test_tile_cache_reads_equal_uncached_and_stay_bounded(store: dict) -> None:
    plain = open_shards(store["many"])
    cached = open_shards(store["many"])
    tile_nbytes = max(
        int(np.prod(src.tile_shape)) * src.dtype.itemsize  # type: ignore[attr-defined]
        for src in cached._sources.values()
    )
    cache = cached.cache_tiles(5 * tile_nbytes)  # fewer tiles than a pass touches: evictions
    assert cache is not None
    rng = np.random.default_rng(11)
    windows = _windows(store["size"], store["tile"], rng)
    for _ in range(2):
        for i in range(len(plain)):
            for start, shape in windows:
                got, want = cached.patch(i, start, shape), plain.patch(i, start, shape)
                for name in ARRAYS:
                    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
                    assert got[name].flags.writeable
                assert 0 < cache.nbytes_used <= cache.nbytes
            for name in ARRAYS:
                np.testing.assert_array_equal(cached[i][name], plain[i][name])
    assert cache.hits > 0 and cache.misses > 0
    # a patch read twice decodes nothing the second time
    big = cached.cache_tiles(2**26)
    assert big is not None
    cached.patch(0, (3,) * len(store["size"]), (store["tile"],) * len(store["size"]))
    misses = big.misses
    cached.patch(0, (3,) * len(store["size"]), (store["tile"],) * len(store["size"]))
    assert big.misses == misses and big.hits > 0
    # a worker's copy starts empty with the same size; 0 switches the cache off
    copy = pickle.loads(pickle.dumps(cached))
    assert copy._tile_cache is not None and copy._tile_cache.nbytes == 2**26
    assert len(copy._tile_cache) == 0
    assert copy._sources["weights"].tile_cache is copy._tile_cache
    assert cached.cache_tiles(0) is None
    assert all(s.tile_cache is None for s in cached._sources.values())  # type: ignore[attr-defined]


def test_tile_cache_arguments_and_damaged_tiles(store: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 0"):
        TileCache(-1)
    with pytest.raises(TypeError, match="integer"):
        TileCache(1.5)  # type: ignore[arg-type]
    small = TileCache(10)
    small.put("big", np.zeros(11, np.uint8))  # bigger than the cache: not kept
    assert len(small) == 0 and small.get("big") is None
    # a damaged tile is refused by a cached read too
    path = tmp_path / "s.zarr"
    shutil.copytree(store["many"], path)
    src: Any = open_shards(path, arrays=["weights"])._sources["weights"]
    nd = len(store["size"])
    off, nb = src._index(0, (0,) * nd)[0]
    shard = Path(src.shard_path(0, (0,) * nd))
    raw = bytearray(shard.read_bytes())
    raw[off + nb // 2] ^= 0x08
    shard.write_bytes(bytes(raw))
    shards = open_shards(path, arrays=["weights"])
    shards.cache_tiles(2**24)
    with pytest.raises(StoreError, match="crc32c"):
        shards.patch(0, (1,) * nd, (5,) * nd)
