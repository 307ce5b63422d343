"""Tests for maskprep.torch: void-aware weighted cross entropy and forbid_classes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

from maskprep import torch as mt  # noqa: E402
from maskprep.torch import (  # noqa: E402
    WeightedCrossEntropyLoss,
    forbid_classes,
    weighted_cross_entropy,
)

VOID = 255
FAST = settings(max_examples=40, deadline=None, database=None)


def _batch(
    seed: int,
    shape: tuple[int, ...] = (2, 3, 5, 4),
    void_frac: float = 0.3,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n, c, *spatial = shape
    logits = torch.randn(shape, generator=g, dtype=dtype) * 3
    labels = torch.randint(0, c, (n, *spatial), generator=g)
    void = torch.rand((n, *spatial), generator=g) < void_frac
    labels[void] = VOID
    weights = torch.rand((n, *spatial), generator=g, dtype=dtype) * 10 + 0.1
    weights[void] = 0.0  # maskprep's weight maps are 0 on void
    class_weights = torch.rand(c, generator=g, dtype=dtype) * 3 + 0.2
    return logits, labels, weights, class_weights


def _numpy_reference(
    logits: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None,
    class_weights: np.ndarray | None,
    ignore_index: int,
) -> float:
    """Pure numpy: per-pixel -log softmax[label], weighted mean over valid pixels."""
    c = logits.shape[1]
    z = np.moveaxis(logits, 1, -1).reshape(-1, c).astype(np.float64)
    y = labels.reshape(-1)
    valid = y != ignore_index
    z, y = z[valid], y[valid]
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(y.size), y]
    w = np.ones(y.size) if weights is None else weights.reshape(-1)[valid].astype(np.float64)
    if class_weights is not None:
        w = w * class_weights[y]
    return float((loss * w).sum() / w.sum()) if w.sum() > 0 else 0.0


def test_module_all() -> None:
    assert sorted(mt.__all__) == mt.__all__
    assert set(mt.__all__) == {
        "PatchDataset",
        "PatchLoader",
        "ShardDataset",
        "ShardIterableDataset",
        "WeightedCrossEntropyLoss",
        "collate_padded",
        "forbid_classes",
        "to_tensors",
        "weighted_cross_entropy",
    }


# ------------------------------------------------------------------- against direct computations


@pytest.mark.parametrize("use_w", [False, True])
@pytest.mark.parametrize("use_cw", [False, True])
def test_matches_cross_entropy_none_then_manual_reduction(use_w: bool, use_cw: bool) -> None:
    logits, labels, weights, cw = _batch(0)
    w = weights if use_w else None
    c = cw if use_cw else None
    got = weighted_cross_entropy(logits, labels, w, c, ignore_index=VOID)
    per_pixel = F.cross_entropy(logits, labels, reduction="none", ignore_index=VOID)
    valid = (labels != VOID).double()
    wt = torch.ones_like(per_pixel) if w is None else w.clone()
    if c is not None:
        wt = wt * c[labels.clamp(max=logits.shape[1] - 1)]
    expected = (per_pixel * wt * valid).sum() / (wt * valid).sum()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 5, 4), (1, 4, 3, 4, 5), (3, 2, 7), (5, 3)],
    ids=["2d", "3d", "1d", "no-spatial"],
)
def test_matches_numpy_reference(shape: tuple[int, ...]) -> None:
    logits, labels, weights, cw = _batch(1, shape)
    got = weighted_cross_entropy(logits, labels, weights, cw)
    ref = _numpy_reference(logits.numpy(), labels.numpy(), weights.numpy(), cw.numpy(), VOID)
    assert got.item() == pytest.approx(ref, rel=1e-12)


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    c=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    void_frac=st.sampled_from([0.0, 0.5, 1.0]),
    use_w=st.booleans(),
    use_cw=st.booleans(),
)
def test_property_matches_numpy(
    seed: int,
    c: int,
    spatial: list[int],
    void_frac: float,
    use_w: bool,
    use_cw: bool,
) -> None:
    logits, labels, weights, cw = _batch(seed, (2, c, *spatial), void_frac)
    w = weights if use_w else None
    cwt = cw if use_cw else None
    got = weighted_cross_entropy(logits, labels, w, cwt)
    ref = _numpy_reference(
        logits.numpy(),
        labels.numpy(),
        None if w is None else w.numpy(),
        None if cwt is None else cwt.numpy(),
        VOID,
    )
    assert np.isfinite(got.item())
    assert got.item() == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_plain_and_class_weighted_equal_torch_mean() -> None:
    logits, labels, _, cw = _batch(2)
    torch.testing.assert_close(
        weighted_cross_entropy(logits, labels), F.cross_entropy(logits, labels, ignore_index=VOID)
    )
    torch.testing.assert_close(
        weighted_cross_entropy(logits, labels, class_weights=cw),
        F.cross_entropy(logits, labels, weight=cw, ignore_index=VOID),
    )


def test_class_and_pixel_weights_combine_by_hand() -> None:
    # 3 valid pixels, uniform logits over C=2 -> l = log 2 everywhere; pick non-uniform logits
    logits = torch.tensor([[[0.0, 2.0, 1.0, 5.0], [1.0, 0.0, 1.0, -5.0]]], dtype=torch.float64)
    labels = torch.tensor([[0, 1, 1, VOID]])
    weights = torch.tensor([[2.0, 3.0, 0.5, 100.0]], dtype=torch.float64)
    cw = torch.tensor([1.0, 4.0], dtype=torch.float64)
    l0 = np.log1p(np.exp(1.0))  # -log softmax([0, 1])[0]
    l1 = np.log1p(np.exp(2.0))  # -log softmax([2, 0])[1]
    l2 = np.log(2.0)
    w = np.array([2.0 * 1, 3.0 * 4, 0.5 * 4])
    expected = (w * [l0, l1, l2]).sum() / w.sum()
    got = weighted_cross_entropy(logits, labels, weights, cw)
    assert got.item() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------- void handling


def test_void_pixels_get_exactly_zero_gradient() -> None:
    logits, labels, weights, cw = _batch(3)
    weights[labels == VOID] = 7.0  # a nonzero weight on void must still not count
    logits.requires_grad_(True)
    weighted_cross_entropy(logits, labels, weights, cw).backward()
    grad = logits.grad.movedim(1, -1)  # (N, *spatial, C)
    void = labels == VOID
    assert void.any()
    assert torch.all(grad[void] == 0)
    assert torch.all(grad[~void].abs().sum(-1) > 0)


def test_void_value_changes_nothing() -> None:
    logits, labels, weights, cw = _batch(4)
    base = weighted_cross_entropy(logits, labels, weights, cw)
    logits2, weights2 = logits.clone(), weights.clone()
    void = labels == VOID
    logits2.movedim(1, -1)[void] = torch.tensor(
        [1e6, float("-inf"), float("nan")], dtype=logits.dtype
    )
    weights2[void] = float("nan")
    got = weighted_cross_entropy(logits2, labels, weights2, cw)
    torch.testing.assert_close(got, base)


def test_all_void_is_zero_not_nan_and_backward_works() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    labels = torch.full((2, 4, 4), VOID)
    for kwargs in ({}, {"weights": torch.rand(2, 4, 4)}, {"class_weights": torch.ones(3)}):
        loss = weighted_cross_entropy(logits, labels, **kwargs)
        assert loss.item() == 0.0
        assert loss.requires_grad
        logits.grad = None
        loss.backward()
        assert torch.all(logits.grad == 0)
    assert torch.isnan(F.cross_entropy(logits, labels, ignore_index=VOID))  # what we avoid


def test_zero_total_weight_is_zero() -> None:
    logits = torch.randn(1, 2, 3, requires_grad=True)
    labels = torch.tensor([[0, 1, 0]])
    loss = weighted_cross_entropy(logits, labels, weights=torch.zeros(1, 3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)
    loss = weighted_cross_entropy(logits, labels, class_weights=torch.tensor([0.0, 0.0]))
    assert loss.item() == 0.0


def test_empty_batch() -> None:
    logits = torch.zeros(0, 3, 4, requires_grad=True)
    loss = weighted_cross_entropy(logits, torch.zeros(0, 4, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()


@pytest.mark.parametrize(
    "label_dtype", [torch.uint8, torch.int16, torch.int32, torch.int64, torch.uint16]
)
def test_void_label_beyond_num_classes_and_label_dtypes(label_dtype: torch.dtype) -> None:
    logits, labels, weights, cw = _batch(5, (2, 2, 6, 6))  # C=2, void 255
    expected = weighted_cross_entropy(logits, labels, weights, cw)
    got = weighted_cross_entropy(logits, labels.to(label_dtype), weights, cw)
    torch.testing.assert_close(got, expected)


def test_ignore_index_from_dataset_metadata() -> None:
    logits, labels, weights, _ = _batch(6)
    expected = weighted_cross_entropy(logits, labels, weights)
    for void_label in (np.uint8(255), np.int64(255), torch.tensor(255)):
        got = weighted_cross_entropy(logits, labels, weights, ignore_index=void_label)
        torch.testing.assert_close(got, expected)


def test_ignore_index_other_values() -> None:
    logits, labels, _, _ = _batch(7, (2, 3, 4, 4), void_frac=0.0)
    # a label value inside the class range can be the void (e.g. 0 means unlabelled)
    torch.testing.assert_close(
        weighted_cross_entropy(logits, labels, ignore_index=0),
        F.cross_entropy(logits, labels, ignore_index=0),
    )
    # None: nothing ignored
    torch.testing.assert_close(
        weighted_cross_entropy(logits, labels, ignore_index=None), F.cross_entropy(logits, labels)
    )
    labels[0, 0, 0] = -100  # torch's default ignore_index
    torch.testing.assert_close(
        weighted_cross_entropy(logits, labels, ignore_index=-100),
        F.cross_entropy(logits, labels),
    )


def test_half_precision_is_computed_in_float32() -> None:
    logits, labels, weights, cw = _batch(8, dtype=torch.float32)
    got = weighted_cross_entropy(logits.half(), labels, weights.half(), cw)
    assert got.dtype == torch.float32
    ref = weighted_cross_entropy(logits.half().float(), labels, weights.half().float(), cw)
    torch.testing.assert_close(got, ref)


def test_gradcheck() -> None:
    logits, labels, weights, cw = _batch(9, (1, 3, 3, 2))
    logits.requires_grad_(True)
    weights.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z, w: weighted_cross_entropy(z, labels, w, cw), (logits, weights)
    )


def test_works_with_forbidden_void_channel() -> None:
    # void label 0 *is* a channel: forbid it; void pixels gather channel 0 = -inf but add nothing
    logits, labels, _, _ = _batch(10, (2, 3, 4, 4), void_frac=0.0)  # labels 0, 1, 2
    assert (labels == 0).any()
    z = logits.clone().requires_grad_(True)
    loss = weighted_cross_entropy(forbid_classes(z, 0), labels, ignore_index=0)
    assert torch.isfinite(loss)
    # same as dropping channel 0 and shifting labels 1, 2 -> 0, 1
    keep = labels != 0
    ref = F.cross_entropy(logits[:, 1:].movedim(1, -1)[keep], labels[keep] - 1)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert torch.all(torch.isfinite(z.grad))
    assert torch.all(z.grad[:, 0] == 0)
    assert torch.all(z.grad.movedim(1, -1)[~keep] == 0)


# ------------------------------------------------------------------- validation


def test_validation_errors() -> None:
    logits = torch.zeros(2, 3, 4)
    labels = torch.zeros(2, 4, dtype=torch.long)
    cases = [
        ((logits.long(), labels), {}, "floating"),
        ((torch.zeros(3), torch.zeros(3, dtype=torch.long)), {}, r"\(N, C, \*spatial\)"),
        ((logits, labels.float()), {}, "integer dtype"),
        ((logits, labels.bool()), {}, "integer dtype"),
        ((logits, labels[:, :3]), {}, r"labels must have shape \(N, \*spatial\) = \(2, 4\)"),
        ((logits, labels), {"weights": torch.ones(2, 3)}, "weights must have the shape"),
        (
            (logits, labels),
            {"class_weights": torch.ones(2)},
            r"class_weights must have shape \(3,\)",
        ),
        ((logits, labels), {"ignore_index": 2.5}, "ignore_index must be an integer"),
        ((logits, labels), {"ignore_index": True}, "ignore_index must be an integer"),
        ((logits, labels + 3), {}, r"non-void labels must lie in \[0, 3\), found \[3\]"),
        ((logits, labels - 1), {}, r"found \[-1\]"),
        ((logits, labels + 255), {"ignore_index": 254}, "is ignore_index=254"),
        ((np.zeros((2, 3, 4)), labels), {}, "torch tensors"),
    ]
    for args, kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            weighted_cross_entropy(*args, **kwargs)


# ------------------------------------------------------------------- module wrapper


def test_module_wrapper() -> None:
    logits, labels, weights, cw = _batch(11)
    loss_fn = WeightedCrossEntropyLoss(class_weights=cw, ignore_index=np.uint8(VOID))
    assert loss_fn.ignore_index == VOID
    assert "class_weights" in loss_fn.state_dict()
    assert "ignore_index=255" in repr(loss_fn)
    torch.testing.assert_close(
        loss_fn(logits, labels, weights), weighted_cross_entropy(logits, labels, weights, cw)
    )
    cw[0] = 100.0  # the module keeps its own copy
    assert loss_fn.class_weights[0] != 100.0
    plain = WeightedCrossEntropyLoss()
    assert plain.class_weights is None
    torch.testing.assert_close(plain(logits, labels), weighted_cross_entropy(logits, labels))
    assert plain.double() is plain
    with pytest.raises(ValueError, match="1D"):
        WeightedCrossEntropyLoss(class_weights=torch.ones(2, 2))


# ------------------------------------------------------------------- forbid_classes


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    c=st.integers(2, 6),
    data=st.data(),
)
def test_forbid_never_argmax_and_softmax_zero(seed: int, c: int, data: st.DataObject) -> None:
    forbidden = data.draw(st.sets(st.integers(0, c - 1), min_size=1, max_size=c - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, c, 4, 5, generator=g) * 5
    logits[:, sorted(forbidden)] += 1e4  # forbidden classes would otherwise always win
    out = forbid_classes(logits, forbidden)
    pick = out.argmax(dim=1)
    assert not torch.isin(pick, torch.tensor(sorted(forbidden))).any()
    prob = out.softmax(dim=1)
    assert torch.all(prob[:, sorted(forbidden)] == 0)
    torch.testing.assert_close(prob.sum(dim=1), torch.ones(3, 4, 5))
    assert torch.isfinite(logits).all()  # input untouched


def test_forbid_gradient_and_shape() -> None:
    logits = torch.randn(2, 4, 3, requires_grad=True)
    out = forbid_classes(logits, [1, 3])
    assert out.shape == logits.shape
    assert out.dtype == logits.dtype
    assert out.data_ptr() != logits.data_ptr()
    out.softmax(dim=1)[:, 0].sum().backward()
    assert torch.all(logits.grad[:, [1, 3]] == 0)
    assert torch.all(logits.grad[:, [0, 2]].abs() > 0)


def test_forbid_dim_and_class_forms() -> None:
    logits = torch.zeros(2, 3)
    assert torch.isneginf(forbid_classes(logits, 2, dim=-1)[:, 2]).all()
    assert torch.isneginf(forbid_classes(logits, np.int64(1), dim=0)[1]).all()
    assert torch.isneginf(forbid_classes(logits, torch.tensor([0]), dim=1)[:, 0]).all()
    assert torch.isneginf(forbid_classes(logits, (0, 0), dim=1)[:, 0]).all()


def test_forbid_matches_numpy_twin() -> None:
    from maskprep.metrics import forbid_classes as np_forbid

    logits = torch.randn(2, 5, 3)
    np.testing.assert_array_equal(
        forbid_classes(logits, [0, 4]).numpy(), np_forbid(logits.numpy(), [0, 4])
    )


@pytest.mark.parametrize(
    ("classes", "dim", "match"),
    [
        ([3], 1, r"\[0, 3\)"),
        ([255], 1, "255"),
        ([0, 1, 2], 1, "all 3 classes"),
        ([0], 3, "dim"),
        (["x"], 1, "integer"),
    ],
)
def test_forbid_validation(classes: object, dim: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        forbid_classes(torch.zeros(1, 3, 2), classes, dim=dim)


def test_forbid_rejects_integer_logits() -> None:
    with pytest.raises(ValueError, match="floating"):
        forbid_classes(torch.zeros(1, 3, dtype=torch.long), [0])
