"""Void fill: the one place where unannotated pixels become the void label.

A loaded sample carries a boolean ``void`` mask (from ``unlabeled/`` masks, an
``unlabeled_value``, a recipe's void values, COCO crowd regions). The stored
labels put ``void_label`` there; targets give void pixels their fill value
(weight 0); padding of smaller samples is void too (see :mod:`maskprep.store`).

Imports only numpy and the ingest data model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from maskprep.ingest import LoadedSample

__all__ = ["labels_dtype", "sample_labels", "semantic_labels", "with_void_border"]


def labels_dtype(void_label: int, num_classes: int) -> str:
    """Smallest unsigned dtype holding every class and the void label.

    Examples
    --------
    >>> labels_dtype(255, 2), labels_dtype(300, 2)
    ('uint8', 'uint16')
    """
    return "uint8" if max(void_label, num_classes - 1) <= 255 else "uint16"


def semantic_labels(
    instances: np.ndarray, void: np.ndarray, void_label: int, dtype: Any = np.uint8
) -> np.ndarray:
    """Semantic labels of an instance dataset: 0 background, 1 object, void elsewhere.

    Examples
    --------
    >>> inst = np.array([[0, 7], [0, 0]], dtype=np.int32)
    >>> void = np.array([[False, False], [False, True]])
    >>> semantic_labels(inst, void, 255)
    array([[  0,   1],
           [  0, 255]], dtype=uint8)
    """
    labels = (instances != 0).astype(dtype)
    labels[void] = void_label
    return labels


def sample_labels(s: LoadedSample, void_label: int, dtype: Any = np.uint8) -> np.ndarray:
    """The stored labels of a loaded sample, void filled, as ``dtype``.

    Semantic layouts read their labels (:attr:`LoadedSample.labels`, void
    already filled); instance layouts derive them with :func:`semantic_labels`.
    """
    if s.labels is None:
        return semantic_labels(s.instances, s.void, void_label, dtype)
    return s.labels.astype(dtype, copy=False)


def with_void_border(s: LoadedSample, width: float, mode: str, void_label: int) -> LoadedSample:
    """``s`` with a void band of ``width`` pixels at instance borders (VOC style).

    ``mode="between"``: pixels within ``width`` of a border between two
    different instances; ``"around"``: within ``width`` of every instance's
    boundary, both sides (:func:`~maskprep.targets.voidband.void_border_mask`).
    The band becomes void everywhere: in ``void``, in the labels, and
    instance 0. ``width == 0`` returns ``s`` unchanged.
    """
    if width == 0:
        return s
    from maskprep.targets.voidband import void_border_mask

    band = void_border_mask(s.instances, width=width, mode=mode)
    void = s.void | band
    instances = s.instances.copy()
    instances[void] = 0
    labels = None
    if s.labels is not None:
        labels = s.labels.copy()
        labels[void] = void_label
    return replace(s, void=void, instances=instances, labels=labels)

