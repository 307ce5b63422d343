"""Class-weight schemes (a name -> function registry) and :func:`class_weights`.

Conventions shared by every scheme
----------------------------------
* ``n_c`` is the number of labeled pixels of class ``c``, ``N = sum(n_c)``.
* A class with ``n_c == 0`` is *absent*. Absent classes get weight exactly 0
  (never ``inf``/``NaN``) and :func:`class_weights` emits one
  :class:`ClassWeightWarning` naming them.
* ``C`` is the number of *present* classes (``n_c > 0``). Declaring extra,
  unused classes therefore never changes the weights of the present ones.
  When every class is present this is the usual number of classes.

A scheme is a function ``weights(n, present_pixels, config) -> list[float]``
of the present classes' counts, registered in :data:`SCHEME_REGISTRY`
(third-party schemes: entry-point group ``maskprep.schemes``).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from maskprep.plugins import Registry
from maskprep.weighting.config import ClassWeightConfig
from maskprep.weighting.stats import ClassStats, int_tuple

__all__ = [
    "SCHEMES",
    "SCHEME_REGISTRY",
    "ClassWeightWarning",
    "Scheme",
    "available_schemes",
    "class_weights",
    "effective_number_beta",
]

_MAX_LISTED = 20  # classes named in one warning before "... and k more"


class ClassWeightWarning(UserWarning):
    """Class weights were computed, but some classes got a degenerate weight.

    Emitted when classes have no labeled pixels (their weight is 0) and when
    every present class gets weight 0.
    """


_StatsLike = ClassStats | Sequence[int] | npt.NDArray[np.integer[Any]] | Mapping[str, Any]


def _counts_of(stats: _StatsLike) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    if isinstance(stats, Mapping):
        if "class_stats" not in stats:
            raise ValueError("a metadata mapping needs a 'class_stats' entry (a store's metadata)")
        stats = ClassStats.from_dict(stats["class_stats"])
    if isinstance(stats, ClassStats):
        return stats.class_counts, stats.present_pixels
    counts = int_tuple(stats, "class counts")
    if not counts:
        raise ValueError("class counts are empty; need at least one class")
    return counts, None


def effective_number_beta(
    stats: ClassStats | Sequence[int] | npt.NDArray[np.integer[Any]],
) -> float:
    """The ``beta`` that scheme ``effective-number`` uses when ``beta=None``.

    ``beta = 1 - C / N`` with ``C`` the number of present classes and ``N``
    the number of labeled pixels, i.e. ``1 / (1 - beta) = N / C``: the
    saturation scale of the effective number is the per-class pixel count of a
    perfectly balanced split. See :func:`class_weights`, Notes.

    The float returned is ``1 - C/N`` rounded to float64, which for large ``N``
    loses relative precision in ``1 - beta``; :func:`class_weights` works with
    ``C / N`` directly.

    Raises
    ------
    ValueError
        If there are no labeled pixels.

    Examples
    --------
    >>> effective_number_beta([600, 300, 100])
    0.997
    """
    counts, _ = _counts_of(stats)
    total = sum(counts)
    if total == 0:
        raise ValueError("no labeled pixels: the effective-number beta is undefined")
    n_present = sum(1 for n in counts if n > 0)
    return 1.0 - n_present / total


@dataclass(frozen=True)
class Scheme:
    """A class-weight scheme: raw weights of the present classes from their counts.

    ``weights(n, present_pixels, config)`` gets the present classes' pixel
    counts ``n`` (all > 0, exact ints), their ``present_pixels`` (None when
    only counts are known) and the :class:`ClassWeightConfig`.
    """

    name: str
    weights: Callable[[list[int], list[int] | None, ClassWeightConfig], list[float]]
    needs_present_pixels: bool = False


#: Registered schemes, built-ins in the order :data:`SCHEMES` lists them.
SCHEME_REGISTRY: Registry[Scheme] = Registry("class-weight scheme", group="maskprep.schemes")


def _scheme(name: str, needs_present_pixels: bool = False) -> Callable[[Any], Any]:
    def add(fn: Callable[[list[int], list[int] | None, ClassWeightConfig], list[float]]) -> Any:
        SCHEME_REGISTRY.register(name, Scheme(name, fn, needs_present_pixels))
        return fn

    return add


@_scheme("none")
def _none(n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig) -> list[float]:
    return [1.0] * len(n)


@_scheme("ratio")
def _ratio(n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig) -> list[float]:
    total = sum(n)  # exact Python int
    return [total / k for k in n]  # int / int is correctly rounded


def _log_ratio_of(n: list[int], cfg: ClassWeightConfig) -> list[float]:
    total = sum(n)
    mu = float(len(n)) if cfg.mu is None else cfg.mu
    # ln(mu * N / n) = ln(mu) + log1p((N - n) / n), exact integer N - n.
    return [math.log(mu) + math.log1p((total - k) / k) for k in n]


@_scheme("log-ratio")
def _log_ratio(
    n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig
) -> list[float]:
    return _log_ratio_of(n, cfg)


@_scheme("clamped")
def _clamped(n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig) -> list[float]:
    return [max(1.0, x) for x in _log_ratio_of(n, cfg)]


@_scheme("balanced")
def _balanced(
    n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig
) -> list[float]:
    total = sum(n)
    return [total / (len(n) * k) for k in n]


@_scheme("median-frequency", needs_present_pixels=True)
def _median_frequency(
    n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig
) -> list[float]:
    assert present_pixels is not None
    freq = [Fraction(k, p) for k, p in zip(n, present_pixels, strict=True)]
    med = statistics.median(freq)  # exact rational median
    return [float(med / f) for f in freq]


@_scheme("enet")
def _enet(n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig) -> list[float]:
    total = sum(n)
    c1 = cfg.enet_c - 1.0
    return [1.0 / math.log1p(c1 + k / total) for k in n]


@_scheme("effective-number")
def _effective_number(
    n: list[int], present_pixels: list[int] | None, cfg: ClassWeightConfig
) -> list[float]:
    total = sum(n)
    n_present = len(n)
    eps = n_present / total if cfg.beta is None else 1.0 - cfg.beta  # 1 - beta
    if eps >= 1.0:  # beta = 0: every effective number is 1
        u = [1.0] * n_present
    else:
        log_beta = math.log1p(-eps)
        # (1 - beta) / (1 - beta**n); the factor (1 - beta) cancels below.
        u = [1.0 / -math.expm1(k * log_beta) for k in n]
    s = math.fsum(u)
    return [x * n_present / s for x in u]


#: Names of the built-in schemes (``ClassWeightConfig.scheme``).
SCHEMES: tuple[str, ...] = (
    "none",
    "ratio",
    "log-ratio",
    "clamped",
    "balanced",
    "median-frequency",
    "enet",
    "effective-number",
)


def available_schemes() -> tuple[str, ...]:
    """Names of every registered class-weight scheme, plugins included.

    Examples
    --------
    >>> "median-frequency" in available_schemes()
    True
    """
    return SCHEME_REGISTRY.names()


def _describe(indices: list[int], names: Sequence[str] | None) -> str:
    shown = [f"{names[i]!r} ({i})" if names is not None else str(i) for i in indices[:_MAX_LISTED]]
    more = len(indices) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def class_weights(
    stats: _StatsLike,
    config: ClassWeightConfig | None = None,
    *,
    class_names: Sequence[str] | None = None,
    **overrides: Any,
) -> npt.NDArray[np.float64]:
    """Per-class loss weights (float64, one per class) from class statistics.

    Parameters
    ----------
    stats : ClassStats, store metadata, sequence of int or ndarray of int
        Statistics of the train split (a store's metadata dict, e.g.
        ``open_shards(path).metadata``, works: its ``class_stats`` are used),
        or just the per-class labeled pixel counts ``n_c``. Plain counts support every scheme except
        ``median-frequency``, which needs ``ClassStats.present_pixels``.
    config : ClassWeightConfig, optional
        Scheme and parameters; default ``ClassWeightConfig()`` (``balanced``).
    class_names : sequence of str, optional
        Names used in warnings; must have one entry per class.
    **overrides
        :class:`ClassWeightConfig` fields replacing those of ``config``
        (``scheme="enet"``, ``mu=2.0``, ...); the result is validated again.

    Returns
    -------
    ndarray of float64, shape (num_classes,)
        Finite, non-negative weights; exactly 0 for absent classes.

    Raises
    ------
    ValueError
        On invalid counts or config values, ``median-frequency`` with plain
        counts, or ``class_names`` of the wrong length.
    TypeError
        On an override that is not a ``ClassWeightConfig`` field.

    Warns
    -----
    ClassWeightWarning
        Once per call if some classes have no labeled pixels (naming them, by
        ``class_names`` when given), and once if every present class gets
        weight 0 (only ``log-ratio`` with ``mu = 1`` and a single present class).

    Notes
    -----
    ``n_c`` is class ``c``'s labeled pixel count, ``N = sum_c n_c``, and ``C``
    is the number of present classes (``n_c > 0``). Absent classes are left
    out of every formula (including ``C`` and medians) and get weight 0.

    ``none``
        ``w_c = 1``.
    ``ratio``
        ``w_c = N / n_c`` (inverse frequency).
    ``log-ratio``
        ``w_c = ln(mu * N / n_c)``, ``mu = C`` by default; ``mu >= 1`` makes
        every weight ``>= ln(mu) >= 0``. With one present class and ``mu = 1``
        the weight is ``ln 1 = 0``.
    ``clamped``
        ``w_c = max(1, ln(mu * N / n_c))``, ``mu = C`` by default. From the
        Keras/fast.ai forum recipe (``w = n_c/N; w = log(C*w); w = max(w, 1)``;
        the Keras ``create_class_weight`` version uses ``mu = 0.15``). Read
        literally that recipe gives the *largest* weight to the most frequent
        class; this is the intended inverse-frequency form. Since
        ``mu * N / n_c >= mu``, the clamp can only bind when ``mu < e``: with
        the default ``mu = C`` and ``C >= 3`` it equals ``log-ratio``.
    ``balanced``
        ``w_c = N / (C * n_c)``, scikit-learn's
        ``compute_class_weight("balanced")`` (King & Zeng 2001). Every present
        class then carries the same total weight ``N / C`` and
        ``sum_c n_c w_c = N``, also when some declared classes are absent.
    ``median-frequency``
        Eigen & Fergus 2015, as used by SegNet (Badrinarayanan et al. 2017):
        ``freq_c = n_c / present_pixels_c`` (pixels of ``c`` over the labeled
        pixels of the images containing ``c``) and
        ``w_c = median_c(freq) / freq_c``, median over present classes (the
        mean of the two middle values for an even count). Computed exactly in
        rationals, rounded once.
    ``enet``
        Paszke et al. 2016 (ENet): ``w_c = 1 / ln(enet_c + n_c / N)``,
        ``enet_c = 1.02`` by default, so weights lie in
        ``(1 / ln(enet_c + 1), 1 / ln(enet_c)]`` (about 1.43 to 50.5).
    ``effective-number``
        Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of
        Samples": ``w_c = (1 - beta) / (1 - beta**n_c)``, then scaled so the
        present weights sum to ``C``. ``1 - beta**n`` is evaluated as
        ``-expm1(n * log1p(-(1 - beta)))``. The paper's ``beta = 0.9999`` is
        meant for image counts: at pixel counts (millions) every class
        saturates and all weights become equal. The default is therefore taken
        from the data, ``beta = 1 - C / N`` (:func:`effective_number_beta`):
        the saturation scale ``1 / (1 - beta)`` is ``N / C``, the count each
        class would have in a perfectly balanced split. Then
        ``w_c ~ 1 / (1 - exp(-C n_c / N))``: classes below their balanced
        share get inverse-frequency weights like ``balanced``, classes above
        it saturate towards a common floor instead of being pushed towards 0,
        the rarest class (``n_min <= N / C``) is never saturated (its effective
        number is at least ``(1 - 1/e) n_min``), and the weights depend on the
        class frequencies only, not on image resolution or dataset size.

    After the scheme, ``normalize="mean"`` scales the present weights to mean
    1 and ``normalize="sum"`` to sum 1 (no scaling if they are all 0); then
    ``max_weight`` caps every weight, so a capped vector no longer has mean 1.

    References
    ----------
    D. Eigen and R. Fergus, "Predicting depth, surface normals and semantic
    labels with a common multi-scale convolutional architecture", ICCV 2015.
    A. Paszke et al., "ENet: A deep neural network architecture for real-time
    semantic segmentation", arXiv:1606.02147, 2016.
    Y. Cui et al., "Class-balanced loss based on effective number of samples",
    CVPR 2019.

    Examples
    --------
    >>> class_weights([600, 300, 100]).round(4)
    array([0.5556, 1.1111, 3.3333])
    >>> class_weights([600, 300, 100], scheme="enet", normalize="mean").round(4)
    array([0.4289, 0.7453, 1.8258])
    >>> stats = ClassStats((600, 300, 100), (1000, 700, 200), (5, 3, 1), 5)
    >>> class_weights(stats, ClassWeightConfig("median-frequency")).round(4)
    array([0.8333, 1.1667, 1.    ])
    """
    if config is None:
        config = ClassWeightConfig()
    elif not isinstance(config, ClassWeightConfig):
        raise TypeError(
            f"config must be a ClassWeightConfig or None, got {type(config).__name__}; "
            "pass options as keywords, e.g. class_weights(stats, scheme='enet')"
        )
    if overrides:
        valid = [f.name for f in fields(ClassWeightConfig)]
        unknown = sorted(k for k in overrides if k not in valid)
        if unknown:
            raise TypeError(f"unknown class-weight option(s) {unknown}; valid options are {valid}")
        config = replace(config, **overrides)

    counts, present_pixels = _counts_of(stats)
    n_classes = len(counts)
    if class_names is not None and (isinstance(class_names, str) or len(class_names) != n_classes):
        raise ValueError(
            f"class_names must be a sequence of {n_classes} names, one per class, "
            f"got {class_names!r}"
        )
    scheme = SCHEME_REGISTRY.get(config.scheme)
    if scheme.needs_present_pixels and present_pixels is None:
        raise ValueError(
            f"scheme {config.scheme!r} needs the labeled pixels of the images containing each "
            "class (ClassStats.present_pixels), not just class counts; pass a ClassStats, "
            "e.g. from ClassStats.from_label_images"
        )

    present = [c for c in range(n_classes) if counts[c] > 0]
    absent = [c for c in range(n_classes) if counts[c] == 0]
    weights = np.zeros(n_classes, dtype=np.float64)
    if not present:
        warnings.warn(
            f"no labeled pixels at all: all {n_classes} classes are absent, every class "
            "weight is 0",
            ClassWeightWarning,
            stacklevel=2,
        )
        return weights
    if absent:
        warnings.warn(
            f"{len(absent)} of {n_classes} classes have no labeled pixels and get weight 0: "
            + _describe(absent, class_names),
            ClassWeightWarning,
            stacklevel=2,
        )

    w = scheme.weights(
        [counts[c] for c in present],
        None if present_pixels is None else [present_pixels[c] for c in present],
        config,
    )
    total_w = math.fsum(w)
    if total_w == 0.0:
        warnings.warn(
            f"scheme {config.scheme!r} gives every present class weight 0 "
            f"(present classes: {_describe(present, class_names)}); a loss weighted by it is 0",
            ClassWeightWarning,
            stacklevel=2,
        )
    elif config.normalize == "mean":
        w = [x * len(w) / total_w for x in w]
    elif config.normalize == "sum":
        w = [x / total_w for x in w]
    if config.max_weight is not None:
        w = [min(x, config.max_weight) for x in w]
    weights[present] = w
    return weights
