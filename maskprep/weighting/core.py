"""Class weights for segmentation losses, from exact integer class statistics.

maskprep counts labeled pixels per class over the train split (void pixels are
not a class and are never counted) and keeps the counts as exact Python
integers in a :class:`ClassStats`. :func:`class_weights` turns those statistics
into one float64 weight per class under any of the schemes in :data:`SCHEMES`;
:class:`ClassWeightConfig` holds the scheme and its parameters and round-trips
through plain dicts (JSON/YAML/zarr attributes).

Conventions shared by every scheme
----------------------------------
* ``n_c`` is the number of labeled pixels of class ``c``, ``N = sum(n_c)``.
* A class with ``n_c == 0`` is *absent*. Absent classes get weight exactly 0
  (never ``inf``/``NaN``) and :func:`class_weights` emits one
  :class:`ClassWeightWarning` naming them.
* ``C`` is the number of *present* classes (``n_c > 0``). Declaring extra,
  unused classes therefore never changes the weights of the present ones.
  When every class is present this is the usual number of classes.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "NORMALIZATIONS",
    "SCHEMES",
    "ClassStats",
    "ClassWeightConfig",
    "ClassWeightWarning",
    "class_weights",
    "effective_number_beta",
]

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
"""Names accepted by ``ClassWeightConfig.scheme``."""

NORMALIZATIONS: tuple[str, ...] = ("none", "mean", "sum")
"""Names accepted by ``ClassWeightConfig.normalize``."""

_MAX_LISTED = 20  # classes named in one warning before "... and k more"


class ClassWeightWarning(UserWarning):
    """Class weights were computed, but some classes got a degenerate weight.

    Emitted when classes have no labeled pixels (their weight is 0) and when
    every present class gets weight 0.
    """


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _int_scalar(value: object, name: str) -> int:
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    out = int(value)  # type: ignore[call-overload]
    if out < 0:
        raise ValueError(f"{name} must be >= 0, got {out}")
    return out


def _int_tuple(values: object, name: str) -> tuple[int, ...]:
    """Non-negative Python ints from a 1-D integer array or a sequence of integers."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
        if values.dtype.kind in "iu":
            items: list[Any] = values.tolist()  # exact Python ints, also for uint64
        elif values.dtype.kind == "O":
            items = list(values)
        else:
            raise ValueError(
                f"{name} must hold integers (exact pixel counts), got dtype {values.dtype}; "
                "cast with .astype(np.int64) if the values are whole numbers"
            )
    elif isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of integers, got {type(values).__name__}")
    else:
        items = list(values)
    out = []
    for i, v in enumerate(items):
        if not _is_int(v):
            raise ValueError(
                f"{name}[{i}] must be an integer (exact pixel counts), got {v!r} "
                f"({type(v).__name__})"
            )
        iv = int(v)
        if iv < 0:
            raise ValueError(f"{name}[{i}] must be >= 0, got {iv}")
        out.append(iv)
    return tuple(out)


