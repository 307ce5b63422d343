"""A fastai loss taking ``(pred, labels, weights)`` and a metric over annotated pixels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from maskprep.torch import weighted_cross_entropy

__all__ = ["WeightedCrossEntropyLossFlat", "masked_accuracy"]


class WeightedCrossEntropyLossFlat:
    """Cross entropy weighted by the store's weight map, void pixels ignored.

    Called by fastai as ``loss(pred, labels, weights)`` (the batches of
    :func:`maskprep.fastai.dataloaders`); ``weights`` may be omitted. It is
    :func:`maskprep.torch.weighted_cross_entropy`: the weighted mean over
    annotated pixels. ``activation`` (softmax) and ``decodes`` (argmax) look
    only at the first ``n_classes`` channels, so a model with an extra void
    channel never predicts it.

    Parameters
    ----------
    void_label : int
        The store's void label (``shards.void_label``).
    n_classes : int, optional
        Channels that are classes (default all).
    class_weights : Tensor, optional
        Extra per-class weights (the store's weight maps already hold them).

    Examples
    --------
    >>> loss = WeightedCrossEntropyLossFlat(void_label=255)
    >>> pred = torch.zeros(1, 2, 2, 2)
    >>> labels = torch.tensor([[[0, 1], [255, 1]]])
    >>> round(float(loss(pred, labels, torch.ones(1, 2, 2))), 4)  # log 2
    0.6931
    >>> scores = torch.tensor([[[[0.0]], [[1.0]], [[9.0]]]])  # channel 2 is not a class
    >>> WeightedCrossEntropyLossFlat(255, n_classes=2).decodes(scores).tolist()
    [[[1]]]
    """

    def __init__(
        self,
        void_label: int,
        n_classes: int | None = None,
        class_weights: Tensor | None = None,
    ) -> None:
        self.void_label = int(void_label)
        self.n_classes = n_classes
        self.class_weights = class_weights

    def __call__(self, pred: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
        logits = pred if self.n_classes is None else pred[:, : self.n_classes]
        cw = self.class_weights
        if cw is not None:
            cw = cw.to(logits.device)
        return weighted_cross_entropy(logits, labels, weights, cw, ignore_index=self.void_label)

    def _classes(self, x: Tensor) -> Tensor:
        return x if self.n_classes is None else x[:, : self.n_classes]

    def activation(self, x: Tensor) -> Tensor:
        """Class probabilities (softmax over the class channels)."""
        return torch.softmax(self._classes(x), dim=1)

    def decodes(self, x: Tensor) -> Tensor:
        """Predicted class per pixel (argmax over the class channels)."""
        return self._classes(x).argmax(dim=1)

    def __repr__(self) -> str:
        return f"WeightedCrossEntropyLossFlat(void_label={self.void_label})"


def masked_accuracy(void_label: int) -> Callable[..., Tensor]:
    """A fastai metric: pixel accuracy over the pixels whose label is not ``void_label``.

    Examples
    --------
    >>> acc = masked_accuracy(255)
    >>> pred = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # predicts 0 then 1
    >>> float(acc(pred, torch.tensor([[[0, 255]]])))
    1.0
    """
    void = int(void_label)

    def masked_accuracy(pred: Tensor, labels: Tensor, *rest: Any) -> Tensor:
        valid = labels != void
        hits = (pred.argmax(dim=1) == labels) & valid
        return hits.sum().float() / valid.sum().clamp(min=1).float()

    return masked_accuracy
