"""HoVer-Net horizontal and vertical distance maps."""

from __future__ import annotations

import numpy as np

from maskprep._kernels._ids import dense_ids
from maskprep._kernels._targets import hover_2d
from maskprep.targets._common import as_labels, instances_doc
from maskprep.targets.base import TargetInput, simple_target

__all__ = ["hover_maps"]


@instances_doc
def hover_maps(instances: np.ndarray) -> np.ndarray:
    """Offsets of each instance pixel from its instance's centroid, scaled to [-1, 1].

    Parameters
    ----------
    instances : ndarray of int or bool, 2D
        {instances}

    Returns
    -------
    ndarray of float32, shape ``(H, W, 2)``.
        Channel 0 horizontal (along x, the last axis), channel 1 vertical
        (along y); 0 on background.

    Notes
    -----
    As MONAI's ``ComputeHoVerMaps`` (HoVer-Net, Graham et al. 2019), with
    channels last: the centroid is the mean pixel coordinate of the
    instance; along each axis, negative offsets are divided by the largest
    negative offset's magnitude and positive ones by the largest positive
    offset, so each instance spans [-1, 1] (or 0 where it is one pixel
    thick), computed in float64 and rounded to float32.

    One pass gathers every instance's count, coordinate sums and extent,
    a second writes the maps: 25-43x faster than MONAI's per-region loop
    on 1024^2 (benchmarks/bench_targets.py, several runs).

    3D images are refused: MONAI's transform accepts them but computes the
    maps from the first two axes only.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((3, 5), dtype=np.uint16)
    >>> lab[1, :4] = 3
    >>> hover_maps(lab)[..., 0]
    array([[ 0.        ,  0.        ,  0.        ,  0.        ,  0.        ],
           [-1.        , -0.33333334,  0.33333334,  1.        ,  0.        ],
           [ 0.        ,  0.        ,  0.        ,  0.        ,  0.        ]],
          dtype=float32)
    """
    lab = as_labels(instances, ndims=(2,))
    if lab.size == 0:
        return np.zeros((*lab.shape, 2), np.float32)
    idx = np.empty(lab.shape, np.int32)
    count = dense_ids(lab, idx)
    return hover_2d(idx, count)


@simple_target("hover", "float32", channels=2, context="instance")
def _hover(sample: TargetInput) -> np.ndarray:
    """``hover``: HoVer-Net maps (channel 0 along x, 1 along y), float32, 2D."""
    return hover_maps(sample.instances)
