"""maskprep.torch datasets in real DataLoaders, with worker processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from maskprep import BuildConfig, build_weights, open_shards  # noqa: E402
from maskprep.torch import (  # noqa: E402
    ShardDataset,
    ShardIterableDataset,
    collate_padded,
    to_tensors,
    weighted_cross_entropy,
)

ARRAYS = ("image", "labels", "weights")
# DataLoader warns when num_workers exceeds the cores it sees; that is not our concern here
WORKERS = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def _loader(ds: object, num_workers: int = 0, **kw: object) -> torch.utils.data.DataLoader:
    if num_workers:
        kw["multiprocessing_context"] = "fork"
    return torch.utils.data.DataLoader(ds, num_workers=num_workers, **kw)


@pytest.fixture(scope="module")
def built(build_nuclei: Callable[[str, int], Path]) -> Path:
    return build_nuclei("torchdata", 3)


@pytest.fixture(scope="module")
def ragged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five samples of different sizes, built by the real pipeline."""
    root = tmp_path_factory.mktemp("ragged_data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k, shape in enumerate([(12, 9), (7, 16), (16, 16), (5, 5), (9, 11)]):
        mask = np.zeros(shape, np.uint16)
        mask[1:4, 1:4] = 1
        mask[-3:, -3:] = 2
        img = rng.integers(0, 255, size=shape, dtype=np.uint8)
        Image.fromarray(img).save(root / "images" / f"s{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{k}.png")
    out = tmp_path_factory.mktemp("ragged") / "r.zarr"
    build_weights(root, out, BuildConfig(shard_size=2), scheduler="sync")
    return out


def _assert_batch_matches(batch: dict[str, torch.Tensor], shards: object, void: int) -> None:
    for b, i in enumerate(batch["index"].tolist()):
        want = shards[i]  # type: ignore[index]
        shape = tuple(want["labels"].shape)
        assert tuple(batch["shape"][b].tolist()) == shape
        crop = (b, *(slice(0, k) for k in shape))
        for name in ARRAYS:
            got = batch[name][crop].numpy()
            np.testing.assert_array_equal(got, want[name])
        rest = batch["labels"][b].clone()
        rest[crop[1:]] = void
        assert (rest == void).all()  # padding is void
        w = batch["weights"][b].clone()
        w[crop[1:]] = 0
        assert (w == 0).all()


@WORKERS
def test_map_dataset_in_dataloader_with_two_workers(ragged: Path) -> None:
    ds = ShardDataset(ragged)
    shards = open_shards(ragged, arrays=ARRAYS)
    loader = _loader(ds, batch_size=2, num_workers=2, collate_fn=ds.collate, shuffle=True)
    seen = []
    for batch in loader:
        assert batch["labels"].dtype == torch.int64
        assert batch["weights"].dtype == torch.float32
        assert batch["image"].dtype == torch.uint8
        _assert_batch_matches(batch, shards, ds.void_label)
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(shards)))


@WORKERS
def test_iterable_dataset_in_dataloader_with_two_workers(built: Path) -> None:
    shards = open_shards(built, arrays=ARRAYS)
    ds = ShardIterableDataset(built, batch_size=3, seed=4)
    loader = _loader(ds, batch_size=None, num_workers=2)
    assert len(loader) == 4
    batches = list(loader)
    assert len(batches) == 4
    seen = [i for b in batches for i in b["index"].tolist()]
    assert sorted(seen) == list(range(len(shards)))
    for batch in batches:
        _assert_batch_matches(batch, shards, ds.void_label)
    # same batches in the same order as a single process and as Shards.batches
    single = [b["index"].tolist() for b in _loader(ds, batch_size=None, num_workers=0)]
    assert [b["index"].tolist() for b in batches] == single
    assert single == [b["index"].tolist() for b in shards.batches(3, seed=4)]
    # epochs reshuffle reproducibly
    ds.set_epoch(1)
    epoch1 = [i for b in _loader(ds, batch_size=None, num_workers=2) for i in b["index"].tolist()]
    assert epoch1 != seen and sorted(epoch1) == sorted(seen)
    again = ShardIterableDataset(built, batch_size=3, seed=4)
    again.set_epoch(1)
    assert [i for b in again for i in b["index"].tolist()] == epoch1


@WORKERS
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_and_workers_cover_every_sample_once(built: Path, drop_last: bool) -> None:
    per_rank = []
    for rank in range(2):
        ds = ShardIterableDataset(
            built, batch_size=2, seed=1, rank=rank, world_size=2, drop_last=drop_last
        )
        batches = list(_loader(ds, batch_size=None, num_workers=2))
        assert len(batches) == len(ds)
        per_rank.append([i for b in batches for i in b["index"].tolist()])
    flat = [i for r in per_rank for i in r]
    assert len(flat) == len(set(flat))
    if drop_last:
        assert [len(r) for r in per_rank] == [4, 4]  # 10 samples, 2 ranks x 2 full batches
    else:
        assert sorted(flat) == list(range(10))


def test_iterable_ragged_batches_and_loss(ragged: Path) -> None:
    shards = open_shards(ragged, arrays=ARRAYS)
    ds = ShardIterableDataset(ragged, batch_size=2, shuffle=False, threads=2)
    batches = list(ds)
    assert [b["labels"].shape[0] for b in batches] == [2, 2, 1]
    for batch in batches:
        _assert_batch_matches(batch, shards, ds.void_label)
        logits = torch.zeros(batch["labels"].shape[0], 2, *batch["labels"].shape[1:])
        loss = weighted_cross_entropy(
            logits, batch["labels"], batch["weights"], ignore_index=ds.void_label
        )
        assert torch.isfinite(loss) and abs(loss.item() - np.log(2)) < 1e-5


def test_arguments_and_helpers(built: Path) -> None:
    with pytest.raises(ValueError, match="rank"):
        ShardIterableDataset(built, batch_size=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        ShardIterableDataset(built, batch_size=0)
    ds = ShardDataset(built, split="valid", arrays=["labels"])
    assert len(ds) == len(open_shards(built, split="valid"))
    assert sorted(ds[0]) == ["index", "labels", "shape"]
    assert ds.class_weights.dtype == torch.float32
    ro = np.ones(2, np.float32)
    ro.flags.writeable = False
    t = to_tensors(
        {"labels": np.array([1, 255], np.uint16), "w": np.ones(2, ">f4"), "i": np.ones(2, ">u2")}
    )
    assert t["labels"].dtype == torch.int64 and t["labels"].tolist() == [1, 255]
    assert t["w"].dtype == torch.float32 and t["i"].dtype == torch.int32
    assert to_tensors({"ro": ro})["ro"].tolist() == [1.0, 1.0]  # copied: no warning
    keep = np.zeros(3, np.float32)
    assert to_tensors({"k": keep})["k"].data_ptr() == keep.ctypes.data  # no copy
    with pytest.raises(ValueError, match="at least one"):
        collate_padded([])
    # a transform sees tensors
    ds2 = ShardDataset(built, transform=lambda s: s["labels"].sum())
    assert ds2[0].item() == int(open_shards(built)[0]["labels"].astype(np.int64).sum())
