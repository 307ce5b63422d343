"""Segmentation metrics that honour the void label (numpy only).

Owns the numpy metrics, semantic (:mod:`maskprep.metrics.semantic`) and
instance (:mod:`maskprep.metrics.instance`), and :func:`check_classes`, the
class-index check that :mod:`maskprep.torch` shares. It is a leaf: it must
never import torch, dask, numba or any other maskprep stage (``maskprep.torch``
depends on it, never the reverse).

Semantic metrics (:func:`pixel_accuracy`, :func:`confusion_matrix`,
:func:`per_class_iou`, :func:`mean_iou`) take integer label images where the
void ("I don't know") label -- ``void_label``, 255 by default, stored in the
dataset metadata as ``void_label`` -- marks pixels that are excluded from every
count, whatever the prediction is there.

Instance metrics (:func:`iou_matrix`, :func:`match_instances`,
:func:`average_precision`) take instance label images (0 = background, any
other non-negative integer = one object; ids need not be sequential) and an
optional boolean ``void_mask`` whose pixels are removed from both images before
any overlap is computed.

Conventions
-----------
* An undefined ratio is ``nan``, never an exception and never a warning:
  :func:`pixel_accuracy` with no valid pixel, the IoU of a class absent from
  both ``true`` and ``pred`` (after removing void), and :func:`mean_iou` when
  every class is absent. Average over images with :func:`numpy.nanmean`.
* For a dataset-level IoU, sum :func:`confusion_matrix` over images and call
  :func:`iou_from_confusion` once; averaging per-image IoUs weights small
  images as much as large ones.
* Instance matching thresholds are rounded to 10 decimals, so the
  ``0.7000000000000002`` produced by ``np.arange(0.5, 1.0, 0.05)`` acts as
  exactly ``0.7`` and a match needs an IoU *strictly* greater than it.

:func:`forbid_classes` is the numpy twin of :func:`maskprep.torch.forbid_classes`.
"""

from maskprep.metrics.instance import (
    DSB2018_THRESHOLDS,
    MatchCounts,
    average_precision,
    iou_matrix,
    match_instances,
)
from maskprep.metrics.semantic import (
    check_classes,
    confusion_matrix,
    forbid_classes,
    iou_from_confusion,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
)

__all__ = [
    "DSB2018_THRESHOLDS",
    "MatchCounts",
    "average_precision",
    "check_classes",
    "confusion_matrix",
    "forbid_classes",
    "iou_from_confusion",
    "iou_matrix",
    "match_instances",
    "mean_iou",
    "per_class_iou",
    "pixel_accuracy",
]
