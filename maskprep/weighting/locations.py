"""Class locations: per sample and class, up to K seeded pixel coordinates, mergeable.

A patch sampler that wants a patch to contain class ``c`` needs pixels of
``c`` to centre on (nnU-Net samples them at preprocessing). The K locations
of class ``c`` in a sample are chosen by a fixed integer hash: every pixel
gets the priority ``hash(sample key, global flat coordinate)`` and the K
pixels of ``c`` with the smallest ``(priority, flat coordinate)`` are kept.
The choice depends only on the sample, not on how it is split into blocks:
a block's partial result (:func:`class_location_partial`, computed from the
block's labels and its origin in the sample) holds its K smallest per class,
and partials merge exactly with ``+`` (the K smallest of the union). The
priorities are a splitmix64 hash, so the K kept pixels are a uniform random
subset of the class's pixels.

Void pixels are never chosen; padding is not part of any block. Numpy only
(the reader computes the same locations for stores built without them).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LOCATION_FILL",
    "ClassLocations",
    "class_location_partial",
    "location_key",
    "location_priority",
]

#: Coordinate value of an unused location slot in the stored array.
LOCATION_FILL = -1

_FIELDS = ("sample", "cls", "priority", "flat", "coords")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def location_key(sample_id: str, seed: int = 0) -> int:
    """The 64-bit key of a sample's location hash, from its id and a seed.

    The sample id, not its position, so a sample keeps its locations when
    others are added or quarantined.

    Examples
    --------
    >>> location_key("img_0") == location_key("img_0"), location_key("a") != location_key("b")
    (True, True)
    """
    digest = hashlib.blake2b(f"{int(seed)}\0{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def location_priority(key: int, flat: np.ndarray) -> np.ndarray:
    """splitmix64 of ``key`` combined with each global flat coordinate (uint64).

    Examples
    --------
    >>> p = location_priority(7, np.arange(4))
    >>> p.dtype, len(set(p.tolist()))
    (dtype('uint64'), 4)
    """
    x = np.asarray(flat).astype(np.uint64)
    x ^= np.uint64(key)
    # Array operations: uint64 arithmetic wraps (modulo 2**64), as the hash wants.
    x += _GOLDEN
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


@dataclass(frozen=True, eq=False)
class ClassLocations:
    """Up to ``per_class`` locations per (sample, class): a mergeable partial result.

    Row ``r`` is pixel ``coords[r]`` (global coordinates in sample
    ``sample[r]``) of class ``cls[r]`` with hash priority ``priority[r]``
    and global flat coordinate ``flat[r]``. ``a + b`` keeps, per sample and
    class, the ``per_class`` rows with the smallest ``(priority, flat)``.
    Rows are sorted by ``(sample, class, priority, flat)``.

    Examples
    --------
    >>> labels = np.array([[0, 1, 1], [1, 255, 0]], np.uint8)
    >>> whole = class_location_partial(labels, per_class=2, num_classes=2, void_label=255)
    >>> top = class_location_partial(labels[:1], per_class=2, num_classes=2, void_label=255,
    ...                              sample_shape=(2, 3))
    >>> bottom = class_location_partial(labels[1:], origin=(1, 0), per_class=2, num_classes=2,
    ...                                 void_label=255, sample_shape=(2, 3))
    >>> (top + bottom) == whole
    True
    >>> whole.array(0, num_classes=2).shape  # (classes, per_class, ndim)
    (2, 2, 2)
    """

    per_class: int
    ndim: int
    sample: np.ndarray  # (m,) int64
    cls: np.ndarray  # (m,) int32
    priority: np.ndarray  # (m,) uint64
    flat: np.ndarray  # (m,) int64
    coords: np.ndarray  # (m, ndim) int64

    @classmethod
    def empty(cls, per_class: int, ndim: int) -> ClassLocations:
        """No locations."""
        return cls(
            per_class,
            ndim,
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, np.uint64),
            np.zeros(0, np.int64),
            np.zeros((0, ndim), np.int64),
        )

    @classmethod
    def from_rows(
        cls,
        per_class: int,
        ndim: int,
        sample: np.ndarray,
        cls_: np.ndarray,
        priority: np.ndarray,
        flat: np.ndarray,
        coords: np.ndarray,
    ) -> ClassLocations:
        """The ``per_class`` rows of smallest ``(priority, flat)`` per (sample, class)
        among the given ones, sorted (a kernel's candidates become a partial)."""
        return _select(
            per_class,
            ndim,
            np.asarray(sample, np.int64),
            np.asarray(cls_, np.int32),
            np.asarray(priority, np.uint64),
            np.asarray(flat, np.int64),
            np.asarray(coords, np.int64).reshape(-1, ndim),
        )

    def __len__(self) -> int:
        return int(self.sample.size)

    def __add__(self, other: ClassLocations) -> ClassLocations:
        if not isinstance(other, ClassLocations):
            return NotImplemented
        if (other.per_class, other.ndim) != (self.per_class, self.ndim):
            raise ValueError(
                f"cannot merge class locations of {self.per_class} per class in {self.ndim}D "
                f"with {other.per_class} per class in {other.ndim}D"
            )
        return _select(
            self.per_class,
            self.ndim,
            np.concatenate([self.sample, other.sample]),
            np.concatenate([self.cls, other.cls]),
            np.concatenate([self.priority, other.priority]),
            np.concatenate([self.flat, other.flat]),
            np.concatenate([self.coords, other.coords]),
        )

    @classmethod
    def merge(cls, parts: Sequence[ClassLocations]) -> ClassLocations:
        """The sum of ``parts`` (non-empty), by one selection over all their rows:
        the same as adding them one by one, without its quadratic cost."""
        if not parts:
            raise ValueError("merge needs at least one partial result")
        first = parts[0]
        if any((p.per_class, p.ndim) != (first.per_class, first.ndim) for p in parts):
            raise ValueError("cannot merge class locations of different per_class or ndim")
        return _select(
            first.per_class,
            first.ndim,
            *(np.concatenate([getattr(p, k) for p in parts]) for k in _FIELDS),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassLocations):
            return NotImplemented
        return (self.per_class, self.ndim) == (other.per_class, other.ndim) and all(
            np.array_equal(getattr(self, k), getattr(other, k))
            for k in ("sample", "cls", "priority", "flat", "coords")
        )

    __hash__ = None  # type: ignore[assignment]

    def samples(self) -> list[int]:
        """The samples that have at least one location."""
        return np.unique(self.sample).tolist()

    def array(self, sample: int, num_classes: int) -> np.ndarray:
        """``(num_classes, per_class, ndim)`` int32 coordinates of one sample, in
        priority order, unused slots :data:`LOCATION_FILL`."""
        out = np.full((num_classes, self.per_class, self.ndim), LOCATION_FILL, dtype=np.int32)
        lo, hi = np.searchsorted(self.sample, [sample, sample + 1])  # rows sorted by sample
        mine = np.arange(lo, hi)
        cls = self.cls[mine]
        # Rows are sorted by (sample, class, priority): the slot is the rank within the class.
        start = np.searchsorted(cls, cls, side="left")
        slot = np.arange(mine.size) - start
        keep = cls < num_classes
        out[cls[keep], slot[keep]] = self.coords[mine[keep]]
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (for an ``.npz`` file); :meth:`from_arrays` inverts it."""
        return {
            "per_class": np.asarray(self.per_class, np.int64),
            "sample": self.sample,
            "cls": self.cls,
            "priority": self.priority,
            "flat": self.flat,
            "coords": self.coords,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ClassLocations:
        coords = np.asarray(arrays["coords"], np.int64)
        return cls(
            int(arrays["per_class"]),
            int(coords.shape[1]),
            np.asarray(arrays["sample"], np.int64),
            np.asarray(arrays["cls"], np.int32),
            np.asarray(arrays["priority"], np.uint64),
            np.asarray(arrays["flat"], np.int64),
            coords,
        )


def _select(
    per_class: int,
    ndim: int,
    sample: np.ndarray,
    cls: np.ndarray,
    priority: np.ndarray,
    flat: np.ndarray,
    coords: np.ndarray,
) -> ClassLocations:
    """The ``per_class`` smallest ``(priority, flat)`` rows per (sample, class), sorted."""
    order = np.lexsort((flat, priority, cls, sample))
    sample, cls = sample[order], cls[order]
    if order.size:
        group = np.r_[True, (sample[1:] != sample[:-1]) | (cls[1:] != cls[:-1])]
        first = np.maximum.accumulate(np.where(group, np.arange(order.size), 0))
        keep = np.arange(order.size) - first < per_class
        order, sample, cls = order[keep], sample[keep], cls[keep]
    return ClassLocations(per_class, ndim, sample, cls, priority[order], flat[order], coords[order])


def class_location_partial(
    labels: np.ndarray,
    *,
    per_class: int,
    num_classes: int,
    void_label: int,
    origin: Sequence[int] | None = None,
    sample_shape: Sequence[int] | None = None,
    key: int = 0,
    sample: int = 0,
) -> ClassLocations:
    """The class locations of one block of one sample (the whole sample by default).

    Parameters
    ----------
    labels : ndarray of int, 2D or 3D
        Class indices of the block, ``void_label`` on void.
    per_class : int
        K: locations kept per class (at least 1).
    num_classes : int
        Classes ``0..num_classes-1``; other values (void) are never chosen.
    void_label : int
    origin : sequence of int, optional
        Position of the block's first pixel in the sample (default 0s).
    sample_shape : sequence of int, optional
        The whole sample's spatial shape (default: the block's), which
        defines the global flat coordinate that the hash takes.
    key : int
        The sample's hash key (:func:`location_key`).
    sample : int
        The sample's position in the store, recorded with each row.

    Returns
    -------
    ClassLocations

    Examples
    --------
    >>> lab = np.zeros((4, 4), np.uint8); lab[1, 2] = 1
    >>> part = class_location_partial(lab, per_class=3, num_classes=2, void_label=255)
    >>> part.array(0, 2)[1].tolist()  # class 1: one pixel, then unused slots
    [[1, 2], [-1, -1], [-1, -1]]
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3) or lab.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 2D or 3D integer array, got {lab.dtype} {lab.shape}")
    per_class = operator.index(per_class)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    ndim = lab.ndim
    org = tuple(0 for _ in range(ndim)) if origin is None else tuple(map(int, origin))
    full = lab.shape if sample_shape is None else tuple(map(int, sample_shape))
    if len(org) != ndim or len(full) != ndim:
        raise ValueError(f"origin and sample_shape need {ndim} values, got {org} and {full}")
    if any(o < 0 or o + n > f for o, n, f in zip(org, lab.shape, full, strict=True)):
        raise ValueError(f"a block of shape {lab.shape} at {org} lies outside {full}")
    # Global flat coordinate of every pixel of the block, by broadcasting.
    strides = np.cumprod((1, *full[::-1]))[:-1][::-1].astype(np.int64)
    grid = np.zeros(lab.shape, dtype=np.int64)
    for a in range(ndim):
        shape = [1] * ndim
        shape[a] = lab.shape[a]
        grid += ((np.arange(lab.shape[a], dtype=np.int64) + org[a]) * strides[a]).reshape(shape)
    flat: np.ndarray = grid.ravel()
    values = lab.ravel()
    priority = location_priority(key, flat)
    rows: list[np.ndarray] = []
    for c in range(num_classes):
        if c == void_label:
            continue
        where = np.flatnonzero(values == c)
        if where.size > per_class:
            # The K smallest (priority, flat): partition on priority, then
            # keep ties at the K-th priority in flat order (lexsort below).
            kth = np.partition(priority[where], per_class - 1)[per_class - 1]
            where = where[priority[where] <= kth]
        rows.append(where)
    picked = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    coords = np.stack(np.unravel_index(flat[picked], full), axis=1).astype(np.int64)
    coords = coords.reshape(-1, ndim)
    return _select(
        per_class,
        ndim,
        np.full(picked.size, int(sample), np.int64),
        values[picked].astype(np.int32),
        priority[picked],
        flat[picked],
        coords,
    )
