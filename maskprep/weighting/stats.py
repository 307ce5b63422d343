"""Exact integer class statistics of a split, merged exactly across samples and blocks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ClassStats", "count_classes"]


def count_classes(labels: np.ndarray, void_label: int, num_classes: int) -> np.ndarray:
    """int64 pixel count of each class ``0..num_classes-1`` in ``labels``, void excluded.

    Labels must be class indices or ``void_label`` (as maskprep's stored
    labels are); other values are not counted.

    Examples
    --------
    >>> count_classes(np.array([[0, 1], [255, 1]], dtype=np.uint8), 255, 2).tolist()
    [1, 2]
    """
    flat = labels.ravel()
    if num_classes <= _FEW_CLASSES and flat.size > _BINCOUNT_CHUNK:
        # np.bincount first casts the labels to intp (8 bytes a pixel, a copy
        # of a 3D volume's size); one comparison pass per class is 5-10x faster.
        counts = np.array(
            [0 if c == void_label else np.count_nonzero(flat == c) for c in range(num_classes)],
            dtype=np.int64,
        )
        return counts
    counts = np.zeros(max(num_classes, void_label + 1), dtype=np.int64)
    for i in range(0, flat.size, _BINCOUNT_CHUNK):  # the cast stays in the cache
        counts += np.bincount(flat[i : i + _BINCOUNT_CHUNK], minlength=counts.size)[: counts.size]
    counts[void_label] = 0
    return counts[:num_classes]


#: Classes up to which :func:`count_classes` compares per class instead of ``np.bincount``.
_FEW_CLASSES = 8
_BINCOUNT_CHUNK = 1 << 20


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _int_scalar(value: object, name: str) -> int:
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    out = int(value)  # type: ignore[call-overload]
    if out < 0:
        raise ValueError(f"{name} must be >= 0, got {out}")
    return out


def int_tuple(values: object, name: str) -> tuple[int, ...]:
    """Non-negative Python ints from a 1-D integer array or a sequence of integers."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
        if values.dtype.kind in "iu":
            items: list[Any] = values.tolist()  # exact Python ints, also for uint64
        elif values.dtype.kind == "O":
            items = list(values)
        else:
            raise ValueError(
                f"{name} must hold integers (exact pixel counts), got dtype {values.dtype}; "
                "cast with .astype(np.int64) if the values are whole numbers"
            )
    elif isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of integers, got {type(values).__name__}")
    else:
        items = list(values)
    out = []
    for i, v in enumerate(items):
        if not _is_int(v):
            raise ValueError(
                f"{name}[{i}] must be an integer (exact pixel counts), got {v!r} "
                f"({type(v).__name__})"
            )
        iv = int(v)
        if iv < 0:
            raise ValueError(f"{name}[{i}] must be >= 0, got {iv}")
        out.append(iv)
    return tuple(out)


