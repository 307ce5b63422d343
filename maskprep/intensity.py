"""Intensity statistics of a split's images, merged exactly, and normalisation from them.

A build with ``intensity_stats=True`` records, per image channel and over
the train split, the statistics of nnU-Net's dataset fingerprint (mean, std,
min, max, median, 0.5th and 99.5th percentiles) over all pixels (``"all"``)
and over annotated non-background pixels (``"foreground"``: labels neither 0
nor void). Each sample (or block of a sample) gives an
:class:`IntensityPartial`; partials merge with ``+`` in any order and any
grouping, so blocks and shards combine to the same result.

**Integer images** (bool, uint8..uint64, int8..int64): the partial is an
exact histogram per channel, so every statistic is exact: the mean and
variance from exact integer sums (each rounded once to float64), the
percentiles by numpy's default (``method="linear"``) interpolation between
the exact order statistics, as ``np.percentile`` computes them.

**Float images**: NaN and infinite values are left out. ``min`` and ``max``
are exact; ``mean`` and ``std`` are float64 (per partial two-pass, merged by
Chan et al.'s pairwise formula: relative error about 1e-15, the last bits may
depend on the block split); the percentiles come from a histogram of the
values rounded toward zero to 12 significant bits (float32 with the low 11
mantissa bits cleared), so each is within a relative ``2**-11`` (0.05%) of
the exact one.

:func:`normalize` applies the statistics: z-score, percentile clipping, or
nnU-Net's CT scheme. Numpy only (imports nothing else from maskprep).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "NORMALIZATION_SCHEMES",
    "REGIONS",
    "IntensityPartial",
    "IntensityStats",
    "RegionIntensity",
    "intensity_partial",
    "normalize",
]

#: The pixel sets statistics are taken over.
REGIONS = ("all", "foreground")
#: :func:`normalize` schemes.
NORMALIZATION_SCHEMES = ("zscore", "percentile", "ct")
#: Percentiles recorded (nnU-Net's fingerprint), and their keys.
_PERCENTILES = (("median", 50.0), ("percentile_00_5", 0.5), ("percentile_99_5", 99.5))
# Float histograms: the low mantissa bits cleared (float32 has 23).
_FLOAT_MASK = np.uint32(0xFFFFF800)
# Integer images whose value range is at most this use bincount, others np.unique.
_BINCOUNT_RANGE = 1 << 20


@dataclass(frozen=True)
class RegionIntensity:
    """Statistics of one pixel set, one value per channel (None where it is empty)."""

    count: tuple[int, ...]
    mean: tuple[float | None, ...]
    std: tuple[float | None, ...]
    min: tuple[float | None, ...]
    max: tuple[float | None, ...]
    median: tuple[float | None, ...]
    percentile_00_5: tuple[float | None, ...]
    percentile_99_5: tuple[float | None, ...]

    def to_dict(self) -> dict[str, list[Any]]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegionIntensity:
        def num(v: Any) -> float | None:
            return None if v is None else float(v)

        out: dict[str, Any] = {"count": tuple(int(v) for v in d["count"])}
        for f in fields(cls):
            if f.name != "count":
                out[f.name] = tuple(num(v) for v in d[f.name])
        return cls(**out)


@dataclass(frozen=True)
class IntensityStats:
    """Per-channel intensity statistics of the train split (see the module docstring).

    ``exact`` is True for integer images (every value exact).

    Examples
    --------
    >>> img = np.array([[0, 10], [20, 30]], np.uint8)
    >>> lab = np.array([[0, 1], [1, 255]], np.uint8)
    >>> stats = intensity_partial(img, lab, void_label=255).summary()
    >>> stats.all.mean, stats.foreground.mean, stats.foreground.max
    ((15.0,), (15.0,), (20.0,))
    >>> IntensityStats.from_dict(stats.to_dict()) == stats
    True
    """

    exact: bool
    channels: int
    all: RegionIntensity
    foreground: RegionIntensity

    def region(self, name: str) -> RegionIntensity:
        if name not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {name!r}")
        return self.all if name == "all" else self.foreground

    def to_dict(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "channels": self.channels,
            "all": self.all.to_dict(),
            "foreground": self.foreground.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IntensityStats:
        return cls(
            exact=bool(d["exact"]),
            channels=int(d["channels"]),
            all=RegionIntensity.from_dict(d["all"]),
            foreground=RegionIntensity.from_dict(d["foreground"]),
        )


@dataclass(frozen=True, eq=False)
class IntensityPartial:
    """Mergeable intensity statistics of some pixels: histograms and moments.

    ``hist[(region, channel)]`` is ``(values, counts)``: the distinct values
    (int64 for integer images, float64 of the rounded values for float
    images), ascending, and how often each occurs. ``moments`` (float images
    only) holds ``(count, mean, M2, min, max)`` per region and channel, shape
    ``(2, channels, 5)``.
    """

    exact: bool
    channels: int
    hist: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]
    moments: np.ndarray | None = None

    def __add__(self, other: IntensityPartial) -> IntensityPartial:
        if not isinstance(other, IntensityPartial):
            return NotImplemented
        if (self.exact, self.channels) != (other.exact, other.channels):
            raise ValueError(
                "cannot merge intensity statistics of different image kinds "
                f"({'integer' if self.exact else 'float'}, {self.channels} channel(s) and "
                f"{'integer' if other.exact else 'float'}, {other.channels})"
            )
        hist = {}
        for key, (v1, c1) in self.hist.items():
            v2, c2 = other.hist[key]
            values, inverse = np.unique(np.concatenate([v1, v2]), return_inverse=True)
            counts = np.zeros(values.size, np.int64)
            np.add.at(counts, inverse, np.concatenate([c1, c2]))
            hist[key] = (values, counts)
        moments = None
        if self.moments is not None and other.moments is not None:
            moments = _merge_moments(self.moments, other.moments)
        return IntensityPartial(self.exact, self.channels, hist, moments)

    @classmethod
    def merge(cls, parts: Sequence[IntensityPartial]) -> IntensityPartial:
        """The sum of ``parts`` (non-empty) in one pass over their histograms."""
        if not parts:
            raise ValueError("merge needs at least one partial result")
        first = parts[0]
        if any((p.exact, p.channels) != (first.exact, first.channels) for p in parts):
            return sum(parts[1:], first)  # (raises the error)
        hist = {}
        for key in first.hist:
            values = np.concatenate([p.hist[key][0] for p in parts])
            counts = np.concatenate([p.hist[key][1] for p in parts])
            uniq, inverse = np.unique(values, return_inverse=True)
            total = np.zeros(uniq.size, np.int64)
            np.add.at(total, inverse, counts)
            hist[key] = (uniq, total)
        moments = first.moments
        for p in parts[1:]:
            if moments is not None and p.moments is not None:
                moments = _merge_moments(moments, p.moments)
        return cls(first.exact, first.channels, hist, moments)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntensityPartial):
            return NotImplemented
        same = (self.exact, self.channels) == (other.exact, other.channels) and all(
            np.array_equal(a, b)
            for key in self.hist
            for a, b in zip(self.hist[key], other.hist[key], strict=True)
        )
        if self.moments is None or other.moments is None:
            return same and self.moments is other.moments
        return same and np.allclose(self.moments, other.moments, rtol=1e-12, atol=0)

    __hash__ = None  # type: ignore[assignment]

    def summary(self) -> IntensityStats:
        """The statistics (:class:`IntensityStats`)."""
        regions = []
        for r, region in enumerate(REGIONS):
            per_channel = [self._channel(r, region, c) for c in range(self.channels)]
            regions.append(
                RegionIntensity(
                    **{
                        f.name: tuple(p[f.name] for p in per_channel)
                        for f in fields(RegionIntensity)
                    }
                )
            )
        return IntensityStats(self.exact, self.channels, regions[0], regions[1])

    def _channel(self, r: int, region: str, c: int) -> dict[str, Any]:
        values, counts = self.hist[(region, c)]
        n = int(counts.sum())
        out: dict[str, Any] = {"count": n}
        if n == 0:
            for f in fields(RegionIntensity):
                out.setdefault(f.name, None)
            return out
        if self.exact:
            vs = [int(v) for v in values.tolist()]
            cs = [int(k) for k in counts.tolist()]
            s1 = sum(v * k for v, k in zip(vs, cs, strict=True))
            s2 = sum(v * v * k for v, k in zip(vs, cs, strict=True))
            var = Fraction(n * s2 - s1 * s1, n * n)
            out.update(
                mean=float(Fraction(s1, n)),
                std=math.sqrt(float(var)),
                min=float(vs[0]),
                max=float(vs[-1]),
            )
        else:
            assert self.moments is not None
            count, mean, m2, lo, hi = self.moments[r, c].tolist()
            out.update(mean=mean, std=math.sqrt(max(m2, 0.0) / count), min=lo, max=hi)
        cum = np.cumsum(counts)
        for key, q in _PERCENTILES:
            out[key] = _percentile(values, cum, n, q)
        return out

    def to_arrays(self, prefix: str = "intensity") -> dict[str, np.ndarray]:
        """Plain arrays (for an ``.npz`` file); :meth:`from_arrays` inverts it."""
        out = {
            f"{prefix}.exact": np.asarray(self.exact),
            f"{prefix}.channels": np.asarray(self.channels, np.int64),
        }
        for (region, c), (values, counts) in self.hist.items():
            out[f"{prefix}.{region}.{c}.values"] = values
            out[f"{prefix}.{region}.{c}.counts"] = counts
        if self.moments is not None:
            out[f"{prefix}.moments"] = self.moments
        return out

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], prefix: str = "intensity"
    ) -> IntensityPartial:
        exact = bool(arrays[f"{prefix}.exact"])
        channels = int(arrays[f"{prefix}.channels"])
        hist = {
            (region, c): (
                np.asarray(arrays[f"{prefix}.{region}.{c}.values"]),
                np.asarray(arrays[f"{prefix}.{region}.{c}.counts"], np.int64),
            )
            for region in REGIONS
            for c in range(channels)
        }
        moments = arrays.get(f"{prefix}.moments")
        return cls(exact, channels, hist, None if moments is None else np.asarray(moments))

    @classmethod
    def empty(cls, exact: bool, channels: int) -> IntensityPartial:
        """No pixels."""
        kind = np.int64 if exact else np.float64
        hist = {
            (region, c): (np.zeros(0, kind), np.zeros(0, np.int64))
            for region in REGIONS
            for c in range(channels)
        }
        moments = None
        if not exact:
            moments = np.zeros((len(REGIONS), channels, 5))
            moments[..., 3], moments[..., 4] = np.inf, -np.inf
        return cls(exact, channels, hist, moments)


def _merge_moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chan et al.'s pairwise merge of ``(count, mean, M2, min, max)``."""
    na, nb = a[..., 0], b[..., 0]
    n = na + nb
    safe = np.where(n > 0, n, 1.0)
    delta = b[..., 1] - a[..., 1]
    out = np.empty_like(a)
    out[..., 0] = n
    out[..., 1] = np.where(n > 0, a[..., 1] + delta * nb / safe, 0.0)
    out[..., 2] = a[..., 2] + b[..., 2] + delta * delta * na * nb / safe
    out[..., 3] = np.minimum(a[..., 3], b[..., 3])
    out[..., 4] = np.maximum(a[..., 4], b[..., 4])
    return out


