"""Weighting: exact class statistics and class-weight schemes.

Owns :class:`ClassStats` (exact integer pixel counts of the train split, void
excluded, merged with ``+``), :class:`ClassWeightConfig` and the scheme
registry behind :func:`class_weights` (formulas in its docstring).

Must never import dask, numba, zarr, or any other maskprep stage: it works on
counts, not on images or stores.
"""

from maskprep.weighting.config import NORMALIZATIONS, ClassWeightConfig
from maskprep.weighting.schemes import (
    SCHEME_REGISTRY,
    SCHEMES,
    ClassWeightWarning,
    Scheme,
    available_schemes,
    class_weights,
    effective_number_beta,
)
from maskprep.weighting.stats import ClassStats, count_classes

__all__ = [
    "NORMALIZATIONS",
    "SCHEMES",
    "SCHEME_REGISTRY",
    "ClassStats",
    "ClassWeightConfig",
    "ClassWeightWarning",
    "Scheme",
    "available_schemes",
    "class_weights",
    "count_classes",
    "effective_number_beta",
]
