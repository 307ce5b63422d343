"""Blockwise builds: a sample longer than the block is built block by block, and the
store is the whole-sample build's, bit for bit (every array, every count)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.segmentation import expand_labels

from maskprep import BuildConfig, build_weights, open_shards
from maskprep.errors import DataError, StoreError
from maskprep.ingest import discover
from maskprep.pipeline.blocks import (
    InstanceTable,
    block_arrays,
    block_crop,
    block_regions,
    config_block,
    is_blockwise,
    merge_block_scans,
    scan_block,
    target_reach,
)
from maskprep.pipeline.scan import PendingBlocks, SampleInfo, load_sample, scan_sample
from maskprep.pipeline.write import sample_arrays
from maskprep.targets import TARGETS
from maskprep.targets.base import _SimpleTarget
from maskprep.targets.weights import weight_lookup

ALL_TARGETS = ("weights", "boundary", "distance", "stardist", "hover", "affinities")


def _cells(shape: tuple[int, ...], n: int, grow: int, seed: int) -> np.ndarray:
    """Touching blobs with non-sequential ids, some on the image border."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int32)
    if n:
        pts = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
        lab[tuple(pts.T)] = rng.permutation(n) * 7 + 3
    return expand_labels(lab, grow).astype(np.int32)


def _dataset(
    root: Path, samples: dict[str, np.ndarray], seed: int = 0, suffix: str = ".tif"
) -> Path:
    """An instances dataset; ``.tif`` files are read region by region, ``.png`` whole."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(seed)
    for name, lab in samples.items():
        if suffix == ".png":
            from PIL import Image

            image = rng.integers(0, 60000, lab.shape).astype(np.uint16)
            Image.fromarray(image).save(root / "images" / f"{name}.png")
            Image.fromarray(lab.astype(np.uint16)).save(root / "masks" / f"{name}.png")
            continue
        tifffile.imwrite(
            root / "images" / f"{name}.tif",
            rng.integers(0, 60000, lab.shape, np.uint16),
            photometric="minisblack",
        )
        tifffile.imwrite(root / "masks" / f"{name}.tif", lab, photometric="minisblack")
    return root


def _assert_same_store(a: Path, b: Path) -> None:
    sa, sb = open_shards(a), open_shards(b)
    ma, mb = sa.store_metadata, sb.store_metadata
    assert ma.class_stats == mb.class_stats
    assert ma.class_weights == mb.class_weights
    np.testing.assert_array_equal(ma.instance_counts, mb.instance_counts)
    np.testing.assert_array_equal(ma.sample_class_counts, mb.sample_class_counts)
    np.testing.assert_array_equal(ma.void_pixels, mb.void_pixels)
    assert len(sa) == len(sb)
    for i in range(len(sa)):
        x, y = sa[i], sb[i]
        assert set(x) == set(y)
        for key, value in x.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == y[key].dtype, key
                np.testing.assert_array_equal(value, y[key], err_msg=f"sample {i} {key}")


def _build_pair(tmp_path: Path, data: Path, block: int, **options: object) -> tuple[Path, Path]:
    whole = tmp_path / "whole.zarr"
    blocks = tmp_path / "blocks.zarr"
    build_weights(data, whole, BuildConfig(block=1 << 16, **options), scheduler="sync")  # type: ignore[arg-type]
    build_weights(data, blocks, BuildConfig(block=block, **options), scheduler="sync")  # type: ignore[arg-type]
    return whole, blocks


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_2d_all_targets_many_seams(tmp_path: Path, suffix: str) -> None:
    data = _dataset(
        tmp_path / "d",
        {
            "big": _cells((150, 130), 40, 8, 1),
            "wide": _cells((40, 200), 15, 6, 2),
            "small": _cells((30, 30), 4, 5, 3),
            "empty": np.zeros((70, 50), np.int32),
            "one": _cells((90, 20), 1, 30, 4),
        },
        suffix=suffix,
    )
    whole, blocks = _build_pair(tmp_path, data, 32, tile=16, targets=ALL_TARGETS, shard_size=2)
    meta = open_shards(blocks).store_metadata
    assert meta.layout_info.shard_spatial_shape == (32, 32)
    assert open_shards(whole).store_metadata.layout_info.spatial_shard_grid == (1, 1)
    _assert_same_store(whole, blocks)


def test_3d_anisotropic_with_void_band(tmp_path: Path) -> None:
    data = _dataset(
        tmp_path / "d", {"vol": _cells((20, 48, 40), 25, 5, 5), "v2": _cells((9, 20, 16), 3, 4, 6)}
    )
    whole, blocks = _build_pair(
        tmp_path,
        data,
        16,
        tile=8,
        spacing=(2.0, 1.0, 0.5),
        sigma=2.0,
        void_border=1.5,
        targets=("weights", "boundary", "distance", "affinities"),
    )
    assert open_shards(blocks).store_metadata.layout_info.spatial_shard_grid == (2, 3, 3)
    _assert_same_store(whole, blocks)


def test_threads_scheduler_and_block_size_give_identical_files(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", {"a": _cells((100, 90), 20, 7, 8)})
    stores = []
    for block, scheduler in ((32, "sync"), (32, "threads")):
        out = tmp_path / f"{block}-{scheduler}.zarr"
        build_weights(data, out, BuildConfig(tile=16, block=block), scheduler=scheduler, workers=2)
        stores.append(out)
    files = [
        sorted(p.relative_to(s) for p in s.rglob("*") if p.is_file() and "c" in p.parts)
        for s in stores
    ]
    assert files[0] == files[1] and files[0]
    for rel in files[0]:
        assert (stores[0] / rel).read_bytes() == (stores[1] / rel).read_bytes(), rel


def _reopen_for_writing(out: Path) -> None:
    """The store as a build killed before completion leaves it."""
    import json

    doc = json.loads((out / "zarr.json").read_text())
    meta = doc["attributes"]["maskprep"]
    meta.update(stage="writing", complete=False)
    meta.pop("metadata_digest")
    meta["records"].pop("shard_checksums")  # format 3 lists it with its records
    (out / "zarr.json").write_text(json.dumps(doc))


def test_resume_writes_only_missing_parts(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", {"a": _cells((100, 90), 20, 7, 9)})
    out = tmp_path / "out.zarr"
    config = BuildConfig(tile=16, block=32)
    build_weights(data, out, config, scheduler="sync")
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "c" in p.parts}
    markers = sorted((out / "_maskprep" / "shards").glob("*.json"))
    assert [m.name for m in markers][:2] == ["000000.000000.json", "000000.000001.json"]
    assert len(markers) == 4 * 3  # a 100x90 sample in 32x32 blocks
    _reopen_for_writing(out)
    for m in markers[3:5]:  # parts (1, 0) and (1, 1)
        m.unlink()
    lost = [p for p in files if p.parts[-2:] in (("1", "0"), ("1", "1"))]
    assert len(lost) == 2 * 4  # image, labels, instances, weights
    for p in lost:
        p.unlink()
    summary = build_weights(data, out, config, scheduler="sync")
    assert summary.shards_written == 2
    for p, data_bytes in files.items():
        assert p.read_bytes() == data_bytes, p
    assert open_shards(out).store_metadata.complete


def test_resume_without_block_record_is_a_clear_error(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", {"a": _cells((70, 40), 8, 6, 10)})
    out = tmp_path / "out.zarr"
    config = BuildConfig(tile=16, block=32)
    build_weights(data, out, config, scheduler="sync")
    _reopen_for_writing(out)
    for m in (out / "_maskprep" / "shards").glob("*.json"):
        m.unlink()
    (out / "_maskprep" / "blocks" / "00000000.npz").unlink()
    with pytest.raises(StoreError, match="before it recorded the blocks of sample 'a'"):
        build_weights(data, out, config, scheduler="sync")


def test_target_needing_the_whole_sample_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _dataset(tmp_path / "d", {"a": _cells((70, 40), 8, 6, 11)})
    TARGETS.names()  # load the built-ins before adding one for this test only
    mean_id = _SimpleTarget(
        "mean_id", "float32", lambda s: np.full(s.instances.shape, s.instances.mean()), None, ""
    )
    monkeypatch.setitem(TARGETS._entries, "mean_id", mean_id)
    blockwise = BuildConfig(tile=16, block=32, targets=("mean_id",))
    with pytest.raises(DataError, match=r"a\.tif: the sample \(70x40\).*target 'mean_id' needs"):
        build_weights(data, tmp_path / "o.zarr", blockwise, scheduler="sync")
    assert not (tmp_path / "o.zarr").exists()
    # Built whole, the same target is fine.
    build_weights(
        data, tmp_path / "w.zarr", BuildConfig(tile=16, targets=("mean_id",)), scheduler="sync"
    )


def test_crop_above_max_pixels_is_a_clear_error() -> None:
    lab = np.zeros((64, 64), np.int32)
    lab[2:62, 2:62] = 5  # one instance spanning every block
    table = InstanceTable.of(lab)
    config = BuildConfig(tile=8, block=16, targets=("distance",), max_pixels=2000)
    region = (slice(16, 32), slice(16, 32))
    assert block_crop(region, lab.shape, config, (0, 0), None, "a.tif") == region
    with pytest.raises(DataError, match=r"a\.tif: the block at \[16, 16\] needs a crop of 3,844"):
        block_crop(region, lab.shape, config, (0, 0), table, "a.tif")


def test_block_helpers() -> None:
    assert config_block(BuildConfig(tile=None), 2) is None  # untiled stores are built whole
    assert config_block(BuildConfig(tile=30, block=100), 2) == 120
    assert is_blockwise((10, 121), 120) and not is_blockwise((120, 120), 120)
    regions = block_regions((5, 7, 3), 3)
    assert len(regions) == 2 * 3 * 1
    covered = np.zeros((5, 7, 3), int)
    for _, r in regions:
        covered[r] += 1
    assert (covered == 1).all()
    halo, whole = target_reach(
        BuildConfig(targets=ALL_TARGETS, affinity_offsets=((0, -4), (-2, 0))), 2, "x", (9, 9), 4
    )
    r = 5.0 * np.sqrt(2 * np.log(1e6))
    assert halo == (int(np.ceil(r)),) * 2 and whole


# ----------------------------------------------------------------------------- hypothesis


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, int, dict[str, object]]:
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(3, 40 if ndim == 2 else 14)) for _ in range(ndim))
    n = draw(st.integers(0, 12))
    lab = _cells(shape, n, draw(st.integers(0, 6)), draw(st.integers(0, 2**16)))
    block = draw(st.integers(2, max(3, max(shape) - 1)))
    spacing = draw(st.sampled_from([None, tuple([2.0] + [1.0] * (ndim - 1)), tuple([0.7] * ndim)]))
    options = {
        "sigma": draw(st.sampled_from([1.0, 2.5])),
        "spacing": spacing,
        "void_border": draw(st.sampled_from([0.0, 1.0, 2.5])),
        "void_border_mode": draw(st.sampled_from(["between", "around"])),
        "boundary_width": draw(st.integers(1, 3)),
        "targets": ALL_TARGETS if ndim == 2 else ("weights", "boundary", "distance", "affinities"),
    }
    return lab, block, options


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_cases())
def test_blocks_assemble_to_the_whole_sample(
    tmp_path_factory: pytest.TempPathFactory, case: tuple
) -> None:
    """Pass 1 and 2 per block, assembled, equal the whole-sample computation."""
    lab, block, options = case
    root = _dataset(tmp_path_factory.mktemp("h") / "d", {"s": lab})
    config = BuildConfig(tile=1, block=block, **options)  # type: ignore[arg-type]
    src = discover(root).samples[0]
    shape = lab.shape
    lut = weight_lookup(config.void_label, config.num_classes, [1.0, 3.0])
    whole = sample_arrays(src, config, lut, np.uint8)
    reference = scan_sample(src, replace(config, block=1 << 20))
    assert isinstance(reference, SampleInfo) and reference.block_counts is None
    info = scan_sample(src, config)
    if not is_blockwise(shape, block):
        assert info == reference
        return
    assert isinstance(info, PendingBlocks)  # a TIFF is read region by region
    scans = [scan_block(src, config, shape, pos, r) for pos, r in block_regions(shape, block)]
    counts, void, table = merge_block_scans(scans)
    assert counts == reference.class_counts and void == reference.void_pixels
    assert table.ids.size == reference.n_instances
    ref_table = InstanceTable.of(load_sample(src, config).instances)
    np.testing.assert_array_equal(table.ids, ref_table.ids)
    np.testing.assert_array_equal(table.boxes, ref_table.boxes)
    halo, need_whole = target_reach(config, len(shape), "s", shape, block)
    assembled = {k: np.zeros_like(v) for k, v in whole.items()}
    for _, region in block_regions(shape, block):
        crop = block_crop(region, shape, config, halo, table if need_whole else None, "s")
        for name, arr in block_arrays(src, config, lut, np.uint8, region, crop).items():
            assembled[name][region] = arr
    for name, arr in whole.items():
        np.testing.assert_array_equal(assembled[name], arr, err_msg=name)


def test_reweight_of_a_blockwise_store_equals_a_build_with_those_weights(tmp_path: Path) -> None:
    from maskprep import ClassWeightConfig, reweight

    data = _dataset(
        tmp_path / "d", {"big": _cells((90, 70), 20, 7, 12), "small": _cells((20, 20), 3, 4, 13)}
    )
    targets = ("weights", "boundary")
    out = tmp_path / "out.zarr"
    build_weights(data, out, BuildConfig(tile=16, block=32, targets=targets), scheduler="sync")
    reweight(out, ClassWeightConfig(scheme="none"), scheduler="sync")
    ref = tmp_path / "ref.zarr"
    config = BuildConfig(
        tile=16, block=32, targets=targets, class_weights=ClassWeightConfig(scheme="none")
    )
    build_weights(data, ref, config, scheduler="sync")
    _assert_same_store(ref, out)
    from maskprep.tools.verify import verify_store

    assert verify_store(out).ok


@pytest.mark.parametrize("fmt", ["tiff", "tiff-tiled", "zarr", "zarr2", "ome-zarr", "hdf5"])
def test_chunked_inputs_are_read_block_by_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """No task reads a whole big sample; the store equals the whole-sample build."""
    import maskprep.pipeline.blocks as blocks_module
    import maskprep.pipeline.scan as scan_module
    from maskprep.tools.volume_data import make_volume_sample

    data = make_volume_sample(tmp_path / "d", format=fmt, shape=(20, 48, 40), n_samples=2)
    options = {"tile": 8, "targets": ("weights", "boundary", "distance"), "sigma": 2.0}
    whole = tmp_path / "whole.zarr"
    build_weights(data, whole, BuildConfig(block=64, **options), scheduler="sync")  # type: ignore[arg-type]

    reads: list[tuple[int, ...]] = []
    real_read = blocks_module.read_region

    def counting_read(src, region, **kw):  # type: ignore[no-untyped-def]
        reads.append(tuple(r.stop - r.start for r in region))
        return real_read(src, region, **kw)

    def no_whole_read(*args, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("a whole sample was read")

    monkeypatch.setattr(blocks_module, "read_region", counting_read)
    monkeypatch.setattr(scan_module, "load_sample", no_whole_read)
    out = tmp_path / "blocks.zarr"
    build_weights(data, out, BuildConfig(block=16, **options), scheduler="sync")  # type: ignore[arg-type]
    monkeypatch.undo()
    _assert_same_store(whole, out)
    halo = BuildConfig(**options).sigma * np.sqrt(2 * np.log(1e6))  # type: ignore[arg-type]
    assert reads and max(np.prod(r) for r in reads) < 20 * 48 * 40
    assert all(max(r) <= 16 + 2 * int(np.ceil(halo)) + 2 * 10 for r in reads)


def test_verify_recounts_a_blockwise_store_block_by_block(tmp_path: Path) -> None:
    from maskprep.tools.verify import verify_store

    data = _dataset(
        tmp_path / "d", {"big": _cells((90, 70), 20, 7, 14), "s": _cells((20, 20), 3, 4, 15)}
    )
    out = tmp_path / "out.zarr"
    build_weights(data, out, BuildConfig(tile=16, block=32), scheduler="sync")
    assert verify_store(out).ok
    # A label changed inside one block of the big sample (a valid shard, re-encoded):
    import zarr

    labels = zarr.open_array(str(out / "labels"), mode="r+")
    patch = np.asarray(labels[0, 40:48, 40:48])
    labels[0, 40:48, 40:48] = np.where(patch == 0, 1, patch)
    problems = verify_store(out).problems
    assert any("stored labels count" in p for p in problems), problems


def test_class_locations_and_intensity_stats_do_not_depend_on_blocks(tmp_path: Path) -> None:
    data = _dataset(
        tmp_path / "d", {"big": _cells((90, 70), 20, 7, 16), "small": _cells((20, 20), 3, 4, 17)}
    )
    whole, blocks = _build_pair(
        tmp_path, data, 32, tile=16, class_locations=16, intensity_stats=True
    )
    a, b = open_shards(whole), open_shards(blocks)
    assert a.store_metadata.intensity_stats == b.store_metadata.intensity_stats
    assert a.store_metadata.intensity_stats is not None
    for i in range(len(a)):
        np.testing.assert_array_equal(a.class_locations(i), b.class_locations(i))
    assert (b.class_locations(0) >= 0).any()
    assert not (blocks / "_maskprep" / "partials").exists()
