"""The ``weights`` target: class weight plus the U-Net border term, 0 on void.

``weights = w_c(x) + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` with ``w_c`` the
class weight of the pixel's label and ``d1 <= d2`` the distances to the two
nearest instances (:func:`~maskprep.targets.border.border_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskprep.targets.base import TARGETS, Target, TargetInput
from maskprep.targets.border import border_weights

if TYPE_CHECKING:
    from maskprep.config import BuildConfig

__all__ = ["WeightsTarget", "weight_lookup", "weight_map"]


def weight_lookup(
    void_label: int, num_classes: int, weights: Sequence[float] | np.ndarray
) -> np.ndarray:
    """float32 table label -> class weight, 0 for void and unused values.

    Examples
    --------
    >>> weight_lookup(3, 2, [0.5, 2.0]).tolist()
    [0.5, 2.0, 0.0, 0.0]
    """
    lut = np.zeros(max(void_label, num_classes - 1) + 1, dtype=np.float32)
    lut[:num_classes] = np.asarray(weights, dtype=np.float64).astype(np.float32)
    lut[void_label] = 0.0
    return lut


def weight_map(
    instances: np.ndarray, labels: np.ndarray, config: BuildConfig, weight_lut: np.ndarray
) -> np.ndarray:
    """Class weight plus border term; 0 on void (``weight_lut[void_label] == 0``)."""
    border = border_weights(
        instances,
        w0=config.w0,
        sigma=config.sigma,
        spacing=config.spacing,
        region=config.border_region,
        tolerance=config.tolerance,
    )
    weights = weight_lut[labels] + border
    weights[labels == config.void_label] = 0.0
    return weights


class WeightsTarget(Target):
    """U-Net weight map (Ronneberger et al. 2015, eq. 2), float32."""

    name = "weights"
    dtype = "float32"
    fill_value = 0
    uses_class_weights = True
    context = "local"

    def halo(self, ndim: int, config: BuildConfig) -> tuple[int, ...]:
        # Beyond R = sigma * sqrt(2 ln(1 / tolerance)) the border term is 0
        # (border_weights' notes): the crop holds every pixel within R.
        radius = config.sigma * math.sqrt(2.0 * math.log(1.0 / config.tolerance))
        spacing = config.spacing or (1.0,) * ndim
        return tuple(math.ceil(radius / s) for s in spacing)

    def compute(self, sample: TargetInput) -> np.ndarray:
        return weight_map(sample.instances, sample.labels, sample.config, sample.class_weight_lut)


TARGETS.register(WeightsTarget.name, WeightsTarget())
