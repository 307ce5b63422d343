"""Three-class boundary target: background, instance interior, instance boundary."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from maskprep._kernels._targets import boundary_l1, boundary_w1
from maskprep.targets._common import as_labels, instances_doc
from maskprep.targets.base import TargetInput, simple_target

if TYPE_CHECKING:
    from maskprep.config import BuildConfig

__all__ = ["boundary_map"]


@instances_doc
def boundary_map(instances: np.ndarray, *, width: int = 1) -> np.ndarray:
    """Label each pixel background (0), interior (1) or boundary (2) of its instance.

    Parameters
    ----------
    instances : ndarray of int or bool, 2D or 3D
        {instances}
    width : int
        Boundary thickness in pixels, >= 1.

    Returns
    -------
    ndarray of uint8, same shape as ``instances``.

    Notes
    -----
    An instance pixel is a boundary pixel when some pixel *of the image*
    with a different value (background or another instance) lies within
    city-block distance ``width`` of it (``|dz| + |dy| + |dx| <= width``).
    Pixels beyond the image edge do not count, so an instance cut by the
    edge has no boundary there.

    With ``width=1`` this is exactly
    ``skimage.segmentation.find_boundaries(instances, mode="inner")`` (face
    connectivity, the default) on instance pixels. Larger widths equal that
    applied ``width`` times, each time to what is left of every instance
    after removing the boundary found so far (erosion by the cross-shaped
    footprint): ``width`` erosions by the cross are one erosion by the
    city-block ball of radius ``width``.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((5, 6), dtype=np.int32)
    >>> lab[:, :3], lab[1:4, 3:] = 7, 9
    >>> boundary_map(lab)
    array([[1, 1, 2, 0, 0, 0],
           [1, 1, 2, 2, 2, 2],
           [1, 1, 2, 2, 1, 1],
           [1, 1, 2, 2, 2, 2],
           [1, 1, 2, 0, 0, 0]], dtype=uint8)
    """
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width!r}")
    lab = as_labels(instances)
    shape = lab.shape
    if lab.size == 0:
        return np.zeros(shape, np.uint8)
    lab3 = lab.reshape((1, *shape)) if lab.ndim == 2 else lab
    # The one-pass neighbour test: 1.5x faster than the general sweeps at
    # width 1 (3.1 vs 4.8 ms on 1024^2), and 9-14x faster than skimage's
    # find_boundaries (benchmarks/bench_targets.py, several runs).
    # No city-block distance in the image exceeds the sum of its sides, so
    # clamping there changes nothing and keeps the int32 sweeps exact.
    w = min(int(width), sum(shape))
    out = boundary_w1(lab3) if w == 1 else boundary_l1(lab3, w)
    return out.reshape(shape)


def _halo(ndim: int, config: BuildConfig) -> tuple[int, ...]:
    # A pixel is boundary if an instance change lies within city-block
    # boundary_width of it; one more keeps the crop's own edge out of reach.
    return (config.boundary_width + 1,) * ndim


@simple_target("boundary", "uint8", context="local", halo=_halo)
def _boundary(sample: TargetInput) -> np.ndarray:
    """``boundary``: 0 background, 1 interior, 2 boundary (``boundary_width`` thick), uint8."""
    return boundary_map(sample.instances, width=sample.config.boundary_width)
