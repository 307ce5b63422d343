"""The :class:`Target` protocol and the target registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maskprep.plugins import Registry

if TYPE_CHECKING:
    from maskprep.config import BuildConfig

__all__ = [
    "CONTEXTS",
    "TARGETS",
    "Target",
    "TargetInput",
    "available_targets",
    "compute_target",
    "simple_target",
]


@dataclass(frozen=True)
class TargetInput:
    """A void-filled sample, as every target computes from it.

    ``instances`` is int32 (0 background, and 0 on void); ``labels`` holds
    class indices with ``void_label`` on void pixels; ``class_weight_lut``
    maps a label value to its class weight (0 for void).
    """

    image: np.ndarray | None
    labels: np.ndarray
    instances: np.ndarray
    config: BuildConfig
    class_weight_lut: np.ndarray

    @property
    def void(self) -> np.ndarray:
        """True where the pixel is not annotated."""
        return self.labels == self.config.void_label


class Target:
    """Base class of training targets: one stored array computed per sample.

    Subclasses set :attr:`name`, :attr:`dtype` and :attr:`fill_value`
    (the value of padding and of pixels outside a sample), may override
    :meth:`channels`, and implement :meth:`compute`. Register an instance in
    :data:`TARGETS`, or through the ``maskprep.targets`` entry-point group.
    """

    #: Array name in the store and key in every sample dict.
    name: str = ""
    #: numpy dtype name of the stored array.
    dtype: str = "float32"
    #: Padding value, and the value a reader fills outside a sample.
    fill_value: int | float = 0
    #: True if :meth:`compute` reads ``class_weight_lut``: ``reweight`` recomputes it.
    uses_class_weights: bool = False
    #: What the value at a pixel depends on, which decides how a sample bigger
    #: than a block is built (see :data:`CONTEXTS`): ``"local"``, the instances
    #: within :meth:`halo` pixels; ``"instance"``, the whole instance the pixel
    #: lies in (0 elsewhere); ``"sample"``, anything in the sample (such a
    #: target cannot be built block by block: a clear error says so).
    context: str = "sample"

    def channels(self, ndim: int, config: BuildConfig) -> int | None:
        """Length of a trailing channel axis, or None for a plain spatial array."""
        return None

    def halo(self, ndim: int, config: BuildConfig) -> tuple[int, ...]:
        """Pixels along each axis beyond which a ``"local"`` target does not look."""
        return (0,) * ndim

    def compute(self, sample: TargetInput) -> np.ndarray:
        """The target of one sample: spatial shape (plus channels), :attr:`dtype`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<target {self.name!r} {self.dtype}>"


_Compute = Callable[[TargetInput], np.ndarray]
_Channels = int | Callable[[int, "BuildConfig"], int | None] | None
_Halo = int | Callable[[int, "BuildConfig"], tuple[int, ...]]

#: The values of :attr:`Target.context`.
CONTEXTS = ("local", "instance", "sample")


class _SimpleTarget(Target):
    """A :class:`Target` whose :meth:`compute` and :meth:`channels` are given functions."""

    def __init__(
        self,
        name: str,
        dtype: str,
        compute: _Compute,
        channels: _Channels,
        doc: str,
        context: str = "sample",
        halo: _Halo = 0,
    ) -> None:
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, got {context!r}")
        self.name, self.dtype, self.__doc__ = name, dtype, doc
        self._compute, self._channels = compute, channels
        self.context, self._halo = context, halo

    def halo(self, ndim: int, config: BuildConfig) -> tuple[int, ...]:
        if isinstance(self._halo, int):
            return (self._halo,) * ndim
        return tuple(int(h) for h in self._halo(ndim, config))

    def channels(self, ndim: int, config: BuildConfig) -> int | None:
        if self._channels is None or isinstance(self._channels, int):
            return self._channels
        return self._channels(ndim, config)

    def compute(self, sample: TargetInput) -> np.ndarray:
        return self._compute(sample)


def simple_target(
    name: str,
    dtype: str,
    *,
    channels: _Channels = None,
    context: str = "sample",
    halo: _Halo = 0,
) -> Callable[[_Compute], _Compute]:
    """Decorator: register in :data:`TARGETS` the target ``name`` the function computes.

    The decorated ``compute(sample)`` gives the array and its docstring says
    what the target stores; ``channels`` is the length of the trailing
    channel axis, or a function ``channels(ndim, config)`` of it (None, the
    default: a plain spatial array). ``context`` and ``halo`` (pixels, or a
    function ``halo(ndim, config)`` giving one per axis) are
    :attr:`Target.context` and :meth:`Target.halo`.
    Fill value 0, no class weights. The function is returned unchanged.

    Examples
    --------
    The built-in ``boundary`` target is one::

        @simple_target("boundary", "uint8")
        def _boundary(sample: TargetInput) -> np.ndarray:
            '''``boundary``: 0 background, 1 interior, 2 boundary ...'''
            return boundary_map(sample.instances, width=sample.config.boundary_width)

    >>> TARGETS.get("boundary"), TARGETS.get("boundary").__doc__.split(":")[0]
    (<target 'boundary' uint8>, '``boundary``')
    """

    def register(compute: _Compute) -> _Compute:
        doc = compute.__doc__ or ""
        TARGETS.register(name, _SimpleTarget(name, dtype, compute, channels, doc, context, halo))
        return compute

    return register


#: Registered targets (the border weight map ``weights`` first).
TARGETS: Registry[Target] = Registry(
    "target",
    group="maskprep.targets",
    builtins=tuple(
        f"maskprep.targets.{m}"
        for m in (
            "weights",
            "boundary",
            "distance",
            "stardist",
            "hover",
            "affinities",
            "cellpose",
        )
    ),
)


def compute_target(name: str, instances: np.ndarray, **params: object) -> np.ndarray:
    """Compute one registered target on an instance image, for your own pipelines.

    ``params`` are :class:`~maskprep.BuildConfig` fields the target reads
    (``boundary_width=2``, ``rays=64``, ``spacing=(2, 1, 1)``, ``w0=5.0``...).
    The ``weights`` target uses class weights 1 unless ``class_weight_lut``
    is given. Labels are 0 background and 1 instance pixels (no void).

    Examples
    --------
    >>> lab = np.zeros((6, 6), np.int32); lab[1:5, 1:5] = 9
    >>> compute_target("boundary", lab)[1]
    array([0, 2, 2, 2, 2, 0], dtype=uint8)
    """
    from maskprep.config import BuildConfig

    lut = params.pop("class_weight_lut", None)
    target = TARGETS.get(name)
    config = BuildConfig(**params)  # type: ignore[arg-type]
    inst = np.asarray(instances)
    labels = (inst != 0).astype(np.uint8)
    if lut is None:
        lut = np.ones(config.void_label + 1, dtype=np.float32)
        lut[config.void_label] = 0
    sample = TargetInput(None, labels, inst, config, np.asarray(lut, dtype=np.float32))
    return np.asarray(target.compute(sample), dtype=target.dtype)


def available_targets() -> tuple[str, ...]:
    """Names of every registered training target, plugins included.

    Examples
    --------
    >>> "weights" in available_targets()
    True
    """
    return TARGETS.names()
