"""Class locations and intensity statistics: the kernels against references, blockwise
merges, the build's arrays and metadata, resumed builds, the reader's fallback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskprep import BuildConfig, build_weights, make_sample, normalize, open_shards
from maskprep.intensity import IntensityPartial, IntensityStats, intensity_partial
from maskprep.weighting.locations import (
    ClassLocations,
    class_location_partial,
    location_key,
    location_priority,
)

VOID = 255


def _reference_locations(
    labels: np.ndarray, per_class: int, num_classes: int, key: int
) -> np.ndarray:
    """Per class, the K pixels with the smallest (priority, flat index): a plain sort."""
    flat = np.arange(labels.size)
    prio = location_priority(key, flat)
    out = np.full((num_classes, per_class, labels.ndim), -1, np.int32)
    for c in range(num_classes):
        mine = flat[labels.ravel() == c]
        order = sorted(mine.tolist(), key=lambda f: (int(prio[f]), f))[:per_class]
        for slot, f in enumerate(order):
            out[c, slot] = np.unravel_index(f, labels.shape)
    return out


def _random_labels(rng: np.random.Generator, shape: tuple[int, ...], classes: int) -> np.ndarray:
    lab = rng.integers(0, classes + 1, size=shape).astype(np.uint8)
    lab[lab == classes] = VOID
    return lab


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (30, 31), (5, 6, 7)])
@pytest.mark.parametrize("per_class", [1, 4, 50])
def test_locations_equal_a_plain_sort(shape: tuple[int, ...], per_class: int) -> None:
    rng = np.random.default_rng(per_class)
    lab = _random_labels(rng, shape, 3)
    key = location_key("sample", 3)
    got = class_location_partial(
        lab, per_class=per_class, num_classes=3, void_label=VOID, key=key
    ).array(0, 3)
    assert np.array_equal(got, _reference_locations(lab, per_class, 3, key))


def test_locations_never_void_and_as_many_as_the_class_has() -> None:
    rng = np.random.default_rng(0)
    lab = _random_labels(rng, (40, 40), 3)
    lab[lab == 2] = VOID  # class 2 absent: all its slots unused
    got = class_location_partial(lab, per_class=100, num_classes=3, void_label=VOID).array(0, 3)
    for c in range(3):
        valid = got[c][got[c, :, 0] >= 0]
        assert len(valid) == min(100, int((lab == c).sum()))
        assert (lab[tuple(valid.T)] == c).all()
        assert len({tuple(v) for v in valid.tolist()}) == len(valid)  # distinct pixels
    assert (got[2] == -1).all()


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from([(13, 17), (6, 9, 11), (1, 40), (25, 3)]),
    cuts=st.lists(st.integers(1, 16), min_size=3, max_size=3),
    per_class=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_blockwise_locations_equal_whole(
    shape: tuple[int, ...], cuts: list[int], per_class: int, seed: int
) -> None:
    """Any split into blocks, merged in any order, gives the whole sample's locations."""
    rng = np.random.default_rng(seed)
    lab = _random_labels(rng, shape, 2)
    args = {"per_class": per_class, "num_classes": 2, "void_label": VOID, "key": seed}
    whole = class_location_partial(lab, **args, sample=5)
    parts = []
    edges = [sorted({0, n, *(c % n for c in cuts)}) for n in shape]
    import itertools

    for box in itertools.product(*(list(itertools.pairwise(e)) for e in edges)):
        window = tuple(slice(a, b) for a, b in box)
        origin = tuple(a for a, _ in box)
        parts.append(
            class_location_partial(lab[window], **args, origin=origin, sample_shape=shape, sample=5)
        )
    rng.shuffle(parts)  # type: ignore[arg-type]
    merged = ClassLocations.empty(per_class, len(shape))
    for p in parts:
        merged = merged + p
    assert merged == whole


def test_locations_partial_roundtrip_and_errors() -> None:
    lab = _random_labels(np.random.default_rng(1), (8, 8), 2)
    part = class_location_partial(lab, per_class=3, num_classes=2, void_label=VOID)
    assert ClassLocations.from_arrays(part.to_arrays()) == part
    with pytest.raises(ValueError, match="per_class"):
        class_location_partial(lab, per_class=0, num_classes=2, void_label=VOID)
    with pytest.raises(ValueError, match="outside"):
        class_location_partial(
            lab, per_class=3, num_classes=2, void_label=VOID, origin=(4, 0), sample_shape=(8, 8)
        )
    with pytest.raises(ValueError, match="cannot merge"):
        part + class_location_partial(lab, per_class=4, num_classes=2, void_label=VOID)


