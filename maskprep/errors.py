"""Exceptions raised by maskprep.

Every error about user data derives from :class:`MaskprepError` and carries a
message that names the offending file and what is wrong with it, so the CLI can
print it without a traceback.
"""

from __future__ import annotations

__all__ = ["DataError", "MaskprepError", "OutputError", "PluginError", "StoreError"]


class MaskprepError(Exception):
    """Base class of all errors maskprep raises on purpose."""


class DataError(MaskprepError, ValueError):
    """An input file or dataset layout is invalid (names the file and the problem)."""


class StoreError(MaskprepError):
    """An output store is missing, incomplete, or not a maskprep store."""


class OutputError(MaskprepError):
    """An output path cannot be created (names the path and what is in the way)."""


class PluginError(MaskprepError):
    """A registered plugin (layout, target, scheme) is broken or clashes with another."""
