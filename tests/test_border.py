"""Tests for maskprep.border_weights against the slow scipy oracle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import maskprep.targets.border as border_mod
from maskprep import border_weights, border_weights_reference

W0 = 10.0
# Truncation at the default tolerance (1e-6) costs at most 1e-6 * w0; the
# rest of the budget is float32 rounding.
ATOL = 1e-5 * W0


def touching_disks(
    shape: tuple[int, ...],
    n: int,
    radius: tuple[float, float],
    seed: int,
    spacing: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Random disks (balls in 3D) that overlap; overlaps go to the nearest centre.

    Splitting overlaps between neighbours makes them touch along a shared
    border, the case the border term is for. Disks may be cut by the image
    border.
    """
    rng = np.random.default_rng(seed)
    sp = np.ones(len(shape)) if spacing is None else np.asarray(spacing, dtype=float)
    grids = np.meshgrid(*[np.arange(s) * d for s, d in zip(shape, sp, strict=True)], indexing="ij")
    centres = rng.uniform(0, np.asarray(shape) * sp, size=(n, len(shape)))
    radii = rng.uniform(*radius, size=n)
    best = np.full(shape, np.inf)
    lab = np.zeros(shape, dtype=np.int32)
    for i, (c, r) in enumerate(zip(centres, radii, strict=True)):
        d = np.sqrt(sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True)))
        take = (d <= r) & (d < best)
        best[take] = d[take]
        lab[take] = i + 1
    return lab


METHODS = ("windowed", "separable")


def assert_close(labels: np.ndarray, **kwargs: object) -> np.ndarray:
    """Check the result against the oracle, with ``method`` as given or with every method.

    Returns the result of the method given, or of "auto".
    """
    ref_kwargs = {k: v for k, v in kwargs.items() if k not in ("tolerance", "threads", "method")}
    want = border_weights_reference(labels, w0=W0, **ref_kwargs)  # type: ignore[arg-type]
    methods = [kwargs.pop("method")] if "method" in kwargs else ["auto", *METHODS]
    results = []
    for method in methods:
        got = border_weights(labels, w0=W0, method=method, **kwargs)  # type: ignore[arg-type]
        assert got.dtype == np.float32
        assert got.shape == labels.shape
        err = float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0
        assert err <= ATOL, f"{method}: max abs error {err:.3g} > {ATOL:.3g}"
        results.append(got)
    return results[0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("region", ["background", "all"])
def test_touching_disks_match_reference(seed: int, region: str) -> None:
    lab = touching_disks((96, 120), 25, (4.0, 14.0), seed)
    assert len(np.unique(lab)) > 10
    # Neighbours really touch: some horizontally adjacent pixels differ and are both set.
    a, b = lab[:, 1:], lab[:, :-1]
    assert np.any((a != b) & (a > 0) & (b > 0))
    assert_close(lab, region=region)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("spacing", "sigma"),
    [(None, 1.5), (None, 3.0), ((1.0, 0.5, 0.5), 5.0), ((2.0, 0.7, 1.3), 4.0)],
)
def test_3d_blobs_match_reference(
    seed: int, spacing: tuple[float, float, float] | None, sigma: float
) -> None:
    lab = touching_disks((18, 30, 34), 14, (2.0, 7.0), seed, spacing)
    assert_close(lab, spacing=spacing, sigma=sigma)
    assert_close(lab, spacing=spacing, sigma=sigma, region="all")


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 1.0), (1.0, 3.0), (2.5, 0.4)])
def test_anisotropic_2d(spacing: tuple[float, float]) -> None:
    lab = touching_disks((60, 70), 12, (3.0, 10.0), 11)
    assert_close(lab, spacing=spacing, sigma=3.0)
    assert_close(lab, spacing=spacing, sigma=3.0, region="all")


