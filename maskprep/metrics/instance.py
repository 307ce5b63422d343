"""Instance metrics: IoU between objects, matching at IoU thresholds, DSB2018 score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_bipartite_matching

from maskprep.metrics._checks import _label_pair

#: IoU thresholds of the Kaggle Data Science Bowl 2018 metric, 0.5 to 0.95 in
#: steps of 0.05, already rounded to 10 decimals (read-only).
DSB2018_THRESHOLDS: npt.NDArray[np.float64] = np.round(np.arange(0.5, 1.0, 0.05), 10)
DSB2018_THRESHOLDS.setflags(write=False)

_THRESHOLD_DECIMALS = 10


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
