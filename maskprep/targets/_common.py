"""Argument checks and the docstring text shared by the target functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = ["INSTANCES_DOC", "as_labels", "as_spacing", "instances_doc"]

F = TypeVar("F", bound=Callable[..., Any])

INSTANCES_DOC = (
    "Instance image: 0 is background, every other value one instance.\n"
    "        Ids need not be sequential and may be any value of the dtype."
)
"""What every target function's ``instances`` parameter is (its docstring's ``{instances}``)."""


def instances_doc(f: F) -> F:
    """Decorator: :data:`INSTANCES_DOC` in place of ``{instances}`` in ``f``'s docstring."""
    if f.__doc__:  # None under python -OO
        f.__doc__ = f.__doc__.replace("{instances}", INSTANCES_DOC)
    return f


def as_labels(instances: object, *, ndims: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """``instances`` as a C-contiguous unsigned array, checked.

    Ids are only compared for equality, so a signed image is viewed (free)
    as the unsigned integer of the same width and bool as uint8: four
    compiled variants of each kernel instead of nine.
    """
    arr = np.asarray(instances)
    if arr.ndim not in ndims:
        dims = " or ".join(f"{d}D" for d in ndims)
        raise ValueError(f"instances must be a {dims} label image, got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"instances must have an integer or bool dtype, got {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr).view(f"u{arr.dtype.itemsize}")


def as_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """``spacing`` as ``ndim`` positive finite floats (ones if None)."""
    if spacing is None:
        return (1.0,) * ndim
    try:
        sp = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing must be a sequence of {ndim} numbers, got {spacing!r}") from None
    if len(sp) != ndim:
        raise ValueError(f"spacing {spacing!r} has {len(sp)} values for a {ndim}D image")
    if not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing values must be finite and > 0, got {spacing!r}")
    return sp
