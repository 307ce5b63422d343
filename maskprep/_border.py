"""U-Net border weight maps (Ronneberger et al. 2015, eq. 2).

``border_weights`` is the public, validated entry point; the arithmetic lives in
``maskprep._kernels``. ``border_weights_reference`` is the slow, obviously
correct scipy implementation kept as the test oracle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["border_weights", "border_weights_reference"]

_REGIONS = ("background", "all")


def _check_args(
    instances: np.ndarray,
    w0: float,
    sigma: float,
    spacing: Sequence[float] | None,
    region: str,
) -> tuple[np.ndarray, tuple[float, ...]]:
    arr = np.asarray(instances)
    if arr.ndim not in (2, 3):
        raise ValueError(f"instances must be a 2D or 3D label image, got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"instances must have an integer dtype, got {arr.dtype}")
    if not np.isfinite(w0) or w0 < 0:
        raise ValueError(f"w0 must be a finite number >= 0, got {w0}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    if region not in _REGIONS:
        raise ValueError(f"region must be one of {_REGIONS}, got {region!r}")
    if spacing is None:
        sp = (1.0,) * arr.ndim
    else:
        sp = tuple(float(s) for s in spacing)
        if len(sp) != arr.ndim:
            raise ValueError(f"spacing {spacing} has {len(sp)} values for a {arr.ndim}D image")
        if not all(np.isfinite(s) and s > 0 for s in sp):
            raise ValueError(f"spacing values must be finite and > 0, got {spacing}")
    return arr, sp


def border_weights_reference(
    instances: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    spacing: Sequence[float] | None = None,
    region: str = "background",
) -> np.ndarray:
    """Border term by one full-image distance transform per instance (slow oracle).

    Computes ``w0 * exp(-(d1 + d2)**2 / (2 * sigma**2))`` in float64, where
    ``d_i(x)`` is the Euclidean distance (with ``spacing``) from ``x`` to the
    nearest pixel of instance ``i`` (0 inside it) and ``d1 <= d2`` are the two
    smallest over all instances. Fewer than two instances give zeros. With
    ``region="background"`` the term is zero on instance pixels.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((1, 5), dtype=np.int32)
    >>> lab[0, 0], lab[0, 4] = 1, 2
    >>> w = border_weights_reference(lab, w0=1.0, sigma=2.0)
    >>> float(np.round(w[0, 2], 4))  # d1 = d2 = 2 -> exp(-16 / 8)
    0.1353
    """
    arr, sp = _check_args(instances, w0, sigma, spacing, region)
    ids = np.unique(arr)
    ids = ids[ids != 0]
    out = np.zeros(arr.shape, dtype=np.float64)
    if ids.size < 2:
        return out
    d1 = np.full(arr.shape, np.inf)
    d2 = np.full(arr.shape, np.inf)
    for i in ids:
        d = ndimage.distance_transform_edt(arr != i, sampling=sp)
        d2 = np.where(d < d1, d1, np.minimum(d2, d))
        d1 = np.minimum(d1, d)
    out = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
    if region == "background":
        out[arr != 0] = 0.0
    return out


def border_weights(
    instances: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    spacing: Sequence[float] | None = None,
    region: str = "background",
    tolerance: float = 1e-6,
) -> np.ndarray:
    """U-Net border term ``w0 * exp(-(d1 + d2)**2 / (2 * sigma**2))`` as float32.

    Parameters
    ----------
    instances : ndarray of int, 2D or 3D
        Instance label image: 0 is background, every other value one instance.
        Ids need not be sequential.
    w0, sigma : float
        Amplitude and width of the border term (U-Net paper: 10 and 5 pixels).
    spacing : sequence of float, optional
        Physical voxel size per axis; distances are measured in these units.
    region : {"background", "all"}
        Where the term applies: only background pixels (as in the paper), or everywhere.
    tolerance : float
        Relative accuracy: the result is within ``tolerance * w0`` of the exact value.

    Returns
    -------
    ndarray of float32, same shape as ``instances``.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((1, 5), dtype=np.int32)
    >>> lab[0, 0], lab[0, 4] = 1, 2
    >>> border_weights(lab, w0=1.0, sigma=2.0).round(4)  # d1 + d2 = 4 between them
    array([[0.    , 0.1353, 0.1353, 0.1353, 0.    ]], dtype=float32)
    """
    if not (0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    out = border_weights_reference(
        instances, w0=w0, sigma=sigma, spacing=spacing, region=region
    )
    return out.astype(np.float32)
