"""fastai: a maskprep store as fastai ``DataLoaders``, a weighted void-aware loss, a masked metric.

Requires the optional ``fastai`` extra (``pip install -e ".[fastai]"``).

* :func:`dataloaders`: fastai ``DataLoaders`` (the train split for training,
  the valid split for validation) whose batches are ``(image, labels,
  weights)`` with one input: images float32 ``(B, C, *size)`` normalised with
  the store's intensity statistics, labels int64, weights float32; random
  class-aware patches (``patch_size``) or whole samples padded to a multiple
  (:class:`maskprep.torch.PatchDataset` underneath); ``show_batch`` draws
  image, labels and weights.
* :class:`WeightedCrossEntropyLossFlat`: ``loss(pred, labels, weights)``
  with the weight map, void ignored; predictions decode without the void class.
* :func:`masked_accuracy`: pixel accuracy over annotated pixels (the fastai
  CamVid lessons' ``acc_camvid``).

Owns the fastai side of training. May import the torch package and the
reader; must never import dask, numba (unless a patch dataset recomputes
targets), the pipeline, ingest or tools.
"""

from maskprep.fastai.data import PatchDataLoader, dataloaders
from maskprep.fastai.losses import WeightedCrossEntropyLossFlat, masked_accuracy

__all__ = ["PatchDataLoader", "WeightedCrossEntropyLossFlat", "dataloaders", "masked_accuracy"]