def test_tall_instances_use_envelopes_along_z(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = touching_disks((40, 24, 26), 10, (3.0, 9.0), 5, (0.5, 1.0, 1.0))
    kwargs = {"spacing": (0.5, 1.0, 1.0), "sigma": 3.0, "region": "all", "method": "windowed"}
    expected = border_weights(lab, **kwargs)  # type: ignore[arg-type]
    # Force the per-column envelope path for every instance, then a mix.
    for brute_max in (0, 3):
        monkeypatch.setattr(border_mod, "_BRUTE_Z_MAX", brute_max)
        got = assert_close(lab, **kwargs)
        np.testing.assert_allclose(got, expected, atol=1e-6 * W0, rtol=0)


@pytest.mark.parametrize(
    ("rows_ratio", "brute_x_max"),
    # Every instance by the row minimum, by the column minimum, by envelopes;
    # then the defaults' mix on tall and wide shapes.
    [(1e18, 0), (-1e18, 10**9), (-1e18, 0), (border_mod._ROWS_RATIO, border_mod._BRUTE_X_MAX)],
)
def test_2d_kernel_choice(
    rows_ratio: float, brute_x_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(border_mod, "_ROWS_RATIO", rows_ratio)
    monkeypatch.setattr(border_mod, "_BRUTE_X_MAX", brute_x_max)
    lab = touching_disks((70, 80), 14, (2.0, 16.0), 12)
    assert_close(lab, spacing=(0.7, 1.2), sigma=3.0, method="windowed")
    assert_close(lab, sigma=4.0, region="all", method="windowed")
    # Tall and wide bars, rings and a comb (several runs per row), touching.
    shapes = np.zeros((90, 96), np.int32)
    shapes[2:88, 3:9] = 5
    shapes[5:85, 9:40] = 7
    yy, xx = np.mgrid[:90, :96]
    ring = (np.hypot(yy - 45, xx - 66) < 20) & (np.hypot(yy - 45, xx - 66) > 12)
    shapes[ring] = 9
    shapes[60:64, 40:95:3] = 11
    shapes[10:14, 44:90] = 13
    assert_close(shapes, sigma=3.0, method="windowed")
    assert_close(shapes, spacing=(1.3, 0.6), sigma=2.0, region="all", method="windowed")


@pytest.mark.parametrize("method", METHODS)
def test_zero_and_one_instance_give_zeros(method: str) -> None:
    for lab in (np.zeros((7, 9), np.int32), np.zeros((3, 4, 5), np.uint16)):
        assert not border_weights(lab, method=method).any()
        one = lab.copy()
        one[(1,) * lab.ndim] = 5
        assert not border_weights(one, method=method).any()
    everything = np.full((12, 13), 3, dtype=np.int64)
    assert not border_weights(everything, region="all", method=method).any()
    assert not border_weights(np.ones((1, 1), np.int32), method=method).any()
    assert border_weights(np.zeros((0, 4), np.int32), method=method).shape == (0, 4)


def test_two_instances() -> None:
    lab = np.zeros((40, 50), np.int32)
    lab[10:20, 5:15] = 1
    lab[25:30, 30:45] = 2
    w = assert_close(lab)
    assert w[22, 20] > 0
    assert assert_close(lab, region="all")[12, 12] > 0


def test_single_row_example() -> None:
    lab = np.array([[1, 0, 0, 0, 2]], dtype=np.int32)
    w = border_weights(lab, w0=1.0, sigma=2.0)
    np.testing.assert_allclose(w[0, 1:4], np.exp(-16 / 8), rtol=1e-6)
    assert w[0, 0] == 0 and w[0, 4] == 0
    w_all = border_weights(lab, w0=1.0, sigma=2.0, region="all")
    np.testing.assert_allclose(w_all, np.exp(-16 / 8), rtol=1e-6)


def test_objects_touching_the_border() -> None:
    lab = np.zeros((30, 40), np.int32)
    lab[0:6, 0:40] = 4  # along the whole top edge
    lab[24:30, 0:8] = 9  # a corner
    lab[10:20, 35:40] = 2  # the right edge
    assert_close(lab, sigma=4.0)
    assert_close(lab, sigma=4.0, region="all")


def test_many_instances_and_nonconvex_shapes() -> None:
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 40, size=(48, 52)).astype(np.int32)  # speckle: many tiny instances
    assert_close(lab, sigma=2.0)
    ring = np.zeros((40, 40), np.int32)
    yy, xx = np.mgrid[:40, :40]
    rr = np.hypot(yy - 20, xx - 20)
    ring[(rr > 8) & (rr < 12)] = 1  # a ring around a disk: concave, holes
    ring[rr < 4] = 2
    ring[(yy > 30) & (xx < 6)] = 3
    assert_close(ring, sigma=3.0, region="all")


@pytest.mark.parametrize(
    "ids",
    [(7, 1000, 2**31 - 1), (-5, 3, 2**40), (2**63 - 1, -(2**63), 1)],
)
def test_nonsequential_and_huge_ids(ids: tuple[int, int, int]) -> None:
    base = touching_disks((50, 60), 3, (8.0, 16.0), 2)
    lab = np.zeros(base.shape, dtype=np.int64)
    for old, new in zip((1, 2, 3), ids, strict=True):
        lab[base == old] = new
    got = assert_close(lab)
    np.testing.assert_array_equal(got, border_weights(base))
    np.testing.assert_array_equal(
        border_weights(lab, method="separable"), border_weights(base, method="separable")
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.uint64]
)
def test_integer_dtypes_agree(dtype: type, method: str) -> None:
    lab32 = touching_disks((40, 44), 9, (3.0, 9.0), 4)
    expected = border_weights(lab32, method=method)
    np.testing.assert_array_equal(border_weights(lab32.astype(dtype), method=method), expected)
    vol = touching_disks((10, 14, 16), 6, (2.0, 5.0), 4)
    np.testing.assert_array_equal(
        border_weights(vol.astype(dtype), sigma=3.0, method=method),
        border_weights(vol, sigma=3.0, method=method),
    )


