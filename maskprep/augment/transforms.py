"""Joint transforms: one geometric transform applied to an image and its label maps alike.

A :class:`JointTransform` takes a patch's image (channel last, float32)
and its label maps (``labels``, ``instances``, stored targets, and an
``inside`` map of ones) and returns them transformed with the same random
parameters: the image interpolated as the library does for images, the maps
by nearest neighbour (as masks). :func:`as_joint_transform` wraps an
albumentations pipeline (2D), a torchvision.transforms.v2 pipeline (2D), or
any callable on the dict of arrays.

Instance ids are compacted to ``1..n`` for the transform (both libraries
warp masks through float32, exact to 2**24) and mapped back afterwards.
Pixels a transform brings in from outside (its mask fill, left at the
default 0) have ``inside == 0``: :func:`apply_joint` makes them void in
``labels`` and 0 in ``instances``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "Albumentations",
    "DictTransform",
    "JointTransform",
    "TorchVision",
    "apply_joint",
    "as_joint_transform",
]

Maps = dict[str, np.ndarray]


class JointTransform:
    """Base class: ``__call__(image, maps) -> (image, maps)`` with shared randomness.

    :meth:`seeded` runs one call with the random generators the transform
    uses seeded (and the caller's global generators left as they were), so a
    patch's augmentation depends only on its seed.
    """

    def __call__(self, image: np.ndarray, maps: Maps) -> tuple[np.ndarray, Maps]:
        raise NotImplementedError

    def seeded(self, seed: int, image: np.ndarray, maps: Maps) -> tuple[np.ndarray, Maps]:
        """``self(image, maps)`` with Python's, numpy's and torch's global generators
        seeded from ``seed`` for the call, and restored after it."""
        import random

        # The global generators: what callables written for them use.
        py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
        random.seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        try:
            torch = _torch()
            if torch is None:
                return self(image, maps)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self(image, maps)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")  # only if the caller uses torch anyway


class Albumentations(JointTransform):
    """An albumentations pipeline (``A.Compose``) on 2D patches: the image as
    ``image``, every map in ``masks`` (nearest neighbour)."""

    def __init__(self, transform: Callable[..., Any]) -> None:
        self.transform = transform

    def seeded(self, seed: int, image: np.ndarray, maps: Maps) -> tuple[np.ndarray, Maps]:
        set_seed = getattr(self.transform, "set_random_seed", None)
        if set_seed is None:  # older albumentations: global generators
            return super().seeded(seed, image, maps)
        set_seed(seed)  # albumentations 2 draws from the pipeline's own generators
        return self(image, maps)

    def __call__(self, image: np.ndarray, maps: Maps) -> tuple[np.ndarray, Maps]:
        if image.ndim != 3:
            raise ValueError(
                "albumentations transforms take 2D patches; use a callable on the dict of "
                "arrays for 3D"
            )
        names = list(maps)
        layers: list[np.ndarray] = []
        for name in names:
            m = maps[name]
            layers.extend([m] if m.ndim == 2 else [m[..., k] for k in range(m.shape[-1])])
        out = self.transform(image=image, masks=layers)
        got = [np.asarray(m) for m in out["masks"]]
        result: Maps = {}
        k = 0
        for name in names:
            m = maps[name]
            if m.ndim == 2:
                result[name] = got[k]
                k += 1
            else:
                result[name] = np.stack(got[k : k + m.shape[-1]], axis=-1)
                k += m.shape[-1]
        return np.asarray(out["image"]), result


class TorchVision(JointTransform):
    """A torchvision.transforms.v2 pipeline on 2D patches: the image as a
    ``tv_tensors.Image`` (C, H, W), every map as a ``tv_tensors.Mask``."""

    def __init__(self, transform: Callable[..., Any]) -> None:
        self.transform = transform

    def __call__(self, image: np.ndarray, maps: Maps) -> tuple[np.ndarray, Maps]:
        import torch
        from torchvision import tv_tensors

        if image.ndim != 3:
            raise ValueError(
                "torchvision transforms take 2D patches here; use a callable on the dict of "
                "arrays for 3D"
            )
        names = list(maps)
        img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0))))
        masks = []
        for name in names:
            m = maps[name]
            t = np.ascontiguousarray(m if m.ndim == 2 else np.moveaxis(m, -1, 0))
            masks.append(tv_tensors.Mask(torch.from_numpy(t)))
        out = self.transform(img, *masks)
        result: Maps = {}
        for name, t in zip(names, out[1:], strict=True):
            a = t.numpy()
            result[name] = a if maps[name].ndim == 2 else np.moveaxis(a, 0, -1)
        return np.moveaxis(out[0].numpy(), 0, -1), result


class DictTransform(JointTransform):
    """Any callable on ``{"image": ..., **maps}`` returning such a dict (2D or 3D);
    it must treat the maps as label maps (nearest neighbour)."""

    def __init__(self, transform: Callable[[dict[str, np.ndarray]], Mapping[str, Any]]) -> None:
        self.transform = transform

    def __call__(self, image: np.ndarray, maps: Maps) -> tuple[np.ndarray, Maps]:
        out = self.transform({"image": image, **maps})
        return np.asarray(out["image"]), {name: np.asarray(out[name]) for name in maps}


def as_joint_transform(transform: Any) -> JointTransform:
    """Wrap ``transform``: albumentations and torchvision.transforms.v2 pipelines are
    recognised by their module, any other callable gets the dict of arrays.

    Examples
    --------
    >>> t = as_joint_transform(lambda d: {k: np.flip(v, 1) for k, v in d.items()})
    >>> image, maps = t(np.arange(4.0).reshape(1, 4, 1), {"labels": np.arange(4).reshape(1, 4)})
    >>> maps["labels"].tolist()
    [[3, 2, 1, 0]]
    """
    if isinstance(transform, JointTransform):
        return transform
    module = type(transform).__module__ or ""
    if module.startswith("albumentations"):
        return Albumentations(transform)
    if module.startswith("torchvision"):
        return TorchVision(transform)
    if callable(transform):
        return DictTransform(transform)
    raise TypeError(f"transform must be callable, got {type(transform).__name__}")


def _compact(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct ids and each pixel's position among them."""
    top = int(instances.max(initial=0))
    if instances.min(initial=0) < 0 or top >= 1 << 22:
        ids, inverse = np.unique(instances, return_inverse=True)
        return ids, inverse.reshape(instances.shape)
    # A lookup table: much cheaper than sorting for the id ranges of annotation tools.
    present = np.zeros(top + 1, dtype=bool)
    present[instances] = True
    ids = np.flatnonzero(present)
    position = np.cumsum(present) - 1
    return ids, position[instances]


def apply_joint(
    transform: JointTransform,
    image: np.ndarray,
    maps: Maps,
    *,
    void_label: int,
    channels: bool,
    seed: int | None = None,
) -> tuple[np.ndarray, Maps]:
    """Transform one patch; what the transform brings in becomes void / no instance.

    With ``seed``, the transform's randomness is seeded from it
    (:meth:`JointTransform.seeded`).

    ``image`` has a trailing channel axis when ``channels`` (else one is added
    for the transform and removed after). ``maps`` must hold ``labels`` and
    may hold ``instances`` (compacted for the transform and restored).
    """
    img = image.astype(np.float32, copy=False)
    if not channels:
        img = img[..., np.newaxis]
    work = dict(maps)
    ids = None
    if "instances" in work:
        ids, compact = _compact(work["instances"])
        if ids.size > 1 << 24:
            raise ValueError("a patch has more than 2**24 instances")
        work["instances"] = compact.astype(np.float32)
    work["inside"] = np.ones(img.shape[:-1], dtype=np.uint8)
    if seed is None:
        out_img, out = transform(img, work)
    else:
        out_img, out = transform.seeded(seed, img, work)
    inside = np.rint(out.pop("inside")) > 0
    result: Maps = {}
    for name, m in out.items():
        m = np.asarray(m)
        dtype = maps[name].dtype
        if name == "instances":
            assert ids is not None
            code = np.clip(np.rint(m), 0, ids.size - 1).astype(np.int64)
            m = ids[code]
        elif dtype.kind in "iub":
            m = np.rint(m) if m.dtype.kind == "f" else m
        result[name] = m.astype(dtype, copy=False)
    if not inside.all():
        result["labels"][~inside] = void_label
        if "instances" in result:
            result["instances"][~inside] = 0
    out_img = np.asarray(out_img, dtype=np.float32)
    if not channels:
        out_img = out_img[..., 0]
    return out_img, result
