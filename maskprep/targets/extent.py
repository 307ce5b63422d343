"""Where each instance lies: ids and bounding boxes, for building big samples in blocks."""

from __future__ import annotations

import numpy as np

from maskprep import _kernels as _k
from maskprep.targets.border import _prepare

__all__ = ["instance_boxes"]


def instance_boxes(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct nonzero ids, ascending, and their bounding boxes.

    Parameters
    ----------
    instances : ndarray of int, 2D or 3D
        Instance ids, 0 = none (negative ids are not instances maskprep stores).

    Returns
    -------
    ids : ndarray of int64, shape (n,)
    boxes : ndarray of int64, shape (n, 2, ndim)
        ``boxes[k, 0]`` the first and ``boxes[k, 1]`` one past the last index
        of instance ``ids[k]`` along each axis.

    Examples
    --------
    >>> lab = np.zeros((4, 5), np.int32); lab[1:3, 2] = 7; lab[0, 4] = 3
    >>> ids, boxes = instance_boxes(lab)
    >>> ids.tolist(), boxes[1].tolist()
    ([3, 7], [[1, 2], [3, 3]])
    """
    arr = np.asarray(instances)
    if arr.ndim not in (2, 3) or arr.dtype.kind not in "iub":
        raise ValueError(f"instances must be a 2D or 3D integer image, got {arr.dtype} {arr.shape}")
    ndim = arr.ndim
    if arr.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 2, ndim), np.int64)
    lab, _, _ = _prepare(np.ascontiguousarray(arr), (1.0,) * ndim)
    ids, flat = _k.scan_boxes(lab)
    order = np.argsort(ids, kind="stable")
    ids = ids[order].astype(np.int64)
    # (z0, z1, y0, y1, x0, x1) -> (lo, hi) per axis; 2D images are one slice.
    boxes = flat[order].reshape(-1, 3, 2).transpose(0, 2, 1)[:, :, 3 - ndim :]
    return ids, np.ascontiguousarray(boxes)
