"""maskprep: training-ready segmentation data.

Void fill, exact class counts and weights, U-Net border weight maps, and zarr v3
shards for any trainer.
"""

from maskprep._border import border_weights, border_weights_reference
from maskprep._class_weights import ClassStats, ClassWeightConfig, class_weights
from maskprep._config import BuildConfig
from maskprep._errors import DataError, MaskprepError, StoreError
from maskprep._ingest import discover, read_sample
from maskprep._inspect import format_inspection, inspect_store
from maskprep._pipeline import BuildSummary, build_weights, semantic_labels
from maskprep._preview import preview
from maskprep._reader import Shards, open_shards
from maskprep._recipes import Recipe, load_recipe
from maskprep._reweight import ReweightSummary, reweight
from maskprep._sample_data import make_sample
from maskprep._verify import VerifyReport, verify_store
from maskprep._version import __version__

__all__ = [
    "BuildConfig",
    "BuildSummary",
    "ClassStats",
    "ClassWeightConfig",
    "DataError",
    "MaskprepError",
    "Recipe",
    "ReweightSummary",
    "Shards",
    "StoreError",
    "VerifyReport",
    "__version__",
    "border_weights",
    "border_weights_reference",
    "build_weights",
    "class_weights",
    "discover",
    "format_inspection",
    "inspect_store",
    "load_recipe",
    "make_sample",
    "open_shards",
    "preview",
    "read_sample",
    "reweight",
    "semantic_labels",
    "verify_store",
]
