"""maskprep: training-ready segmentation data.

Void fill, exact class counts and weights, U-Net border weight maps, and zarr v3
shards for any trainer.
"""

from maskprep._version import __version__
from maskprep.config import BuildConfig
from maskprep.errors import DataError, MaskprepError, StoreError
from maskprep.ingest import discover, read_sample
from maskprep.pipeline.build import BuildSummary, build_weights
from maskprep.pipeline.reweight import ReweightSummary, reweight
from maskprep.reader import Shards, open_shards
from maskprep.recipes.recipe import Recipe, load_recipe
from maskprep.targets.border import border_weights, border_weights_reference
from maskprep.tools.inspect import inspect_store
from maskprep.tools.inspect_text import format_inspection
from maskprep.tools.preview import preview
from maskprep.tools.sample_data import make_sample
from maskprep.tools.verify import VerifyReport, verify_store
from maskprep.voidfill import semantic_labels
from maskprep.weighting import ClassStats, ClassWeightConfig, class_weights

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
