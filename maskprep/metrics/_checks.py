"""Argument validation shared by the semantic and instance metrics."""

from __future__ import annotations

import operator
from typing import SupportsIndex

import numpy as np
import numpy.typing as npt


def _as_labels(x: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must have an integer (or bool) dtype, got {arr.dtype}")
    return arr


def _label_pair(true: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels(true, "true")
    p = _as_labels(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"true and pred must have the same shape, got {t.shape} and {p.shape}")
    return t, p


def _as_int(value: SupportsIndex, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _void_int(void_label: SupportsIndex | None) -> int | None:
    return None if void_label is None else _as_int(void_label, "void_label")