@pytest.mark.parametrize("method", METHODS)
def test_bool_and_byte_order(method: str) -> None:
    lab = touching_disks((30, 30), 6, (3.0, 8.0), 8)
    np.testing.assert_array_equal(
        border_weights(lab.astype(">i4"), method=method),
        border_weights(lab.astype("<i4"), method=method),
    )
    two = np.zeros((10, 10), bool)
    two[2, 2] = True
    assert not border_weights(two, method=method).any()  # one instance at most


@pytest.mark.parametrize("method", METHODS)
def test_memory_layouts(method: str) -> None:
    def same_map(got: np.ndarray, want: np.ndarray) -> None:
        if method == "windowed":
            np.testing.assert_array_equal(got, want)
        else:
            # A transposed input is transformed with the axes in another
            # order: the same map up to float32 rounding.
            np.testing.assert_allclose(got, want, atol=1e-6 * W0, rtol=0)

    lab = touching_disks((37, 45), 10, (3.0, 9.0), 6)
    expected = border_weights(lab, spacing=(0.8, 1.3), method=method)
    fortran = np.asfortranarray(lab)
    same_map(border_weights(fortran, spacing=(0.8, 1.3), method=method), expected)
    big = np.zeros((74, 90), np.int32)
    big[::2, ::2] = lab
    np.testing.assert_array_equal(
        border_weights(big[::2, ::2], spacing=(0.8, 1.3), method=method), expected
    )
    same_map(border_weights(lab.T, spacing=(1.3, 0.8), method=method), expected.T)
    vol = touching_disks((8, 20, 22), 8, (2.0, 6.0), 6)
    kw = {"spacing": (2.0, 1.0, 0.5), "sigma": 3.0, "method": method}
    exp3 = border_weights(vol, **kw)  # type: ignore[arg-type]
    same_map(border_weights(np.asfortranarray(vol), **kw), exp3)  # type: ignore[arg-type]
    got3v = border_weights(vol[:, ::-1, :], **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got3v, exp3[:, ::-1, :])


@pytest.mark.parametrize("method", METHODS)
def test_single_slice_volume_matches_2d(method: str) -> None:
    lab = touching_disks((30, 34), 7, (3.0, 8.0), 9)
    np.testing.assert_array_equal(
        border_weights(lab[None], spacing=(4.0, 1.0, 0.5), method=method)[0],
        border_weights(lab, spacing=(1.0, 0.5), method=method),
    )
    assert_close(lab[None], spacing=(4.0, 1.0, 0.5))


