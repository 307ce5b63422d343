"""Source values -> class indices or void, and instances from connected components."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError
from maskprep.ingest.source import SourceSpec, ranges

__all__ = ["components", "labels_dtype", "map_source_values"]

def labels_dtype(spec: SourceSpec, void_label: int) -> type[np.unsignedinteger[Any]]:
    top = max([void_label, *spec.class_indices])
    return np.uint8 if top <= 255 else np.uint16


def map_source_values(
    values: np.ndarray,
    path: Path,
    spec: SourceSpec,
    void_label: int,
    unlabeled_value: int | None,
    what: str,
) -> np.ndarray:
    """Source values -> class indices (``void_label`` on void), int32.

    Raises a DataError naming the file and the first undeclared value.
    """
    lut = spec.lookup(void_label)
    outside = values >= lut.size
    mapped = lut[np.minimum(values, lut.size - 1)] if outside.any() else lut[values]
    mapped = np.where(outside, -1, mapped) if outside.any() else mapped
    if unlabeled_value is not None:
        mapped = np.where(values == unlabeled_value, void_label, mapped)
    bad = mapped < 0
    if bad.any():
        _undeclared(path, values[bad], spec, void_label, unlabeled_value, what)
    return mapped


def _undeclared(
    path: Path,
    bad: np.ndarray,
    spec: SourceSpec,
    void_label: int,
    unlabeled_value: int | None,
    what: str,
) -> None:
    vals, counts = np.unique(bad, return_counts=True)
    hit = np.flatnonzero(vals == void_label)
    k = int(hit[0]) if hit.size else 0
    v, n = int(vals[k]), int(counts[k])
    more = f" (and {vals.size - 1} other undeclared value(s))" if vals.size > 1 else ""
    if v == void_label:
        raise DataError(
            f"{path}: {what} {v} ({n} pixel(s)) collides with the void label {void_label}: "
            "the recipe does not declare it void; list it in void_values (or set "
            f"unlabeled_value), or choose another void label{more}"
        )
    void = [*spec.void_values, *([] if unlabeled_value is None else [unlabeled_value])]
    raise DataError(
        f"{path}: {what} {v} ({n} pixel(s)) is not a declared class value{more}; "
        f"the recipe maps {ranges([s for s, _ in spec.label_map])} to classes and "
        f"{ranges(void)} to void"
    )


def components(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Instance ids from the connected components of each class (module docstring)."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(labels.ndim, labels.ndim)
    out = np.zeros(labels.shape, dtype=np.int32)
    next_id = 0
    for c in sorted(classes):
        comp, n = ndimage.label(labels == c, structure=structure)
        if n:
            on = comp > 0
            out[on] = comp[on] + next_id
            next_id += int(n)
    return out

