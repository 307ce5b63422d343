"""Store format 2 (``tile=T``): tiled shards, read by maskprep, zarr-python and tensorstore,
patch reads on both formats, and the tools on tiled stores."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from maskprep import (
    BuildConfig,
    ClassWeightConfig,
    StoreError,
    build_weights,
    inspect_store,
    make_sample,
    open_shards,
    verify_store,
)
from maskprep.cli import main
from maskprep.pipeline import reweight
from maskprep.store import (
    FORMAT_VERSION,
    RECORDS_FORMAT_VERSION,
    Location,
    StoreLayout,
    StoreMetadata,
    read_store_metadata,
    write_metadata,
)

ARRAYS = ("image", "labels", "instances", "weights")


def mixed_dataset(root: Path, small: tuple[int, ...], big: tuple[int, ...], n_small: int) -> Path:
    """``n_small`` samples of ``small`` and two of ``big`` in one instances-layout directory."""
    data = make_sample(root / "small", n_images=n_small, size=small)
    other = make_sample(root / "big", n_images=2, size=big, seed=1)
    for sub in ("images", "masks", "unlabeled"):
        for p in (other / sub).glob("*"):
            shutil.copy(p, data / sub / p.name)
    return data


def _files(store: Path) -> dict[str, str]:
    return {
        p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p != store / "zarr.json"
    }


@pytest.fixture(scope="module", params=["2d", "3d"])
def stores(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp(f"tiled{request.param}")
    if request.param == "2d":
        data = mixed_dataset(tmp / "d", (24, 24), (70, 90), 5)
        tile = 16
    else:
        data = mixed_dataset(tmp / "d", (8, 12, 12), (11, 30, 26), 3)
        tile = 8
    plain = tmp / "plain.zarr"
    tiled = tmp / "tiled.zarr"
    build_weights(data, plain, BuildConfig(shard_size=3, tile=None), scheduler="sync")
    build_weights(data, tiled, BuildConfig(shard_size=3, tile=tile), scheduler="sync")
    return {"data": data, "plain": plain, "tiled": tiled, "tile": tile, "tmp": tmp}


# --------------------------------------------------------------------------- format


def test_tiled_metadata_and_geometry(stores: dict) -> None:
    plain = read_store_metadata(stores["plain"])
    tiled = read_store_metadata(stores["tiled"])
    assert plain is not None and tiled is not None
    assert plain.format_version == FORMAT_VERSION and "tile" not in plain.to_dict()["config"]
    assert "tile" not in plain.to_dict()["layout_info"]
    assert tiled.format_version == RECORDS_FORMAT_VERSION
    lay = tiled.layout_info
    assert lay.tile == stores["tile"] and tiled.build_config().tile == stores["tile"]
    doc = json.loads((stores["tiled"] / "labels" / "zarr.json").read_text())
    assert doc["chunk_grid"]["configuration"]["chunk_shape"] == list(lay.shard_shape("labels"))
    inner = doc["codecs"][0]["configuration"]["chunk_shape"]
    assert inner == [1, *(min(stores["tile"], s) for s in lay.spatial_shape)]
    # Same content as the untiled store, sample by sample.
    a, b = open_shards(stores["plain"]), open_shards(stores["tiled"])
    for i in range(len(a)):
        for name in ARRAYS:
            np.testing.assert_array_equal(a[i][name], b[i][name])


def test_tiles_outside_the_true_shape_are_not_written(stores: dict) -> None:
    shards = open_shards(stores["tiled"], arrays=["instances"])
    src = shards._sources["instances"]
    lay = shards.store_metadata.layout_info
    tile = lay.tile_shape
    for j, shape in enumerate(shards.shapes):
        s, k = divmod(j, lay.shard_size)
        per = src.tiles_per_shard  # type: ignore[attr-defined]
        for pos in np.ndindex(*(-(-n // t) for n, t in zip(lay.spatial_shape, tile, strict=True))):
            outside = any(p * t >= n for p, t, n in zip(pos, tile, shape, strict=True))
            spatial = tuple(p // g for p, g in zip(pos, per, strict=True))
            flat = k
            for p, g in zip(pos, per, strict=True):
                flat = flat * g + p % g
            index = src._index(s, spatial)  # type: ignore[attr-defined]
            if outside:
                assert index is None or index[flat][0] == 2**64 - 1


def test_zarr_python_and_tensorstore_read_the_same(stores: dict) -> None:
    shards = open_shards(stores["tiled"])
    assert set(shards.backend.values()) == {"direct"}
    group = zarr.open_group(str(stores["tiled"]), mode="r")
    ts = pytest.importorskip("tensorstore")
    for name in ARRAYS:
        via_zarr = np.asarray(group[name][:])  # type: ignore[index]
        via_ts = ts.open(
            {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(stores["tiled"] / name)}}
        ).result().read().result()
        np.testing.assert_array_equal(via_zarr, via_ts)
        for i in range(len(shards)):
            shape = tuple(int(s) for s in shards.shapes[i])
            crop = (i, *(slice(0, s) for s in shape))
            np.testing.assert_array_equal(shards[i][name], via_zarr[crop])
        ours = np.stack([shards._sources[name].read(i) for i in range(len(shards))])
        np.testing.assert_array_equal(ours, via_zarr)


def test_batches_and_zarr_backend_agree(stores: dict) -> None:
    direct = open_shards(stores["tiled"])
    slow = open_shards(stores["tiled"], backend="zarr")
    plain = open_shards(stores["plain"])
    order = list(range(len(direct)))[::-1]
    for threads in (1, 3):
        a = direct.read_batch(order, threads=threads)
        b = slow.read_batch(order)
        c = plain.read_batch(order)
        for name in ARRAYS:
            np.testing.assert_array_equal(a[name], b[name])
            np.testing.assert_array_equal(a[name], c[name])
    for x, y in zip(direct.batches(2, seed=1), plain.batches(2, seed=1), strict=True):
        for name in ARRAYS:
            np.testing.assert_array_equal(x[name], y[name])


def test_tiled_build_is_deterministic(stores: dict) -> None:
    again = stores["tmp"] / "again.zarr"
    cfg = BuildConfig(shard_size=3, tile=stores["tile"])
    build_weights(stores["data"], again, cfg, scheduler="threads", workers=2)
    ref = {k: v for k, v in _files(stores["tiled"]).items() if not k.startswith("_maskprep")}
    got = {k: v for k, v in _files(again).items() if not k.startswith("_maskprep")}
    assert got == ref


# --------------------------------------------------------------------------- patches


def _padded(shards, i: int, name: str) -> tuple[np.ndarray, int]:  # type: ignore[no-untyped-def]
    """Sample ``i`` of ``name`` at its true shape inside a sea of padding (as patches see it)."""
    whole = shards[i][name]
    ndim = shards.ndim
    margin = 40
    pad = [(margin, margin)] * ndim + [(0, 0)] * (whole.ndim - ndim)
    return np.pad(whole, pad, constant_values=shards.pad_value(name)), margin


@pytest.mark.parametrize("fmt", ["plain", "tiled"])
def test_patches_equal_slices_of_the_padded_sample(stores: dict, fmt: str) -> None:
    shards = open_shards(stores[fmt])
    rng = np.random.default_rng(0)
    ndim = shards.ndim
    tile = stores["tile"]
    for i in range(len(shards)):
        shape = shards.shapes[i]
        cases = [
            ((0,) * ndim, tuple(int(s) for s in shape)),  # the whole sample
            (tuple(-3 for _ in shape), (tile + 5,) * ndim),  # across the start border
            (tuple(int(s) - 4 for s in shape), (tile,) * ndim),  # across the end border
            (tuple(tile - 2 for _ in shape), (5,) * ndim),  # across a tile seam
            (tuple(-20 for _ in shape), (4,) * ndim),  # all outside, before
            (tuple(int(s) + 1 for s in shape), (3,) * ndim),  # all outside, beyond
        ]
        for _ in range(3):
            size = tuple(int(rng.integers(1, 20)) for _ in shape)
            start = tuple(int(rng.integers(-10, int(s))) for s in shape)
            cases.append((start, size))
        for name in ARRAYS:
            padded, m = _padded(shards, i, name)
            for start, size in cases:
                got = shards.patch(i, start, size, arrays=[name])[name]
                window = tuple(slice(a + m, a + m + n) for a, n in zip(start, size, strict=True))
                np.testing.assert_array_equal(got, padded[window], err_msg=f"{name} {start} {size}")
                assert got.flags.writeable and got.dtype == shards[i][name].dtype


def test_patch_reads_only_the_tiles_it_touches(stores: dict) -> None:
    shards = open_shards(stores["tiled"], arrays=["labels"])
    src = shards._sources["labels"]
    reads: list[int] = []
    real = src.files.pread  # type: ignore[attr-defined]

    def counting(path: str, n: int, offset: int) -> bytes:
        reads.append(n)
        return real(path, n, offset)

    src.files.pread = counting  # type: ignore[attr-defined]
    big = int(np.argmax(shards.shapes.prod(axis=1)))
    tile = stores["tile"]
    shards.patch(big, (1,) * shards.ndim, (tile - 2,) * shards.ndim)  # inside one tile
    assert len(reads) <= 1
    reads.clear()
    shards.patch(big, (tile - 1,) * shards.ndim, (2,) * shards.ndim)  # 2**ndim tiles
    assert len(reads) <= 2**shards.ndim


def test_patch_arguments_are_checked(stores: dict) -> None:
    shards = open_shards(stores["tiled"])
    nd = shards.ndim
    with pytest.raises(ValueError, match="size must be at least 1"):
        shards.patch(0, (0,) * nd, (0,) * nd)
    with pytest.raises(ValueError, match="start must have"):
        shards.patch(0, (0,) * (nd + 1), (4,) * nd)
    with pytest.raises(TypeError, match="size must be a sequence"):
        shards.patch(0, (0,) * nd, 4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start must be a sequence"):
        shards.patch(0, (0.5,) * nd, (4,) * nd)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="arrays must be distinct names"):
        open_shards(stores["tiled"], arrays=["labels"]).patch(0, (0,) * nd, (4,) * nd, ["image"])
    with pytest.raises(IndexError):
        shards.patch(len(shards), (0,) * nd, (4,) * nd)


# --------------------------------------------------------------------------- tools


def test_verify_and_inspect_tiled(stores: dict, tmp_path: Path) -> None:
    assert verify_store(stores["tiled"]).ok
    info = inspect_store(stores["tiled"])
    assert not info["problems"], info["problems"]
    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(stores["tiled"], damaged)
    victim = next(p for p in sorted((damaged / "weights" / "c").rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    report = verify_store(damaged)
    assert not report.ok and any("checksum mismatch" in p for p in report.problems)


def test_reweight_tiled_equals_a_fresh_build(stores: dict, tmp_path: Path) -> None:
    store = tmp_path / "rw.zarr"
    shutil.copytree(stores["tiled"], store)
    scheme = ClassWeightConfig(scheme="none")
    reweight(store, scheme, scheduler="sync")
    fresh = tmp_path / "fresh.zarr"
    cfg = BuildConfig(shard_size=3, tile=stores["tile"], class_weights=scheme)
    build_weights(stores["data"], fresh, cfg, scheduler="sync")
    weights = {k: v for k, v in _files(fresh).items() if k.startswith("weights/")}
    assert {k: v for k, v in _files(store).items() if k.startswith("weights/")} == weights
    a, b = open_shards(store), open_shards(fresh)
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i]["weights"], b[i]["weights"])
    assert verify_store(store).ok


def test_resume_tiled_writes_only_the_missing_shard(stores: dict, tmp_path: Path) -> None:
    store = tmp_path / "resume.zarr"
    shutil.copytree(stores["tiled"], store)
    loc = Location.parse(store)
    meta = read_store_metadata(loc)
    assert meta is not None
    incomplete = replace(
        meta,
        complete=False,
        stage="writing",
        records=meta.records.replace(shard_checksums=None),
        metadata_digest=None,
    )
    write_metadata(loc, incomplete)
    (store / "_maskprep" / "shards" / "000001.json").unlink()
    for name in ARRAYS:
        shutil.rmtree(store / name / "c" / "1")
    cfg = BuildConfig(shard_size=3, tile=stores["tile"])
    summary = build_weights(stores["data"], store, cfg, scheduler="sync")
    n_shards = len(meta.layout_info.shard_bounds())
    assert (summary.shards_written, summary.shards_skipped) == (1, n_shards - 1)
    assert _files(store) == _files(stores["tiled"])
    assert verify_store(store).ok


# --------------------------------------------------------------------------- config, CLI


def test_tile_option_and_validation(tmp_path: Path) -> None:
    assert BuildConfig().tile == "auto" and BuildConfig().to_dict()["tile"] == "auto"
    # Untiled, like every store before tiles: no key, so their metadata is unchanged.
    assert "tile" not in BuildConfig(tile=None).to_dict()
    for tile in (None, "auto", 64):
        assert BuildConfig.from_dict(BuildConfig(tile=tile).to_dict()).tile == tile
    for bad in (0, -1, 2.5, True, "big"):
        with pytest.raises(ValueError, match="tile must be a positive integer"):
            BuildConfig(tile=bad)  # type: ignore[arg-type]
    data = make_sample(tmp_path / "d", n_images=3, size=(40, 40))
    out = tmp_path / "o.zarr"
    r = CliRunner().invoke(main, ["build-weights", str(data), "-o", str(out), "--tile", "16"])
    assert r.exit_code == 0, r.output
    meta = open_shards(out).store_metadata
    assert meta.format_version == 3 and meta.layout_info.tile_shape == (16, 16)
    assert meta.layout_info.shard_spatial_shape == (48, 48)
    for tile, version in (("none", 1), ("auto", 3)):
        out = tmp_path / f"{tile}.zarr"
        r = CliRunner().invoke(main, ["build-weights", str(data), "-o", str(out), "--tile", tile])
        assert r.exit_code == 0, r.output
        assert open_shards(out).store_metadata.format_version == version
    r = CliRunner().invoke(main, ["build-weights", str(data), "-o", str(out), "--tile", "0"])
    assert r.exit_code == 2 and "expected auto, none or a positive number" in r.output
    r = CliRunner().invoke(main, ["build-weights", "--help"])
    assert "--tile" in r.output


def test_layout_geometry_rule_and_versions() -> None:
    big = StoreLayout(2, (5000, 300), None, "uint8", "uint8", 4, 255, tile=256)
    assert big.tile_shape == (256, 256)
    assert big.shard_spatial_shape == (2048, 512)  # 8 tiles, else the whole (2 tiles)
    assert big.spatial_shard_grid == (3, 1)
    assert StoreLayout.from_dict(big.to_dict()) == big
    clipped = StoreLayout(2, (5, 300), 3, "uint8", "uint8", 4, 255, tile=64)
    assert clipped.chunk_shape("image") == (1, 5, 64, 3)
    assert clipped.shard_shape("image") == (4, 5, 320, 3)
    bad = {**big.to_dict(), "tile_shape": [128, 128]}
    with pytest.raises(ValueError, match="disagrees"):
        StoreLayout.from_dict(bad)


def test_format_version_must_match_the_layout(stores: dict) -> None:
    meta = read_store_metadata(stores["tiled"])
    assert meta is not None
    d = meta.to_dict()
    with pytest.raises(StoreError, match="does not match its layout"):
        StoreMetadata.from_dict({**d, "format_version": 1})
    with pytest.raises(StoreError, match="not supported"):
        StoreMetadata.from_dict({**d, "format_version": 4})


def test_torch_datasets_read_tiled_stores(stores: dict) -> None:
    pytest.importorskip("torch")
    from maskprep.torch import ShardDataset, ShardIterableDataset

    tiled, plain = ShardDataset(stores["tiled"]), ShardDataset(stores["plain"])
    for i in range(len(plain)):
        a, b = tiled[i], plain[i]
        assert sorted(a) == sorted(b)
        for name in a:
            assert (a[name] == b[name]).all()
    x = list(ShardIterableDataset(stores["tiled"], batch_size=2, seed=0))
    y = list(ShardIterableDataset(stores["plain"], batch_size=2, seed=0))
    assert len(x) == len(y)
    for bx, by in zip(x, y, strict=True):
        assert sorted(bx) == sorted(by)
        for name in bx:
            assert (bx[name] == by[name]).all()


def test_recipe_build_table_sets_tile(tmp_path: Path) -> None:
    recipe = tmp_path / "tiled.toml"
    recipe.write_text('layout = "dsb2018"\n\n[build]\ntile = 16\n')
    data = make_sample(tmp_path / "dsb", n_images=2, size=(40, 40), layout="dsb2018")
    assert BuildConfig.from_recipe(recipe, data).tile == 16
    recipe.write_text('layout = "dsb2018"\n\n[build]\ntile = 0\n')
    with pytest.raises(ValueError, match="tile must be a positive integer"):
        BuildConfig.from_recipe(recipe, data)


def test_rgb_images_tiled_channels_last(tmp_path: Path) -> None:
    from PIL import Image

    data = make_sample(tmp_path / "rgb", n_images=3, size=(40, 50))
    for p in (data / "images").glob("*.png"):
        g = np.asarray(Image.open(p))
        Image.fromarray(np.stack([g, 255 - g, g // 2], -1)).save(p)
    build_weights(data, tmp_path / "a.zarr", scheduler="sync")
    build_weights(data, tmp_path / "b.zarr", BuildConfig(tile=16), scheduler="sync")
    a, b = open_shards(tmp_path / "a.zarr"), open_shards(tmp_path / "b.zarr")
    assert b.backend["image"] == "direct"
    assert zarr.open_array(str(tmp_path / "b.zarr" / "image"), mode="r").chunks == (1, 16, 16, 3)
    for i in range(3):
        np.testing.assert_array_equal(a[i]["image"], b[i]["image"])
    for shards in (a, b):
        patch = shards.patch(1, (-5, 30), (20, 30), arrays=["image"])["image"]
        padded = np.pad(shards[1]["image"], ((5, 40), (0, 40), (0, 0)))
        np.testing.assert_array_equal(patch, padded[0:20, 30:60])