def _percentile(values: np.ndarray, cum: np.ndarray, n: int, q: float) -> float:
    """``np.percentile(data, q)`` (method "linear") of the data with histogram ``values``
    and cumulative counts ``cum``, done the way numpy does it."""
    virtual = (n - 1) * np.true_divide(q, 100)
    if virtual >= n - 1:
        return float(values[-1])
    prev = math.floor(virtual)
    gamma = float(virtual - prev)
    # The k-th smallest value (0-based) is the first bin whose cumulative count exceeds k.
    a = float(values[int(np.searchsorted(cum, prev, side="right"))])
    b = float(values[int(np.searchsorted(cum, prev + 1, side="right"))])
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def _int_hist(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = int(x.min()), int(x.max())
    if hi - lo < _BINCOUNT_RANGE:
        small = x.dtype in (np.uint8, np.uint16, np.uint32, np.bool_)
        shifted = x if small and lo == 0 else x.astype(np.int64) - lo
        counts = np.bincount(shifted.ravel(), minlength=hi - lo + 1)
        nz = np.flatnonzero(counts)
        return nz.astype(np.int64) + lo, counts[nz].astype(np.int64)
    if x.dtype == np.uint64 and hi > np.iinfo(np.int64).max:
        raise ValueError("uint64 images with values above 2**63 - 1 are not supported")
    values, counts = np.unique(x, return_counts=True)
    return values.astype(np.int64), counts.astype(np.int64)


def _float_part(x: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (np.zeros(0), np.zeros(0, np.int64)), np.array([0.0, 0.0, 0.0, np.inf, -np.inf])
    x64 = x.astype(np.float64)
    mean = float(x64.mean())
    m2 = float(np.square(x64 - mean).sum())
    rounded = (x.astype(np.float32).view(np.uint32) & _FLOAT_MASK).view(np.float32)
    values, counts = np.unique(rounded, return_counts=True)
    moments = np.array([float(x.size), mean, m2, float(x64.min()), float(x64.max())])
    return (values.astype(np.float64), counts.astype(np.int64)), moments


def intensity_partial(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    void_label: int,
    channels: int | None = None,
) -> IntensityPartial:
    """The mergeable intensity statistics of one sample or block.

    Parameters
    ----------
    image : ndarray
        The image, spatial shape of ``labels`` plus an optional trailing
        channel axis (as maskprep stores it).
    labels : ndarray of int
        Class indices, ``void_label`` on void; foreground is neither 0 nor void.
    void_label : int
    channels : int, optional
        Number of channels (default: the image's trailing axis, else 1).

    Examples
    --------
    >>> img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    >>> lab = np.zeros((3, 4), np.uint8); lab[1] = 1
    >>> a = intensity_partial(img[:1], lab[:1], void_label=255)
    >>> b = intensity_partial(img[1:], lab[1:], void_label=255)
    >>> (a + b).summary() == intensity_partial(img, lab, void_label=255).summary()
    True
    """
    img = np.asarray(image)
    lab = np.asarray(labels)
    if img.shape[: lab.ndim] != lab.shape or img.ndim > lab.ndim + 1:
        raise ValueError(f"image shape {img.shape} does not match labels shape {lab.shape}")
    if img.ndim == lab.ndim:
        img = img[..., np.newaxis]
    n_channels = img.shape[-1] if channels is None else int(channels)
    if img.shape[-1] != n_channels:
        raise ValueError(f"image has {img.shape[-1]} channel(s), expected {n_channels}")
    exact = img.dtype.kind in "iub"
    if img.dtype.kind not in "iubf":
        raise ValueError(f"image dtype {img.dtype} is not an integer or float type")
    fg = (lab != 0) & (lab != void_label)
    hist: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    moments = None if exact else np.empty((len(REGIONS), n_channels, 5))
    for c in range(n_channels):
        chan = img[..., c]
        for r, region in enumerate(REGIONS):
            x = chan.ravel() if region == "all" else chan[fg]
            if exact:
                hist[(region, c)] = _int_hist(x.view(np.uint8) if x.dtype == np.bool_ else x)
            else:
                assert moments is not None
                hist[(region, c)], moments[r, c] = _float_part(x)
    return IntensityPartial(exact, n_channels, hist, moments)


def _stats_region(
    stats: IntensityStats | Mapping[str, Any], region: str
) -> Mapping[str, Sequence[Any]]:
    if isinstance(stats, IntensityStats):
        return stats.region(region).to_dict()
    if not isinstance(stats, Mapping) or region not in stats:
        raise ValueError(
            f"stats must be IntensityStats or a dict with {' and '.join(REGIONS)} "
            "(shards.intensity_stats)"
        )
    return stats[region]


def normalize(
    image: Any,
    stats: IntensityStats | Mapping[str, Any],
    scheme: str = "zscore",
    *,
    region: str | None = None,
    channel_axis: int | None = -1,
) -> Any:
    """Normalise image intensities with a store's statistics, per channel.

    Parameters
    ----------
    image : ndarray or torch.Tensor
        Images or a batch; a torch tensor is normalised with torch on its
        device.
    stats : IntensityStats or dict
        ``shards.intensity_stats`` (or ``shards.store_metadata.intensity_stats``).
    scheme : {"zscore", "percentile", "ct"}
        ``zscore``: ``(x - mean) / std``. ``percentile``: clip to the 0.5th
        and 99.5th percentiles and scale that range to [0, 1]. ``ct`` (nnU-Net's
        CT normalisation): clip to the foreground's 0.5th and 99.5th
        percentiles, then ``(x - mean) / std`` of the foreground.
    region : {"all", "foreground"}, optional
        Whose statistics: default ``"all"`` for zscore and percentile,
        ``"foreground"`` for ct.
    channel_axis : int or None
        The channel axis of ``image`` (-1 for maskprep's channel-last numpy
        images, 1 for ``(B, C, H, W)`` batches); None if it has none (one
        channel).

    Returns
    -------
    float32 array (or tensor) of the image's shape.

    Examples
    --------
    >>> img = np.array([[0, 10], [20, 30]], np.uint8)
    >>> stats = intensity_partial(img, np.zeros((2, 2), np.uint8), void_label=255).summary()
    >>> normalize(img, stats, channel_axis=None).round(2)
    array([[-1.34, -0.45],
           [ 0.45,  1.34]], dtype=float32)
    >>> normalize(img, stats, "percentile", channel_axis=None).min()
    np.float32(0.0)
    """
    if scheme not in NORMALIZATION_SCHEMES:
        raise ValueError(
            f"scheme must be one of {', '.join(NORMALIZATION_SCHEMES)}, got {scheme!r}"
        )
    region = region or ("foreground" if scheme == "ct" else "all")
    values = _stats_region(stats, region)
    clip_values = _stats_region(stats, "foreground" if scheme == "ct" else region)

    def param(d: Mapping[str, Sequence[Any]], key: str) -> np.ndarray:
        got = list(d[key])
        if any(v is None for v in got):
            raise ValueError(
                f"the {region} statistics have no {key} for some channel (no such pixels "
                "in the train split)"
            )
        return np.asarray(got, dtype=np.float64)

    is_torch = type(image).__module__.startswith("torch")
    if is_torch:
        x = image.float()
        ndim = x.ndim
    else:
        x = np.asarray(image, dtype=np.float32)
        ndim = x.ndim
    channels = len(values["mean"])

    def shaped(p: np.ndarray) -> Any:
        if channel_axis is None:
            if p.size != 1:
                raise ValueError(
                    f"the statistics have {p.size} channels: give the image's channel_axis"
                )
            out = p.reshape(())
        else:
            axis = channel_axis % ndim
            if x.shape[axis] != channels:
                raise ValueError(
                    f"image axis {channel_axis} has {x.shape[axis]} entries, the statistics "
                    f"{channels} channel(s)"
                )
            shape = [1] * ndim
            shape[axis] = channels
            out = p.reshape(shape)
        if is_torch:
            import torch

            return torch.as_tensor(out, dtype=torch.float32, device=x.device)
        return out.astype(np.float32)

    if scheme == "percentile":
        lo, hi = param(values, "percentile_00_5"), param(values, "percentile_99_5")
        scale = np.maximum(hi - lo, 1e-8)
        x = x.clamp(shaped(lo), shaped(hi)) if is_torch else np.clip(x, shaped(lo), shaped(hi))
        return (x - shaped(lo)) / shaped(scale)
    if scheme == "ct":
        lo, hi = param(clip_values, "percentile_00_5"), param(clip_values, "percentile_99_5")
        x = x.clamp(shaped(lo), shaped(hi)) if is_torch else np.clip(x, shaped(lo), shaped(hi))
    mean, std = param(values, "mean"), np.maximum(param(values, "std"), 1e-8)
    return (x - shaped(mean)) / shaped(std)
