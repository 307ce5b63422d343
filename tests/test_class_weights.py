"""Tests of maskprep.weighting: exact class statistics and class-weight schemes."""

from __future__ import annotations

import json
import math
import statistics
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_class_weight

from maskprep.weighting import (
    NORMALIZATIONS,
    SCHEMES,
    ClassStats,
    ClassWeightConfig,
    ClassWeightWarning,
    class_weights,
    effective_number_beta,
)

# A small table: N = 125 labeled pixels, C = 3 classes, all present.
COUNTS = (100, 20, 5)
N = 125
# Labeled pixels of the images containing each class, and in how many images.
STATS = ClassStats(COUNTS, (125, 60, 40), (4, 2, 1), 4)


def _quiet(stats, config=None, **kw):
    """class_weights with ClassWeightWarning silenced; returns (weights, warnings)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        w = class_weights(stats, config, **kw)
    for r in rec:
        assert issubclass(r.category, ClassWeightWarning), r
    return w, rec


# --------------------------------------------------------------------------- #
# hand-computed values
# --------------------------------------------------------------------------- #

EB = 0.9  # explicit effective-number beta
_U_EXPLICIT = [(1 - EB) / (1 - EB**100), (1 - EB) / (1 - EB**20), (1 - EB) / (1 - EB**5)]
_B_DEFAULT = 1 - 3 / 125  # beta = 1 - C / N
_U_DEFAULT = [(1 - _B_DEFAULT) / (1 - _B_DEFAULT**n) for n in COUNTS]
_MED = 20 / 60  # median of the frequencies 100/125, 20/60, 5/40

HAND = [
    ({"scheme": "none"}, [1.0, 1.0, 1.0]),
    ({"scheme": "ratio"}, [125 / 100, 125 / 20, 125 / 5]),
    (
        {"scheme": "log-ratio"},
        [math.log(3 * 125 / 100), math.log(3 * 125 / 20), math.log(3 * 125 / 5)],
    ),
    (
        {"scheme": "log-ratio", "mu": 1.5},
        [math.log(1.5 * 125 / 100), math.log(1.5 * 125 / 20), math.log(1.5 * 125 / 5)],
    ),
    (
        {"scheme": "clamped"},
        [math.log(3 * 125 / 100), math.log(3 * 125 / 20), math.log(3 * 125 / 5)],
    ),
    # The Keras recipe's mu = 0.15: ln(0.1875) < 0 and ln(0.9375) < 0 clamp to 1.
    ({"scheme": "clamped", "mu": 0.15}, [1.0, 1.0, math.log(0.15 * 125 / 5)]),
    ({"scheme": "balanced"}, [125 / (3 * 100), 125 / (3 * 20), 125 / (3 * 5)]),
    (
        {"scheme": "median-frequency"},
        [_MED / (100 / 125), _MED / (20 / 60), _MED / (5 / 40)],
    ),
    (
        {"scheme": "enet"},
        [
            1 / math.log(1.02 + 100 / 125),
            1 / math.log(1.02 + 20 / 125),
            1 / math.log(1.02 + 5 / 125),
        ],
    ),
    (
        {"scheme": "enet", "enet_c": 1.5},
        [1 / math.log(1.5 + 100 / 125), 1 / math.log(1.5 + 20 / 125), 1 / math.log(1.5 + 5 / 125)],
    ),
    (
        {"scheme": "effective-number", "beta": EB},
        [3 * u / sum(_U_EXPLICIT) for u in _U_EXPLICIT],
    ),
    (
        {"scheme": "effective-number"},
        [3 * u / sum(_U_DEFAULT) for u in _U_DEFAULT],
    ),
]


@pytest.mark.parametrize(("options", "expected"), HAND, ids=[str(o) for o, _ in HAND])
def test_hand_computed_values(options, expected):
    w = class_weights(STATS, ClassWeightConfig(**options))
    assert w.dtype == np.float64
    assert w.shape == (3,)
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    if options["scheme"] != "median-frequency":  # plain counts give the same numbers
        np.testing.assert_allclose(class_weights(list(COUNTS), **options), expected, rtol=1e-12)


def test_median_frequency_exact_median_of_even_count():
    # freqs 50/80, 10/40, 10/50, 10/80 -> median (10/40 + 10/50) / 2
    stats = ClassStats((50, 10, 10, 10), (80, 40, 50, 80), (3, 1, 2, 3), 5)
    med = (10 / 40 + 10 / 50) / 2
    expected = [med / (50 / 80), med / (10 / 40), med / (10 / 50), med / (10 / 80)]
    np.testing.assert_allclose(
        class_weights(stats, scheme="median-frequency"), expected, rtol=1e-15
    )


def test_overrides_replace_config_fields():
    cfg = ClassWeightConfig(scheme="clamped", mu=0.15, normalize="mean")
    w = class_weights(COUNTS, cfg, scheme="ratio", normalize="none")
    np.testing.assert_allclose(w, [125 / 100, 125 / 20, 125 / 5], rtol=1e-15)
    assert class_weights(COUNTS, cfg)[0] == class_weights(COUNTS, cfg, mu=0.15)[0]


def test_default_scheme_is_balanced_and_accepts_arrays():
    for counts in (COUNTS, list(COUNTS), np.array(COUNTS), np.array(COUNTS, dtype=np.uint64)):
        np.testing.assert_array_equal(
            class_weights(counts), class_weights(counts, scheme="balanced")
        )


# --------------------------------------------------------------------------- #
# scikit-learn agreement
# --------------------------------------------------------------------------- #


def test_balanced_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.choice(6, size=20_000, p=[0.5, 0.25, 0.15, 0.06, 0.035, 0.005])
    classes = np.arange(6)
    assert set(np.unique(y)) == set(classes.tolist())
    expected = compute_class_weight("balanced", classes=classes, y=y)
    got = class_weights(np.bincount(y, minlength=6), scheme="balanced")
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_balanced_matches_sklearn_from_label_images_with_void():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 5, size=(9, 11)) for _ in range(4)]
    for img in images:
        img[rng.random(img.shape) < 0.2] = 255  # void
    stats = ClassStats.from_label_images(images, num_classes=5, void_label=255)
    y = np.concatenate([img[img != 255] for img in images])
    expected = compute_class_weight("balanced", classes=np.arange(5), y=y)
    np.testing.assert_allclose(class_weights(stats), expected, rtol=1e-14)


# --------------------------------------------------------------------------- #
# absent classes, degenerate data
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("scheme", SCHEMES)
def test_absent_class_gets_zero_with_one_warning(scheme):
    stats = ClassStats((100, 0, 20, 5, 0), (125, 0, 60, 40, 0), (4, 0, 2, 1, 0), 4)
    names = ["road", "bicycle", "car", "person", "train"]
    with pytest.warns(ClassWeightWarning, match=r"'bicycle' \(1\), 'train' \(4\)") as rec:
        w = class_weights(stats, scheme=scheme, class_names=names)
    assert len(rec) == 1
    assert w[1] == 0.0
    assert w[4] == 0.0
    assert np.all(np.isfinite(w))
    assert np.all(w[[0, 2, 3]] > 0)
    # present classes weigh exactly as if the absent ones were never declared
    np.testing.assert_allclose(w[[0, 2, 3]], class_weights(STATS, scheme=scheme), rtol=1e-12)


def test_absent_warning_without_names_lists_indices():
    with pytest.warns(ClassWeightWarning, match=r"2 of 4 classes .*: 1, 3$"):
        class_weights([5, 0, 7, 0])


def test_absent_warning_truncates_long_lists():
    counts = [1] + [0] * 30
    with pytest.warns(ClassWeightWarning, match="and 10 more"):
        class_weights(counts)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_all_absent_gives_zeros_and_a_warning(scheme):
    stats = ClassStats((0, 0, 0), (0, 0, 0), (0, 0, 0), 7)  # seven all-void images
    with pytest.warns(ClassWeightWarning, match="no labeled pixels at all") as rec:
        w = class_weights(stats, scheme=scheme, normalize="mean")
    assert len(rec) == 1
    np.testing.assert_array_equal(w, np.zeros(3))
    if scheme != "median-frequency":
        with pytest.warns(ClassWeightWarning, match="no labeled pixels at all"):
            np.testing.assert_array_equal(class_weights([0, 0], scheme=scheme), np.zeros(2))


SINGLE = {
    "none": 1.0,
    "ratio": 1.0,
    "clamped": 1.0,
    "balanced": 1.0,
    "median-frequency": 1.0,
    "enet": 1 / math.log(1.02 + 1),
    "effective-number": 1.0,
}


@pytest.mark.parametrize("scheme", sorted(SINGLE))
def test_single_class(scheme):
    stats = ClassStats((42,), (42,), (3,), 3)
    w = class_weights(stats, scheme=scheme)
    np.testing.assert_allclose(w, [SINGLE[scheme]], rtol=1e-15)


def test_single_class_log_ratio_is_zero_and_warns():
    # ln(mu * N / n) with mu = C = 1 and n = N is ln(1) = 0: finite, but useless.
    with pytest.warns(ClassWeightWarning, match="weight 0") as rec:
        w = class_weights([42], scheme="log-ratio", normalize="mean")
    assert len(rec) == 1
    np.testing.assert_array_equal(w, [0.0])
    np.testing.assert_allclose(class_weights([42], scheme="log-ratio", mu=2.0), [math.log(2)])


def test_effective_number_beta_one_pixel_per_class():
    # N == C gives beta = 0: every class has one pixel, so all weights are equal.
    assert effective_number_beta([1, 1, 0, 1]) == 0.0
    w, rec = _quiet([1, 1, 0, 1], scheme="effective-number")
    assert len(rec) == 1
    np.testing.assert_array_equal(w, [1.0, 1.0, 0.0, 1.0])


def test_effective_number_beta_rule():
    assert effective_number_beta(STATS) == 1 - 3 / 125
    assert effective_number_beta([600, 0, 300, 100]) == 1 - 3 / 1000
    with pytest.raises(ValueError, match="no labeled pixels"):
        effective_number_beta([0, 0])


def test_effective_number_default_is_resolution_invariant():
    counts = np.array([3_000_000, 400_000, 25_000, 900])
    w1 = class_weights(counts, scheme="effective-number")
    w2 = class_weights(counts * 1000, scheme="effective-number")  # N ~ 3.4e9 > 2**31
    np.testing.assert_allclose(w1, w2, rtol=1e-3)
    # and it reweights: far from the saturated beta = 0.9999 of the paper
    flat = class_weights(counts * 1000, scheme="effective-number", beta=0.9999)
    np.testing.assert_allclose(flat, np.ones(4), rtol=1e-3)
    assert w1[3] / w1[0] > 100


def test_effective_number_extreme_beta_close_to_one():
    # beta this close to 1 approaches inverse frequency (normalised to sum C)
    w = class_weights([10**12, 10**6, 1], scheme="effective-number", beta=1 - 2.0**-52)
    inv = np.array([1e-12, 1e-6, 1.0])
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w, 3 * inv / inv.sum(), rtol=1e-3)


def test_huge_counts_are_exact():
    big = 2**62 + 1  # not representable in float64
    stats = ClassStats((big, 1), (big + 1, big + 1), (1, 1), 1)
    assert stats.total_pixels == big + 1
    assert json.loads(json.dumps(stats.to_dict()))["class_counts"][0] == big
    w = class_weights(stats, scheme="ratio")
    assert w[1] == float(big + 1)
    assert w[0] == 1.0
    for scheme in SCHEMES:
        assert np.all(np.isfinite(class_weights(stats, scheme=scheme)))


# --------------------------------------------------------------------------- #
# properties over random count tables
# --------------------------------------------------------------------------- #

_count = st.one_of(st.just(0), st.integers(1, 20), st.integers(1, 10**12))


@st.composite
def class_stats(draw, min_classes=1, max_classes=10):
    counts = draw(st.lists(_count, min_size=min_classes, max_size=max_classes))
    total = sum(counts)
    n_images = draw(st.integers(1 if total else 0, 40))
    present_pixels = [draw(st.integers(n, total)) if n else 0 for n in counts]
    image_counts = [draw(st.integers(1, n_images)) if n else 0 for n in counts]
    return ClassStats(counts, present_pixels, image_counts, n_images)


_configs = st.builds(
    ClassWeightConfig,
    scheme=st.sampled_from(SCHEMES),
    normalize=st.sampled_from(NORMALIZATIONS),
    max_weight=st.none() | st.floats(1e-3, 1e3),
    beta=st.none() | st.floats(1e-6, 1 - 1e-12),
    enet_c=st.floats(1 + 1e-9, 10.0),
)


@settings(max_examples=300, deadline=None)
@given(stats=class_stats(), cfg=_configs)
def test_weights_are_always_finite_and_zero_exactly_for_absent(stats, cfg):
    w, rec = _quiet(stats, cfg)
    counts = np.array(stats.class_counts, dtype=object)
    present = counts > 0
    assert w.dtype == np.float64
    assert w.shape == (stats.num_classes,)
    assert np.all(np.isfinite(w))
    assert np.all(w >= 0)
    assert np.all(w[~present] == 0)
    degenerate = cfg.scheme == "log-ratio" and present.sum() == 1 and cfg.mu is None
    if present.any() and not degenerate:
        assert np.all(w[present] > 0)
    assert len(rec) == int(not present.all()) + int(degenerate)
    if cfg.max_weight is not None:
        assert np.all(w <= cfg.max_weight)
    elif present.any() and not degenerate:
        if cfg.normalize == "mean":
            assert math.isclose(w[present].mean(), 1.0, rel_tol=1e-9)
        elif cfg.normalize == "sum":
            assert math.isclose(w[present].sum(), 1.0, rel_tol=1e-9)
        elif cfg.scheme == "effective-number":
            assert math.isclose(w[present].sum(), present.sum(), rel_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(stats=class_stats(min_classes=2), scheme=st.sampled_from(SCHEMES), data=st.data())
def test_weights_follow_a_permutation_of_classes(stats, scheme, data):
    perm = data.draw(st.permutations(range(stats.num_classes)))
    permuted = ClassStats(
        [stats.class_counts[i] for i in perm],
        [stats.present_pixels[i] for i in perm],
        [stats.image_counts[i] for i in perm],
        stats.n_images,
    )
    w, _ = _quiet(stats, scheme=scheme)
    wp, _ = _quiet(permuted, scheme=scheme)
    np.testing.assert_allclose(wp, w[list(perm)], rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(counts=st.lists(st.integers(1, 10**12), min_size=2, max_size=8))
def test_rarer_classes_never_weigh_less(counts):
    order = np.argsort(counts, kind="stable")
    for scheme in ("ratio", "log-ratio", "clamped", "balanced", "enet", "effective-number"):
        w = class_weights(counts, scheme=scheme)[order]
        assert np.all(np.diff(w) <= 1e-12 * np.abs(w[1:])), scheme


# --------------------------------------------------------------------------- #
# normalize and max_weight
# --------------------------------------------------------------------------- #


def test_normalize_mean_and_sum_over_present_classes():
    counts = [100, 0, 20, 5]
    raw, _ = _quiet(counts, scheme="ratio")
    mean, _ = _quiet(counts, scheme="ratio", normalize="mean")
    total, _ = _quiet(counts, scheme="ratio", normalize="sum")
    present = [0, 2, 3]
    np.testing.assert_allclose(mean[present], raw[present] / raw[present].mean(), rtol=1e-15)
    np.testing.assert_allclose(total[present], raw[present] / raw[present].sum(), rtol=1e-15)
    assert math.isclose(mean[present].mean(), 1.0, rel_tol=1e-15)
    assert math.isclose(total.sum(), 1.0, rel_tol=1e-15)
    assert mean[1] == total[1] == 0.0


def test_max_weight_caps_after_normalization():
    w = class_weights(COUNTS, scheme="ratio", normalize="mean", max_weight=1.5)
    raw = np.array([125 / 100, 125 / 20, 125 / 5])
    np.testing.assert_allclose(w, np.minimum(raw / raw.mean(), 1.5), rtol=1e-15)
    assert w[2] == 1.5
    capped, _ = _quiet([100, 0, 1], scheme="ratio", max_weight=2.0)
    np.testing.assert_array_equal(capped, [1.01, 0.0, 2.0])


# --------------------------------------------------------------------------- #
# config validation
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"scheme": "inverse"}, "valid schemes are: none, ratio, log-ratio, .*effective-number"),
        ({"scheme": "median_frequency"}, "median-frequency"),
        ({"scheme": None}, "unknown class-weight scheme"),
        ({"normalize": "max"}, "valid values are: none, mean, sum"),
        ({"mu": -1.0}, "mu must be > 0"),
        ({"mu": 0}, "mu must be > 0"),
        ({"mu": math.nan}, "mu must be finite"),
        ({"mu": True}, "mu must be a real number"),
        ({"mu": "3"}, "mu must be a real number"),
        ({"scheme": "log-ratio", "mu": 0.5}, "log-ratio' needs mu >= 1"),
        ({"enet_c": 1.0}, "enet_c must be > 1"),
        ({"enet_c": math.inf}, "enet_c must be finite"),
        ({"beta": 0.0}, r"beta must lie in the open interval \(0, 1\)"),
        ({"beta": 1.0}, r"beta must lie in the open interval \(0, 1\)"),
        ({"beta": 1.5}, r"beta must lie in the open interval \(0, 1\)"),
        ({"beta": -0.1}, r"beta must lie in the open interval \(0, 1\)"),
        ({"max_weight": 0.0}, "max_weight must be > 0"),
        ({"max_weight": -2}, "max_weight must be > 0"),
        ({"max_weight": math.inf}, "max_weight must be finite"),
    ],
)
def test_config_validation(options, match):
    with pytest.raises(ValueError, match=match):
        ClassWeightConfig(**options)
    with pytest.raises(ValueError, match=match):
        ClassWeightConfig.from_dict(options)
    with pytest.raises(ValueError, match=match):
        class_weights(COUNTS, **options)


def test_config_accepts_numpy_and_int_numbers():
    cfg = ClassWeightConfig(scheme="clamped", mu=np.float32(0.5), enet_c=2, max_weight=np.int64(3))
    assert cfg.mu == 0.5
    assert type(cfg.enet_c) is float
    assert type(cfg.max_weight) is float


def test_config_dict_round_trip():
    cfg = ClassWeightConfig(
        scheme="effective-number", beta=0.99, normalize="sum", max_weight=10.0, mu=2.0
    )
    d = json.loads(json.dumps(cfg.to_dict()))
    assert ClassWeightConfig.from_dict(d) == cfg
    assert ClassWeightConfig.from_dict({}) == ClassWeightConfig()
    assert ClassWeightConfig.from_dict({"scheme": "enet"}) == ClassWeightConfig(scheme="enet")
    with pytest.raises(ValueError, match=r"unknown keys \['gamma'\]"):
        ClassWeightConfig.from_dict({"scheme": "enet", "gamma": 2})
    with pytest.raises(ValueError, match="needs a mapping"):
        ClassWeightConfig.from_dict([("scheme", "enet")])  # type: ignore[arg-type]


def test_class_weights_argument_errors():
    with pytest.raises(TypeError, match=r"unknown class-weight option\(s\) \['gamma'\]"):
        class_weights(COUNTS, gamma=2.0)
    with pytest.raises(TypeError, match="pass options as keywords"):
        class_weights(COUNTS, "enet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs the labeled pixels .*present_pixels"):
        class_weights(list(COUNTS), scheme="median-frequency")
    with pytest.raises(ValueError, match="class_names must be a sequence of 3 names"):
        class_weights(COUNTS, class_names=["a", "b"])
    with pytest.raises(ValueError, match="class_names must be a sequence of 3 names"):
        class_weights(COUNTS, class_names="abc")
    with pytest.raises(ValueError, match="at least one class"):
        class_weights([])
    with pytest.raises(ValueError, match=r"class counts\[1\] must be >= 0"):
        class_weights([3, -1])
    with pytest.raises(ValueError, match=r"must hold integers .* float64"):
        class_weights(np.array([3.0, 1.0]))
    with pytest.raises(ValueError, match=r"class counts\[0\] must be an integer"):
        class_weights([3.0, 1])
    with pytest.raises(ValueError, match="one-dimensional"):
        class_weights(np.ones((2, 2), dtype=int))
    with pytest.raises(ValueError, match=r"needs a 'class_stats' entry"):
        class_weights({0: 3, 1: 4})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# ClassStats
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((1, 2), (3, 3), (1,), 1), "equal lengths, got 2, 2 and 1"),
        (((), (), (), 0), "at least one class"),
        (((1, -2), (3, 3), (1, 1), 1), r"class_counts\[1\] must be >= 0"),
        (((1, 2.0), (3, 3), (1, 1), 1), r"class_counts\[1\] must be an integer"),
        (((1, True), (3, 3), (1, 1), 1), r"class_counts\[1\] must be an integer"),
        (((1, 2), (3, 3), (1, 1), -1), "n_images must be >= 0"),
        (((1, 2), (3, 3), (1, 1), 1.0), "n_images must be an integer"),
        (((1, 2), (3, 1), (1, 1), 1), r"present_pixels\[1\] = 1 is less than class_counts\[1\]"),
        (((1, 2), (4, 3), (1, 1), 1), r"present_pixels\[0\] = 4 exceeds the total"),
        (((1, 2), (3, 3), (1, 2), 1), r"image_counts\[1\] = 2 exceeds n_images = 1"),
        (((3, 0), (3, 0), (1, 1), 1), "class 1 has class_counts = 0 but image_counts = 1"),
        (((1, 2), (3, 3), (1, 0), 1), "class 1 has class_counts = 2 but image_counts = 0"),
        (((1, 0), (1, 1), (1, 0), 1), r"class 1 occurs in no image but present_pixels\[1\] = 1"),
        ((np.zeros((1, 2), dtype=int), (0, 0), (0, 0), 1), "one-dimensional"),
        (("ab", (0, 0), (0, 0), 1), "sequence of integers, got str"),
    ],
)
def test_class_stats_validation(args, match):
    with pytest.raises(ValueError, match=match):
        ClassStats(*args)


def test_class_stats_normalizes_to_python_int_tuples():
    s = ClassStats(np.array([3, 0], dtype=np.uint32), [3, 0], (np.int64(2), 0), np.int16(4))
    assert s.class_counts == (3, 0)
    assert s.present_pixels == (3, 0)
    assert s.image_counts == (2, 0)
    assert s.n_images == 4
    assert all(type(v) is int for v in (*s.class_counts, *s.image_counts, s.n_images))
    assert s.num_classes == 2
    assert s.total_pixels == 3
    assert hash(s) == hash(ClassStats((3, 0), (3, 0), (2, 0), 4))


def test_class_stats_dict_round_trip():
    d = STATS.to_dict()
    assert d == {
        "class_counts": [100, 20, 5],
        "present_pixels": [125, 60, 40],
        "image_counts": [4, 2, 1],
        "n_images": 4,
    }
    assert ClassStats.from_dict(json.loads(json.dumps(d))) == STATS
    with pytest.raises(ValueError, match=r"missing keys \['n_images'\], unknown keys \[\]"):
        ClassStats.from_dict({k: v for k, v in d.items() if k != "n_images"})
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        ClassStats.from_dict({**d, "extra": 1})
    with pytest.raises(ValueError, match="exceeds n_images"):
        ClassStats.from_dict({**d, "n_images": 1})
    with pytest.raises(ValueError, match="needs a mapping"):
        ClassStats.from_dict([1, 2])  # type: ignore[arg-type]


def _reference_stats(images, num_classes, void):
    """Definition of every field, computed the slow obvious way."""
    counts = [0] * num_classes
    present = [0] * num_classes
    nimg = [0] * num_classes
    for img in images:
        labeled = img[img != void]
        for c in range(num_classes):
            k = int(np.count_nonzero(labeled == c))
            counts[c] += k
            if k:
                present[c] += labeled.size
                nimg[c] += 1
    return counts, present, nimg


def _random_images(seed, n, num_classes, void):
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        shape = tuple(rng.integers(1, 9, size=rng.integers(2, 4)))
        # each image draws from a random subset of classes, so classes are missing in some
        allowed = rng.choice(num_classes, size=rng.integers(1, num_classes + 1), replace=False)
        img = rng.choice(allowed, size=shape).astype(np.uint8)
        img[rng.random(shape) < 0.3] = void
        if i == 1:
            img[...] = void  # an all-void image still counts as an image
        images.append(img)
    return images


def test_from_label_images_matches_bincount_with_void_excluded():
    images = _random_images(0, 12, num_classes=6, void=255)
    stats = ClassStats.from_label_images(iter(images), num_classes=6, void_label=255)
    flat = np.concatenate([img.ravel() for img in images])
    np.testing.assert_array_equal(stats.class_counts, np.bincount(flat[flat != 255], minlength=6))
    counts, present, nimg = _reference_stats(images, 6, 255)
    assert stats == ClassStats(counts, present, nimg, 12)
    assert stats.n_images == 12


def test_from_label_images_without_void_and_odd_dtypes():
    a = np.array([[True, False], [True, True]])
    s = ClassStats.from_label_images([a], num_classes=2, void_label=None)
    assert s == ClassStats((1, 3), (4, 4), (1, 1), 1)
    b = np.array([0, 2, -1, 2], dtype=np.int8)
    s = ClassStats.from_label_images([b, [1, 1]], num_classes=3, void_label=-1)
    assert s == ClassStats((1, 2, 2), (3, 2, 3), (1, 1, 1), 2)
    assert ClassStats.from_label_images([], 3, 255) == ClassStats(
        (0, 0, 0), (0, 0, 0), (0, 0, 0), 0
    )


def test_from_label_images_errors():
    with pytest.raises(ValueError, match=r"label image 1 has labels outside 0..2 .*\[3, 7\]"):
        ClassStats.from_label_images([np.zeros(3, int), np.array([3, 7, 255, 1])], 3, 255)
    with pytest.raises(ValueError, match="labels outside"):
        ClassStats.from_label_images([np.array([-2, 0])], 3, 255)
    with pytest.raises(ValueError, match="integer dtype, got float64"):
        ClassStats.from_label_images([np.zeros(3)], 3, 255)
    with pytest.raises(ValueError, match="void_label = 0 is a class index"):
        ClassStats.from_label_images([np.zeros(3, int)], 3, 0)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        ClassStats.from_label_images([np.zeros(3, int)], 0, 255)
    with pytest.raises(ValueError, match="void_label must be an integer or None"):
        ClassStats.from_label_images([np.zeros(3, int)], 3, 255.0)  # type: ignore[arg-type]


def test_merge_equals_stats_of_concatenated_images():
    images = _random_images(3, 10, num_classes=5, void=255)
    whole = ClassStats.from_label_images(images, 5, 255)
    parts = [ClassStats.from_label_images(images[i : i + 3], 5, 255) for i in range(0, 10, 3)]
    assert parts[0] + parts[1] + parts[2] + parts[3] == whole
    assert (parts[3] + parts[0]) + (parts[2] + parts[1]) == whole
    assert sum(parts) == whole
    assert sum(parts[:1]) == parts[0]
    with pytest.raises(ValueError, match="cannot merge ClassStats with 5 and 3 classes"):
        parts[0] + ClassStats((0, 0, 0), (0, 0, 0), (0, 0, 0), 0)
    with pytest.raises(TypeError):
        parts[0] + 1  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), split=st.integers(0, 6))
def test_merge_property(seed, split):
    images = _random_images(seed, 6, num_classes=4, void=255)
    whole = ClassStats.from_label_images(images, 4, 255)
    left = ClassStats.from_label_images(images[:split], 4, 255)
    right = ClassStats.from_label_images(images[split:], 4, 255)
    assert left + right == whole == right + left


def test_median_frequency_matches_segnet_definition():
    images = _random_images(7, 15, num_classes=6, void=255)
    stats = ClassStats.from_label_images(images, 6, 255)
    # SegNet: freq(c) = pixels of c / total pixels of the images where c is present
    freq = {}
    for c in range(6):
        with_c = [img[img != 255] for img in images if np.any(img == c)]
        if with_c:
            freq[c] = sum(int(np.sum(x == c)) for x in with_c) / sum(x.size for x in with_c)
    med = statistics.median(freq.values())
    expected = [med / freq[c] if c in freq else 0.0 for c in range(6)]
    w, _ = _quiet(stats, scheme="median-frequency")
    np.testing.assert_allclose(w, expected, rtol=1e-12)


def test_store_metadata_mapping_is_accepted() -> None:
    stats = ClassStats(
        class_counts=(60, 30, 10), present_pixels=(100, 80, 40), image_counts=(3, 2, 1), n_images=3
    )
    meta = {"class_stats": stats.to_dict(), "class_names": ["a", "b", "c"]}
    for scheme in SCHEMES:
        np.testing.assert_array_equal(
            class_weights(meta, scheme=scheme), class_weights(stats, scheme=scheme)
        )
    with pytest.raises(ValueError, match="class_stats"):
        class_weights({"class_counts": [1, 2]})
