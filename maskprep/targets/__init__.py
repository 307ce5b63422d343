"""Targets: what a network is trained against, computed per sample from its instances.

Owns the :class:`Target` protocol and registry: ``weights`` (class weight +
U-Net border term), ``boundary``, ``distance``, ``stardist``, ``hover``,
``affinities`` and ``cellpose``, one module each; third-party targets come through the
``maskprep.targets`` entry-point group and the border-term arithmetic's
public entry points. Heavy arithmetic lives in :mod:`maskprep._kernels`.

Must never import dask, zarr, or the store, reader, pipeline or tools stages.
"""

from maskprep.targets.base import (
    TARGETS,
    Target,
    TargetInput,
    available_targets,
    compute_target,
)
from maskprep.targets.border import border_weights, border_weights_reference

__all__ = [
    "TARGETS",
    "Target",
    "TargetInput",
    "available_targets",
    "border_weights",
    "border_weights_reference",
    "compute_target",
]
