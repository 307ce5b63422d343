"""cellpose flows: the gradient of heat diffused from each instance's centre."""

from __future__ import annotations

import numpy as np

from maskprep._kernels._flows import cellpose_flows_2d
from maskprep._kernels._ids import dense_ids
from maskprep.targets._common import as_labels, instances_doc
from maskprep.targets.base import TargetInput, simple_target

__all__ = ["cellpose_flows"]


@instances_doc
def cellpose_flows(instances: np.ndarray) -> np.ndarray:
    """Unit flow vectors towards each instance's centre, as cellpose trains on them.

    Parameters
    ----------
    instances : ndarray of int or bool, 2D
        {instances}

    Returns
    -------
    ndarray of float32, shape ``(H, W, 2)``.
        Channel 0 along y (vertical), channel 1 along x, as cellpose's
        ``(dy, dx)``; 0 on background.

    Notes
    -----
    As ``cellpose.dynamics.masks_to_flows_gpu`` (cellpose 4, the CPU
    device; the flows of ``labels_to_flows``) rounded to float32: heat is
    diffused from the instance pixel nearest its mean (cellpose's
    ``center_of_mass``) for ``2 * max(h + w + 2)`` steps over the instances'
    boxes, each step setting a pixel to the mean of itself and its 8
    neighbours in the same instance (0 for the others), after adding 1 at
    the centre; the flow is the central difference of the heat along y and
    x (neighbouring instances' heat included), normalised. The step count
    depends on the largest instance in the image, so the target is
    computed on whole samples only. cellpose diffuses in float32 past 4e7
    padded pixels (about 6300^2); maskprep stays in float64 there, so the
    last float32 bit may differ on such images. An instance in several
    pieces gets flows only in the piece holding its centre (0 elsewhere),
    as in cellpose.

    Each instance is diffused in its own crop, one numba pass per step.

    3D images are refused (cellpose's 3D flows use another neighbourhood
    and step count).

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((3, 5), dtype=np.uint16)
    >>> lab[1, :] = 4
    >>> cellpose_flows(lab)[1, :, 1]
    array([ 1.,  1.,  0., -1., -1.], dtype=float32)
    """
    lab = as_labels(instances, ndims=(2,))
    idx = np.empty(lab.shape, np.int32)
    count = dense_ids(lab, idx) if lab.size else 0
    return cellpose_flows_2d(idx, count)


@simple_target("cellpose", "float32", channels=2)
def _cellpose(sample: TargetInput) -> np.ndarray:
    """``cellpose``: cellpose's flows (channel 0 along y, 1 along x), float32, 2D."""
    return cellpose_flows(sample.instances)
