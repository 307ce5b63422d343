"""The :class:`Target` protocol and the target registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maskprep.plugins import Registry

if TYPE_CHECKING:
    from maskprep.config import BuildConfig

__all__ = ["TARGETS", "Target", "TargetInput", "available_targets"]


@dataclass(frozen=True)
class TargetInput:
    """A void-filled sample, as every target computes from it.

    ``instances`` is int32 (0 background, and 0 on void); ``labels`` holds
    class indices with ``void_label`` on void pixels; ``class_weight_lut``
    maps a label value to its class weight (0 for void).
    """

    image: np.ndarray | None
    labels: np.ndarray
    instances: np.ndarray
    config: BuildConfig
    class_weight_lut: np.ndarray

    @property
    def void(self) -> np.ndarray:
        """True where the pixel is not annotated."""
        return self.labels == self.config.void_label


class Target:
    """Base class of training targets: one stored array computed per sample.

    Subclasses set :attr:`name`, :attr:`dtype` and :attr:`fill_value`
    (the value of padding and of pixels outside a sample), may override
    :meth:`channels`, and implement :meth:`compute`. Register an instance in
    :data:`TARGETS`, or through the ``maskprep.targets`` entry-point group.
    """

    #: Array name in the store and key in every sample dict.
    name: str = ""
    #: numpy dtype name of the stored array.
    dtype: str = "float32"
    #: Padding value, and the value a reader fills outside a sample.
    fill_value: int | float = 0
    #: True if :meth:`compute` reads ``class_weight_lut``: ``reweight`` recomputes it.
    uses_class_weights: bool = False

    def channels(self, ndim: int, config: BuildConfig) -> int | None:
        """Length of a trailing channel axis, or None for a plain spatial array."""
        return None

    def compute(self, sample: TargetInput) -> np.ndarray:
        """The target of one sample: spatial shape (plus channels), :attr:`dtype`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<target {self.name!r} {self.dtype}>"


#: Registered targets (the border weight map ``weights`` first).
TARGETS: Registry[Target] = Registry(
    "target", group="maskprep.targets", builtins=("maskprep.targets.weights",)
)


def available_targets() -> tuple[str, ...]:
    """Names of every registered training target, plugins included.

    Examples
    --------
    >>> "weights" in available_targets()
    True
    """
    return TARGETS.names()
