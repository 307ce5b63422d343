"""Training targets go through the whole pipeline: built, stored, read, checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskprep import (
    BuildConfig,
    ClassWeightConfig,
    available_targets,
    build_weights,
    make_sample,
    open_shards,
    reweight,
    verify_store,
)
from maskprep.cli import main
from maskprep.targets import compute_target
from maskprep.targets.affinities import affinities
from maskprep.targets.boundary import boundary_map
from maskprep.targets.distance import distance_map
from maskprep.targets.hover import hover_maps
from maskprep.targets.stardist import star_distances
from maskprep.targets.voidband import void_border_mask

ALL = ("weights", "boundary", "distance", "stardist", "hover", "affinities")


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Samples of two sizes, so smaller ones are padded in the store."""
    root = tmp_path_factory.mktemp("mixed")
    a = make_sample(root / "a", n_images=3, size=(40, 40), seed=1)
    b = make_sample(root / "b", n_images=2, size=(56, 48), seed=2)
    for sub in ("images", "masks", "unlabeled"):
        for p in sorted((b / sub).glob("*")):
            p.rename(a / sub / p.name)
    (a / "valid.txt").write_text("")
    return a


@pytest.fixture(scope="module")
def all_targets(mixed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("t") / "all.zarr"
    cfg = BuildConfig(targets=ALL, rays=12, boundary_width=2, affinity_offsets=((-1, 0), (0, -3)))
    build_weights(mixed_dir, out, cfg, scheduler="sync")
    return out


def test_registry_lists_every_builtin_target() -> None:
    assert set(ALL) <= set(available_targets())


def test_stored_targets_equal_the_target_functions(all_targets: Path) -> None:
    shards = open_shards(all_targets)
    assert set(shards[0]) == {"image", "labels", "instances", *ALL}
    shapes = {tuple(s) for s in shards.shapes}
    assert len(shapes) == 2  # padded store
    for i in range(len(shards)):
        s = shards[i]
        inst = s["instances"]
        np.testing.assert_array_equal(s["boundary"], boundary_map(inst, width=2))
        np.testing.assert_array_equal(s["distance"], distance_map(inst))
        np.testing.assert_array_equal(s["stardist"], star_distances(inst, n_rays=12))
        np.testing.assert_array_equal(s["hover"], hover_maps(inst))
        np.testing.assert_array_equal(s["affinities"], affinities(inst, offsets=[(-1, 0), (0, -3)]))
        assert s["stardist"].shape == (*inst.shape, 12)
        assert s["affinities"].dtype == np.uint8 and s["affinities"].shape[-1] == 2


def test_padding_of_targets_is_their_fill_value(all_targets: Path) -> None:
    shards = open_shards(all_targets)
    small = [i for i in range(len(shards)) if tuple(shards.shapes[i]) == (40, 40)]
    batch = shards.read_batch([small[0], next(i for i in range(len(shards)) if i not in small)])
    for name in ("boundary", "distance", "stardist", "hover", "affinities"):
        assert not batch[name][0, 40:].any() and not batch[name][0, :, 40:].any(), name


def test_verify_and_reweight_keep_the_other_targets(all_targets: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy.zarr"
    shutil.copytree(all_targets, out)
    before = open_shards(out)
    kept = {k: before[1][k] for k in ("boundary", "stardist", "affinities")}
    assert verify_store(out).ok
    reweight(out, ClassWeightConfig(scheme="none"), scheduler="sync")
    after = open_shards(out)
    assert after.class_weights.tolist() == [1.0, 1.0]
    for k, v in kept.items():
        np.testing.assert_array_equal(after[1][k], v)
    assert verify_store(out).ok


def test_compute_target_matches_the_functions() -> None:
    rng = np.random.default_rng(0)
    lab = np.zeros((32, 32), np.int32)
    lab[2:12, 2:14] = 70000
    lab[12:20, 4:10] = 3
    lab[rng.random((32, 32)) < 0.02] = 0
    np.testing.assert_array_equal(compute_target("boundary", lab), boundary_map(lab))
    np.testing.assert_array_equal(
        compute_target("stardist", lab, rays=8), star_distances(lab, n_rays=8)
    )
    w = compute_target("weights", lab, w0=10.0, sigma=5.0)
    assert w.dtype == np.float32 and w[lab != 0].min() == 1.0


def _touching_dataset(root: Path) -> Path:
    from PIL import Image

    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for k in range(3):
        mask = np.zeros((32, 40), np.uint16)
        mask[4:16, 4:20] = 5
        mask[4:16, 20 : 30 + k] = 900 + k  # touches instance 5 along a column
        mask[20:28, 6:14] = 7  # on its own
        Image.fromarray(mask).save(root / "masks" / f"t{k}.png")
        Image.fromarray((mask % 200).astype(np.uint8)).save(root / "images" / f"t{k}.png")
    return root


@pytest.mark.parametrize("mode", ["between", "around"])
def test_void_border_makes_a_void_band(tmp_path: Path, mode: str) -> None:
    data = _touching_dataset(tmp_path / "touch")
    plain = open_shards(build_weights(data, tmp_path / "p.zarr", scheduler="sync").out)
    cfg = BuildConfig(void_border=1.5, void_border_mode=mode)
    banded = open_shards(build_weights(data, tmp_path / "b.zarr", cfg, scheduler="sync").out)
    grew = 0
    for i in range(len(plain)):
        band = void_border_mask(plain[i]["instances"], width=1.5, mode=mode)
        lab = banded[i]["labels"]
        assert (lab[band] == 255).all()
        assert (banded[i]["instances"][lab == 255] == 0).all()
        assert (banded[i]["weights"][lab == 255] == 0).all()
        grew += int(band.sum())
    assert grew > 0
    assert sum(banded.class_counts) < sum(plain.class_counts)


def test_cli_targets_option(mixed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.zarr"
    args = ["build-weights", str(mixed_dir), "-o", str(out), "-q", "--scheduler", "sync"]
    result = CliRunner().invoke(
        main, [*args, "--targets", "weights,boundary", "--boundary-width", "2"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(open_shards(out)[0]) == ["boundary", "image", "instances", "labels", "weights"]
    bad = CliRunner().invoke(main, [*args[:3], str(tmp_path / "x.zarr"), "--targets", "nope"])
    assert bad.exit_code == 2
    assert "--targets" in bad.output and "unknown target 'nope'" in bad.output


def test_preview_draws_the_targets_and_inspect_lists_them(
    all_targets: Path, tmp_path: Path
) -> None:
    from maskprep import inspect_store, preview

    files = preview(all_targets, tmp_path / "prev", samples=1)
    targets_png = [f for f in files if f.name.endswith("_targets.png")]
    assert len(targets_png) == 1 and targets_png[0].stat().st_size > 1000
    arrays = inspect_store(all_targets)["shards"]["arrays"]
    assert set(ALL) <= set(arrays)
    assert arrays["stardist"]["shape"][-1] == 12
