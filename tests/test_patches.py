"""Shards.patches: class-aware placement, determinism, ranks, void redraws, padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from maskprep import BuildConfig, StoreError, build_weights, make_sample, open_shards
from maskprep.reader.patches import PatchSampler

SIZE = (32, 32)


def _sparse_dataset(root: Path, n: int = 6, shape: tuple[int, ...] = (128, 128)) -> Path:
    """Images with one or two 3x3 objects each: foreground well under 2% of the pixels;
    sample 0 also mostly unannotated."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks", "unlabeled"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mask = np.zeros(shape, np.uint16)
        for k in range(1 + i % 2):
            at = [int(rng.integers(0, s - 3)) for s in shape]
            mask[tuple(slice(a, a + 3) for a in at)] = 7 + 10 * k
        image = rng.integers(0, 60, size=shape).astype(np.uint8)
        image[mask > 0] = 200
        stem = f"s{i}"
        if len(shape) == 3:
            tifffile.imwrite(root / "images" / f"{stem}.tif", image)
            tifffile.imwrite(root / "masks" / f"{stem}.tif", mask)
            continue
        Image.fromarray(image).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        if i == 0:  # all but the objects' rows unannotated
            unlabeled = np.full(shape, 255, np.uint8)
            rows = np.flatnonzero(mask.any(axis=1))
            unlabeled[rows.min() : rows.max() + 1] = 0
            Image.fromarray(unlabeled).save(root / "unlabeled" / f"{stem}.png")
    (root / "valid.txt").write_text(f"s{n - 1}\n")
    return root


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sparse")
    data = _sparse_dataset(tmp / "data")
    out = tmp / "o.zarr"
    build_weights(data, out, BuildConfig(class_locations=32, shard_size=4), scheduler="sync")
    return out


def _has_foreground(batch: dict[str, np.ndarray]) -> np.ndarray:
    return (batch["labels"] == 1).reshape(batch["labels"].shape[0], -1).any(axis=1)


def _all(shards_batches: object) -> dict[str, np.ndarray]:
    batches = list(shards_batches)  # type: ignore[call-overload]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_the_dataset_is_sparse(sparse: Path) -> None:
    shards = open_shards(sparse)
    counts = shards.class_counts
    assert counts[1] / counts.sum() < 0.02


def test_foreground_prob_decides_how_many_patches_hold_foreground(sparse: Path) -> None:
    shards = open_shards(sparse, split="train")
    n = 300
    always = _all(shards.patches(SIZE, 16, n, seed=1, foreground_prob=1.0))
    assert _has_foreground(always).all()
    third = _has_foreground(_all(shards.patches(SIZE, 16, n, seed=1, foreground_prob=0.33)))
    # At least a third target foreground: binomial(300, 0.33) is below 66 (4 sd under
    # its mean of 99) with probability < 1e-4, and uniform patches add more.
    assert third.sum() >= 66
    never = _has_foreground(_all(shards.patches(SIZE, 16, n, seed=1, foreground_prob=0.0)))
    assert never.mean() < 0.5  # mostly empty
    assert third.sum() > never.sum()


def test_every_patch_is_the_patch_read_at_its_index_and_start(sparse: Path) -> None:
    shards = open_shards(sparse, split="train")
    for batch in shards.patches(SIZE, 8, 20, seed=3, epoch=2):
        assert sorted(batch) == sorted([*shards.arrays, "index", "start"])
        for b in range(batch["index"].size):
            one = shards.patch(int(batch["index"][b]), batch["start"][b], SIZE)
            for name, arr in one.items():
                assert np.array_equal(batch[name][b], arr), name
            # inside the sample whenever it is large enough (it is)
            shape = shards.shapes[int(batch["index"][b])]
            assert (batch["start"][b] >= 0).all() and (batch["start"][b] + SIZE <= shape).all()


def test_patches_are_deterministic_and_ranks_and_epochs_differ(sparse: Path) -> None:
    shards = open_shards(sparse, split="train", arrays=("labels",))

    def starts(**kw: int) -> np.ndarray:
        got = _all(shards.patches(SIZE, 5, 23, seed=7, **kw))
        return np.concatenate([got["index"][:, None], got["start"]], axis=1)

    first = starts()
    assert first.shape == (23, 3)
    assert np.array_equal(first, starts())
    assert np.array_equal(first, open_shards_again(sparse))
    r0, r1 = starts(rank=0, world_size=2), starts(rank=1, world_size=2)
    assert not np.array_equal(r0, r1)
    assert not np.array_equal(first, starts(epoch=1))
    # batch sizes do not change which patches a batch draws, but cut the stream per batch
    sampler = PatchSampler(shards, SIZE, 5, 23, seed=7)
    assert [sampler.batch_patches(b) for b in range(len(sampler))] == [5, 5, 5, 5, 3]
    assert np.array_equal(sampler.batch(0, 3)["start"], first[15:20, 1:])


def open_shards_again(store: Path) -> np.ndarray:
    """The same patches from a store opened anew, with other arrays."""
    shards = open_shards(store, split="train", arrays=("image", "weights"))
    got = _all(shards.patches(SIZE, 5, 23, seed=7))
    return np.concatenate([got["index"][:, None], got["start"]], axis=1)


