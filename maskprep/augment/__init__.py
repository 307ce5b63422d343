"""Augment: joint transforms of patches and training targets recomputed after them.

:class:`PatchAugment` takes one patch read with a margin of context, applies
a joint transform (:func:`as_joint_transform`: albumentations,
torchvision.transforms.v2, or any callable on the dict of arrays) to its
image (interpolated) and label maps (nearest), recomputes the stored
targets from the transformed instances (:class:`TargetRecompute`, the
build's own code and parameters) and crops the margin away. The torch and
fastai loaders use it in their workers.

Owns augmentation and target recomputation for training. May import the
reader, store, targets and config stages (so it loads numba when targets are
recomputed); must never import dask, the pipeline, tools or CLI. The reader
and the loaders import it only when a transform or ``weights="recompute"``
is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maskprep.augment.recompute import TargetRecompute, recompute_margin
from maskprep.augment.transforms import (
    Albumentations,
    DictTransform,
    JointTransform,
    TorchVision,
    apply_joint,
    as_joint_transform,
)

if TYPE_CHECKING:
    from maskprep.store import StoreMetadata

__all__ = [
    "Albumentations",
    "DictTransform",
    "JointTransform",
    "PatchAugment",
    "TargetRecompute",
    "TorchVision",
    "apply_joint",
    "as_joint_transform",
    "recompute_margin",
]


class PatchAugment:
    """Transform one patch jointly, recompute its targets, crop its margin.

    Parameters
    ----------
    meta : StoreMetadata
        The store's metadata (void label, build options, class weights).
    transform : optional
        Anything :func:`as_joint_transform` accepts; None: no transform.
    recompute : sequence of str
        Targets to recompute after the transform (they need ``labels`` and
        ``instances`` in the patch; stored values of these are not read).
    margin : sequence of int
        Context per side and axis that the patch was read with; cropped away
        after the transform and the recomputation.

    Examples
    --------
    >>> from maskprep import example_store, open_shards
    >>> shards = open_shards(example_store(n_images=2, size=(32, 32)))
    >>> aug = PatchAugment(shards.store_metadata, lambda d: {k: v[::-1] for k, v in d.items()},
    ...                    recompute=["weights"], margin=(4, 4))
    >>> out = aug(shards.patch(0, (-4, -4), (40, 40)))
    >>> out["weights"].shape
    (32, 32)
    """

    def __init__(
        self,
        meta: StoreMetadata,
        transform: Any = None,
        recompute: Sequence[str] = (),
        margin: Sequence[int] = (),
    ) -> None:
        self.meta = meta
        self.void_label = meta.void_label
        self.channels = meta.layout_info.channels is not None
        self.transform = None if transform is None else as_joint_transform(transform)
        self.recompute = TargetRecompute(meta, recompute) if recompute else None
        ndim = len(meta.layout_info.spatial_shape)
        self.margin = tuple(margin) if margin else (0,) * ndim

    def __call__(
        self,
        patch: dict[str, np.ndarray],
        seed: int | None = None,
        inside: tuple[slice, ...] | None = None,
    ) -> dict[str, np.ndarray]:
        """The augmented patch; with ``seed``, its random parameters come from it.

        ``inside`` is the part of the (widened) patch that lies inside its
        sample: without a transform, targets are recomputed there only, so a
        sample's edge is its edge, as in the build (a transform moves it; then
        the padding is background).
        """
        out = dict(patch)
        recomputed = self.recompute.names if self.recompute is not None else ()
        if self.transform is not None:
            maps = {k: v for k, v in out.items() if k != "image" and k not in recomputed}
            if "labels" not in maps:
                raise ValueError("a transformed patch needs its labels")
            image, maps = apply_joint(
                self.transform,
                out["image"],
                maps,
                void_label=self.void_label,
                channels=self.channels,
                seed=seed,
            )
            out = {"image": image, **maps}
        if self.recompute is not None:
            region = inside if self.transform is None and inside is not None else None
            out.update(self._recomputed(out, region))
        return {k: self._crop(v) for k, v in out.items()}

    def _recomputed(
        self, out: dict[str, np.ndarray], region: tuple[slice, ...] | None
    ) -> dict[str, np.ndarray]:
        assert self.recompute is not None
        image = out.get("image")
        if region is None:
            return self.recompute(out["labels"], out["instances"], image)
        part = self.recompute(
            out["labels"][region],
            out["instances"][region],
            None if image is None else image[region],
        )
        full = {}
        layout = self.meta.layout_info
        for name, a in part.items():
            shape = out["labels"].shape + a.shape[out["labels"].ndim :]
            buf = np.full(shape, layout.fill_value(name), dtype=a.dtype)
            buf[region] = a
            full[name] = buf
        return full

    def _crop(self, a: np.ndarray) -> np.ndarray:
        if not any(self.margin):
            return a
        window = tuple(
            slice(m, n - m) for m, n in zip(self.margin, a.shape[: len(self.margin)], strict=True)
        )
        if any(s.start >= s.stop for s in window):
            raise ValueError(
                f"the transform returned a patch of shape {a.shape}, smaller than its margin "
                f"{self.margin} on both sides"
            )
        return np.ascontiguousarray(a[window])