def _real(value: object, name: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


# --------------------------------------------------------------------------- #
# statistics
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ClassStats:
    """Exact integer statistics of the train split, enough to recompute any scheme.

    Parameters
    ----------
    class_counts : sequence of int
        ``n_c``: labeled pixels of class ``c`` over the train split (void excluded).
    present_pixels : sequence of int
        Labeled (non-void) pixels of the train images in which class ``c``
        occurs; the denominator of median-frequency balancing.
    image_counts : sequence of int
        Number of train images in which class ``c`` occurs.
    n_images : int
        Number of train images (including images that are entirely void).

    Raises
    ------
    ValueError
        If the fields are inconsistent: different lengths, no classes, values
        that are not non-negative integers, ``present_pixels[c] < class_counts[c]``,
        ``present_pixels[c] > sum(class_counts)``, ``image_counts[c] > n_images``,
        a class with pixels but no image (or the reverse), or an absent class
        with ``present_pixels[c] != 0``.

    Notes
    -----
    Sequences are stored as tuples of Python ints (exact, unbounded), so
    instances are hashable and ``to_dict`` is JSON-safe. Statistics of disjoint
    image sets merge exactly with ``+`` (and ``sum(parts)``), which makes
    ``+`` a valid combine step of a tree reduction.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0, 0, 1], [255, 1, 1]])
    >>> b = np.array([[2, 2, 255], [255, 255, 0]])
    >>> s = ClassStats.from_label_images([a, b], num_classes=3, void_label=255)
    >>> s.class_counts, s.present_pixels, s.image_counts, s.n_images
    ((3, 3, 2), (8, 5, 3), (2, 1, 1), 2)
    >>> s == ClassStats.from_label_images([a], 3, 255) + ClassStats.from_label_images([b], 3, 255)
    True
    """

    class_counts: tuple[int, ...]
    present_pixels: tuple[int, ...]
    image_counts: tuple[int, ...]
    n_images: int

    def __post_init__(self) -> None:
        cc = _int_tuple(self.class_counts, "class_counts")
        pp = _int_tuple(self.present_pixels, "present_pixels")
        ic = _int_tuple(self.image_counts, "image_counts")
        n_images = _int_scalar(self.n_images, "n_images")
        if not cc:
            raise ValueError("ClassStats needs at least one class; class_counts is empty")
        if not len(cc) == len(pp) == len(ic):
            raise ValueError(
                "class_counts, present_pixels and image_counts must have equal lengths, got "
                f"{len(cc)}, {len(pp)} and {len(ic)}"
            )
        total = sum(cc)
        for c, (n, p, k) in enumerate(zip(cc, pp, ic, strict=True)):
            if k > n_images:
                raise ValueError(f"image_counts[{c}] = {k} exceeds n_images = {n_images}")
            if (n > 0) != (k > 0):
                raise ValueError(
                    f"class {c} has class_counts = {n} but image_counts = {k}; a class has "
                    "labeled pixels exactly when it occurs in at least one image"
                )
            if p < n:
                raise ValueError(
                    f"present_pixels[{c}] = {p} is less than class_counts[{c}] = {n}; the "
                    "images containing a class hold at least that class's own pixels"
                )
            if p > total:
                raise ValueError(
                    f"present_pixels[{c}] = {p} exceeds the total labeled pixels "
                    f"sum(class_counts) = {total}"
                )
            if n == 0 and p != 0:
                raise ValueError(
                    f"class {c} occurs in no image but present_pixels[{c}] = {p} (must be 0)"
                )
        object.__setattr__(self, "class_counts", cc)
        object.__setattr__(self, "present_pixels", pp)
        object.__setattr__(self, "image_counts", ic)
        object.__setattr__(self, "n_images", n_images)

    @property
    def num_classes(self) -> int:
        """Number of classes (present or not)."""
        return len(self.class_counts)

    @property
    def total_pixels(self) -> int:
        """``N``: labeled pixels over all classes (void excluded)."""
        return sum(self.class_counts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of plain ints and lists; inverse of :meth:`from_dict`."""
        return {
            "class_counts": list(self.class_counts),
            "present_pixels": list(self.present_pixels),
            "image_counts": list(self.image_counts),
            "n_images": self.n_images,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassStats:
        """Validated :class:`ClassStats` from the output of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If ``d`` is not a mapping with exactly the four field names, or the
            values fail validation.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"ClassStats.from_dict needs a mapping, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in d]
        unknown = sorted(str(k) for k in d if k not in names)
        if missing or unknown:
            raise ValueError(
                f"ClassStats.from_dict: missing keys {missing}, unknown keys {unknown}; "
                f"expected exactly {names}"
            )
        return cls(**{k: d[k] for k in names})

    @classmethod
    def from_label_images(
        cls,
        labels_iterable: Iterable[npt.ArrayLike],
        num_classes: int,
        void_label: int | None,
    ) -> ClassStats:
        """Exact statistics of label images, one ``np.bincount`` per image.

        Meant for tests and small data; the pipeline computes the same numbers
        chunk-wise and merges them with ``+``.

        Parameters
        ----------
        labels_iterable : iterable of array_like
            Integer label images of any shape (2D, 3D, ...).
        num_classes : int
            Classes are ``0 .. num_classes - 1``.
        void_label : int or None
            Label of void/unlabeled pixels, excluded from every count. Must not
            be a class index. ``None`` means the images have no void pixels.

        Raises
        ------
        ValueError
            On a non-integer image, a label outside ``[0, num_classes)`` that is
            not ``void_label``, or a ``void_label`` inside ``[0, num_classes)``.
        """
        if not _is_int(num_classes) or int(num_classes) < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        num_classes = int(num_classes)
        if void_label is not None:
            if not _is_int(void_label):
                raise ValueError(f"void_label must be an integer or None, got {void_label!r}")
            if 0 <= int(void_label) < num_classes:
                raise ValueError(
                    f"void_label = {void_label} is a class index (classes are "
                    f"0..{num_classes - 1}); void is not a class, so it must lie outside that range"
                )
        class_counts = np.zeros(num_classes, dtype=np.int64)
        present_pixels = np.zeros(num_classes, dtype=np.int64)
        image_counts = np.zeros(num_classes, dtype=np.int64)
        n_images = 0
        for i, image in enumerate(labels_iterable):
            arr = np.asarray(image)
            if arr.dtype.kind not in "iub":
                raise ValueError(f"label image {i} must have an integer dtype, got {arr.dtype}")
            flat = arr.ravel()
            if void_label is not None:
                flat = flat[flat != void_label]
            if flat.size:
                bad = flat[(flat < 0) | (flat >= num_classes)]
                if bad.size:
                    shown = np.unique(bad)[:10].tolist()
                    raise ValueError(
                        f"label image {i} has labels outside 0..{num_classes - 1} that are not "
                        f"void_label={void_label}: {shown}"
                    )
            counts = np.bincount(flat.astype(np.intp), minlength=num_classes)
            present = counts > 0
            class_counts += counts
            present_pixels[present] += int(flat.size)
            image_counts[present] += 1
            n_images += 1
        return cls(
            tuple(class_counts.tolist()),
            tuple(present_pixels.tolist()),
            tuple(image_counts.tolist()),
            n_images,
        )

    def __add__(self, other: object) -> ClassStats:
        """Statistics of the union of two disjoint image sets (exact integer sums)."""
        if not isinstance(other, ClassStats):
            return NotImplemented
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge ClassStats with {self.num_classes} and {other.num_classes} classes"
            )
        return ClassStats(
            tuple(a + b for a, b in zip(self.class_counts, other.class_counts, strict=True)),
            tuple(a + b for a, b in zip(self.present_pixels, other.present_pixels, strict=True)),
            tuple(a + b for a, b in zip(self.image_counts, other.image_counts, strict=True)),
            self.n_images + other.n_images,
        )

    def __radd__(self, other: object) -> ClassStats:
        """``0 + stats`` is ``stats``, so ``sum(parts)`` works."""
        if _is_int(other) and other == 0:
            return self
        return NotImplemented


# --------------------------------------------------------------------------- #
# configuration
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ClassWeightConfig:
    """Scheme and parameters for :func:`class_weights` (validated, immutable).

    Parameters
    ----------
    scheme : str
        One of :data:`SCHEMES`; see :func:`class_weights` for the formulas.
    mu : float or None
        ``log-ratio`` and ``clamped``: the constant inside the log. ``None``
        means ``C`` (number of present classes). Must be > 0; ``log-ratio``
        needs ``mu >= 1`` so that no weight is negative.
    enet_c : float
        ``enet``: the constant ``c`` of ``1 / ln(c + p)``; must be > 1.
    beta : float or None
        ``effective-number``: ``beta`` in (0, 1). ``None`` chooses it from the
        data, ``beta = 1 - C / N`` (see :func:`effective_number_beta`).
    normalize : str
        One of :data:`NORMALIZATIONS`, applied after the scheme over present
        classes: ``"mean"`` scales to mean 1, ``"sum"`` to sum 1.
    max_weight : float or None
        Upper bound applied last (after ``normalize``); must be > 0.

    Parameters a scheme does not use are ignored by it.

    Examples
    --------
    >>> cfg = ClassWeightConfig(scheme="enet", normalize="mean")
    >>> cfg.to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'scheme': 'enet', 'mu': None, 'enet_c': 1.02, 'beta': None,
     'normalize': 'mean', 'max_weight': None}
    >>> ClassWeightConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    scheme: str = "balanced"
    mu: float | None = None
    enet_c: float = 1.02
    beta: float | None = None
    normalize: str = "none"
    max_weight: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, str) or self.scheme not in SCHEMES:
            raise ValueError(
                f"unknown class-weight scheme {self.scheme!r}; valid schemes are: "
                + ", ".join(SCHEMES)
            )
        if not isinstance(self.normalize, str) or self.normalize not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalize {self.normalize!r}; valid values are: "
                + ", ".join(NORMALIZATIONS)
            )
        mu = None if self.mu is None else _real(self.mu, "mu")
        if mu is not None:
            if mu <= 0:
                raise ValueError(f"mu must be > 0, got {mu}")
            if self.scheme == "log-ratio" and mu < 1:
                raise ValueError(
                    f"scheme 'log-ratio' needs mu >= 1 so that ln(mu * N / n_c) >= 0 for every "
                    f"class, got mu = {mu}; use scheme='clamped' for mu < 1"
                )
        enet_c = _real(self.enet_c, "enet_c")
        if enet_c <= 1:
            raise ValueError(
                f"enet_c must be > 1 so that 1 / ln(enet_c + p) is finite, got {enet_c}"
            )
        beta = None if self.beta is None else _real(self.beta, "beta")
        if beta is not None and not 0 < beta < 1:
            raise ValueError(f"beta must lie in the open interval (0, 1), got {beta}")
        max_weight = None if self.max_weight is None else _real(self.max_weight, "max_weight")
        if max_weight is not None and max_weight <= 0:
            raise ValueError(f"max_weight must be > 0, got {max_weight}")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "enet_c", enet_c)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "max_weight", max_weight)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict; inverse of :meth:`from_dict`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassWeightConfig:
        """Validated config from a dict; missing fields take their defaults.

        Raises
        ------
        ValueError
            On unknown keys or invalid values.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"ClassWeightConfig.from_dict needs a mapping, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in names)
        if unknown:
            raise ValueError(
                f"ClassWeightConfig.from_dict: unknown keys {unknown}; valid keys are {names}"
            )
        return cls(**dict(d))


# --------------------------------------------------------------------------- #
# weights
# --------------------------------------------------------------------------- #

_StatsLike = ClassStats | Sequence[int] | npt.NDArray[np.integer[Any]] | Mapping[str, Any]


def _counts_of(stats: _StatsLike) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    if isinstance(stats, Mapping):
        if "class_stats" not in stats:
            raise ValueError("a metadata mapping needs a 'class_stats' entry (a store's metadata)")
        stats = ClassStats.from_dict(stats["class_stats"])
    if isinstance(stats, ClassStats):
        return stats.class_counts, stats.present_pixels
    counts = _int_tuple(stats, "class counts")
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


def _scheme_weights(
    cfg: ClassWeightConfig, n: list[int], present_pixels: list[int] | None
) -> list[float]:
    """Raw scheme weights of the present classes (every ``n`` > 0)."""
    total = sum(n)  # exact Python int
    n_present = len(n)
    scheme = cfg.scheme
    if scheme == "none":
        return [1.0] * n_present
    if scheme == "ratio":
        return [total / k for k in n]  # int / int is correctly rounded
    if scheme in ("log-ratio", "clamped"):
        mu = float(n_present) if cfg.mu is None else cfg.mu
        # ln(mu * N / n) = ln(mu) + log1p((N - n) / n), exact integer N - n.
        w = [math.log(mu) + math.log1p((total - k) / k) for k in n]
        return [max(1.0, x) for x in w] if scheme == "clamped" else w
    if scheme == "balanced":
        return [total / (n_present * k) for k in n]
    if scheme == "median-frequency":
        assert present_pixels is not None
        freq = [Fraction(k, p) for k, p in zip(n, present_pixels, strict=True)]
        med = statistics.median(freq)  # exact rational median
        return [float(med / f) for f in freq]
    if scheme == "enet":
        c1 = cfg.enet_c - 1.0
        return [1.0 / math.log1p(c1 + k / total) for k in n]
    if scheme == "effective-number":
        eps = n_present / total if cfg.beta is None else 1.0 - cfg.beta  # 1 - beta
        if eps >= 1.0:  # beta = 0: every effective number is 1
            u = [1.0] * n_present
        else:
            log_beta = math.log1p(-eps)
            # (1 - beta) / (1 - beta**n); the factor (1 - beta) cancels below.
            u = [1.0 / -math.expm1(k * log_beta) for k in n]
        s = math.fsum(u)
        return [x * n_present / s for x in u]
    raise AssertionError(f"unhandled scheme {scheme!r}")  # pragma: no cover


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
    if config.scheme == "median-frequency" and present_pixels is None:
        raise ValueError(
            "scheme 'median-frequency' needs the labeled pixels of the images containing each "
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

    w = _scheme_weights(
        config,
        [counts[c] for c in present],
        None if present_pixels is None else [present_pixels[c] for c in present],
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