@pytest.mark.parametrize("method", METHODS)
def test_tolerance_bounds_the_error(method: str) -> None:
    lab = touching_disks((60, 60), 12, (3.0, 10.0), 1)
    want = border_weights_reference(lab, w0=W0, sigma=4.0)
    for tol in (1e-2, 1e-4, 1e-8):
        got = border_weights(lab, w0=W0, sigma=4.0, tolerance=tol, method=method)
        assert np.abs(got - want).max() <= tol * W0 + 1e-6 * W0
    coarse = border_weights(lab, w0=W0, sigma=4.0, tolerance=1e-2, method=method)
    assert (coarse > 0).sum() < (want > 1e-6).sum()  # the cutoff really truncates


@pytest.mark.parametrize("method", METHODS)
def test_parameters_scale(method: str) -> None:
    lab = touching_disks((40, 40), 8, (3.0, 9.0), 2)
    assert not border_weights(lab, w0=0.0, method=method).any()
    np.testing.assert_allclose(
        border_weights(lab, w0=2.0, method=method),
        border_weights(lab, w0=1.0, method=method) * 2,
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("method", METHODS)
def test_deterministic(method: str) -> None:
    lab = touching_disks((80, 90), 20, (3.0, 12.0), 7)
    a = border_weights(lab, method=method)
    b = border_weights(lab, method=method)
    assert a.tobytes() == b.tobytes()
    vol = touching_disks((12, 20, 20), 10, (2.0, 6.0), 7)
    assert (
        border_weights(vol, method=method).tobytes() == border_weights(vol, method=method).tobytes()
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"instances": np.zeros(5, np.int32)}, "2D or 3D"),
        ({"instances": np.zeros((2, 2, 2, 2), np.int32)}, "2D or 3D"),
        ({"instances": np.zeros((4, 4), np.float32)}, "integer dtype"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"w0": -1.0}, "w0"),
        ({"region": "inside"}, "region"),
        ({"spacing": (1.0,)}, "spacing"),
        ({"spacing": (1.0, 0.0)}, "spacing"),
        ({"spacing": (1.0, float("inf"))}, "spacing"),
        ({"tolerance": 0.0}, "tolerance"),
        ({"tolerance": 1.0}, "tolerance"),
        ({"tolerance": -1e-3}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"threads": 0}, "threads"),
        ({"threads": 1.5}, "threads"),
        ({"method": "fast"}, "method"),
    ],
)
def test_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"instances": np.zeros((4, 4), np.int32)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        border_weights(**args)  # type: ignore[arg-type]


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_LABELS = st.sampled_from([0, 0, 0, 1, 2, 3, 7, 1000])
_REGIONS = st.sampled_from(["background", "all"])


def _labels(dtype: type, ndim: int, max_side: int) -> st.SearchStrategy[np.ndarray]:
    """``ndim``-D label images of ``dtype``, sides up to ``max_side``, values from _LABELS."""
    shapes = hnp.array_shapes(min_dims=ndim, max_dims=ndim, max_side=max_side)
    return hnp.arrays(dtype, shapes, elements=_LABELS)


def _spacings(ndim: int, low: float) -> st.SearchStrategy[tuple[float, ...]]:
    """Per-axis spacings in ``[low, 3]``."""
    return st.tuples(*(st.floats(low, 3.0) for _ in range(ndim)))


