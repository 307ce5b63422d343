"""Exceptions raised by maskprep.

Every error about user data derives from :class:`MaskprepError` and carries a
message that names the offending file and what is wrong with it, so the CLI can
print it without a traceback.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "MaskprepError",
    "OutputError",
    "PluginError",
    "SchedulerError",
    "StoreError",
    "check_known_keys",
]


class MaskprepError(Exception):
    """Base class of all errors maskprep raises on purpose."""


class DataError(MaskprepError, ValueError):
    """An input file or dataset layout is invalid (names the file and the problem)."""


class StoreError(MaskprepError):
    """An output store is missing, incomplete, or not a maskprep store."""


class SchedulerError(MaskprepError):
    """A dask-distributed scheduler cannot be reached (names its address)."""


class OutputError(MaskprepError):
    """An output path cannot be created (names the path and what is in the way)."""


class PluginError(MaskprepError):
    """A registered plugin (layout, target, scheme) is broken or clashes with another."""


def check_known_keys(data: object, known: object, what: str) -> None:
    """ValueError naming the keys of ``data`` that are not in ``known``.

    Shared by the ``from_dict`` of maskprep's config dataclasses.

    Examples
    --------
    >>> check_known_keys({"w0": 1, "sigm": 2}, {"w0", "sigma"}, "build option")
    Traceback (most recent call last):
    ...
    ValueError: unknown build option(s): sigm
    """
    unknown = sorted(set(data) - set(known))  # type: ignore[call-overload]
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}")

