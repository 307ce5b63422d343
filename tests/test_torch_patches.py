"""maskprep.torch.PatchDataset: workers, ranks, resuming, padding, normalisation, and
augmentation with recomputed weights (albumentations and torchvision.transforms.v2)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from maskprep import BuildConfig, border_weights, build_weights, make_sample, normalize, open_shards
from maskprep.augment import recompute_margin
from maskprep.targets.weights import weight_lookup
from maskprep.torch import PatchDataset

SIZE = (24, 24)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("torch_patches")
    data = make_sample(tmp / "d", n_images=8, size=(64, 56))
    out = tmp / "o.zarr"
    cfg = BuildConfig(class_locations=64, intensity_stats=True, sigma=2.0, shard_size=3,
                      targets=("weights", "boundary"))  # fmt: skip
    build_weights(data, out, cfg, scheduler="sync")
    return out


def _batches(loader: object) -> list[dict[str, torch.Tensor]]:
    return list(loader)  # type: ignore[call-overload]


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


def test_batches_and_dtypes(store: Path) -> None:
    ds = PatchDataset(store, SIZE, 4, 10, seed=0, split="train")
    got = _batches(ds.loader())
    assert [b["image"].shape for b in got] == [(4, 1, *SIZE)] * 2 + [(2, 1, *SIZE)]
    b = got[0]
    assert b["image"].dtype == torch.float32 and b["labels"].dtype == torch.int64
    assert b["weights"].dtype == torch.float32 and b["batch"].item() == 0
    assert sorted(b) == ["batch", "image", "index", "labels", "start", "weights"]
    # normalised with the store's statistics: the patch as read, then maskprep.normalize
    shards = open_shards(store, split="train")
    for p in range(4):
        raw = shards.patch(int(b["index"][p]), b["start"][p].tolist(), SIZE)
        want = normalize(raw["image"], shards.intensity_stats, channel_axis=None)
        np.testing.assert_array_equal(b["image"][p, 0].numpy(), want)
        np.testing.assert_array_equal(b["labels"][p].numpy(), raw["labels"])


def test_same_batches_whatever_the_workers(store: Path) -> None:
    def run(workers: int) -> list[dict[str, torch.Tensor]]:
        ds = PatchDataset(store, SIZE, 3, 14, seed=4, arrays=("image", "labels", "boundary"))
        return _batches(ds.loader(num_workers=workers))

    alone = run(0)
    assert len(alone) == 5
    assert _same(alone, run(2))


def test_epochs_and_ranks_differ(store: Path) -> None:
    def starts(**kw: int) -> torch.Tensor:
        rank = kw.pop("rank", 0)
        ds = PatchDataset(store, SIZE, 4, 8, seed=1, rank=rank, world_size=2)
        ds.set_epoch(kw.get("epoch", 0))
        return torch.cat([b["start"] for b in ds.loader()])

    assert not torch.equal(starts(rank=0), starts(rank=1))
    assert not torch.equal(starts(epoch=0), starts(epoch=1))
    assert torch.equal(starts(epoch=1), starts(epoch=1))


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_gives_exactly_the_next_batches(store: Path, workers: int) -> None:
    def make() -> PatchDataset:
        return PatchDataset(store, SIZE, 3, 20, seed=9, transform=_flip_or_not(),
                            weights="recompute")  # fmt: skip

    ds = make()
    ds.set_epoch(2)
    uninterrupted = _batches(ds.loader(num_workers=0))
    ds = make()
    ds.set_epoch(2)
    head = []
    for k, batch in enumerate(ds.loader(num_workers=workers)):
        head.append(batch)
        if k == 2:
            state = ds.state_dict()
            break
    assert state["batches"] == 3 and state["epoch"] == 2
    resumed = make()
    resumed.load_state_dict(state)
    tail = _batches(resumed.loader(num_workers=workers))
    assert _same(head + tail, uninterrupted)
    assert resumed.state_dict()["batches"] == len(uninterrupted)
    # after the resumed epoch, the next iteration starts at its beginning again
    assert _same(_batches(resumed.loader()), uninterrupted)
    with pytest.raises(ValueError, match="seed"):
        PatchDataset(store, SIZE, 3, 20, seed=8).load_state_dict(state)


def test_whole_samples_padded_to_a_multiple(store: Path) -> None:
    ds = PatchDataset(store, None, 3, seed=0, pad_multiple=16, normalize=None)
    got = _batches(ds.loader(num_workers=2))
    shards = open_shards(store)
    assert sum(b["labels"].shape[0] for b in got) == len(shards)
    for b in got:
        assert b["image"].shape[2:] == (64, 64)  # 64x56 padded to multiples of 16
        assert (b["labels"][:, :, 56:] == shards.void_label).all()
        assert (b["weights"][:, :, 56:] == 0).all()
        for p in range(b["labels"].shape[0]):
            raw = shards[int(b["index"][p])]
            np.testing.assert_array_equal(b["image"][p, 0, :, :56].numpy(), raw["image"])
    with pytest.raises(ValueError, match="n is the number of patches"):
        PatchDataset(store, None, 3, 10)
    with pytest.raises(ValueError, match="required"):
        PatchDataset(store, SIZE, 3)


def _flip_or_not() -> A.Compose:
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])


def test_recompute_on_the_identity_is_the_stored_map(store: Path) -> None:
    meta = open_shards(store).store_metadata
    stored = PatchDataset(store, SIZE, 8, 24, seed=3, arrays=("labels", "weights", "boundary"))
    again = PatchDataset(store, SIZE, 8, 24, seed=3, arrays=("labels", "weights", "boundary"),
                         weights="recompute")  # fmt: skip
    assert again.margin == recompute_margin(meta)
    for a, b in zip(stored.loader(), again.loader(), strict=True):
        assert torch.equal(a["start"], b["start"])
        assert (a["weights"] - b["weights"]).abs().max() <= 1e-6 * meta.w0
        assert torch.equal(a["boundary"], b["boundary"])  # local: exact with the margin


@pytest.mark.parametrize("library", ["albumentations", "torchvision"])
@pytest.mark.parametrize("kind", ["hflip", "vflip", "rot90"])
def test_recompute_after_a_flip_or_rot90_is_the_moved_stored_map(
    store: Path, library: str, kind: str
) -> None:
    if library == "albumentations":
        transform: object = A.Compose(
            [
                {
                    "hflip": A.HorizontalFlip(p=1),
                    "vflip": A.VerticalFlip(p=1),
                    "rot90": A.RandomRotate90(p=1),
                }[kind]
            ]
        )
    else:
        transform = v2.Compose(
            [
                {
                    "hflip": v2.RandomHorizontalFlip(p=1),
                    "vflip": v2.RandomVerticalFlip(p=1),
                    "rot90": v2.RandomRotation((90, 90)),
                }[kind]
            ]
        )
    arrays = ("image", "labels", "weights")
    plain = PatchDataset(store, SIZE, 6, 12, seed=5, arrays=arrays, normalize=None)
    moved = PatchDataset(store, SIZE, 6, 12, seed=5, arrays=arrays, normalize=None,
                         transform=transform, weights="recompute")  # fmt: skip
    for a, b in zip(plain.loader(), moved.loader(), strict=True):
        for p in range(a["labels"].shape[0]):
            w, lab = a["weights"][p], a["labels"][p]
            if kind == "hflip":
                w, lab = w.flip(-1), lab.flip(-1)
            elif kind == "vflip":
                w, lab = w.flip(-2), lab.flip(-2)
            else:
                got_k = next(
                    k for k in range(4) if torch.equal(torch.rot90(lab, k), b["labels"][p])
                )
                w, lab = torch.rot90(w, got_k), torch.rot90(lab, got_k)
            assert torch.equal(b["labels"][p], lab)
            # exact: the same window, moved, computed by the same kernel
            assert torch.equal(b["weights"][p], w)


def _expected_interior(
    store: Path, batch: dict[str, torch.Tensor], margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """The weights of the transformed patch computed from its own instances, and where
    they are exact without context (farther than the cutoff from the patch's edge)."""
    shards = open_shards(store)
    meta = shards.store_metadata
    lut = weight_lookup(meta.void_label, len(meta.class_names), meta.class_weights)
    want = []
    for p in range(batch["labels"].shape[0]):
        lab, inst = batch["labels"][p].numpy(), batch["instances"][p].numpy()
        w = lut[lab] + border_weights(inst, w0=meta.w0, sigma=meta.sigma, tolerance=meta.tolerance)
        w[lab == meta.void_label] = 0
        want.append(w)
    inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
    return np.stack(want), inner  # type: ignore[return-value]


@pytest.mark.parametrize(
    "transform",
    [
        A.Compose([A.ElasticTransform(alpha=30, sigma=4, p=1), A.Affine(scale=(0.7, 1.4), p=1)]),
        v2.Compose(
            [v2.ElasticTransform(alpha=30.0, sigma=4.0), v2.RandomAffine(0, scale=(0.7, 1.4))]
        ),
    ],
    ids=["albumentations", "torchvision"],
)
def test_recomputed_weights_are_those_of_the_transformed_instances(
    store: Path, transform: object
) -> None:
    """Elastic deformation and scaling: the recomputed map equals border_weights of the
    transformed instances (checked where a pixel's neighbourhood lies inside the patch)."""
    arrays = ("image", "labels", "instances", "weights")
    ds = PatchDataset(store, (40, 40), 4, 8, seed=2, arrays=arrays, transform=transform,
                      weights="recompute")  # fmt: skip
    meta = open_shards(store).store_metadata
    cutoff = int(np.ceil(meta.sigma * np.sqrt(2 * np.log(1 / meta.tolerance))))
    moved = 0
    for batch in ds.loader():
        want, inner = _expected_interior(store, batch, cutoff + 1)
        got = batch["weights"].numpy()
        assert np.abs(got[inner] - want[inner]).max() <= 1e-6 * meta.w0
        moved += int((batch["labels"] == meta.void_label).sum())
    plain = PatchDataset(store, (40, 40), 4, 8, seed=2, arrays=arrays)
    assert not _same(_batches(ds.loader()), _batches(plain.loader()))  # it did transform


def test_transforms_see_masks_and_fill_becomes_void(store: Path) -> None:
    """A rotation brings in pixels from outside: they are void, no instance, weight 0."""
    rot = v2.Compose([v2.RandomRotation((45, 45))])
    ds = PatchDataset(store, (32, 32), 4, 4, seed=0, arrays=("labels", "instances", "weights"),
                      transform=rot, margin=0)  # fmt: skip
    batch = next(iter(ds.loader()))
    void = open_shards(store).void_label
    corner = batch["labels"][:, 0, 0]
    assert (corner == void).all()
    assert (batch["instances"][:, 0, 0] == 0).all() and (batch["weights"][:, 0, 0] == 0).all()
    # tv_tensors are what the transform gets
    seen: list[type] = []

    class Spy(torch.nn.Module):
        def forward(self, *inputs: object) -> object:
            seen.extend(type(x) for x in inputs)
            return inputs

    spy = v2.Compose([Spy()])
    next(iter(PatchDataset(store, (16, 16), 1, 1, transform=spy, arrays=("labels",)).loader()))
    assert seen[0] is tv_tensors.Image and set(seen[1:]) == {tv_tensors.Mask}


def test_bad_arguments(store: Path) -> None:
    with pytest.raises(ValueError, match="weights must be"):
        PatchDataset(store, SIZE, 2, 2, weights="warp")
    with pytest.raises(ValueError, match="normalize"):
        PatchDataset(store, SIZE, 2, 2, normalize="minmax")
    with pytest.raises(ValueError, match="arrays"):
        PatchDataset(store, SIZE, 2, 2, arrays=("image", "distance"))
    with pytest.raises(ValueError, match="batch_size"):
        PatchDataset(store, SIZE, 2, 2).loader(batch_size=4)


def test_channel_maps_move_with_the_image() -> None:
    """Maps with a channel axis (stardist, hover, affinities) go through both libraries."""
    from maskprep.augment import apply_joint, as_joint_transform

    rng = np.random.default_rng(0)
    image = rng.normal(size=(12, 10)).astype(np.float32)
    maps = {
        "labels": rng.integers(0, 2, size=(12, 10)).astype(np.uint8),
        "instances": rng.choice([0, 70000, 3], size=(12, 10)).astype(np.int32),
        "hover": rng.normal(size=(12, 10, 2)).astype(np.float32),
    }
    for transform in (A.Compose([A.HorizontalFlip(p=1)]), v2.RandomHorizontalFlip(p=1)):
        img, out = apply_joint(as_joint_transform(transform), image, maps, void_label=255,
                               channels=False)  # fmt: skip
        np.testing.assert_array_equal(img, image[:, ::-1])
        for name, m in maps.items():
            np.testing.assert_array_equal(out[name], m[:, ::-1])
            assert out[name].dtype == m.dtype


def test_3d_patches_with_a_callable_transform_and_recompute(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "d3", n_images=3, size=(16, 32, 32))
    out = tmp_path / "o3.zarr"
    build_weights(data, out, BuildConfig(sigma=1.5, spacing=(2.0, 1.0, 1.0)), scheduler="sync")

    def flip_z(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v[::-1]) for k, v in d.items()}

    arrays = ("image", "labels", "weights")
    plain = PatchDataset(out, (8, 16, 16), 2, 4, seed=1, arrays=arrays, normalize=None)
    moved = PatchDataset(out, (8, 16, 16), 2, 4, seed=1, arrays=arrays, normalize=None,
                         transform=flip_z, weights="recompute")  # fmt: skip
    assert moved.margin == recompute_margin(open_shards(out).store_metadata)
    assert moved.margin[0] < moved.margin[1]  # anisotropic: fewer slices of context
    for a, b in zip(plain.loader(), moved.loader(), strict=True):
        assert b["image"].shape == (2, 1, 8, 16, 16)
        assert torch.equal(b["labels"], a["labels"].flip(1))
        assert torch.equal(b["weights"], a["weights"].flip(1))
