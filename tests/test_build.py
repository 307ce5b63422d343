"""End-to-end builds checked against brute-force recomputation from the input files."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from maskprep import (
    BuildConfig,
    ClassWeightConfig,
    DataError,
    StoreError,
    border_weights_reference,
    build_weights,
    make_sample,
    open_shards,
)
from maskprep.weighting import ClassWeightWarning


def _read(path: Path) -> np.ndarray:
    if path.suffix in (".tif", ".tiff"):
        return np.asarray(tifffile.imread(path))
    with Image.open(path) as im:
        return np.asarray(im)


def _expected_from_files(root: Path, stem: str, void_label: int = 255) -> dict[str, np.ndarray]:
    """Recompute what the store must hold from the raw files, the obvious way."""
    ext = ".png" if (root / "images" / f"{stem}.png").exists() else ".tif"
    mask = _read(root / "masks" / f"{stem}{ext}").astype(np.int64)
    unl_path = root / "unlabeled" / f"{stem}{ext}"
    void = _read(unl_path) != 0 if unl_path.exists() else np.zeros(mask.shape, bool)
    instances = np.where(void, 0, mask)
    labels = np.where(void, void_label, (instances > 0).astype(np.int64))
    return {
        "image": _read(root / "images" / f"{stem}{ext}"),
        "instances": instances,
        "labels": labels,
        "void": void,
    }


def _store_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(build_nuclei: Callable[[str, int], Path]) -> Path:
    return build_nuclei("built", 4)


def test_store_matches_brute_force(nuclei_dir: Path, built: Path) -> None:
    shards = open_shards(built)
    assert len(shards) == 10
    valid = set((nuclei_dir / "valid.txt").read_text().split())
    train_counts = np.zeros(2, dtype=np.int64)
    saw_void = False
    for i, stem in enumerate(shards.sample_ids):
        exp = _expected_from_files(nuclei_dir, stem)
        got = shards[i]
        np.testing.assert_array_equal(got["image"], exp["image"])
        np.testing.assert_array_equal(got["labels"], exp["labels"])
        np.testing.assert_array_equal(got["instances"], exp["instances"])
        saw_void |= bool(exp["void"].any())
        border = border_weights_reference(exp["instances"], w0=10.0, sigma=5.0)
        class_w = np.where(exp["void"], 0.0, shards.class_weights[np.minimum(exp["labels"], 1)])
        expected_w = np.where(exp["void"], 0.0, class_w + border)
        assert got["weights"].dtype == np.float32
        np.testing.assert_allclose(got["weights"], expected_w, rtol=0, atol=1e-5 * 10.0)
        if stem not in valid:
            lab = exp["labels"]
            train_counts += np.bincount(lab[lab != 255].ravel(), minlength=2)
    assert saw_void
    np.testing.assert_array_equal(shards.class_counts, train_counts)
    # balanced: N / (C * n_c)
    n = train_counts.sum()
    np.testing.assert_allclose(shards.class_weights, n / (2 * train_counts))


def test_metadata_and_split(nuclei_dir: Path, built: Path) -> None:
    shards = open_shards(built)
    meta = shards.metadata
    valid = (nuclei_dir / "valid.txt").read_text().split()
    assert meta["void_label"] == 255
    assert meta["class_names"] == ["background", "object"]
    assert meta["class_weight_scheme"] == "balanced"
    assert (meta["w0"], meta["sigma"], meta["border_region"]) == (10.0, 5.0, "background")
    assert meta["sample_ids"] == sorted(meta["sample_ids"])
    assert [
        s for s, sp in zip(meta["sample_ids"], meta["split"], strict=True) if sp == "valid"
    ] == valid
    assert len(meta["inputs"]) > 20 and all(f["bytes"] > 0 for f in meta["inputs"])
    assert meta["maskprep_version"]
    assert len(open_shards(built, split="valid")) == len(valid)
    assert open_shards(built, split="train").sample_ids == [
        s for s in meta["sample_ids"] if s not in valid
    ]
    # the edge cases make_sample plants: one image with one nucleus, one with none
    assert meta["instance_counts"][-1] == 0 and meta["instance_counts"][-2] == 1
    # arrays are sharded along samples only, one chunk per sample
    arr = zarr.open_array(str(built / "weights"), mode="r")
    assert arr.shards == (4, 64, 64) and arr.chunks == (1, 64, 64)


def test_schedulers_give_byte_identical_stores(
    nuclei_dir: Path, built: Path, tmp_path: Path
) -> None:
    reference = _store_digest(built)
    for scheduler in ("threads", "processes"):
        out = tmp_path / f"{scheduler}.zarr"
        build_weights(nuclei_dir, out, BuildConfig(shard_size=4), scheduler=scheduler, workers=2)
        assert _store_digest(out) == reference, scheduler


def test_3d_anisotropic(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "vol", n_images=3, size=(12, 24, 24), seed=3)
    out = tmp_path / "vol.zarr"
    spacing = (2.0, 1.0, 1.0)
    build_weights(data, out, BuildConfig(spacing=spacing, w0=5.0, sigma=3.0), scheduler="sync")
    shards = open_shards(out)
    for i, stem in enumerate(shards.sample_ids):
        exp = _expected_from_files(data, stem)
        got = shards[i]
        assert got["labels"].shape == (12, 24, 24)
        np.testing.assert_array_equal(got["instances"], exp["instances"])
        border = border_weights_reference(exp["instances"], w0=5.0, sigma=3.0, spacing=spacing)
        cw = shards.class_weights[np.minimum(exp["labels"], 1)]
        np.testing.assert_allclose(
            got["weights"], np.where(exp["void"], 0.0, cw + border), rtol=0, atol=1e-5 * 5.0
        )


def _write_instances_dataset(root: Path, masks: dict[str, np.ndarray]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, m in masks.items():
        Image.fromarray(np.full(m.shape, 100, np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(m.astype(np.uint16)).save(root / "masks" / f"{stem}.png")
    return root


def test_zero_one_two_instances_and_nonsequential_ids(tmp_path: Path) -> None:
    zero = np.zeros((20, 20), np.uint16)
    one = zero.copy()
    one[5:10, 5:10] = 40000
    two = zero.copy()
    two[5:10, 2:8] = 7
    two[5:10, 8:14] = 3  # touching
    data = _write_instances_dataset(tmp_path / "d", {"a": zero, "b": one, "c": two})
    out = tmp_path / "o.zarr"
    build_weights(data, out, scheduler="sync")
    shards = open_shards(out)
    w = shards.class_weights
    np.testing.assert_allclose(shards[0]["weights"], w[0])  # 0 instances: no border term
    np.testing.assert_allclose(shards[1]["weights"], w[(one > 0).astype(int)])
    np.testing.assert_array_equal(shards[1]["instances"], one)  # ids kept as given
    expected = w[(two > 0).astype(int)] + border_weights_reference(two.astype(np.int32))
    np.testing.assert_allclose(shards[2]["weights"], expected, atol=1e-4)
    assert shards[2]["weights"][7, 1] > w[0] + 1.0  # background near both gets the border term


def test_unlabeled_value_and_border_region_all(tmp_path: Path) -> None:
    m = np.zeros((16, 16), np.uint16)
    m[2:6, 2:6] = 1
    m[2:6, 6:10] = 2
    m[10:14, :] = 999  # "not annotated" marker
    data = _write_instances_dataset(tmp_path / "d", {"x": m})
    out = tmp_path / "o.zarr"
    cfg = BuildConfig(unlabeled_value=999, border_region="all", void_label=7)
    build_weights(data, out, cfg, scheduler="sync")
    s = open_shards(out)
    got = s[0]
    void = m == 999
    assert s.void_label == 7
    assert (got["labels"][void] == 7).all() and (got["instances"][void] == 0).all()
    assert (got["weights"][void] == 0).all()
    inst = np.where(void, 0, m).astype(np.int32)
    border = border_weights_reference(inst, region="all")
    exp = np.where(void, 0.0, s.class_weights[(inst > 0).astype(int)] + border)
    np.testing.assert_allclose(got["weights"], exp, atol=1e-4)
    assert got["weights"][3, 5] > s.class_weights[1] + 1.0  # inside an instance: region=all


def test_variable_sizes_are_padded_and_cropped(tmp_path: Path) -> None:
    a = np.zeros((10, 12), np.uint16)
    a[2:5, 2:5] = 1
    b = np.zeros((20, 8), np.uint16)
    b[10:15, 2:5] = 2
    data = _write_instances_dataset(tmp_path / "d", {"a": a, "b": b})
    out = tmp_path / "o.zarr"
    build_weights(data, out, scheduler="sync")
    s = open_shards(out)
    assert s[0]["labels"].shape == (10, 12) and s[1]["labels"].shape == (20, 8)
    raw = zarr.open_array(str(out / "labels"), mode="r")
    assert raw.shape == (2, 20, 12)
    assert (raw[0, 10:, :] == 255).all()  # padding is void, never trained on
    assert (zarr.open_array(str(out / "weights"), mode="r")[0, 10:, :] == 0).all()


def test_zero_count_class_gets_weight_zero_with_warning(tmp_path: Path) -> None:
    data = _write_instances_dataset(tmp_path / "d", {"a": np.zeros((8, 8), np.uint16)})
    with pytest.warns(ClassWeightWarning, match="object"):
        build_weights(data, tmp_path / "o.zarr", scheduler="sync")
    s = open_shards(tmp_path / "o.zarr")
    assert s.class_counts.tolist() == [64, 0]
    assert s.class_weights[1] == 0.0 and np.isfinite(s.class_weights).all()


@pytest.mark.parametrize("scheme", ["none", "ratio", "log-ratio", "clamped", "balanced"])
def test_every_spine_scheme_in_a_build(nuclei_dir: Path, tmp_path: Path, scheme: str) -> None:
    out = tmp_path / "o.zarr"
    cfg = BuildConfig(class_weights=ClassWeightConfig(scheme=scheme))
    build_weights(nuclei_dir, out, cfg, scheduler="sync")
    s = open_shards(out)
    n_c = s.class_counts.astype(float)
    n = n_c.sum()
    expected = {
        "none": [1.0, 1.0],
        "ratio": n / n_c,
        "log-ratio": np.log(2 * n / n_c),
        "clamped": np.maximum(1.0, np.log(2 * n / n_c)),
        "balanced": n / (2 * n_c),
    }[scheme]
    np.testing.assert_allclose(s.class_weights, expected)
    assert s.metadata["class_weight_scheme"] == scheme


def test_dsb2018_layout(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "dsb", n_images=3, size=(48, 48), layout="dsb2018", seed=1)
    out = tmp_path / "dsb.zarr"
    build_weights(data, out, scheduler="sync")
    s = open_shards(out)
    assert s.metadata["layout"] == "dsb2018"
    for i, stem in enumerate(s.sample_ids):
        masks = sorted((data / stem / "masks").glob("*.png"))
        expected = np.zeros((48, 48), np.int32)
        for k, p in enumerate(masks, start=1):
            expected[_read(p) > 0] = k
        np.testing.assert_array_equal(s[i]["instances"], expected)
        np.testing.assert_array_equal(s[i]["labels"], (expected > 0).astype(np.uint8))


def test_dsb2018_overlap_names_both_files(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "dsb", n_images=1, size=(32, 32), layout="dsb2018", seed=2)
    masks = sorted((data / "dsb_000" / "masks").glob("*.png"))
    first = _read(masks[0])
    Image.fromarray(first).save(data / "dsb_000" / "masks" / "zz_copy.png")
    with pytest.raises(DataError, match=r"zz_copy\.png: overlaps .*" + masks[0].name):
        build_weights(data, tmp_path / "o.zarr", scheduler="sync")
    assert not (tmp_path / "o.zarr").exists()


def test_existing_outputs_are_protected(nuclei_dir: Path, built: Path, tmp_path: Path) -> None:
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("do not delete")
    with pytest.raises(StoreError, match="not a maskprep store"):
        build_weights(nuclei_dir, other, scheduler="sync")
    assert (other / "thesis.tex").exists()
    out = tmp_path / "o.zarr"
    cfg = BuildConfig(shard_size=4)
    first = build_weights(nuclei_dir, out, cfg, scheduler="sync")
    assert (first.shards_written, first.shards_skipped) == (3, 0)
    # same inputs and parameters: idempotent, nothing redone
    again = build_weights(nuclei_dir, out, cfg, scheduler="sync")
    assert (again.shards_written, again.shards_skipped) == (0, 3)
    assert _store_digest(out) == _store_digest(built)
    # other parameters: refused unless --overwrite
    with pytest.raises(StoreError, match="overwrite=True"):
        build_weights(nuclei_dir, out, BuildConfig(shard_size=4, w0=3.0), scheduler="sync")
    build_weights(nuclei_dir, out, BuildConfig(w0=3.0), scheduler="sync", overwrite=True)
    assert open_shards(out).metadata["w0"] == 3.0
    build_weights(nuclei_dir, out, cfg, scheduler="sync", overwrite=True)
    assert _store_digest(out) == _store_digest(built)


def test_incomplete_store_is_refused(nuclei_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    build_weights(nuclei_dir, out, scheduler="sync")
    g = zarr.open_group(str(out), mode="r+")
    meta = dict(g.attrs["maskprep"])
    meta["complete"] = False
    g.attrs["maskprep"] = meta
    with pytest.raises(StoreError, match="incomplete"):
        open_shards(out)


def test_no_warnings_on_a_clean_build(nuclei_dir: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_weights(nuclei_dir, tmp_path / "o.zarr", scheduler="threads")


def test_bundled_sample_data_end_to_end(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The quick start's exact data (make-sample defaults), checked against brute force."""
    root = tmp_path_factory.mktemp("quick") / "sample_data"
    make_sample(root)
    out = root.parent / "sample.zarr"
    build_weights(root, out)  # defaults: threads scheduler, balanced weights, w0=10, sigma=5
    shards = open_shards(out)
    assert len(shards) == 24
    valid = set((root / "valid.txt").read_text().split())
    counts = np.zeros(2, dtype=np.int64)
    worst = 0.0
    for i, stem in enumerate(shards.sample_ids):
        exp = _expected_from_files(root, stem)
        got = shards[i]
        np.testing.assert_array_equal(got["labels"], exp["labels"])
        np.testing.assert_array_equal(got["instances"], exp["instances"])
        border = border_weights_reference(exp["instances"], w0=10.0, sigma=5.0)
        cw = shards.class_weights[np.minimum(exp["labels"], 1)]
        expected = np.where(exp["void"], 0.0, cw + border)
        worst = max(worst, float(np.abs(got["weights"] - expected).max()))
        if stem not in valid:
            lab = exp["labels"]
            counts += np.bincount(lab[lab != 255].ravel(), minlength=2)
    assert worst <= 1e-5 * 10.0
    np.testing.assert_array_equal(shards.class_counts, counts)
    assert sum(shards.metadata["instance_counts"]) > 24 * 20  # touching nuclei, not a toy


def test_a_cold_kernel_cache_is_reported_before_the_write(
    nuclei_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a fresh install the kernels compile during the scan, then the wait is its own pass."""
    import maskprep.targets.border as border_mod
    from maskprep.pipeline.kernels import COMPILE_STAGE

    stages: list[str] = []
    monkeypatch.setattr(border_mod, "kernels_compiled", lambda: False)
    build_weights(
        nuclei_dir, tmp_path / "o.zarr", scheduler="sync", progress=lambda s, d, t: stages.append(s)
    )
    order = list(dict.fromkeys(stages))
    assert order[1] == COMPILE_STAGE == "compiling kernels (first run only)"
    assert order[0].startswith("scanning") and order[2].startswith("writing")
    monkeypatch.setattr(border_mod, "kernels_compiled", lambda: True)
    stages.clear()
    build_weights(
        nuclei_dir, tmp_path / "p.zarr", scheduler="sync", progress=lambda s, d, t: stages.append(s)
    )
    assert COMPILE_STAGE not in stages
