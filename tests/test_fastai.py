"""maskprep.fastai: DataLoaders of (image, labels, weights), the weighted void-aware loss,
the masked accuracy, Learner.fit and unet_learner on tiny data."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from fastai.learner import Learner
from fastai.vision.all import resnet18, unet_learner

from maskprep import BuildConfig, build_weights, make_sample, normalize, open_shards
from maskprep.fastai import WeightedCrossEntropyLossFlat, dataloaders, masked_accuracy
from maskprep.metrics import pixel_accuracy
from maskprep.torch import weighted_cross_entropy

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fastai")
    data = make_sample(tmp / "d", n_images=10, size=(48, 40))
    out = tmp / "o.zarr"
    build_weights(data, out, BuildConfig(class_locations=32, intensity_stats=True),
                  scheduler="sync")  # fmt: skip
    return out


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1)
    )


def test_batches_are_image_labels_weights_from_the_right_splits(store: Path) -> None:
    dls = dataloaders(store, bs=4, patch_size=(16, 16), device="cpu")
    assert dls.c == 2 and dls.n_inp == 1 and dls.void_label == 255
    x, y, w = dls.one_batch()
    assert x.shape == (4, 1, 16, 16) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and w.dtype == torch.float32 and w.shape == y.shape
    shards = open_shards(store)
    train, valid = dls.train.dataset, dls.valid.dataset
    assert len(train) == 2 and len(valid) == 1  # 8 train, 2 valid samples: a patch each
    # patches come from the split's own samples
    for loader, split in ((dls.train, "train"), (dls.valid, "valid")):
        view = open_shards(store, split=split)
        batch = loader.dataset.batch(0)
        for p in range(batch["index"].shape[0]):
            raw = view.patch(int(batch["index"][p]), batch["start"][p].tolist(), (16, 16))
            want = normalize(raw["image"], shards.intensity_stats, channel_axis=None)
            np.testing.assert_array_equal(batch["image"][p, 0].numpy(), want)


def test_whole_samples_padded_for_a_unet(store: Path) -> None:
    dls = dataloaders(store, bs=3, device="cpu")
    shapes = {tuple(x.shape[2:]) for x, _, _ in dls.valid}
    assert shapes == {(64, 64)}  # 48x40 padded to multiples of 32
    _, y, w = next(iter(dls.valid))
    assert (y[:, 48:] == 255).all() and (w[:, 48:] == 0).all()


def test_loss_is_the_weighted_void_aware_cross_entropy() -> None:
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 5, 6, requires_grad=True)
    labels = torch.randint(0, 2, (2, 5, 6))
    labels[0, 0] = 255
    weights = torch.rand(2, 5, 6)
    loss = WeightedCrossEntropyLossFlat(void_label=255, n_classes=2)
    got = loss(pred, labels, weights)
    want = weighted_cross_entropy(pred[:, :2], labels, weights, ignore_index=255)
    assert torch.equal(got, want)
    got.backward()
    assert pred.grad is not None and (pred.grad[0, :, 0] == 0).all()  # void: no gradient
    assert (loss.decodes(pred) < 2).all()  # the third (void) channel is never predicted
    assert torch.allclose(loss.activation(pred).sum(1), torch.ones(2, 5, 6))


def test_masked_accuracy_equals_the_numpy_metric() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(2, 7, 7))
    labels[labels == 2] = 255
    pred = torch.as_tensor(rng.normal(size=(2, 2, 7, 7)))
    got = float(masked_accuracy(255)(pred, torch.as_tensor(labels)))
    want = pixel_accuracy(labels, pred.argmax(1).numpy(), void_label=255)
    assert got == pytest.approx(want)


def test_learner_fits_and_predicts_without_void(store: Path) -> None:
    dls = dataloaders(store, bs=4, patch_size=(16, 16), n=8, device="cpu")
    learn = Learner(
        dls,
        _model(),
        loss_func=WeightedCrossEntropyLossFlat(void_label=dls.void_label),
        metrics=[masked_accuracy(dls.void_label)],
    )
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-2)
    train_loss, valid_loss, acc = learn.recorder.values[-1]
    assert np.isfinite(train_loss) and np.isfinite(valid_loss) and 0 <= acc <= 1
    with learn.no_bar():
        _, targets, decoded = learn.get_preds(dl=dls.valid, with_decoded=True)
    labels, weights = targets  # the batch's targets: labels and weight maps
    assert decoded.shape == labels.shape == weights.shape
    assert set(decoded.unique().tolist()) <= {0, 1}


def test_unet_learner_resnet18(store: Path) -> None:
    dls = dataloaders(store, bs=2, patch_size=(32, 32), n=4, device="cpu")
    learn = unet_learner(
        dls,
        resnet18,
        pretrained=False,
        n_in=1,
        loss_func=WeightedCrossEntropyLossFlat(void_label=dls.void_label),
        metrics=[masked_accuracy(dls.void_label)],
    )
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    assert np.isfinite(learn.recorder.values[-1][0])
    x, _, _ = dls.one_batch()
    assert learn.model(x).shape == (2, 2, 32, 32)


def test_show_batch_draws_image_labels_and_weights(store: Path, tmp_path: Path) -> None:
    dls = dataloaders(store, bs=3, patch_size=(16, 16), device="cpu")
    fig = dls.show_batch(max_n=2, show=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["image", "labels", "weights"] * 2
    fig.savefig(tmp_path / "batch.png")
    assert (tmp_path / "batch.png").stat().st_size > 0
