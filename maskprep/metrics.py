"""Segmentation metrics that honour the void label (numpy only).

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

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, SupportsIndex

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_bipartite_matching

__all__ = [
    "DSB2018_THRESHOLDS",
    "MatchCounts",
    "average_precision",
    "confusion_matrix",
    "forbid_classes",
    "iou_from_confusion",
    "iou_matrix",
    "match_instances",
    "mean_iou",
    "per_class_iou",
    "pixel_accuracy",
]

#: IoU thresholds of the Kaggle Data Science Bowl 2018 metric, 0.5 to 0.95 in
#: steps of 0.05, already rounded to 10 decimals (read-only).
DSB2018_THRESHOLDS: npt.NDArray[np.float64] = np.round(np.arange(0.5, 1.0, 0.05), 10)
DSB2018_THRESHOLDS.setflags(write=False)

_THRESHOLD_DECIMALS = 10


# --------------------------------------------------------------------------- validation


def _as_labels(x: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must have an integer (or bool) dtype, got {arr.dtype}")
    return arr


def _label_pair(true: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels(true, "true")
    p = _as_labels(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"true and pred must have the same shape, got {t.shape} and {p.shape}")
    return t, p


def _as_int(value: SupportsIndex, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _void_int(void_label: SupportsIndex | None) -> int | None:
    return None if void_label is None else _as_int(void_label, "void_label")


def _valid(true: np.ndarray, void_label: int | None) -> np.ndarray:
    if void_label is None:
        return np.ones(true.shape, dtype=bool)
    return np.asarray(true != void_label)


def _check_classes(classes: SupportsIndex | Iterable[SupportsIndex], num_classes: int) -> list[int]:
    """Validate class indices against ``num_classes``; shared with ``maskprep.torch``."""
    try:
        items = [operator.index(classes)]  # type: ignore[arg-type]
    except TypeError:
        if not isinstance(classes, Iterable) or isinstance(classes, (str, bytes)):
            raise ValueError(f"classes must be an int or ints, got {classes!r}") from None
        items = [_as_int(c, "classes") for c in classes]
    out = sorted(set(items))
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad:
        raise ValueError(
            f"classes {bad} are not channel indices in [0, {num_classes}); a void label such "
            "as 255 that has no channel needs no forbidding"
        )
    if len(out) == num_classes:
        raise ValueError(f"cannot forbid all {num_classes} classes: nothing would be left")
    return out


# --------------------------------------------------------------------------- forbid


def forbid_classes(
    scores: npt.ArrayLike,
    classes: SupportsIndex | Iterable[SupportsIndex],
    axis: int = 1,
) -> np.ndarray:
    """Return a copy of ``scores`` with the channels ``classes`` set to ``-inf``.

    Apply it to logits before ``argmax``/``softmax`` so that a class the model
    must never predict (for example a void *channel*) can never win and gets a
    softmax probability of exactly 0. See :func:`maskprep.torch.forbid_classes`
    for why a zero class weight in the loss does not achieve this.

    Parameters
    ----------
    scores : array_like of float
        Logits or scores with channels along ``axis``.
    classes : int or iterable of int
        Channel indices in ``[0, C)`` to forbid; not all of them.
    axis : int, default 1
        Channel axis (1 for ``(N, C, *spatial)``; use 0 for ``(C, *spatial)``).

    Returns
    -------
    numpy.ndarray
        New array, same shape and dtype as ``scores``.

    Raises
    ------
    ValueError
        If ``scores`` is not floating point, ``axis`` is out of range, a class is
        outside ``[0, C)``, or every class would be forbidden.

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.array([[[3.0], [1.0], [2.0]]])   # (N=1, C=3, W=1)
    >>> safe = forbid_classes(logits, [0])
    >>> safe.argmax(axis=1).tolist()
    [[2]]
    >>> safe[0, :, 0].tolist()
    [-inf, 1.0, 2.0]
    """
    arr = np.asarray(scores)
    if arr.dtype.kind != "f":
        raise ValueError(f"scores must be floating point to hold -inf, got {arr.dtype}")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis {axis} is out of range for scores of shape {arr.shape}")
    ax = axis % arr.ndim
    cls = _check_classes(classes, arr.shape[ax])
    out = arr.copy()
    index: list[Any] = [slice(None)] * arr.ndim
    index[ax] = cls
    out[tuple(index)] = -np.inf
    return out


# --------------------------------------------------------------------------- semantic


def pixel_accuracy(
    true: npt.ArrayLike, pred: npt.ArrayLike, void_label: SupportsIndex | None = 255
) -> float:
    """Fraction of non-void pixels where ``pred`` equals ``true``.

    Parameters
    ----------
    true, pred : array_like of int
        Label images of the same shape. Only ``true`` decides what is void; a
        prediction equal to ``void_label`` on a valid pixel simply counts as wrong.
    void_label : int or None, default 255
        Label of pixels to ignore (pass the dataset's ``void_label``); ``None``
        means every pixel counts.

    Returns
    -------
    float
        Accuracy in ``[0, 1]``, or ``nan`` if there is no valid pixel (an
        all-void or empty image has no defined accuracy; use ``np.nanmean``
        across images).

    Examples
    --------
    >>> pixel_accuracy([[0, 1, 255]], [[0, 0, 1]])
    0.5
    >>> pixel_accuracy([[255, 255]], [[0, 1]])
    nan
    """
    t, p = _label_pair(true, pred)
    valid = _valid(t, _void_int(void_label))
    n = int(np.count_nonzero(valid))
    if n == 0:
        return float("nan")
    return int(np.count_nonzero(t[valid] == p[valid])) / n


def confusion_matrix(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    num_classes: SupportsIndex,
    void_label: SupportsIndex | None = 255,
) -> npt.NDArray[np.int64]:
    """Confusion matrix over non-void pixels, ``cm[i, j]`` = #pixels with true ``i``, pred ``j``.

    Built with one :func:`numpy.bincount`. Pixels whose ``true`` label is
    ``void_label`` are skipped whatever ``pred`` holds there.

    Parameters
    ----------
    true, pred : array_like of int
        Label images of the same shape. Every non-void label of ``true`` and
        every ``pred`` label on a non-void pixel must lie in ``[0, num_classes)``.
    num_classes : int
        Number of classes ``C`` (>= 1).
    void_label : int or None, default 255
        Label to ignore; ``None`` means none. It may also be a class index (for
        example 0), in which case that row stays zero.

    Returns
    -------
    numpy.ndarray of int64, shape (C, C)
        Rows are true classes, columns predicted classes (the scikit-learn
        convention). Sum it over images for dataset-level metrics.

    Raises
    ------
    ValueError
        On shape mismatch, non-integer labels, ``num_classes < 1``, or labels out
        of range (including a model that predicted the void label).

    Examples
    --------
    >>> confusion_matrix([0, 0, 1, 255], [0, 1, 1, 1], num_classes=2)
    array([[1, 1],
           [0, 1]])
    """
    t, p = _label_pair(true, pred)
    c = _as_int(num_classes, "num_classes")
    if c < 1:
        raise ValueError(f"num_classes must be >= 1, got {c}")
    valid = _valid(t, _void_int(void_label))
    tv, pv = t[valid], p[valid]
    for name, v in (("true", tv), ("pred", pv)):
        if v.size and (v.min() < 0 or v.max() >= c):
            bad = np.unique(v[(v < 0) | (v >= c)])[:5].tolist()
            where = "non-void labels of true" if name == "true" else "pred on non-void pixels"
            raise ValueError(
                f"{where} must lie in [0, {c}), found {bad}"
                + (
                    " (forbid the void class at inference, see forbid_classes)"
                    if name == "pred"
                    else f" (is void_label={void_label!r} right?)"
                )
            )
    codes = tv.astype(np.int64) * c + pv.astype(np.int64)
    return np.bincount(codes.ravel(), minlength=c * c).astype(np.int64).reshape(c, c)


def iou_from_confusion(cm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per-class IoU ``TP / (TP + FP + FN)`` from a (summed) confusion matrix.

    Parameters
    ----------
    cm : array_like, shape (C, C)
        Confusion matrix, rows true and columns predicted, as returned by
        :func:`confusion_matrix` (possibly summed over images).

    Returns
    -------
    numpy.ndarray of float64, shape (C,)
        IoU per class; ``nan`` for a class absent from both true and predicted
        labels (its union is empty).

    Examples
    --------
    >>> iou_from_confusion([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    array([0.5, 0.5, nan])
    """
    m = np.asarray(cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cm must be a square 2D matrix, got shape {m.shape}")
    if m.dtype.kind not in "iuf":
        raise ValueError(f"cm must be numeric, got {m.dtype}")
    m = m.astype(np.float64)
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueError("cm must hold finite, non-negative counts")
    tp = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - tp
    out = np.full(tp.shape, np.nan)
    np.divide(tp, union, out=out, where=union > 0)
    return out


def per_class_iou(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    num_classes: SupportsIndex,
    void_label: SupportsIndex | None = 255,
) -> npt.NDArray[np.float64]:
    """Intersection over union of each class, void pixels excluded.

    Parameters
    ----------
    true, pred, num_classes, void_label
        As in :func:`confusion_matrix`.

    Returns
    -------
    numpy.ndarray of float64, shape (num_classes,)
        IoU per class; ``nan`` for a class absent from both ``true`` and
        ``pred`` on non-void pixels (0/0, undefined -- skip it when averaging).
        A class predicted but never true has IoU 0.

    Examples
    --------
    >>> per_class_iou([0, 0, 1, 255], [0, 1, 1, 2], num_classes=3)
    array([0.5, 0.5, nan])
    """
    return iou_from_confusion(confusion_matrix(true, pred, num_classes, void_label))


def mean_iou(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    num_classes: SupportsIndex,
    void_label: SupportsIndex | None = 255,
) -> float:
    """Mean of :func:`per_class_iou` over the classes where it is defined.

    Returns
    -------
    float
        Mean IoU over classes present in ``true`` or ``pred`` (non-void pixels);
        ``nan`` if there is none (an all-void image).

    Examples
    --------
    >>> mean_iou([0, 0, 1, 255], [0, 1, 1, 2], num_classes=3)
    0.5
    >>> mean_iou([255, 255], [0, 1], num_classes=2)
    nan
    """
    iou = per_class_iou(true, pred, num_classes, void_label)
    defined = iou[~np.isnan(iou)]
    return float(defined.mean()) if defined.size else float("nan")


# --------------------------------------------------------------------------- instances


def _instance_pair(
    true: npt.ArrayLike, pred: npt.ArrayLike, void_mask: npt.ArrayLike | None
) -> tuple[np.ndarray, np.ndarray]:
    t, p = _label_pair(true, pred)
    for name, arr in (("true", t), ("pred", p)):
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise ValueError(f"{name} instance ids must be >= 0 (0 is background)")
    if void_mask is None:
        return t.ravel(), p.ravel()
    v = np.asarray(void_mask)
    if v.dtype != np.bool_:
        raise ValueError(f"void_mask must be a boolean array, got {v.dtype}")
    if v.shape != t.shape:
        raise ValueError(f"void_mask has shape {v.shape}, expected {t.shape} like true/pred")
    keep = ~v
    return t[keep], p[keep]


def _sequential(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to 0..n (0 stays background): returns (sorted foreground ids, codes)."""
    ids, inv = np.unique(x, return_inverse=True)
    inv = inv.astype(np.int64).ravel()
    if ids.size and ids[0] == 0:
        return ids[1:], inv
    return ids, inv + 1


def _iou_flat(t: np.ndarray, p: np.ndarray) -> npt.NDArray[np.float64]:
    t_ids, t_code = _sequential(t)
    p_ids, p_code = _sequential(p)
    nt, np_ = t_ids.size + 1, p_ids.size + 1
    # contingency[i, j] = #pixels with true code i and pred code j (row/col 0 = background)
    cont = np.bincount(t_code * np_ + p_code, minlength=nt * np_).reshape(nt, np_)
    area_t = cont.sum(axis=1)[1:, None]
    area_p = cont.sum(axis=0)[None, 1:]
    inter = cont[1:, 1:]
    # every foreground instance has area >= 1, so the union is never 0
    return (inter / (area_t + area_p - inter)).astype(np.float64)


def iou_matrix(
    true: npt.ArrayLike, pred: npt.ArrayLike, void_mask: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """IoU between every true and every predicted instance.

    Ids are made sequential (``np.unique`` inverse), then one
    :func:`numpy.bincount` builds the contingency table; no per-pair loop.

    Parameters
    ----------
    true, pred : array_like of int
        Instance label images of the same shape; 0 is background, other ids
        are non-negative and need not be sequential.
    void_mask : array_like of bool, optional
        Pixels to remove from both images before computing overlaps and areas.
        An instance lying entirely in the void disappears.

    Returns
    -------
    numpy.ndarray of float64, shape (n_true, n_pred)
        Row ``i`` is the ``i``-th smallest non-zero id of ``true`` (outside the
        void), column ``j`` likewise for ``pred``.

    Examples
    --------
    >>> true = [[7, 7, 0, 0]]
    >>> pred = [[3, 3, 3, 9]]
    >>> iou_matrix(true, pred)
    array([[0.66666667, 0.        ]])
    >>> iou_matrix(true, pred, void_mask=[[False, False, True, True]])
    array([[1.]])
    """
    t, p = _instance_pair(true, pred, void_mask)
    return _iou_flat(t, p)


@dataclass(frozen=True, eq=False)
class MatchCounts:
    """Per-threshold matching counts returned by :func:`match_instances`.

    Attributes
    ----------
    thresholds : numpy.ndarray of float64
        The thresholds used (rounded to 10 decimals).
    tp, fp, fn : numpy.ndarray of int64
        Matched true objects, unmatched predicted objects, unmatched true
        objects, per threshold.
    n_true, n_pred : int
        Number of true and predicted objects (outside the void).
    score : numpy.ndarray of float64
        ``tp / (tp + fp + fn)`` per threshold; 1.0 when both images are empty.
    """

    thresholds: npt.NDArray[np.float64]
    tp: npt.NDArray[np.int64]
    fp: npt.NDArray[np.int64]
    fn: npt.NDArray[np.int64]
    n_true: int
    n_pred: int
    score: npt.NDArray[np.float64]


def _thresholds(thresholds: npt.ArrayLike) -> npt.NDArray[np.float64]:
    th = np.atleast_1d(np.asarray(thresholds))
    if th.dtype.kind not in "iuf":
        raise ValueError(f"thresholds must be numbers, got dtype {th.dtype}")
    th = th.astype(np.float64)
    if th.ndim != 1 or th.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1D sequence, got shape {th.shape}")
    if not np.all(np.isfinite(th)) or np.any(th < 0) or np.any(th > 1):
        raise ValueError(f"thresholds must lie in [0, 1], got {th.tolist()}")
    return np.round(th, _THRESHOLD_DECIMALS)


def _n_matched(matches: np.ndarray) -> int:
    if matches.size == 0:
        return 0
    if matches.sum(axis=0).max() <= 1 and matches.sum(axis=1).max() <= 1:
        return int(np.count_nonzero(matches))  # already one-to-one (always so for t >= 0.5)
    pairing = maximum_bipartite_matching(csr_array(matches), perm_type="column")
    return int(np.count_nonzero(pairing >= 0))


def match_instances(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    thresholds: npt.ArrayLike = DSB2018_THRESHOLDS,
    void_mask: npt.ArrayLike | None = None,
) -> MatchCounts:
    """Match true and predicted instances at each IoU threshold and count TP/FP/FN.

    A true and a predicted object match at threshold ``t`` if their IoU is
    strictly greater than ``t`` (Kaggle Data Science Bowl 2018). For ``t >= 0.5``
    such matches are automatically one-to-one; below 0.5 an object may overlap
    several, and a one-to-one matching of maximum size is used.

    Parameters
    ----------
    true, pred : array_like of int
        Instance label images (0 = background); ids need not be sequential.
    thresholds : array_like of float, default ``DSB2018_THRESHOLDS``
        Values in ``[0, 1]``, rounded to 10 decimals before use so floating
        noise such as ``np.arange(0.5, 1.0, 0.05)[4] == 0.7000000000000002``
        behaves as the intended decimal (an IoU of exactly 0.7 does not match
        at 0.7, whether the threshold came out slightly above or below it).
    void_mask : array_like of bool, optional
        Pixels removed from both images first (see :func:`iou_matrix`).

    Returns
    -------
    MatchCounts

    Examples
    --------
    >>> true = [[1, 1, 1, 1, 0, 2]]
    >>> pred = [[5, 5, 5, 0, 0, 0]]     # IoU(1, 5) = 3/4; object 2 is missed
    >>> m = match_instances(true, pred, thresholds=[0.5, 0.75])
    >>> m.tp.tolist(), m.fp.tolist(), m.fn.tolist()
    ([1, 0], [0, 1], [1, 2])
    >>> m.score.tolist()
    [0.5, 0.0]
    """
    th = _thresholds(thresholds)
    iou = iou_matrix(true, pred, void_mask)
    n_true, n_pred = iou.shape
    tp = np.array([_n_matched(iou > t) for t in th], dtype=np.int64)
    fp = n_pred - tp
    fn = n_true - tp
    denom = tp + fp + fn
    score = np.ones(th.shape, dtype=np.float64)  # both empty: nothing to find, nothing found
    np.divide(tp, denom, out=score, where=denom > 0)
    return MatchCounts(th, tp, fp, fn, n_true, n_pred, score)


def average_precision(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    thresholds: npt.ArrayLike = DSB2018_THRESHOLDS,
    void_mask: npt.ArrayLike | None = None,
) -> float:
    """Kaggle DSB2018 instance score: mean over thresholds of TP / (TP + FP + FN).

    At each threshold a match needs IoU strictly greater than it (see
    :func:`match_instances`); the per-threshold scores are averaged. Ids are
    relabelled first, so non-sequential ids are fine, and pixels in
    ``void_mask`` are removed from both images before any IoU is computed.

    Parameters
    ----------
    true, pred : array_like of int
        Instance label images of the same shape (0 = background).
    thresholds : array_like of float, default ``DSB2018_THRESHOLDS``
        0.5, 0.55, ..., 0.95; rounded to 10 decimals.
    void_mask : array_like of bool, optional
        Pixels to ignore.

    Returns
    -------
    float
        Score in ``[0, 1]``. Both images empty gives 1.0 (nothing to find and
        nothing found); exactly one empty gives 0.0.

    Examples
    --------
    >>> average_precision([[4, 4, 0, 9]], [[1, 1, 0, 2]])   # perfect, other ids
    1.0
    >>> average_precision([[1, 1, 0, 0]], [[1, 1, 1, 1]])   # IoU exactly 0.5: no match
    0.0
    >>> average_precision([[0, 0]], [[0, 0]])
    1.0
    """
    return float(match_instances(true, pred, thresholds, void_mask).score.mean())
