"""Normalised per-instance distance transform (StarDist's object probability)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maskprep._kernels._ids import dense_ids
from maskprep._kernels._targets import edt_normalised
from maskprep.targets._common import as_labels, as_spacing, instances_doc
from maskprep.targets.base import TargetInput, simple_target

__all__ = ["distance_map"]


@instances_doc
def distance_map(instances: np.ndarray, *, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Euclidean distance to the instance's outside, divided by the instance's maximum.

    Parameters
    ----------
    instances : ndarray of int or bool, 2D or 3D
        {instances}
    spacing : sequence of float, optional
        Pixel size per axis (``stardist.utils.edt_prob``'s ``anisotropy``).

    Returns
    -------
    ndarray of float32, same shape as ``instances``.
        0 on background, in ``(0, 1]`` on instances, 1 (up to ``1e-10``) at
        each instance's farthest pixel.

    Notes
    -----
    As ``stardist.utils.edt_prob``: the distance of an instance pixel is to
    the nearest pixel of the image with another value (background or
    another instance); pixels beyond the image edge are not outside, so an
    instance cut by the edge grows away from it. The one exception, also
    stardist's, is an image that is a single instance everywhere: then the
    outside of the image is background. The result is
    ``d / (max d + 1e-10)`` computed in float64, then rounded to float32.

    One exact separable transform for all instances at once (row distances
    to the run ends, then lower envelopes of parabolas along y and z within
    each run of one id), instead of one transform per instance: 1.4-2.2x faster
    than stardist's scipy path and 1.4-1.9x faster than its seung-lab
    ``edt`` path on 1024^2 (benchmarks/bench_targets.py, several runs).

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((1, 7), dtype=np.int64)
    >>> lab[0, 1:6] = 2**40
    >>> distance_map(lab).round(3)
    array([[0.   , 0.333, 0.667, 1.   , 0.667, 0.333, 0.   ]], dtype=float32)
    """
    lab = as_labels(instances)
    sp = as_spacing(spacing, lab.ndim)
    shape = lab.shape
    if lab.size == 0:
        return np.zeros(shape, np.float32)
    if lab.ndim == 2:
        lab = lab.reshape((1, *shape))
        sp = (1.0, *sp)
    idx = np.empty(lab.shape, np.int32)
    count = dense_ids(lab, idx)
    flat = lab.ravel()
    whole = count == 1 and bool(flat[0] != 0) and bool(np.all(flat == flat[0]))
    out = np.empty(lab.shape, np.float32)
    scratch = np.empty(lab.shape, np.float64)
    black_z = whole and len(shape) == 3
    edt_normalised(idx, count, sp[0], sp[1], sp[2], black_z, whole, scratch, out)
    return out.reshape(shape)


@simple_target("distance", "float32", context="instance")
def _distance(sample: TargetInput) -> np.ndarray:
    """``distance``: per-instance normalised distance to the outside (``spacing``), float32."""
    return distance_map(sample.instances, spacing=sample.config.spacing)
