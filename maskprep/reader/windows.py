"""Windows of a sample: :meth:`patch` reads ``[start, start + size)`` of every array,
padded outside the sample, decoding only the tiles it touches in a tiled store
(mixed into :class:`~maskprep.reader.Shards`)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from maskprep.reader.arrays import SampleSource

__all__ = ["WindowReads"]

_T = TypeVar("_T")


class WindowReads:
    """The window reads of :class:`~maskprep.reader.Shards` (a mixin: it uses the
    view's samples, shapes and sources)."""

    if TYPE_CHECKING:  # provided by Shards
        arrays: tuple[str, ...]
        ndim: int
        _shapes: np.ndarray
        _sources: dict[str, SampleSource]

        def pad_value(self, name: str) -> int | float: ...
        def _resolve(self, i: Any) -> int: ...
        def _source(self, name: str) -> SampleSource: ...
        def _watched(self, read: Callable[[], _T]) -> _T: ...

    def patch(
        self,
        i: int,
        start: Sequence[int],
        size: Sequence[int],
        arrays: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """A patch of sample ``i``: the window ``[start, start + size)`` of every array.

        Parameters
        ----------
        i : int
            Sample position in this view (negative counts from the end).
        start : sequence of int
            First pixel of the patch along each spatial axis; it may be
            negative or lie beyond the sample (random crops near a border).
        size : sequence of int
            Patch extent along each spatial axis, each at least 1.
        arrays : sequence of str, optional
            Arrays to read, among those opened (default all).

        Returns
        -------
        dict of str to numpy.ndarray
            Each of shape ``size`` (the image and channel targets with their
            channels last), freshly allocated. What lies outside the sample's
            true shape is padding (:meth:`pad_value`: image 0, labels void,
            instances 0, targets their fill value). A tiled store (format 2)
            reads only the tiles the patch touches; otherwise the sample is
            decoded and cropped.

        Examples
        --------
        >>> from maskprep import example_store, open_shards
        >>> shards = open_shards(example_store(n_images=2, size=(16, 16), tile=8))
        >>> p = shards.patch(0, start=(-4, 10), size=(8, 8), arrays=("image", "labels"))
        >>> p["image"].shape, int(p["labels"][0, 0]), int(p["labels"][:, 6:].min())
        ((8, 8), 255, 255)
        """
        start_t = self._axis_ints("start", start, self.ndim, None)
        size_t = self._axis_ints("size", size, self.ndim, 1)
        names = self.arrays if arrays is None else self._subset(arrays)
        return self._watched(lambda: self._patch(i, start_t, size_t, names))

    def _patch(
        self, i: int, start_t: tuple[int, ...], size_t: tuple[int, ...], names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        out = {
            name: np.empty(
                (1, *size_t, *self._sources[name].sample_shape[self.ndim :]),
                self._sources[name].dtype,
            )
            for name in names
        }
        self._patch_into(i, start_t, size_t, names, out, 0)
        return {name: a[0] for name, a in out.items()}

    def _patch_into(
        self,
        i: int,
        start: tuple[int, ...],
        size: tuple[int, ...],
        names: Sequence[str],
        out: dict[str, np.ndarray],
        slot: int,
    ) -> None:
        """The window ``[start, start + size)`` of sample ``i``'s arrays ``names`` into
        ``out[name][slot]``, padded outside the sample."""
        j = self._resolve(i)
        shape = tuple(int(s) for s in self._shapes[j])
        lo = tuple(max(a, 0) for a in start)
        hi = tuple(min(a + n, m) for a, n, m in zip(start, size, shape, strict=True))
        inside = all(a < b for a, b in zip(lo, hi, strict=True))
        whole = (
            inside and lo == start and all(b - a == n for a, b, n in zip(lo, hi, size, strict=True))
        )
        crop = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
        for name in names:
            src = self._source(name)
            dst = out[name][slot]
            if whole:
                src.read_window(j, lo, hi, dst)
                continue
            dst[...] = self.pad_value(name)
            if inside:
                src.read_window(j, lo, hi, dst[crop])

    def _patch_arrays(self, i: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Sample ``i``'s arrays ``names`` (any stored ones), cropped to its true shape."""
        j = self._resolve(i)
        shape = tuple(int(s) for s in self._shapes[j])
        zeros = (0,) * len(shape)
        return {name: self._source(name).read_window(j, zeros, shape) for name in names}

    @staticmethod
    def _axis_ints(
        what: str, values: Sequence[int], ndim: int, least: int | None
    ) -> tuple[int, ...]:
        try:
            out = tuple(operator.index(v) for v in values)
        except TypeError:
            raise TypeError(
                f"{what} must be a sequence of {ndim} integers, got {values!r}"
            ) from None
        if len(out) != ndim:
            raise ValueError(f"{what} must have {ndim} values (one per spatial axis), got {out}")
        if least is not None and min(out) < least:
            raise ValueError(f"{what} must be at least {least} along every axis, got {out}")
        return out

    def _subset(self, arrays: Sequence[str]) -> tuple[str, ...]:
        names = (arrays,) if isinstance(arrays, str) else tuple(arrays)
        unknown = [a for a in names if a not in self._sources]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"arrays must be distinct names among {', '.join(self.arrays)}, got {list(names)}"
            )
        return names
