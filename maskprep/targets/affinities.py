"""Affinity graph: does a pixel belong to the same instance as its neighbour."""

from __future__ import annotations

import numbers
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskprep._kernels._targets import affinities as _affinities
from maskprep.targets._common import as_labels, instances_doc
from maskprep.targets.base import TargetInput, simple_target

if TYPE_CHECKING:
    from maskprep.config import BuildConfig

__all__ = ["affinities"]


@instances_doc
def affinities(
    instances: np.ndarray, *, offsets: Sequence[Sequence[int]] | None = None
) -> np.ndarray:
    """One channel per offset: 1 where a pixel and its offset neighbour share an instance.

    Parameters
    ----------
    instances : ndarray of int or bool, 2D or 3D
        {instances}
    offsets : sequence of sequences of int, optional
        Neighbour offsets, one per channel, each with one entry per axis
        (long-range offsets allowed). Default: ``-1`` along each axis in
        turn, so channel ``d`` links each pixel to its predecessor on axis ``d``.

    Returns
    -------
    ndarray of uint8, shape ``instances.shape + (len(offsets),)``.

    Notes
    -----
    Channel ``c`` at pixel ``p`` is 1 iff ``p + offsets[c]`` lies in the
    image and both pixels carry the same nonzero id; 0 where the neighbour
    is outside the image. This is gunpowder's ``seg_to_affgraph``
    convention, with channels last; gunpowder treats negative ids as
    background, here every nonzero id is an instance.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.array([[5, 5, 0], [5, 8, 8]])
    >>> affinities(lab)[..., 1]  # offset (0, -1): same id as the left neighbour
    array([[0, 1, 0],
           [0, 0, 1]], dtype=uint8)
    """
    lab = as_labels(instances)
    ndim = lab.ndim
    if offsets is None:
        offs = -np.eye(ndim, dtype=np.int64)
    else:
        rows = []
        for o in offsets:
            try:
                row = list(o)
            except TypeError:
                raise ValueError(
                    f"offsets must be a sequence of offset vectors, got {offsets!r}"
                ) from None
            if len(row) != ndim or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in row
            ):
                raise ValueError(
                    f"each offset must be {ndim} integers for a {ndim}D image, got {o!r}"
                )
            rows.append([int(v) for v in row])
        if not rows:
            raise ValueError("offsets must hold at least one offset vector")
        offs = np.asarray(rows, dtype=np.int64)
    # Offsets past the image edge can only give zeros; clipping them keeps
    # the kernel's index arithmetic far from overflow.
    bound = np.asarray(lab.shape, dtype=np.int64)
    offs = np.clip(offs, -bound, bound)
    shape = lab.shape
    if ndim == 2:
        lab = lab.reshape((1, *shape))
        offs = np.concatenate([np.zeros((offs.shape[0], 1), np.int64), offs], axis=1)
    if lab.size == 0:
        return np.zeros((*shape, offs.shape[0]), np.uint8)
    if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
        raise NotImplementedError("affinities packs channels little-endian")
    out = _affinities(lab, np.ascontiguousarray(offs))
    return out.reshape((*shape, offs.shape[0]))


def _channels(ndim: int, config: BuildConfig) -> int:
    return ndim if config.affinity_offsets is None else len(config.affinity_offsets)


def _halo(ndim: int, config: BuildConfig) -> tuple[int, ...]:
    offsets = config.affinity_offsets or [(-1,) * ndim]
    return tuple(max(abs(o[a]) for o in offsets) for a in range(ndim))


@simple_target("affinities", "uint8", channels=_channels, context="local", halo=_halo)
def _affinities_target(sample: TargetInput) -> np.ndarray:
    """``affinities``: one uint8 channel per offset (``affinity_offsets``, default -1 per axis)."""
    return affinities(sample.instances, offsets=sample.config.affinity_offsets)
