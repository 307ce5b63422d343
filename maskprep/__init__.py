"""maskprep: training-ready segmentation data."""

from maskprep._border import border_weights, border_weights_reference
from maskprep._errors import DataError, MaskprepError, StoreError
from maskprep._version import __version__

__all__ = [
    "DataError",
    "MaskprepError",
    "StoreError",
    "__version__",
    "border_weights",
    "border_weights_reference",
]
