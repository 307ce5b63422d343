"""Training targets recomputed from augmented patches, with the store's parameters.

A geometric augmentation (elastic deformation, scaling, rotation) moves the
instances; warping the stored border weight map with them does not give the
weight map of the moved instances (distances between instances change).
:class:`TargetRecompute` computes each target again from the transformed
``labels`` and ``instances`` with the store's own build options (``w0``,
``sigma``, spacing, tolerance, border region, class weights, ...), the same
code the build runs. The patch is read with a margin of
:func:`recompute_margin` pixels per side first: the border term of a pixel
depends only on instances within the cutoff ``R = sigma * sqrt(2 ln(1 /
tolerance))``, so for the patch's centre the result is then what the whole
transformed sample would give (on an identity transform: the stored map,
within ``tolerance * w0``). Targets normalised per instance (``distance``,
``stardist``, ``hover``) see only the instance parts inside the margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskprep.targets import TARGETS, TargetInput
from maskprep.targets.weights import weight_lookup

if TYPE_CHECKING:
    from maskprep.store import StoreMetadata

__all__ = ["TargetRecompute", "recompute_margin"]


def recompute_margin(meta: StoreMetadata) -> tuple[int, ...]:
    """Pixels of context per side and axis that make a recomputed border term exact:
    ``ceil(R / spacing)`` with the store's cutoff ``R``, plus one for the
    neighbourhood targets (boundary, affinities).

    Examples
    --------
    >>> from maskprep import example_store, open_shards
    >>> recompute_margin(open_shards(example_store(n_images=2)).store_metadata)  # sigma 5
    (28, 28)
    """
    ndim = len(meta.layout_info.spatial_shape)
    spacing = meta.spacing or (1.0,) * ndim
    cutoff = meta.sigma * math.sqrt(2.0 * math.log(1.0 / meta.tolerance))
    return tuple(math.ceil(cutoff / s) + 1 for s in spacing)


class TargetRecompute:
    """Recompute stored targets of a patch from its (transformed) labels and instances.

    Parameters
    ----------
    meta : StoreMetadata
        The store's metadata: its build options and class weights.
    names : sequence of str
        The targets to compute (stored target arrays, e.g. ``("weights",)``).

    Examples
    --------
    >>> from maskprep import example_store, open_shards
    >>> shards = open_shards(example_store(n_images=2))
    >>> sample = shards[0]
    >>> again = TargetRecompute(shards.store_metadata, ["weights"])(
    ...     sample["labels"], sample["instances"], sample["image"])
    >>> bool(np.abs(again["weights"] - sample["weights"]).max() <= 1e-6 * 10)
    True
    """

    def __init__(self, meta: StoreMetadata, names: Sequence[str]) -> None:
        self.config = meta.build_config()
        self.names = tuple(names)
        unknown = [n for n in self.names if n not in meta.arrays or n in ("image", "labels")]
        if unknown or "instances" in self.names:
            raise ValueError(f"cannot recompute {unknown or ['instances']}: not a stored target")
        self.lut = weight_lookup(
            self.config.void_label, self.config.num_classes, meta.class_weights
        )

    def __call__(
        self, labels: np.ndarray, instances: np.ndarray, image: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        inst = np.asarray(instances, dtype=np.int32)
        # As the build: no instance on void pixels.
        inst = np.where(labels == self.config.void_label, 0, inst).astype(np.int32)
        sample = TargetInput(image, np.asarray(labels), inst, self.config, self.lut)
        out = {}
        for name in self.names:
            target = TARGETS.get(name)
            out[name] = np.asarray(target.compute(sample), dtype=target.dtype)
        return out
