"""StarDist ray distances: distance to the instance border along equally spaced rays."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskprep._kernels._ids import dense_ids
from maskprep._kernels._stardist import ray_tables, star_dist_rows, steps_2d
from maskprep.targets._common import as_labels, as_spacing, instances_doc
from maskprep.targets.base import TargetInput, simple_target

if TYPE_CHECKING:
    from maskprep.config import BuildConfig

__all__ = ["golden_spiral_rays", "star_distances"]


def _walk_eps(shape: tuple[int, ...]) -> float:
    """A bound on the float32 rounding error of pixel + offset anywhere in a walk.

    Coordinates stay below ``2 * size + 4``; the tests raise it to force the
    exact per-pixel path on most steps.
    """
    return float(2.0 ** (math.ceil(math.log2(2 * max(shape) + 4)) - 23))


def golden_spiral_rays(n_rays: int, anisotropy: Sequence[float] | None = None) -> np.ndarray:
    """``(n_rays, 3)`` float32 unit (z, y, x) ray directions of StarDist 3D.

    The vertices of ``stardist.Rays_GoldenSpiral(n_rays, anisotropy)``,
    computed with the same numpy operations (so the same bits).

    Examples
    --------
    >>> golden_spiral_rays(4)[0]
    array([-1.,  0.,  0.], dtype=float32)
    """
    if isinstance(n_rays, bool) or not isinstance(n_rays, numbers.Integral) or n_rays < 4:
        raise ValueError(f"n_rays must be an integer >= 4 in 3D, got {n_rays!r}")
    aniso = np.ones(3) if anisotropy is None else np.array(as_spacing(anisotropy, 3))
    g = (3.0 - np.sqrt(5.0)) * np.pi
    phi = g * np.arange(n_rays)
    z = np.linspace(-1, 1, n_rays)
    rho = np.sqrt(1.0 - z**2)
    verts = np.stack([z, rho * np.sin(phi), rho * np.cos(phi)]).T
    verts = verts / aniso
    verts /= np.linalg.norm(verts, axis=-1, keepdims=True)
    return np.asarray(verts, np.float32)


@instances_doc
def star_distances(
    instances: np.ndarray,
    *,
    n_rays: int = 32,
    anisotropy: Sequence[float] | None = None,
) -> np.ndarray:
    """Distance from each instance pixel to its instance's border along ``n_rays`` rays.

    Parameters
    ----------
    instances : ndarray of int or bool, 2D or 3D
        {instances}
    n_rays : int
        Number of rays: >= 3 in 2D, >= 4 in 3D (StarDist's 3D models
        usually use 96).
    anisotropy : sequence of 3 floats, optional
        3D only: the anisotropy the golden-spiral rays are built for
        (``stardist.Rays_GoldenSpiral(n_rays, anisotropy)``).

    Returns
    -------
    ndarray of float32, shape ``instances.shape + (n_rays,)``.
        0 on background.

    Notes
    -----
    Bit-identical to StarDist's C++ code: in 2D,
    ``stardist.geometry.star_dist(instances, n_rays, mode="cpp")`` (ray
    ``k`` at angle ``2 pi k / n_rays``, row step ``sin``, column step
    ``cos``, distance pulled back half a pixel at the exit); in 3D,
    ``star_dist3D(instances, Rays_GoldenSpiral(n_rays, anisotropy))``. A ray
    ends at the first pixel it visits (float32 steps, rounded to the
    nearest pixel) that is outside the image or of another value. StarDist
    casts ids to uint16 first, so ids 65536 apart merge there; here every id
    stays distinct.

    Every pixel's walk visits the same offsets (precomputed per ray), so
    the walks of up to 64 pixels of one row of one instance advance together
    over a bit mask of that instance: one load, shift and AND per step for
    all of them. 9.5x faster than stardist's C++ (OpenMP on both cores) on
    1024^2 with one thread, 8.1x in 3D (benchmarks/bench_targets.py); the
    per-pixel walk before it was 2-3.4x and 2.5-4x.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((5, 5), dtype=np.int32)
    >>> lab[1:4, 1:4] = 4
    >>> star_distances(lab, n_rays=4)[2, 2]
    array([1.5, 1.5, 1.5, 1.5], dtype=float32)
    """
    lab = as_labels(instances)
    ndim = lab.ndim
    least = 3 if ndim == 2 else 4
    if isinstance(n_rays, bool) or not isinstance(n_rays, numbers.Integral) or n_rays < least:
        raise ValueError(f"n_rays must be an integer >= {least} in {ndim}D, got {n_rays!r}")
    if ndim == 2:
        if anisotropy is not None:
            raise ValueError("anisotropy applies to 3D images only (the 2D rays are fixed)")
        steps = steps_2d(int(n_rays))
    else:
        steps = golden_spiral_rays(int(n_rays), anisotropy)
    shape = lab.shape
    if lab.size == 0:
        return np.zeros((*shape, int(n_rays)), np.float32)
    eps = _walk_eps(shape)
    pos, off, unsafe, dist = ray_tables(steps, np.asarray(shape, np.int64), eps, ndim == 2)
    out = np.zeros((*shape, int(n_rays)), np.float32)
    idx = np.empty(shape, np.int32)
    count = dense_ids(lab, idx)
    if ndim == 2:  # one plane of a volume whose rays never leave it
        idx, out = idx[None], out[None]
        pos = np.concatenate([np.zeros_like(pos[..., :1]), pos], axis=-1)
        off = np.concatenate([np.zeros_like(off[..., :1]), off], axis=-1)
    star_dist_rows(idx, count, pos, off, unsafe, dist, 0 if ndim == 2 else 2, out)
    return out if ndim == 3 else out[0]
    return out


def _rays(ndim: int, config: BuildConfig) -> int:
    return config.rays


@simple_target("stardist", "float32", channels=_rays, context="instance")
def _star_distances(sample: TargetInput) -> np.ndarray:
    """``stardist``: distances along ``rays`` rays to the instance border, channel last."""
    cfg = sample.config
    anisotropy = None
    if cfg.spacing is not None and sample.instances.ndim == 3:
        anisotropy = cfg.spacing
    return star_distances(sample.instances, n_rays=cfg.rays, anisotropy=anisotropy)
