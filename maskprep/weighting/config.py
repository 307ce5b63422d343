"""The class-weight scheme and its parameters, validated and serialisable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from maskprep.weighting.stats import real_number

__all__ = ["NORMALIZATIONS", "ClassWeightConfig"]

NORMALIZATIONS: tuple[str, ...] = ("none", "mean", "sum")
"""Names accepted by ``ClassWeightConfig.normalize``."""


@dataclass(frozen=True)
class ClassWeightConfig:
    """Scheme and parameters for :func:`class_weights` (validated, immutable).

    Parameters
    ----------
    scheme : str
        A registered scheme (:func:`~maskprep.available_schemes`); see
        :func:`~maskprep.class_weights` for the formulas.
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
        from maskprep.weighting.schemes import SCHEME_REGISTRY

        if not isinstance(self.scheme, str) or self.scheme not in SCHEME_REGISTRY:
            raise ValueError(
                f"unknown class-weight scheme {self.scheme!r}; valid schemes are: "
                + ", ".join(SCHEME_REGISTRY.in_order())
            )
        if not isinstance(self.normalize, str) or self.normalize not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalize {self.normalize!r}; valid values are: "
                + ", ".join(NORMALIZATIONS)
            )
        mu = None if self.mu is None else real_number(self.mu, "mu")
        if mu is not None:
            if mu <= 0:
                raise ValueError(f"mu must be > 0, got {mu}")
            if self.scheme == "log-ratio" and mu < 1:
                raise ValueError(
                    f"scheme 'log-ratio' needs mu >= 1 so that ln(mu * N / n_c) >= 0 for every "
                    f"class, got mu = {mu}; use scheme='clamped' for mu < 1"
                )
        enet_c = real_number(self.enet_c, "enet_c")
        if enet_c <= 1:
            raise ValueError(
                f"enet_c must be > 1 so that 1 / ln(enet_c + p) is finite, got {enet_c}"
            )
        beta = None if self.beta is None else real_number(self.beta, "beta")
        if beta is not None and not 0 < beta < 1:
            raise ValueError(f"beta must lie in the open interval (0, 1), got {beta}")
        max_weight = None if self.max_weight is None else real_number(self.max_weight, "max_weight")
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