# -- intensity statistics ------------------------------------------------------


def _numpy_stats(x: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
        "median": float(np.median(x)),
        "percentile_00_5": float(np.percentile(x, 0.5)),
        "percentile_99_5": float(np.percentile(x, 99.5)),
    }


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        (np.uint8, 0, 256),
        (np.uint16, 0, 65536),
        (np.int16, -1024, 3072),  # CT-like
        (np.int32, -(2**30), 2**30),  # sparse histogram (np.unique)
        (np.bool_, 0, 2),
    ],
)
@pytest.mark.parametrize("channels", [None, 3])
def test_integer_statistics_equal_numpy(
    dtype: type, low: int, high: int, channels: int | None
) -> None:
    rng = np.random.default_rng(2)
    shape = (23, 29) if channels is None else (23, 29, channels)
    img = rng.integers(low, high, size=shape).astype(dtype)
    lab = _random_labels(rng, (23, 29), 3)
    stats = intensity_partial(img, lab, void_label=VOID).summary()
    assert stats.exact
    fg = (lab != 0) & (lab != VOID)
    for region, mask in [("all", np.ones_like(fg)), ("foreground", fg)]:
        got = stats.region(region)
        for c in range(channels or 1):
            chan = img if channels is None else img[..., c]
            want = _numpy_stats(chan[mask].astype(np.int64))
            assert got.count[c] == int(mask.sum())
            for key, value in want.items():
                if key == "std":  # numpy's own std is the inexact one (float64 sums)
                    assert getattr(got, key)[c] == pytest.approx(value, rel=1e-12)
                else:
                    assert getattr(got, key)[c] == value, (region, key)


def test_float_statistics_within_the_documented_bounds() -> None:
    rng = np.random.default_rng(3)
    img = rng.normal(1000.0, 50.0, size=(64, 64)).astype(np.float32)
    img[0, 0], img[0, 1] = np.nan, np.inf  # left out
    lab = _random_labels(rng, (64, 64), 2)
    stats = intensity_partial(img, lab, void_label=VOID).summary()
    assert not stats.exact
    finite = img[np.isfinite(img)].astype(np.float64)
    want = _numpy_stats(finite)
    got = stats.all
    assert got.count[0] == finite.size
    assert got.min[0] == want["min"] and got.max[0] == want["max"]
    assert got.mean[0] == pytest.approx(want["mean"], rel=1e-12)
    assert got.std[0] == pytest.approx(want["std"], rel=1e-12)
    for key in ("median", "percentile_00_5", "percentile_99_5"):
        assert abs(getattr(got, key)[0] - want[key]) <= 2**-11 * abs(want[key])


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(1, 30), seed=st.integers(0, 1000), floating=st.booleans())
def test_intensity_partials_merge_in_any_grouping(cut: int, seed: int, floating: bool) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 4000, size=(31, 12)).astype(np.uint16)
    if floating:
        img = img.astype(np.float32) * np.float32(0.37)
    lab = _random_labels(rng, (31, 12), 2)
    whole = intensity_partial(img, lab, void_label=VOID)
    a = intensity_partial(img[:cut], lab[:cut], void_label=VOID)
    b = intensity_partial(img[cut:], lab[cut:], void_label=VOID)
    empty = IntensityPartial.empty(not floating, 1)
    merged = b + (empty + a)
    if not floating:
        assert merged.summary() == whole.summary()
        assert IntensityPartial.from_arrays((a + b).to_arrays()) == whole
    else:
        got, want = merged.summary().all, whole.summary().all
        assert got.mean[0] == pytest.approx(want.mean[0], rel=1e-12)
        assert got.std[0] == pytest.approx(want.std[0], rel=1e-12)
        assert (got.min, got.max, got.percentile_99_5) == (want.min, want.max, want.percentile_99_5)