def test_uniform_patches_are_never_all_void(sparse: Path) -> None:
    shards = open_shards(sparse, split="train", arrays=("labels",))
    got = _all(shards.patches((8, 8), 32, 400, seed=0, foreground_prob=0.0))
    annotated = (got["labels"] != shards.void_label).reshape(400, -1).any(axis=1)
    assert annotated.all()
    assert (got["index"] == 0).any()  # sample 0 (mostly void) is drawn, too


def test_an_all_void_view_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "void"
    for sub in ("images", "masks", "unlabeled"):
        (root / sub).mkdir(parents=True)
    mask = np.zeros((16, 16), np.uint16)
    mask[4:8, 4:8] = 3
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(root / "unlabeled" / "b.png")
    (root / "valid.txt").write_text("b\n")  # the valid split: one sample, all void
    build_weights(root, tmp_path / "v.zarr", scheduler="sync")
    shards = open_shards(tmp_path / "v.zarr", split="valid")
    with pytest.raises(StoreError, match="no \\(8, 8\\) patch with an annotated pixel"):
        next(shards.patches((8, 8), 2, 2, foreground_prob=0.5))


def test_class_probs(sparse: Path) -> None:
    shards = open_shards(sparse, split="train", arrays=("labels",))
    # all weight on the background: foreground patches then target class 0
    bg = _all(shards.patches(SIZE, 16, 64, seed=2, foreground_prob=1.0, class_probs=[1, 0]))
    assert ((bg["labels"] == 0).reshape(64, -1).any(axis=1)).all()
    by_name = _all(shards.patches(SIZE, 16, 64, seed=2, foreground_prob=1.0,
                                  class_probs={"object": 1.0}))  # fmt: skip
    default = _all(shards.patches(SIZE, 16, 64, seed=2, foreground_prob=1.0))
    assert np.array_equal(by_name["start"], default["start"])
    with pytest.raises(ValueError, match="one value per class"):
        next(shards.patches(SIZE, 4, 4, class_probs=[1.0]))
    with pytest.raises(ValueError, match="no class"):
        next(shards.patches(SIZE, 4, 4, class_probs={"cell": 1.0}))
    with pytest.raises(ValueError, match="foreground_prob"):
        next(shards.patches(SIZE, 4, 4, foreground_prob=1.5))
    with pytest.raises(ValueError, match="rank"):
        next(shards.patches(SIZE, 4, 4, rank=2, world_size=2))
    with pytest.raises(ValueError, match="size"):
        next(shards.patches((32,), 4, 4))


def test_patches_larger_than_the_sample_cover_it_with_padding(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "d", n_images=3, size=(20, 24))
    build_weights(data, tmp_path / "o.zarr", scheduler="sync")
    shards = open_shards(tmp_path / "o.zarr")
    got = _all(shards.patches((32, 16), 4, 12, seed=0, foreground_prob=0.5))
    assert got["labels"].shape == (12, 32, 16)
    for b in range(12):
        start = got["start"][b]
        assert -12 <= start[0] <= 0 and 0 <= start[1] <= 8
        rows = slice(-start[0], -start[0] + 20)
        assert (got["labels"][b][rows] != shards.void_label).any()
        assert (got["weights"][b][: -start[0]] == 0).all()  # padding above the sample


def test_fallback_locations_give_the_same_patches_as_recorded_ones(
    sparse: Path, tmp_path: Path
) -> None:
    """A store built without class locations samples from locations computed on the
    fly, the same ones a build with K=1000 records."""
    data = sparse.parent / "data"
    plain, recorded = tmp_path / "plain.zarr", tmp_path / "k1000.zarr"
    build_weights(data, plain, BuildConfig(shard_size=4), scheduler="sync")
    build_weights(data, recorded, BuildConfig(shard_size=4, class_locations=1000),
                  scheduler="sync")  # fmt: skip
    a = _all(open_shards(plain).patches(SIZE, 8, 40, seed=5, foreground_prob=1.0))
    b = _all(open_shards(recorded).patches(SIZE, 8, 40, seed=5, foreground_prob=1.0))
    assert np.array_equal(a["start"], b["start"]) and np.array_equal(a["image"], b["image"])


def test_tiled_and_3d_stores(tmp_path: Path) -> None:
    data = _sparse_dataset(tmp_path / "d3", n=3, shape=(24, 40, 40))
    for tile in (None, 16):
        out = tmp_path / f"o{tile}.zarr"
        build_weights(data, out, BuildConfig(class_locations=8, tile=tile), scheduler="sync")
        shards = open_shards(out)
        got = _all(shards.patches((8, 16, 16), 4, 10, seed=0, foreground_prob=1.0))
        assert got["image"].shape == (10, 8, 16, 16)
        assert _has_foreground(got).all()
        if tile is None:
            untiled = got
        else:
            for k in ("image", "labels", "weights", "start"):
                assert np.array_equal(got[k], untiled[k])


LAZY = """
import json, sys
import maskprep
from maskprep.torch import PatchDataset
shards = maskprep.open_shards(sys.argv[1], split="train")
batch = next(shards.patches((16, 16), 2, 2, seed=0))
image = maskprep.normalize(batch["image"], shards.intensity_stats, channel_axis=None)
locations = shards.class_locations(0)
batch = next(iter(PatchDataset(sys.argv[1], (16, 16), 2, 2).loader()))
heavy = ("numba", "dask", "distributed", "matplotlib")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def test_patches_and_patch_datasets_load_no_numba_dask_or_matplotlib(sparse: Path) -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", LAZY, str(sparse)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
