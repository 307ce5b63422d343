"""fastai ``DataLoaders`` over a maskprep store: ``(image, labels, weights)`` batches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from maskprep.reader import open_shards
from maskprep.torch import PatchDataset

__all__ = ["PatchDataLoader", "dataloaders"]


class PatchDataLoader:
    """What fastai's ``Learner`` needs of a ``DataLoader``, over a :class:`PatchDataset`.

    Iterating yields ``(image, labels, weights)`` tuples on :attr:`device`
    (``n_inp = 1``: one input). A training loader draws a new epoch of
    patches at each pass (``set_epoch`` is called for you).
    """

    n_inp = 1

    def __init__(
        self,
        dataset: PatchDataset,
        *,
        train: bool,
        num_workers: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        self.dataset = dataset
        self.train = train
        self.num_workers = num_workers
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.c = len(dataset.class_names)
        self.void_label = dataset.void_label
        self.class_names = dataset.class_names
        self.epoch = 0
        self.bs = dataset.batch_size

    def to(self, device: torch.device | str) -> PatchDataLoader:
        self.device = torch.device(device)
        return self

    def new(self, *args: Any, **kwargs: Any) -> PatchDataLoader:
        """This loader (fastai asks for a copy to predict with; the batches are fixed)."""
        return self

    def __len__(self) -> int:
        return len(self.dataset)

    def _tuple(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        weights = batch.get("weights")
        if weights is None:
            weights = torch.ones(batch["labels"].shape, dtype=torch.float32)
        out = (batch["image"], batch["labels"], weights)
        return tuple(t.to(self.device) for t in out)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        if self.train:
            self.dataset.set_epoch(self.epoch)
            self.epoch += 1
        for batch in self.dataset.loader(num_workers=self.num_workers):
            yield self._tuple(batch)

    def one_batch(self) -> tuple[Tensor, Tensor, Tensor]:
        """The first batch of the current epoch."""
        return self._tuple(self.dataset.batch(0))

    def show_batch(
        self,
        b: tuple[Tensor, ...] | None = None,
        max_n: int = 4,
        show: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Draw up to ``max_n`` samples of a batch: image, labels (void in magenta),
        weights. Returns the matplotlib figure."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap

        image, labels, weights = (t.cpu() for t in (b or self.one_batch())[:3])
        n = min(max_n, image.shape[0])
        fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
        classes = plt.get_cmap("tab20", max(self.c, 2))
        cmap = ListedColormap([classes(k) for k in range(self.c)])
        for k in range(n):
            img = image[k]
            if img.ndim == 4:  # 3D: the middle slice
                img, lab, w = img[:, img.shape[1] // 2], labels[k][labels.shape[1] // 2], None
            else:
                lab = labels[k]
            w = weights[k] if image[k].ndim == 3 else weights[k][weights.shape[1] // 2]
            shown = img[0] if img.shape[0] != 3 else img.permute(1, 2, 0)
            lo, hi = float(shown.min()), float(shown.max())
            axes[k, 0].imshow(((shown - lo) / max(hi - lo, 1e-8)).numpy(), cmap="gray")
            void = (lab == self.void_label).numpy()
            axes[k, 1].imshow(np.ma.masked_array(lab.numpy(), void), cmap=cmap,
                              vmin=-0.5, vmax=self.c - 0.5, interpolation="nearest")  # fmt: skip
            axes[k, 1].imshow(np.ma.masked_array(void, ~void), cmap=ListedColormap(["magenta"]))
            im = axes[k, 2].imshow(w.numpy(), cmap="viridis")
            fig.colorbar(im, ax=axes[k, 2], fraction=0.046)
            for ax, title in zip(axes[k], ("image", "labels", "weights"), strict=True):
                ax.set_title(title)
                ax.axis("off")
        fig.tight_layout()
        if show:
            plt.show()
        return fig


def dataloaders(
    store: str | os.PathLike[str],
    bs: int,
    patch_size: Sequence[int] | None = None,
    *,
    n: int | None = None,
    valid_n: int | None = None,
    seed: int = 0,
    foreground_prob: float = 0.33,
    class_probs: Sequence[float] | Mapping[Any, float] | None = None,
    transform: Any = None,
    weights: str = "stored",
    normalize: str | None = "zscore",
    pad_multiple: int | Sequence[int] = 32,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """fastai ``DataLoaders`` of a store: the train split to train on, the valid split
    to validate on.

    Parameters
    ----------
    store : path or URL
    bs : int
        Batch size.
    patch_size : sequence of int, optional
        Train on random class-aware patches of this size
        (:meth:`maskprep.Shards.patches`); validate on ``valid_n`` fixed
        patches of it. Default: whole samples for both, each batch padded to
        a multiple of ``pad_multiple``.
    n : int, optional
        Training patches per epoch (default: as many as train samples).
    valid_n : int, optional
        Validation patches (default: as many as valid samples); the same
        every epoch.
    seed, foreground_prob, class_probs, transform, weights, normalize
        As for :class:`maskprep.torch.PatchDataset` (``transform``: training only).
    pad_multiple : int or sequence of int
        Whole-sample batches are padded to multiples of this (a U-Net of depth
        5 needs 32).
    num_workers : int
        DataLoader worker processes.
    device : optional
        Where batches go (default: fastai's default device).

    Returns
    -------
    fastai.data.core.DataLoaders
        With ``c`` (the number of classes), ``void_label`` and ``class_names``.

    Examples
    --------
    >>> from maskprep import example_store
    >>> dls = dataloaders(example_store(n_images=5, size=(32, 32)), bs=2, patch_size=(16, 16))
    >>> x, y, w = dls.one_batch()
    >>> x.shape, x.dtype, y.dtype, w.dtype, dls.c, dls.n_inp
    (torch.Size([2, 1, 16, 16]), torch.float32, torch.int64, torch.float32, 2, 1)
    """
    from fastai.data.core import DataLoaders
    from fastai.torch_core import default_device

    shards = open_shards(store, storage_options=storage_options)
    splits = shards.splits
    n_train, n_valid = splits.count("train"), splits.count("valid")
    if n_valid == 0:
        raise ValueError(f"{store}: the store has no valid split to validate on")
    arrays = tuple(a for a in ("image", "labels", "weights") if a in shards.arrays)
    common: dict[str, Any] = {
        "seed": seed,
        "arrays": arrays,
        "normalize": normalize,
        "storage_options": storage_options,
    }
    if patch_size is None:
        train = PatchDataset(store, None, bs, split="train", pad_multiple=pad_multiple,
                             transform=transform, weights=weights, **common)  # fmt: skip
        valid = PatchDataset(store, None, bs, split="valid", pad_multiple=pad_multiple, **common)
    else:
        train = PatchDataset(
            store,
            patch_size,
            bs,
            n or n_train,
            split="train",
            foreground_prob=foreground_prob,
            class_probs=class_probs,
            transform=transform,
            weights=weights,
            **common,
        )
        valid = PatchDataset(
            store,
            patch_size,
            bs,
            valid_n or n_valid,
            split="valid",
            foreground_prob=foreground_prob,
            class_probs=class_probs,
            **common,
        )
    dev = default_device() if device is None else device
    loaders = [
        PatchDataLoader(train, train=True, num_workers=num_workers, device=dev),
        PatchDataLoader(valid, train=False, num_workers=num_workers, device=dev),
    ]
    dls = DataLoaders(*loaders, device=dev)
    return dls