def test_normalize_schemes() -> None:
    rng = np.random.default_rng(4)
    img = rng.integers(0, 1000, size=(20, 20, 2)).astype(np.uint16)
    lab = _random_labels(rng, (20, 20), 2)
    stats = intensity_partial(img, lab, void_label=VOID).summary()
    z = normalize(img, stats)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.reshape(-1, 2).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.reshape(-1, 2).std(axis=0), 1, atol=1e-5)
    p = normalize(img, stats.to_dict(), "percentile")
    assert p.min() == 0.0 and p.max() == 1.0
    ct = normalize(img, stats, "ct")
    fg = stats.foreground
    lo, hi = np.asarray(fg.percentile_00_5), np.asarray(fg.percentile_99_5)
    want = (np.clip(img, lo, hi) - np.asarray(fg.mean)) / np.asarray(fg.std)
    np.testing.assert_allclose(ct, want, rtol=1e-5, atol=1e-5)
    # channel-first batches, and torch tensors
    import torch

    batch = torch.as_tensor(np.moveaxis(img, -1, 0)[None].astype(np.int32))
    t = normalize(batch, stats, channel_axis=1)
    np.testing.assert_allclose(t[0].numpy(), np.moveaxis(z, -1, 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="scheme"):
        normalize(img, stats, "minmax")
    with pytest.raises(ValueError, match="channel"):
        normalize(img[..., 0], stats, channel_axis=None)
    empty = intensity_partial(img, np.zeros((20, 20), np.uint8), void_label=VOID).summary()
    with pytest.raises(ValueError, match="foreground statistics have no"):
        normalize(img, empty, "ct")


# -- the build ---------------------------------------------------------------

CONFIG = BuildConfig(shard_size=3, class_locations=40, intensity_stats=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("training_stats")
    data = make_sample(tmp / "data", n_images=8, size=(48, 40))
    out = tmp / "o.zarr"
    build_weights(data, out, CONFIG, scheduler="sync")
    return data, out


def test_build_records_locations_of_every_sample(built: tuple[Path, Path]) -> None:
    _, out = built
    shards = open_shards(out)
    meta = shards.store_metadata
    assert meta.class_locations is not None and meta.class_locations.per_class == 40
    for i in range(len(shards)):
        lab = shards[i]["labels"]
        want = class_location_partial(
            lab, per_class=40, num_classes=2, void_label=VOID, key=location_key(meta.sample_ids[i])
        ).array(0, 2)
        assert np.array_equal(shards.class_locations(i), want)


def test_build_records_the_train_split_intensity_statistics(built: tuple[Path, Path]) -> None:
    _, out = built
    shards = open_shards(out)
    train = open_shards(out, split="train")
    pixels = np.concatenate([s["image"].ravel() for s in train]).astype(np.int64)
    labels = np.concatenate([s["labels"].ravel() for s in train])
    fg = (labels != 0) & (labels != VOID)
    stats = shards.intensity_stats
    for region, mask in [("all", np.ones_like(fg)), ("foreground", fg)]:
        want = _numpy_stats(pixels[mask])
        for key, value in want.items():
            assert stats[region][key][0] == pytest.approx(value, rel=1e-12), (region, key)
    # The reader's own computation (for stores built without them) agrees.
    assert shards._compute_intensity_stats() == shards.store_metadata.intensity_stats


def _file_digests(store: Path) -> dict[str, str]:
    return {
        p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "zarr.json" and ".lock" not in p.name
    }


def _interrupted(data: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build killed after writing every shard, before merging the partial results."""
    import maskprep.pipeline.build as build_module

    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(build_module, "finish_training_stats", killed)
        with pytest.raises(KeyboardInterrupt):
            build_weights(data, out, CONFIG, scheduler="sync")
    assert sorted(p.name for p in (out / "_maskprep" / "partials").iterdir()) == [
        "000000.npz",
        "000001.npz",
        "000002.npz",
    ]


@pytest.mark.parametrize("lost", ["marker and partial", "partial only"])
def test_resumed_build_gives_the_same_arrays_and_statistics(
    built: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    """A build interrupted after some shards: the re-run writes only the others (a shard
    with a marker but no partial result too) and still records every sample's
    locations and the whole split's statistics."""
    data, out = built
    copy = tmp_path / "resumed.zarr"
    _interrupted(data, copy, monkeypatch)
    if lost == "marker and partial":
        (copy / "_maskprep" / "shards" / "000001.json").unlink()
    (copy / "_maskprep" / "partials" / "000001.npz").unlink()
    summary = build_weights(data, copy, CONFIG, scheduler="sync")
    assert summary.shards_written == 1
    assert _file_digests(copy) == _file_digests(out)
    meta, again = open_shards(out).store_metadata, open_shards(copy).store_metadata
    assert again.intensity_stats == meta.intensity_stats
    assert again.class_locations == meta.class_locations
    assert again.metadata_digest == meta.metadata_digest
    assert not (copy / "_maskprep" / "partials").exists()  # merged, then removed


def test_stores_without_them_keep_their_metadata(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "d", n_images=3, size=(16, 16))
    build_weights(data, tmp_path / "o.zarr", BuildConfig(), scheduler="sync")
    meta = json.loads((tmp_path / "o.zarr" / "zarr.json").read_text())["attributes"]["maskprep"]
    assert "intensity_stats" not in meta and "class_locations" not in meta
    assert "class_locations" not in meta["config"] and "intensity_stats" not in meta["config"]
    assert not (tmp_path / "o.zarr" / "_maskprep" / "partials").exists()
    shards = open_shards(tmp_path / "o.zarr")
    # The reader computes both on demand, the same way a build would.
    got = shards.class_locations(1)
    want = class_location_partial(
        shards[1]["labels"],
        per_class=1000,
        num_classes=2,
        void_label=VOID,
        key=location_key(shards.sample_ids[1]),
    ).array(0, 2)
    assert np.array_equal(got, want)
    stats = IntensityStats.from_dict({**shards.intensity_stats, "exact": True, "channels": 1})
    assert stats.all.count == (
        sum(s["image"].size for s in open_shards(tmp_path / "o.zarr", split="train")),
    )


def test_config_validates_the_new_options() -> None:
    with pytest.raises(ValueError, match="class_locations"):
        BuildConfig(class_locations=-1)
    with pytest.raises(ValueError, match="class_locations"):
        BuildConfig(class_locations=True)
    with pytest.raises(ValueError, match="intensity_stats"):
        BuildConfig(intensity_stats=1)  # type: ignore[arg-type]
    cfg = BuildConfig(class_locations=5, intensity_stats=True)
    assert BuildConfig.from_dict(cfg.to_dict()) == cfg


def test_inspect_shows_and_verify_checks_them(built: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    from maskprep import format_inspection, inspect_store, verify_store

    _, out = built
    info = inspect_store(out)
    stats = open_shards(out).intensity_stats
    assert info["intensity_stats"]["all"] == stats["all"]
    assert info["class_locations"]["per_class"] == 40
    text = format_inspection(info)
    assert "Intensity statistics (train split, per channel; exact):" in text
    assert f"{stats['foreground']['mean'][0]:.6g}" in text
    assert "Class locations: up to 40 per class and sample" in text
    assert info["shards"]["arrays"]["class_locations"]["dtype"] == "int32"
    assert verify_store(out).ok
    copy = tmp_path / "edited.zarr"
    shutil.copytree(out, copy)
    shard = copy / "class_locations" / "c" / "1" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = verify_store(copy)
    assert [p for p in report.problems if "class_locations/c/1/0/0/0: checksum mismatch" in p]


def test_reweight_keeps_them(built: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    from maskprep import ClassWeightConfig, reweight, verify_store

    _, out = built
    copy = tmp_path / "reweighted.zarr"
    shutil.copytree(out, copy)
    before = open_shards(copy)
    reweight(copy, ClassWeightConfig(scheme="none"), scheduler="sync")
    after = open_shards(copy)
    assert after.class_weights.tolist() == [1.0, 1.0]
    assert after.store_metadata.intensity_stats == before.store_metadata.intensity_stats
    assert after.store_metadata.class_locations == before.store_metadata.class_locations
    assert np.array_equal(after.class_locations(3), before.class_locations(3))
    assert verify_store(copy).ok


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from([(1, 1), (9, 13), (1, 50), (4, 7, 6), (40, 3)]),
    per_class=st.integers(1, 60),
    classes=st.integers(1, 4),
    cut=st.integers(0, 40),
    seed=st.integers(0, 2**20),
)
def test_the_build_kernel_equals_the_reference(
    shape: tuple[int, ...], per_class: int, classes: int, cut: int, seed: int
) -> None:
    """The numba kernel the build uses picks the same pixels as the numpy reference,
    whole and in two blocks (uint8 and uint16 labels, void, absent classes)."""
    from maskprep.pipeline.training import class_locations_fast

    rng = np.random.default_rng(seed)
    lab = _random_labels(rng, shape, classes).astype(np.uint16 if seed % 2 else np.uint8)
    ref = class_location_partial(
        lab, per_class=per_class, num_classes=classes, void_label=VOID, key=seed, sample=2
    )
    fast = class_locations_fast(lab, per_class=per_class, num_classes=classes, key=seed, sample=2)
    assert fast == ref
    c = cut % shape[0]
    top = class_locations_fast(lab[:c], per_class=per_class, num_classes=classes, key=seed,
                               sample_shape=shape, sample=2)  # fmt: skip
    bottom = class_locations_fast(lab[c:], per_class=per_class, num_classes=classes, key=seed,
                                  origin=(c,) + (0,) * (len(shape) - 1), sample_shape=shape,
                                  sample=2)  # fmt: skip
    assert top + bottom == ref
