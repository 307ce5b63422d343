"""Semantic metrics over integer label images; pixels whose true label is void never count."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any, SupportsIndex

import numpy as np
import numpy.typing as npt

from maskprep.metrics._checks import _as_int, _label_pair, _void_int


def _valid(true: np.ndarray, void_label: int | None) -> np.ndarray:
    if void_label is None:
        return np.ones(true.shape, dtype=bool)
    return np.asarray(true != void_label)


def check_classes(classes: SupportsIndex | Iterable[SupportsIndex], num_classes: int) -> list[int]:
    """Validate class channel indices and return them sorted, without duplicates.

    The check behind :func:`forbid_classes` and :func:`maskprep.torch.forbid_classes`:
    every index must name one of the ``num_classes`` channels, and at least
    one channel must stay allowed.

    Parameters
    ----------
    classes : int or iterable of int
        Channel indices; anything with ``__index__`` (numpy integers too).
    num_classes : int
        Number of channels ``C``.

    Returns
    -------
    list of int
        The distinct indices, ascending.

    Raises
    ------
    ValueError
        If ``classes`` is neither an int nor an iterable of ints (a string is
        neither), an index is outside ``[0, num_classes)``, or every class is given.

    Examples
    --------
    >>> check_classes([2, 0, 2], num_classes=3)
    [0, 2]
    >>> check_classes(1, num_classes=3)
    [1]
    >>> check_classes([0, 1], num_classes=2)
    Traceback (most recent call last):
    ...
    ValueError: cannot forbid all 2 classes: nothing would be left
    """
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
    cls = check_classes(classes, arr.shape[ax])
    out = arr.copy()
    index: list[Any] = [slice(None)] * arr.ndim
    index[ax] = cls
    out[tuple(index)] = -np.inf
    return out


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
