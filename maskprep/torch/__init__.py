"""PyTorch losses and inference helpers that honour void labels and weight maps.

Requires the optional ``torch`` extra (``pip install -e ".[torch]"`` in a clone,
``pip install "maskprep[torch]"`` from a package index); nothing else in
maskprep imports this package.

* :func:`weighted_cross_entropy` / :class:`WeightedCrossEntropyLoss`: cross
  entropy with per-pixel weight maps and per-class weights, void pixels
  ignored, normalised by the total weight of the valid pixels.
* :func:`forbid_classes`: set class channels to ``-inf`` so ``argmax`` and
  ``softmax`` can never pick them.
* :class:`PatchDataset`: class-aware random patches (or whole samples padded
  to a multiple), joint augmentation with exact recomputed weights, worker-
  and rank-aware, resumable mid-epoch (``state_dict``); iterate it with
  :meth:`PatchDataset.loader`.
* :class:`ShardDataset` (map-style) and :class:`ShardIterableDataset` (whole
  batches, split over DataLoader workers and distributed ranks): a maskprep
  store as tensors, safe in forked DataLoader workers.

The void label comes from the dataset: pass ``ignore_index=shards.void_label``.

Owns the torch side of training: losses (:mod:`maskprep.torch.losses`) and
datasets over a finished store (:mod:`maskprep.torch.data`). It reads stores
only through the public reader API (``open_shards``, ``Shards``,
``epoch_order``) and shares checks only through :mod:`maskprep.metrics`. It
must never import dask, numba or matplotlib, nor anything from maskprep's
pipeline, ingest, store writing or tools: a training process needs only torch
and the reader.
"""

from maskprep.torch.data import ShardDataset, ShardIterableDataset, collate_padded, to_tensors
from maskprep.torch.losses import WeightedCrossEntropyLoss, forbid_classes, weighted_cross_entropy
from maskprep.torch.patches import PatchDataset, PatchLoader

__all__ = [
    "PatchDataset",
    "PatchLoader",
    "ShardDataset",
    "ShardIterableDataset",
    "WeightedCrossEntropyLoss",
    "collate_padded",
    "forbid_classes",
    "to_tensors",
    "weighted_cross_entropy",
]
