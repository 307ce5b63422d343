"""Format 2's per-chunk crc32c: written as zarr v3's ``crc32c`` codec, checked on every read.

A flipped bit inside a shard file must never come back as data: every read of
the damaged chunk raises StoreError naming the shard file and the chunk
(maskprep's reader, its zarr-python backend), zarr-python and tensorstore
refuse it too, and ``verify`` names the chunk and its sample. Format 1 is
unchanged (``tests/test_store_identity.py``); format-2 stores written before
checksums still read and reweight.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import maskprep.pipeline.first_pass as first_pass
import maskprep.store.codec as codec_mod
from maskprep import (
    BuildConfig,
    ClassWeightConfig,
    StoreError,
    build_weights,
    make_sample,
    open_shards,
    reweight,
    verify_store,
)
from maskprep.store import StoreLayout, read_store_metadata

ARRAYS = ("image", "labels", "instances", "weights")
CFG = BuildConfig(shard_size=2, tile=8)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A format-2 store: 5 samples of 16x16 in tiles of 8x8, two samples a shard."""
    tmp = tmp_path_factory.mktemp("crc")
    data = make_sample(tmp / "d", n_images=5, size=(16, 16))
    out = tmp / "o.zarr"
    build_weights(data, out, CFG, scheduler="sync")
    return out


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine store, free to damage."""
    out = tmp_path / "o.zarr"
    shutil.copytree(pristine, out)
    return out


def _inner_codecs(store: Path, name: str) -> list[str]:
    doc = json.loads((store / name / "zarr.json").read_text())
    return [c["name"] for c in doc["codecs"][0]["configuration"]["codecs"]]


def _everything(store: Path) -> list[dict[str, np.ndarray]]:
    with open_shards(store) as shards:
        return [shards[i] for i in range(len(shards))]


def _flip(path: Path, byte: int, bit: int) -> None:
    """Flip one bit in place (same inode: a reader's open descriptor sees it)."""
    with open(path, "r+b") as fh:
        fh.seek(byte)
        value = fh.read(1)[0]
        fh.seek(byte)
        fh.write(bytes([value ^ (1 << bit)]))


def _chunk_entry(store: Path, name: str, j: int, tile: tuple[int, int]) -> tuple[Path, int, int]:
    """Shard file, offset and size of the chunk of sample ``j`` at tile ``tile``."""
    shards = open_shards(store, arrays=[name])
    src: Any = shards._sources[name]
    s, k = divmod(j, src.shard_size)
    flat = k
    for p, g in zip(tile, src.tiles_per_shard, strict=True):
        flat = flat * g + p % g
    spatial = tuple(p // g for p, g in zip(tile, src.tiles_per_shard, strict=True))
    off, nb = src._index(s, spatial)[flat]
    shards.close()
    return Path(src.shard_path(s, spatial)), off, nb


def test_format_2_declares_crc32c_per_chunk_and_format_1_does_not(
    pristine: Path, tmp_path: Path
) -> None:
    for name in ARRAYS:
        assert _inner_codecs(pristine, name) == ["bytes", "zstd", "crc32c"]
    meta = read_store_metadata(pristine)
    assert meta is not None and meta.layout_info.chunk_checksum
    assert meta.to_dict()["layout_info"]["chunk_checksum"] == "crc32c"
    plain = tmp_path / "plain.zarr"
    build_weights(make_sample(tmp_path / "d", n_images=2, size=(16, 16)), plain,
                  BuildConfig(shard_size=2, tile=None), scheduler="sync")  # fmt: skip
    assert _inner_codecs(plain, "labels") == ["bytes", "zstd"]
    plain_meta = read_store_metadata(plain)
    assert plain_meta is not None and not plain_meta.layout_info.chunk_checksum
    assert "chunk_checksum" not in plain_meta.to_dict()["layout_info"]


def test_layout_chunk_checksum_rules() -> None:
    tiled = StoreLayout(2, (16, 16), None, "uint8", "uint8", 2, 255, tile=8)
    assert tiled.chunk_checksum is True
    assert StoreLayout.from_dict(tiled.to_dict()) == tiled
    old = replace(tiled, chunk_checksum=False)  # format 2 as written before checksums
    assert "chunk_checksum" not in old.to_dict()
    assert StoreLayout.from_dict(old.to_dict()) == old
    assert StoreLayout(2, (16, 16), None, "uint8", "uint8", 2, 255).chunk_checksum is False
    with pytest.raises(ValueError, match="chunk checksums need a tiled layout"):
        StoreLayout(2, (16, 16), None, "uint8", "uint8", 2, 255, chunk_checksum=True)
    with pytest.raises(ValueError, match="chunk_checksum 'md5'"):
        StoreLayout.from_dict({**tiled.to_dict(), "chunk_checksum": "md5"})


def test_the_crc32c_residue_checks_exactly_the_appended_checksum() -> None:
    rng = np.random.default_rng(5)
    for n in (0, 1, 3, 4, 17, 1000):
        data = rng.bytes(n)
        good = codec_mod.crc32c(data)
        assert codec_mod.crc32c(data + good.to_bytes(4, "little")) == codec_mod.CRC32C_RESIDUE
        for wrong in (good ^ 1, good ^ 0x80000000, (good + 1) % 2**32, 0):
            if wrong != good:
                tail = wrong.to_bytes(4, "little")
                assert codec_mod.crc32c(data + tail) != codec_mod.CRC32C_RESIDUE


@pytest.mark.parametrize("decoder", ["zstandard", "numcodecs"])
def test_checksummed_chunks_read_as_zarr_python_reads_them(
    pristine: Path, decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codec_mod, "_ZSTD", decoder)
    group = zarr.open_group(str(pristine), mode="r")
    with open_shards(pristine) as shards:
        for name in ARRAYS:
            whole = np.asarray(group[name][:])  # type: ignore[index]
            ours = np.stack([shards._sources[name].read(i) for i in range(len(shards))])
            np.testing.assert_array_equal(ours, whole)
            patch = shards.patch(1, (3, 5), (8, 8))[name]  # crosses four tiles
            np.testing.assert_array_equal(patch, whole[1, 3:11, 5:13])


@pytest.mark.parametrize("name", ["weights", "labels"])
def test_every_bit_flip_in_a_chunk_fails_every_read_of_it(store: Path, name: str) -> None:
    before = _everything(store)
    path, off, nb = _chunk_entry(store, name, 3, (0, 1))
    shards = open_shards(store)
    want = f"{path}: chunk (3, 0, 1) fails its crc32c checksum"
    for byte in range(off, off + nb):  # the zstd frame and its crc32c, every bit
        for bit in range(8):
            _flip(path, byte, bit)
            with pytest.raises(StoreError) as exc:
                shards[3]
            assert str(exc.value).startswith(want), (byte, bit, exc.value)
            _flip(path, byte, bit)
    # Other samples of the same shard file, and the damaged sample's other tiles, still read.
    _flip(path, off + nb // 2, 3)
    assert all(np.array_equal(shards[2][n], before[2][n]) for n in ARRAYS)
    np.testing.assert_array_equal(shards.patch(3, (0, 0), (8, 8))[name], before[3][name][:8, :8])
    for read in (
        lambda: shards.patch(3, (4, 4), (8, 8)),
        lambda: shards.read_batch([1, 3]),
        lambda: next(iter(shards.batches(5, shuffle=False))),
        lambda: open_shards(store, backend="direct")[3],
    ):
        with pytest.raises(StoreError, match=re.escape(want)):
            read()
    with pytest.raises(StoreError, match=f"{name}: sample 3 cannot be decoded"):
        open_shards(store, backend="zarr")[3]


def test_random_bit_flips_anywhere_are_caught_never_read_as_data(store: Path) -> None:
    rng = np.random.default_rng(2024)
    before = _everything(store)
    files = sorted(p for name in ARRAYS for p in (store / name / "c").rglob("*") if p.is_file())
    caught = 0
    for _ in range(150):
        path = files[int(rng.integers(len(files)))]
        size = path.stat().st_size
        flips = [(int(rng.integers(size)), int(rng.integers(8))) for _ in range(rng.integers(1, 4))]
        flips = list(dict.fromkeys(flips))  # the same bit twice would undo itself
        for byte, bit in flips:
            _flip(path, byte, bit)
        errors = []
        with open_shards(store) as shards:  # fresh: the shard indexes are read again
            for i in range(len(shards)):
                try:
                    got = shards[i]
                except StoreError as exc:
                    errors.append(str(exc))
                    continue
                for n in ARRAYS:  # whatever reads, reads the original values
                    np.testing.assert_array_equal(got[n], before[i][n])
        assert errors, f"flips {flips} in {path} went unnoticed"
        assert all(e.startswith(f"{path}: ") for e in errors), errors
        caught += 1
        for byte, bit in flips:
            _flip(path, byte, bit)
    assert caught == 150
    assert verify_store(store).ok


def test_zarr_python_and_tensorstore_refuse_a_flipped_chunk(store: Path) -> None:
    import tensorstore as ts
    path, off, nb = _chunk_entry(store, "weights", 1, (1, 1))
    good = np.asarray(zarr.open_array(str(store / "weights"), mode="r")[1])
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / "weights")}}
    np.testing.assert_array_equal(ts.open(spec).result()[1].read().result(), good)
    _flip(path, off + nb // 2, 0)
    with pytest.raises(ValueError, match="checksum"):
        zarr.open_array(str(store / "weights"), mode="r")[1]
    with pytest.raises(ValueError, match="Digest mismatch"):  # tensorstore's words
        ts.open(spec).result()[1].read().result()


def test_verify_names_the_corrupt_chunk_and_its_sample(store: Path) -> None:
    path, off, nb = _chunk_entry(store, "weights", 2, (1, 0))
    _flip(path, off + nb - 1, 7)  # inside the stored crc32c itself
    problems = verify_store(store).problems
    sample = read_store_metadata(store).sample_ids[2]  # type: ignore[union-attr]
    assert f"{path}: chunk (2, 1, 0) (sample {sample}) fails its crc32c checksum" in problems
    assert any("weights/c/1/0/0: checksum mismatch" in p for p in problems)


def test_format_2_stores_without_checksums_still_read_and_reweight(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = first_pass.plan_layout

    def without_checksums(*args: Any, **kwargs: Any) -> StoreLayout:
        return replace(real(*args, **kwargs), chunk_checksum=False)

    data = make_sample(tmp_path / "d", n_images=5, size=(16, 16))
    old = tmp_path / "old.zarr"
    monkeypatch.setattr(first_pass, "plan_layout", without_checksums)
    build_weights(data, old, CFG, scheduler="sync")
    monkeypatch.undo()
    assert _inner_codecs(old, "weights") == ["bytes", "zstd"]
    with open_shards(old) as shards:
        assert set(shards.backend.values()) == {"direct"}
        for got, want in zip((shards[i] for i in range(len(shards))), _everything(pristine),
                             strict=True):  # fmt: skip
            assert all(np.array_equal(got[n], want[n]) for n in ARRAYS)
    reweight(old, ClassWeightConfig(scheme="none"), scheduler="sync")  # rewrites weights
    assert _inner_codecs(old, "weights") == ["bytes", "zstd"]
    assert verify_store(old).ok
    np.testing.assert_array_equal(
        open_shards(old)[0]["weights"],
        np.asarray(zarr.open_array(str(old / "weights"), mode="r")[0]),
    )
