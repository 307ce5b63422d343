"""maskprep: training-ready segmentation data.

Void fill, exact class counts and weights, U-Net border weight maps and other
training targets, and zarr v3 shards for any trainer.

The package is laid out by pipeline stage (see ``docs/architecture.md``):
:mod:`maskprep.ingest` -> :mod:`maskprep.voidfill` -> :mod:`maskprep.weighting`
-> :mod:`maskprep.targets` -> :mod:`maskprep.store` -> :mod:`maskprep.pipeline`
-> :mod:`maskprep.reader` -> :mod:`maskprep.tools`, :mod:`maskprep.torch`,
:mod:`maskprep.metrics`, :mod:`maskprep.cli`.

Importing maskprep is cheap: every name below is loaded on first use
(scikit-image's lazy-loader pattern), so a DataLoader worker that only reads
a store never imports numba, dask or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from maskprep._version import __version__

# name -> module that defines it
_LAZY = {
    "BuildConfig": "maskprep.config",
    "BuildSummary": "maskprep.pipeline",
    "ClassStats": "maskprep.weighting",
    "ClassWeightConfig": "maskprep.weighting",
    "DataError": "maskprep.errors",
    "IntensityStats": "maskprep.intensity",
    "Layout": "maskprep.ingest",
    "MaskprepError": "maskprep.errors",
    "PluginError": "maskprep.errors",
    "Recipe": "maskprep.recipes",
    "ReweightSummary": "maskprep.pipeline",
    "Shards": "maskprep.reader",
    "SchedulerError": "maskprep.errors",
    "StoreError": "maskprep.errors",
    "StoreMetadata": "maskprep.store",
    "Target": "maskprep.targets",
    "VerifyReport": "maskprep.tools.verify",
    "available_layouts": "maskprep.ingest",
    "available_schemes": "maskprep.weighting",
    "available_targets": "maskprep.targets",
    "border_weights": "maskprep.targets",
    "border_weights_reference": "maskprep.targets",
    "build_weights": "maskprep.pipeline",
    "class_weights": "maskprep.weighting",
    "compute_target": "maskprep.targets",
    "discover": "maskprep.ingest",
    "example_store": "maskprep.tools.sample_data",
    "format_inspection": "maskprep.tools.inspect_text",
    "inspect_store": "maskprep.tools.inspect",
    "load_recipe": "maskprep.recipes",
    "make_sample": "maskprep.tools.sample_data",
    "normalize": "maskprep.intensity",
    "open_shards": "maskprep.reader",
    "preview": "maskprep.tools.preview",
    "read_sample": "maskprep.ingest",
    "reweight": "maskprep.pipeline",
    "semantic_labels": "maskprep.voidfill",
    "upgrade_store": "maskprep.tools.upgrade",
    "verify_store": "maskprep.tools.verify",
}

__all__ = [
    "BuildConfig",
    "BuildSummary",
    "ClassStats",
    "ClassWeightConfig",
    "DataError",
    "IntensityStats",
    "Layout",
    "MaskprepError",
    "PluginError",
    "Recipe",
    "ReweightSummary",
    "SchedulerError",
    "Shards",
    "StoreError",
    "StoreMetadata",
    "Target",
    "VerifyReport",
    "__version__",
    "available_layouts",
    "available_schemes",
    "available_targets",
    "border_weights",
    "border_weights_reference",
    "build_weights",
    "class_weights",
    "compute_target",
    "discover",
    "example_store",
    "format_inspection",
    "inspect_store",
    "load_recipe",
    "make_sample",
    "normalize",
    "open_shards",
    "preview",
    "read_sample",
    "reweight",
    "semantic_labels",
    "upgrade_store",
    "verify_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maskprep' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:  # static checkers see the real names
    from maskprep.config import BuildConfig
    from maskprep.errors import (
        DataError,
        MaskprepError,
        PluginError,
        SchedulerError,
        StoreError,
    )
    from maskprep.ingest import Layout, available_layouts, discover, read_sample
    from maskprep.intensity import IntensityStats, normalize
    from maskprep.pipeline import BuildSummary, ReweightSummary, build_weights, reweight
    from maskprep.reader import Shards, open_shards
    from maskprep.recipes import Recipe, load_recipe
    from maskprep.store import StoreMetadata
    from maskprep.targets import (
        Target,
        available_targets,
        border_weights,
        border_weights_reference,
        compute_target,
    )
    from maskprep.tools.inspect import inspect_store
    from maskprep.tools.inspect_text import format_inspection
    from maskprep.tools.preview import preview
    from maskprep.tools.sample_data import example_store, make_sample
    from maskprep.tools.upgrade import upgrade_store
    from maskprep.tools.verify import VerifyReport, verify_store
    from maskprep.voidfill import semantic_labels
    from maskprep.weighting import (
        ClassStats,
        ClassWeightConfig,
        available_schemes,
        class_weights,
    )