def real_number(value: object, name: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


@dataclass(frozen=True)
class ClassStats:
    """Exact integer statistics of the train split, enough to recompute any scheme.

    Parameters
    ----------
    class_counts : sequence of int
        ``n_c``: labeled pixels of class ``c`` over the train split (void excluded).
    present_pixels : sequence of int
        Labeled (non-void) pixels of the train images in which class ``c``
        occurs; the denominator of median-frequency balancing.
    image_counts : sequence of int
        Number of train images in which class ``c`` occurs.
    n_images : int
        Number of train images (including images that are entirely void).

    Raises
    ------
    ValueError
        If the fields are inconsistent: different lengths, no classes, values
        that are not non-negative integers, ``present_pixels[c] < class_counts[c]``,
        ``present_pixels[c] > sum(class_counts)``, ``image_counts[c] > n_images``,
        a class with pixels but no image (or the reverse), or an absent class
        with ``present_pixels[c] != 0``.

    Notes
    -----
    Sequences are stored as tuples of Python ints (exact, unbounded), so
    instances are hashable and ``to_dict`` is JSON-safe. Statistics of disjoint
    image sets merge exactly with ``+`` (and ``sum(parts)``), which makes
    ``+`` a valid combine step of a tree reduction.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0, 0, 1], [255, 1, 1]])
    >>> b = np.array([[2, 2, 255], [255, 255, 0]])
    >>> s = ClassStats.from_label_images([a, b], num_classes=3, void_label=255)
    >>> s.class_counts, s.present_pixels, s.image_counts, s.n_images
    ((3, 3, 2), (8, 5, 3), (2, 1, 1), 2)
    >>> s == ClassStats.from_label_images([a], 3, 255) + ClassStats.from_label_images([b], 3, 255)
    True
    """

    class_counts: tuple[int, ...]
    present_pixels: tuple[int, ...]
    image_counts: tuple[int, ...]
    n_images: int

    def __post_init__(self) -> None:
        cc = int_tuple(self.class_counts, "class_counts")
        pp = int_tuple(self.present_pixels, "present_pixels")
        ic = int_tuple(self.image_counts, "image_counts")
        n_images = _int_scalar(self.n_images, "n_images")
        if not cc:
            raise ValueError("ClassStats needs at least one class; class_counts is empty")
        if not len(cc) == len(pp) == len(ic):
            raise ValueError(
                "class_counts, present_pixels and image_counts must have equal lengths, got "
                f"{len(cc)}, {len(pp)} and {len(ic)}"
            )
        total = sum(cc)
        for c, (n, p, k) in enumerate(zip(cc, pp, ic, strict=True)):
            if k > n_images:
                raise ValueError(f"image_counts[{c}] = {k} exceeds n_images = {n_images}")
            if (n > 0) != (k > 0):
                raise ValueError(
                    f"class {c} has class_counts = {n} but image_counts = {k}; a class has "
                    "labeled pixels exactly when it occurs in at least one image"
                )
            if p < n:
                raise ValueError(
                    f"present_pixels[{c}] = {p} is less than class_counts[{c}] = {n}; the "
                    "images containing a class hold at least that class's own pixels"
                )
            if p > total:
                raise ValueError(
                    f"present_pixels[{c}] = {p} exceeds the total labeled pixels "
                    f"sum(class_counts) = {total}"
                )
            if n == 0 and p != 0:
                raise ValueError(
                    f"class {c} occurs in no image but present_pixels[{c}] = {p} (must be 0)"
                )
        object.__setattr__(self, "class_counts", cc)
        object.__setattr__(self, "present_pixels", pp)
        object.__setattr__(self, "image_counts", ic)
        object.__setattr__(self, "n_images", n_images)

    @property
    def num_classes(self) -> int:
        """Number of classes (present or not)."""
        return len(self.class_counts)

    @property
    def total_pixels(self) -> int:
        """``N``: labeled pixels over all classes (void excluded)."""
        return sum(self.class_counts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of plain ints and lists; inverse of :meth:`from_dict`."""
        return {
            "class_counts": list(self.class_counts),
            "present_pixels": list(self.present_pixels),
            "image_counts": list(self.image_counts),
            "n_images": self.n_images,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassStats:
        """Validated :class:`ClassStats` from the output of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If ``d`` is not a mapping with exactly the four field names, or the
            values fail validation.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"ClassStats.from_dict needs a mapping, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in d]
        unknown = sorted(str(k) for k in d if k not in names)
        if missing or unknown:
            raise ValueError(
                f"ClassStats.from_dict: missing keys {missing}, unknown keys {unknown}; "
                f"expected exactly {names}"
            )
        return cls(**{k: d[k] for k in names})

    @classmethod
    def from_label_images(
        cls,
        labels_iterable: Iterable[npt.ArrayLike],
        num_classes: int,
        void_label: int | None,
    ) -> ClassStats:
        """Exact statistics of label images, one ``np.bincount`` per image.

        Meant for tests and small data; the pipeline computes the same numbers
        chunk-wise and merges them with ``+``.

        Parameters
        ----------
        labels_iterable : iterable of array_like
            Integer label images of any shape (2D, 3D, ...).
        num_classes : int
            Classes are ``0 .. num_classes - 1``.
        void_label : int or None
            Label of void/unlabeled pixels, excluded from every count. Must not
            be a class index. ``None`` means the images have no void pixels.

        Raises
        ------
        ValueError
            On a non-integer image, a label outside ``[0, num_classes)`` that is
            not ``void_label``, or a ``void_label`` inside ``[0, num_classes)``.
        """
        if not _is_int(num_classes) or int(num_classes) < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        num_classes = int(num_classes)
        if void_label is not None:
            if not _is_int(void_label):
                raise ValueError(f"void_label must be an integer or None, got {void_label!r}")
            if 0 <= int(void_label) < num_classes:
                raise ValueError(
                    f"void_label = {void_label} is a class index (classes are "
                    f"0..{num_classes - 1}); void is not a class, so it must lie outside that range"
                )
        per_image = []
        for i, image in enumerate(labels_iterable):
            arr = np.asarray(image)
            if arr.dtype.kind not in "iub":
                raise ValueError(f"label image {i} must have an integer dtype, got {arr.dtype}")
            flat = arr.ravel()
            if void_label is not None:
                flat = flat[flat != void_label]
            if flat.size:
                bad = flat[(flat < 0) | (flat >= num_classes)]
                if bad.size:
                    shown = np.unique(bad)[:10].tolist()
                    raise ValueError(
                        f"label image {i} has labels outside 0..{num_classes - 1} that are not "
                        f"void_label={void_label}: {shown}"
                    )
            per_image.append(np.bincount(flat.astype(np.intp), minlength=num_classes))
        return cls.from_sample_counts(per_image, num_classes)

    @classmethod
    def from_sample_counts(
        cls, per_sample: Iterable[Sequence[int] | np.ndarray], num_classes: int
    ) -> ClassStats:
        """Statistics of samples given each one's per-class pixel counts (void excluded).

        The one place where per-sample counts are accumulated: the build's
        scan, :meth:`from_label_images` and ``verify`` all come through here.

        Examples
        --------
        >>> ClassStats.from_sample_counts([[3, 0], [1, 4]], 2)
        ClassStats(class_counts=(4, 4), present_pixels=(8, 5), image_counts=(2, 1), n_images=2)
        """
        class_counts = np.zeros(num_classes, dtype=np.int64)
        present_pixels = np.zeros(num_classes, dtype=np.int64)
        image_counts = np.zeros(num_classes, dtype=np.int64)
        n_images = 0
        for counts in per_sample:
            per = np.asarray(counts, dtype=np.int64)
            present = per > 0
            class_counts += per
            present_pixels[present] += int(per.sum())
            image_counts[present] += 1
            n_images += 1
        return cls(
            tuple(class_counts.tolist()),
            tuple(present_pixels.tolist()),
            tuple(image_counts.tolist()),
            n_images,
        )

    def __add__(self, other: object) -> ClassStats:
        """Statistics of the union of two disjoint image sets (exact integer sums)."""
        if not isinstance(other, ClassStats):
            return NotImplemented
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge ClassStats with {self.num_classes} and {other.num_classes} classes"
            )
        return ClassStats(
            tuple(a + b for a, b in zip(self.class_counts, other.class_counts, strict=True)),
            tuple(a + b for a, b in zip(self.present_pixels, other.present_pixels, strict=True)),
            tuple(a + b for a, b in zip(self.image_counts, other.image_counts, strict=True)),
            self.n_images + other.n_images,
        )

    def __radd__(self, other: object) -> ClassStats:
        """``0 + stats`` is ``stats``, so ``sum(parts)`` works."""
        if _is_int(other) and other == 0:
            return self
        return NotImplemented