def _cases(
    labels: st.SearchStrategy[np.ndarray],
    spacing: st.SearchStrategy[tuple[float, ...]],
    sigma: st.SearchStrategy[float],
) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments of :func:`assert_close`: labels, spacing, sigma and either region."""
    return st.fixed_dictionaries(
        {"labels": labels, "spacing": spacing, "sigma": sigma, "region": _REGIONS}
    )


@_SETTINGS
@given(case=_cases(_labels(np.int32, 2, 14), _spacings(2, 0.3), st.floats(0.5, 6.0)))
def test_hypothesis_2d(case: dict[str, Any]) -> None:
    assert_close(**case)


@_SETTINGS
@given(case=_cases(_labels(np.uint16, 3, 7), _spacings(3, 0.3), st.floats(0.5, 6.0)))
def test_hypothesis_3d(case: dict[str, Any]) -> None:
    assert_close(**case)


@_SETTINGS
@given(
    lab=hnp.arrays(
        np.int64, hnp.array_shapes(min_dims=2, max_dims=3, max_side=9), elements=_LABELS
    ),
)
def test_hypothesis_matches_sequential_relabel(lab: np.ndarray) -> None:
    # Ids only matter through equality: relabelling 1..n must not change anything.
    _, seq = np.unique(lab, return_inverse=True)
    seq = seq.reshape(lab.shape).astype(np.int32)
    if lab.min() > 0:
        seq += 1  # keep "no background" images free of background
    np.testing.assert_array_equal(border_weights(lab), border_weights(seq))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("threads", [2, 3, 8])
@pytest.mark.parametrize(
    ("shape", "n", "spacing"),
    [
        ((96, 120), 30, None),
        ((20, 40, 36), 25, (1.0, 0.5, 0.5)),
        ((64, 64), 2, (0.7, 1.2)),
        ((30, 300), 12, None),
    ],
)
def test_threads_give_byte_identical_results(
    threads: int, shape: tuple[int, ...], n: int, spacing: tuple[float, ...] | None, method: str
) -> None:
    lab = touching_disks(shape, n, (3.0, 9.0), seed=threads, spacing=spacing)
    one = border_weights(lab, spacing=spacing, method=method)
    many = border_weights(lab, spacing=spacing, threads=threads, method=method)
    assert many.tobytes() == one.tobytes()
    assert_close(lab, spacing=spacing, threads=threads, method=method)


def _two_pass_2d(
    lab: np.ndarray, sigma: float, spacing: tuple[float, float], region: str
) -> np.ndarray:
    """The 2D windowed map by whole-image distance arrays, then exponents (no sweep)."""
    k = border_mod._k
    lab3, sp3, _ = border_mod._prepare(lab, spacing)
    ids, boxes = k.scan_boxes(lab3)
    cutoff = float(sigma * np.sqrt(2.0 * np.log(1e6)))
    grown = zip(sp3[1:], lab3.shape[1:], strict=True)
    my, mx = (int(min(np.ceil(cutoff / s), n)) for s, n in grown)
    d1 = np.full(lab3.shape[1:], np.inf, dtype=np.float32)
    d2 = np.full(lab3.shape[1:], np.inf, dtype=np.float32)
    rest = (border_mod._ROWS_RATIO, border_mod._BRUTE_X_MAX)
    k.windowed_2d(lab3, ids, boxes, sp3[1], sp3[2], my, mx, cutoff**2, d1, d2, *rest)
    flat1, flat2 = d1.reshape(-1), d2.reshape(-1)
    k.exponents(flat1, flat2, cutoff, float(np.log(W0)), 0.5 / sigma**2, region == "background")
    return np.exp(d1)


@pytest.mark.parametrize("region", ["background", "all"])
@pytest.mark.parametrize(
    ("shape", "n", "radius", "spacing", "sigma"),
    [
        ((96, 120), 30, (3.0, 9.0), (1.0, 1.0), 5.0),
        ((200, 64), 12, (4.0, 30.0), (1.0, 1.0), 3.0),  # the ring spans most rows
        ((80, 90), 20, (2.0, 12.0), (0.7, 1.3), 4.0),
        ((40, 300), 9, (2.0, 6.0), (2.0, 0.5), 2.0),
    ],
)
def test_sweep_equals_two_passes(
    region: str,
    shape: tuple[int, int],
    n: int,
    radius: tuple[float, float],
    spacing: tuple[float, float],
    sigma: float,
) -> None:
    """One thread's sweep (rows finished in a ring) is byte-identical to whole-image passes."""
    lab = touching_disks(shape, n, radius, seed=n, spacing=spacing)
    # Tall and wide instances too: every path of the 2D kernel writes into the ring.
    lab[5:70, 3:7] = 900
    lab[10:12, 20:60] = 901
    lab[: shape[0] // 2, -9:] = 902
    got = border_weights(lab, w0=W0, sigma=sigma, spacing=spacing, region=region, method="windowed")
    want = _two_pass_2d(lab, sigma, spacing, region)
    assert got.tobytes() == want.tobytes()
    assert np.count_nonzero(got) > 0


@_SETTINGS
@given(case=_cases(_labels(np.int32, 2, 24), _spacings(2, 0.3), st.floats(0.5, 6.0)))
def test_hypothesis_sweep_equals_two_passes(case: dict[str, Any]) -> None:
    lab, sp = case["labels"], case["spacing"]
    got = border_weights(
        lab, w0=W0, sigma=case["sigma"], spacing=sp, region=case["region"], method="windowed"
    )
    if len(np.unique(lab[lab != 0])) < 2:
        assert not got.any()
        return
    assert got.tobytes() == _two_pass_2d(lab, case["sigma"], sp, case["region"]).tobytes()


def test_merge_smallest_is_the_two_smallest_of_the_union() -> None:
    from maskprep import _kernels

    rng = np.random.default_rng(0)
    vals = rng.choice([0.0, 1.0, 2.0, 5.0, np.inf], size=(4, 500)).astype(np.float32)
    d1, d2 = np.sort(vals[:2], axis=0)
    e1, e2 = np.sort(vals[2:], axis=0)
    _kernels.merge_smallest(d1, d2, e1, e2)
    expected = np.sort(vals, axis=0)[:2]
    np.testing.assert_array_equal(d1, expected[0])
    np.testing.assert_array_equal(d2, expected[1])


_HUGE_LABELS = st.sampled_from([0, 0, 0, 1, 2, 3, 2**31 - 1, 2**32, 2**63 + 5, 2**64 - 1])


@_SETTINGS
@given(
    case=_cases(
        hnp.arrays(
            np.uint64, st.tuples(st.integers(1, 12), st.integers(1, 40)), elements=_HUGE_LABELS
        ),
        _spacings(2, 0.2),
        st.floats(0.3, 12.0),
    )
)
def test_hypothesis_separable_2d(case: dict[str, Any]) -> None:
    # Rows up to 40 pixels: not a multiple of the 16-pixel padding, and
    # sigma large enough for the cutoff to exceed the image.
    assert_close(**case, method="separable")


@_SETTINGS
@given(case=_cases(_labels(np.int16, 3, 8), _spacings(3, 0.2), st.floats(0.3, 8.0)))
def test_hypothesis_separable_3d(case: dict[str, Any]) -> None:
    assert_close(**case, method="separable")


@pytest.mark.parametrize(
    ("shape", "n", "spacing", "sigma"),
    [
        ((20, 300), 40, None, 5.0),  # several blocks of lines per row, and a short last one
        ((6, 33, 150), 30, (1.0, 0.5, 0.5), 4.0),
        ((40, 50), 15, (1e-3, 1e-3), 0.01),  # cutoff many thousand pixels: clipped
        ((40, 50), 15, (1e3, 1.0), 3.0),  # rows farther apart than the cutoff
        ((30, 40), 10, None, 60.0),  # cutoff beyond the image
    ],
)
def test_separable_edge_cases(
    shape: tuple[int, ...], n: int, spacing: tuple[float, ...] | None, sigma: float
) -> None:
    lab = touching_disks(shape, n, (2.0, 9.0), 21, spacing)
    for region in ("background", "all"):
        assert_close(lab, spacing=spacing, sigma=sigma, region=region)


def test_separable_matches_windowed() -> None:
    lab = touching_disks((64, 200), 60, (2.0, 8.0), 13)
    a = border_weights(lab, method="windowed")
    b = border_weights(lab, method="separable")
    np.testing.assert_allclose(a, b, atol=1e-6 * W0, rtol=0)


def test_auto_picks_separable_where_boxes_overlap_much() -> None:
    margins = [1, 26, 26]
    # 1024 boxes of 10 px in a 256^2 image: grown, they cover each pixel ~50 times.
    dense = np.array(
        [[0, 1, y, y + 10, x, x + 10] for y in range(0, 250, 8) for x in range(0, 250, 8)]
    )
    assert border_mod._cover((1, 256, 256), dense, margins) > border_mod._SEPARABLE_MIN_COVER_2D
    assert border_mod._choose_method((1, 256, 256), dense, margins) == "separable"
    sparse = dense[:3]
    assert border_mod._choose_method((1, 256, 256), sparse, margins) == "windowed"
    # auto gives exactly the chosen method's result, and the choice follows sigma.
    lab = touching_disks((60, 64), 40, (2.0, 5.0), 3)
    chosen = []
    for sigma in (0.5, 8.0):
        lab3, _, _ = border_mod._prepare(lab, (1.0, 1.0))
        _, boxes = border_mod._k.scan_boxes(lab3)
        cutoff = sigma * np.sqrt(2 * np.log(1e6))
        margins = [int(min(np.ceil(cutoff), n)) for n in lab3.shape]
        chosen.append(border_mod._choose_method(lab3.shape, boxes, margins))
        auto = border_weights(lab, sigma=sigma)
        assert auto.tobytes() == border_weights(lab, sigma=sigma, method=chosen[-1]).tobytes()
    assert chosen == ["windowed", "separable"]


def test_every_label_dtype_reaches_the_kernels_as_uint32(monkeypatch: pytest.MonkeyPatch) -> None:
    """One compiled variant per kernel: labels uint32 (uint64 only for ids beyond 2**32),
    boxes C-ordered in 2D and 3D alike."""
    seen: dict[str, list[tuple[str, np.dtype, bool]]] = {
        "windowed_2d_weights": [],
        "windowed_2d": [],
        "windowed_3d": [],
    }

    for name in seen:
        real = getattr(border_mod._k, name)

        def spy(
            lab: np.ndarray, ids: np.ndarray, boxes: np.ndarray, *rest: object, name=name, real=real
        ) -> None:
            seen[name].append((lab.dtype.str, ids.dtype, boxes.flags.c_contiguous))
            real(lab, ids, boxes, *rest)

        monkeypatch.setattr(border_mod._k, name, spy)
    lab = touching_disks((40, 44), 9, (3.0, 9.0), 4)
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint64, bool):
        border_weights(lab.astype(dtype), method="windowed")
        # Several threads take the two-pass kernel (windowed_2d), one the sweep.
        border_weights(lab.astype(dtype), method="windowed", threads=2)
    border_weights(
        touching_disks((10, 14, 16), 6, (2.0, 5.0), 4).astype(np.int16), method="windowed"
    )
    for calls in seen.values():
        assert calls
        assert {s[1] for s in calls} == {np.dtype(np.uint32)}
        assert all(s[2] for s in calls)
    big = lab.astype(np.int64) * 2**33
    assert border_mod._prepare(big, (1.0, 1.0))[0].dtype == np.uint64


def test_compile_kernels_reaches_every_kernel_a_build_uses() -> None:
    border_mod.compile_kernels()
    assert border_mod.kernels_compiled() in (True, False)  # a cache may be read-only
    for kernel in border_mod._kernels_used():
        assert kernel.signatures  # type: ignore[attr-defined]


ONE_SPECIALISATION = """
import numba, numpy as np
import maskprep._kernels._border as kernels
lab = np.zeros((1, 64, 64), np.uint32)
lab[0].reshape(-1)[::7] = np.arange(1, 587)  # 586 ids: the id table grows twice
kernels.scan_boxes(lab)
print(len(kernels._scan_rows.signatures))
"""


def test_scan_boxes_compiles_one_specialisation(tmp_path: Path) -> None:
    # A fresh interpreter and an empty numba cache: code loaded from a cache
    # lists no signatures, and this process has used other label dtypes.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", ONE_SPECIALISATION],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert out.stdout.split() == ["1"]
