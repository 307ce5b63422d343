"""Tests for maskprep.metrics (numpy only)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from maskprep import metrics
from maskprep.metrics import (
    DSB2018_THRESHOLDS,
    average_precision,
    confusion_matrix,
    forbid_classes,
    iou_from_confusion,
    iou_matrix,
    match_instances,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
)

FAST = settings(max_examples=60, deadline=None, database=None)


def test_all_is_sorted_and_complete() -> None:
    assert sorted(metrics.__all__) == metrics.__all__
    for name in metrics.__all__:
        assert hasattr(metrics, name)


# ----------------------------------------------------------------------------- pixel accuracy


def test_pixel_accuracy_known() -> None:
    true = np.array([[0, 1, 1], [255, 2, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 0], [2, 2, 0]], dtype=np.uint8)
    assert pixel_accuracy(true, pred) == 3 / 4


def test_pixel_accuracy_void_ignored_whatever_pred() -> None:
    true = np.array([0, 1, 255, 255])
    a = pixel_accuracy(true, np.array([0, 1, 0, 0]))
    b = pixel_accuracy(true, np.array([0, 1, 7, 255]))
    assert a == b == 1.0


def test_pixel_accuracy_predicting_void_is_wrong() -> None:
    assert pixel_accuracy([0, 1], [255, 1]) == 0.5


def test_pixel_accuracy_no_valid_pixel_is_nan() -> None:
    assert np.isnan(pixel_accuracy(np.full((3, 3), 255), np.zeros((3, 3), int)))
    assert np.isnan(pixel_accuracy(np.zeros((0,), int), np.zeros((0,), int)))


def test_pixel_accuracy_custom_and_no_void() -> None:
    assert pixel_accuracy([0, 1, 9], [0, 0, 1], void_label=9) == 0.5
    assert pixel_accuracy([0, 1, 255], [0, 1, 1], void_label=None) == 2 / 3
    assert pixel_accuracy([0, 1, 255], [0, 1, 1], void_label=np.uint16(255)) == 1.0


@pytest.mark.parametrize(
    ("true", "pred", "match"),
    [
        (np.zeros(3, int), np.zeros(4, int), "same shape"),
        (np.zeros(3, float), np.zeros(3, int), "integer"),
        (np.zeros(3, int), np.zeros(3, np.float32), "integer"),
    ],
)
def test_pixel_accuracy_validation(true: np.ndarray, pred: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pixel_accuracy(true, pred)


def test_void_label_must_be_int() -> None:
    with pytest.raises(ValueError, match="void_label"):
        pixel_accuracy([0], [0], void_label=2.5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- confusion / IoU


def _confusion_brute(true: np.ndarray, pred: np.ndarray, c: int, void: int) -> np.ndarray:
    cm = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(true.ravel().tolist(), pred.ravel().tolist(), strict=True):
        if t != void:
            cm[t, p] += 1
    return cm


def test_confusion_known() -> None:
    true = np.array([[0, 0, 1], [2, 255, 1]])
    pred = np.array([[0, 1, 1], [0, 2, 1]])
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    cm = confusion_matrix(true, pred, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)


@FAST
@given(
    data=st.data(),
    c=st.integers(1, 5),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
)
def test_confusion_matches_brute_force(data: st.DataObject, c: int, shape: tuple[int, ...]) -> None:
    void = 255
    true = data.draw(hnp.arrays(np.uint8, shape, elements=st.sampled_from([*range(c), void])))
    pred = data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, c - 1)))
    # pred may hold anything (even void) where true is void
    pred = np.where(true == void, data.draw(st.sampled_from([0, void])), pred).astype(np.uint8)
    cm = confusion_matrix(true, pred, c, void)
    np.testing.assert_array_equal(cm, _confusion_brute(true, pred, c, void))
    assert cm.sum() == np.count_nonzero(true != void)
    acc = pixel_accuracy(true, pred, void)
    if cm.sum():
        assert acc == pytest.approx(np.trace(cm) / cm.sum())
    else:
        assert np.isnan(acc)


def test_confusion_validation() -> None:
    with pytest.raises(ValueError, match=r"non-void labels of true must lie in \[0, 2\)"):
        confusion_matrix([0, 2], [0, 0], 2)
    with pytest.raises(ValueError, match=r"pred on non-void pixels.*forbid"):
        confusion_matrix([0, 1], [0, 255], 2)
    with pytest.raises(ValueError, match="must lie in"):
        confusion_matrix([0, -1], [0, 0], 2)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        confusion_matrix([0], [0], 0)
    with pytest.raises(ValueError, match="num_classes must be an integer"):
        confusion_matrix([0], [0], 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix([[0, 1]], [0, 1], 2)


def test_void_label_inside_class_range() -> None:
    # e.g. a dataset where 0 means void: row 0 stays empty, class 0 IoU nan unless predicted
    true = np.array([0, 1, 2, 2])
    pred = np.array([2, 1, 2, 1])
    cm = confusion_matrix(true, pred, 3, void_label=0)
    np.testing.assert_array_equal(cm[0], [0, 0, 0])
    iou = per_class_iou(true, pred, 3, void_label=0)
    np.testing.assert_allclose(iou, [np.nan, 0.5, 0.5])


def test_per_class_iou_known() -> None:
    true = np.array([[0, 0, 0, 1], [1, 255, 255, 3]])
    pred = np.array([[0, 0, 1, 1], [1, 2, 3, 0]])
    # class 0: TP 2, FP 1 (pixel 7), FN 1 -> 2/4
    # class 1: TP 2, FP 1 -> 2/3 ; class 2: absent in both non-void -> nan
    # class 3: TP 0, FN 1 -> 0
    iou = per_class_iou(true, pred, 4)
    np.testing.assert_allclose(iou, [0.5, 2 / 3, np.nan, 0.0])
    assert mean_iou(true, pred, 4) == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)


def test_iou_predicted_but_absent_is_zero() -> None:
    np.testing.assert_array_equal(per_class_iou([0, 0], [0, 1], 3), [0.5, 0.0, np.nan])


def test_mean_iou_all_void_is_nan() -> None:
    assert np.isnan(mean_iou(np.full(4, 255), np.zeros(4, int), 3))


def test_iou_from_confusion_sum_over_images() -> None:
    rng = np.random.default_rng(0)
    imgs = [(rng.integers(0, 3, (5, 5)), rng.integers(0, 3, (5, 5))) for _ in range(3)]
    total = sum(confusion_matrix(t, p, 3) for t, p in imgs)
    stacked = per_class_iou(np.stack([t for t, _ in imgs]), np.stack([p for _, p in imgs]), 3)
    np.testing.assert_allclose(iou_from_confusion(total), stacked)


def test_iou_from_confusion_validation() -> None:
    with pytest.raises(ValueError, match="square"):
        iou_from_confusion(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        iou_from_confusion([[1, -1], [0, 1]])


# ----------------------------------------------------------------------------- forbid (numpy)


def test_forbid_classes_numpy() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    logits[:, 3] += 100.0  # class 3 would always win
    out = forbid_classes(logits, [3, 1])
    assert out.dtype == np.float32
    assert out is not logits
    assert np.all(np.isin(out.argmax(axis=1), [0, 2]))
    assert np.all(np.isneginf(out[:, [1, 3]]))
    np.testing.assert_array_equal(out[:, [0, 2]], logits[:, [0, 2]])
    assert np.all(np.isfinite(logits))  # input untouched
    e = np.exp(out - out.max(axis=1, keepdims=True))
    soft = e / e.sum(axis=1, keepdims=True)
    assert np.all(soft[:, [1, 3]] == 0.0)


def test_forbid_classes_numpy_axis_and_scalar() -> None:
    out = forbid_classes(np.zeros((3, 2)), np.int64(2), axis=0)
    assert np.isneginf(out[2]).all()
    assert (out[:2] == 0).all()
    out = forbid_classes(np.zeros((2, 3)), 0, axis=-1)
    assert np.isneginf(out[:, 0]).all()


@pytest.mark.parametrize(
    ("scores", "classes", "axis", "match"),
    [
        (np.zeros((1, 2)), [2], 1, r"\[0, 2\)"),
        (np.zeros((1, 2)), [-1], 1, r"\[0, 2\)"),
        (np.zeros((1, 2)), [0, 1], 1, "all 2 classes"),
        (np.zeros((1, 2), int), [0], 1, "floating"),
        (np.zeros((1, 2)), [0], 2, "axis"),
        (np.zeros((1, 2)), ["a"], 1, "integer"),
        (np.zeros((1, 2)), "a", 1, "int"),
    ],
)
def test_forbid_classes_numpy_validation(
    scores: np.ndarray, classes: object, axis: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        forbid_classes(scores, classes, axis=axis)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- iou_matrix


def _iou_brute(true: np.ndarray, pred: np.ndarray, void: np.ndarray | None) -> np.ndarray:
    keep = np.ones(true.shape, bool) if void is None else ~void
    t_ids = [i for i in np.unique(true[keep]).tolist() if i != 0]
    p_ids = [j for j in np.unique(pred[keep]).tolist() if j != 0]
    out = np.zeros((len(t_ids), len(p_ids)))
    for a, i in enumerate(t_ids):
        for b, j in enumerate(p_ids):
            ti = (true == i) & keep
            pj = (pred == j) & keep
            out[a, b] = np.count_nonzero(ti & pj) / np.count_nonzero(ti | pj)
    return out


def test_iou_matrix_known() -> None:
    true = np.array([[5, 5, 0, 0], [5, 5, 0, 9]])
    pred = np.array([[2, 2, 2, 0], [2, 0, 0, 0]])
    np.testing.assert_allclose(iou_matrix(true, pred), [[3 / 5], [0.0]])


def test_iou_matrix_empty() -> None:
    assert iou_matrix(np.zeros((2, 2), int), np.zeros((2, 2), int)).shape == (0, 0)
    assert iou_matrix(np.zeros((2, 2), int), np.ones((2, 2), int)).shape == (0, 1)
    assert iou_matrix(np.full((2, 2), 3), np.zeros((2, 2), int)).shape == (1, 0)
    assert iou_matrix(np.zeros((0, 4), int), np.zeros((0, 4), int)).shape == (0, 0)


@FAST
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=7),
    dtype=st.sampled_from([np.uint8, np.int32, np.uint16, np.int64]),
    use_void=st.booleans(),
)
def test_iou_matrix_matches_brute_force(
    data: st.DataObject, shape: tuple[int, ...], dtype: type, use_void: bool
) -> None:
    ids = st.sampled_from([0, 0, 1, 3, 4, 17, 200])  # non-sequential, with background
    true = data.draw(hnp.arrays(dtype, shape, elements=ids))
    pred = data.draw(hnp.arrays(dtype, shape, elements=ids))
    void = data.draw(hnp.arrays(np.bool_, shape)) if use_void else None
    got = iou_matrix(true, pred, void_mask=void)
    np.testing.assert_allclose(got, _iou_brute(true, pred, void), rtol=0, atol=1e-15)


def test_iou_matrix_validation() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        iou_matrix([[-1, 0]], [[0, 0]])
    with pytest.raises(ValueError, match="void_mask must be a boolean"):
        iou_matrix([[1, 0]], [[0, 0]], void_mask=[[1, 0]])
    with pytest.raises(ValueError, match="void_mask has shape"):
        iou_matrix([[1, 0]], [[0, 0]], void_mask=[True, False])
    with pytest.raises(ValueError, match="integer"):
        iou_matrix([[1.0, 0.0]], [[0, 0]])


# ----------------------------------------------------------------------------- AP (DSB2018)


def test_default_thresholds() -> None:
    expected = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]  # the decimal literals
    np.testing.assert_array_equal(DSB2018_THRESHOLDS, expected)
    assert DSB2018_THRESHOLDS[4] == 0.7
    assert not DSB2018_THRESHOLDS.flags.writeable


def test_ap_iou_exactly_half_is_not_a_match() -> None:
    true = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 1, 1, 1]])
    assert iou_matrix(true, pred)[0, 0] == 0.5
    assert average_precision(true, pred) == 0.0
    assert average_precision(true, pred, thresholds=np.arange(0.5, 1.0, 0.05)) == 0.0
    m = match_instances(true, pred, thresholds=[0.49, 0.5])
    np.testing.assert_array_equal(m.tp, [1, 0])
    np.testing.assert_array_equal(m.fp, [0, 1])
    np.testing.assert_array_equal(m.fn, [0, 1])


def test_ap_iou_exactly_point_seven_with_noisy_thresholds() -> None:
    true = np.zeros((1, 12), int)
    true[0, :10] = 4
    pred = np.zeros((1, 12), int)
    pred[0, :7] = 8  # IoU = 7/10 exactly
    assert iou_matrix(true, pred)[0, 0] == 7 / 10
    raw = np.arange(0.5, 1.0, 0.05)
    assert raw[4] != 0.7  # 0.7000000000000002: the reason thresholds are rounded
    m = match_instances(true, pred, thresholds=raw)
    np.testing.assert_array_equal(m.tp, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    assert average_precision(true, pred, thresholds=raw) == 0.4
    # a threshold a hair *below* 0.7 must not accept IoU == 0.7 either
    below = 0.7 - 2e-16
    assert below < 0.7
    assert average_precision(true, pred, thresholds=[below]) == 0.0
    assert average_precision(true, pred, thresholds=[0.6999]) == 1.0


def test_ap_non_sequential_perfect() -> None:
    true = np.array([[0, 10, 10, 0], [300, 0, 0, 7], [300, 0, 0, 7]], dtype=np.uint16)
    pred = np.array([[0, 1, 1, 0], [2, 0, 0, 3], [2, 0, 0, 3]], dtype=np.uint8)
    assert average_precision(true, pred) == 1.0
    assert average_precision(pred, true) == 1.0
    m = match_instances(true, pred)
    assert (m.n_true, m.n_pred) == (3, 3)
    np.testing.assert_array_equal(m.tp, 3)


def test_ap_both_empty_and_one_empty() -> None:
    z = np.zeros((4, 4), np.int32)
    obj = z.copy()
    obj[1:3, 1:3] = 5
    assert average_precision(z, z) == 1.0
    np.testing.assert_array_equal(match_instances(z, z).score, 1.0)
    assert average_precision(obj, z) == 0.0  # everything missed
    assert average_precision(z, obj) == 0.0  # only false positives
    m = match_instances(z, obj)
    np.testing.assert_array_equal(m.fp, 1)
    np.testing.assert_array_equal(m.fn, 0)


def test_ap_known_mixed_case() -> None:
    # true: A (4 px), B (2 px), C (1 px); pred: a = A minus 1 px (IoU 3/4),
    # b covers B plus 2 px of background (IoU 1/2), d false positive
    true = np.array([[1, 1, 1, 1, 0, 2, 2, 0, 0, 3, 0, 0]])
    pred = np.array([[6, 6, 6, 0, 5, 5, 5, 5, 0, 0, 0, 9]])
    iou = iou_matrix(true, pred)
    np.testing.assert_allclose(iou, [[0, 0.75, 0], [0.5, 0, 0], [0, 0, 0]])
    m = match_instances(true, pred, thresholds=[0.5, 0.7, 0.75])
    np.testing.assert_array_equal(m.tp, [1, 1, 0])
    np.testing.assert_array_equal(m.fp, [2, 2, 3])
    np.testing.assert_array_equal(m.fn, [2, 2, 3])
    np.testing.assert_allclose(m.score, [1 / 5, 1 / 5, 0])
    assert average_precision(true, pred, thresholds=[0.5, 0.7, 0.75]) == pytest.approx(2 / 15)


def test_ap_void_ignored() -> None:
    true = np.array([[1, 1, 0, 0, 2, 2]])
    pred = np.array([[1, 1, 1, 1, 0, 0]])  # pred spills into an unlabelled zone; 2 unlabelled too
    void = np.array([[False, False, True, True, True, True]])
    assert average_precision(true, pred) == 0.0
    assert average_precision(true, pred, void_mask=void) == 1.0
    m = match_instances(true, pred, void_mask=void)
    assert (m.n_true, m.n_pred) == (1, 1)  # object 2 lies entirely in the void
    # void pixels carry any value: changing them changes nothing
    pred2 = pred.copy()
    pred2[void] = 77
    assert average_precision(true, pred2, void_mask=void) == 1.0


def test_ap_low_threshold_uses_one_to_one_matching() -> None:
    # one true object overlapped by two predictions with IoU 0.4 each
    true = np.array([[1, 1, 1, 1, 1, 0, 0]])
    pred = np.array([[2, 2, 0, 3, 3, 0, 0]])
    np.testing.assert_allclose(iou_matrix(true, pred), [[0.4, 0.4]])
    m = match_instances(true, pred, thresholds=[0.3])
    assert (m.tp[0], m.fp[0], m.fn[0]) == (1, 1, 0)


def _max_matching_brute(matches: np.ndarray) -> int:
    n_t, n_p = matches.shape
    best = 0
    for perm in itertools.permutations(range(max(n_t, n_p)), n_t) if n_t <= n_p else []:
        best = max(best, sum(bool(matches[i, j]) for i, j in enumerate(perm)))
    if n_t > n_p:
        return _max_matching_brute(matches.T)
    return best


@FAST
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5),
    thresholds=st.lists(st.floats(0, 1), min_size=1, max_size=4),
)
def test_match_instances_against_brute_force(
    data: st.DataObject, shape: tuple[int, ...], thresholds: list[float]
) -> None:
    ids = st.sampled_from([0, 2, 5, 9])
    true = data.draw(hnp.arrays(np.int32, shape, elements=ids))
    pred = data.draw(hnp.arrays(np.int32, shape, elements=ids))
    iou = _iou_brute(true, pred, None)
    m = match_instances(true, pred, thresholds=thresholds)
    for k, t in enumerate(np.round(thresholds, 10)):
        tp = _max_matching_brute(iou > t)
        assert m.tp[k] == tp
        assert m.fp[k] == iou.shape[1] - tp
        assert m.fn[k] == iou.shape[0] - tp
    if iou.size == 0 and iou.shape == (0, 0):
        assert np.all(m.score == 1.0)
    assert 0.0 <= average_precision(true, pred, thresholds) <= 1.0


@pytest.mark.parametrize(
    ("thresholds", "match"),
    [
        ([], "non-empty"),
        ([1.5], r"\[0, 1\]"),
        ([np.nan], r"\[0, 1\]"),
        ([[0.5]], "1D"),
        (["a"], "numbers"),
    ],
)
def test_threshold_validation(thresholds: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        average_precision([[1]], [[1]], thresholds=thresholds)  # type: ignore[arg-type]
