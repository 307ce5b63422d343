"""Class-aware random patches: where each patch of an epoch goes, and reading them.

Batch ``b`` of epoch ``e`` on rank ``r`` is drawn from its own generator
``numpy.random.default_rng([seed, e, r, b])``, so any batch can be made on
its own: DataLoader workers split the batches and a resumed run starts at
any batch, with the same patches either way. For each patch, with
probability ``foreground_prob`` a class ``c`` is drawn from ``class_probs``,
then a sample of the view that has class ``c``, then one of the sample's
recorded locations of ``c`` (:meth:`Shards.class_locations`), and the patch
is placed uniformly among the positions that contain that location and,
where the sample is large enough, stay inside it. Otherwise a sample and a
position inside it are drawn uniformly; such a patch that is all void (or
padding) is drawn again, up to :data:`MAX_DRAWS` times.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maskprep.errors import StoreError
from maskprep.reader.order import check_int

if TYPE_CHECKING:
    from maskprep.reader.shards import Shards

__all__ = ["MAX_DRAWS", "PatchSampler"]

#: Draws of a uniform patch before giving up on finding one that is not all void.
MAX_DRAWS = 100


class PatchSampler:
    """The patches of :meth:`Shards.patches`, batch by batch (see the module docstring).

    Parameters are those of :meth:`Shards.patches`; ``margin`` widens every
    patch read by that many pixels on each side of each axis (context for
    transforms and recomputed targets; the sampled ``start`` stays that of
    the patch itself).

    Examples
    --------
    >>> from maskprep import example_store, open_shards
    >>> shards = open_shards(example_store(n_images=3, size=(32, 32)))
    >>> sampler = PatchSampler(shards, (8, 8), batch_size=4, n=10, seed=1)
    >>> len(sampler), [b["labels"].shape[0] for b in sampler.epoch(0)]
    (3, [4, 4, 2])
    >>> np.array_equal(sampler.batch(0, 1)["start"], list(sampler.epoch(0))[1]["start"])
    True
    """

    def __init__(
        self,
        shards: Shards,
        size: Sequence[int],
        batch_size: int,
        n: int,
        *,
        seed: int = 0,
        foreground_prob: float = 0.33,
        class_probs: Sequence[float] | Mapping[Any, float] | None = None,
        rank: int = 0,
        world_size: int = 1,
        arrays: Sequence[str] | None = None,
        margin: int | Sequence[int] = 0,
    ) -> None:
        self.shards = shards
        ndim = shards.ndim
        self.size = shards._axis_ints("size", size, ndim, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.n = check_int("n", n, 0)
        self.seed = check_int("seed", seed, 0)
        self.world_size = check_int("world_size", world_size, 1)
        self.rank = check_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank must be < world_size={self.world_size}, got {self.rank}")
        p = float(foreground_prob)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"foreground_prob must be in [0, 1], got {foreground_prob!r}")
        self.foreground_prob = p
        self.arrays = shards.arrays if arrays is None else shards._subset(arrays)
        if isinstance(margin, int):
            margin = (margin,) * ndim
        self.margin = shards._axis_ints("margin", margin, ndim, 0)
        if len(shards) == 0 and self.n:
            raise StoreError(f"{shards.location}: no samples to draw patches from")
        self._classes, self._class_p, self._with_class = self._class_table(class_probs)

    # -- what to draw from -------------------------------------------------
    def _class_table(
        self, class_probs: Sequence[float] | Mapping[Any, float] | None
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Classes that foreground patches may target, their probabilities, and the
        view positions of the samples that have each."""
        shards = self.shards
        names = shards.class_names
        counts = np.asarray(shards.store_metadata.sample_class_counts, dtype=np.int64)
        counts = counts[shards._index].reshape(len(shards), len(names))
        present = counts.sum(axis=0) > 0
        if class_probs is None:
            weights = np.ones(len(names))
            weights[0] = 0.0  # class 0 is the background
        elif isinstance(class_probs, Mapping):
            weights = np.zeros(len(names))
            for key, value in class_probs.items():
                if isinstance(key, str):
                    if key not in names:
                        raise ValueError(f"class_probs names no class {key!r} (classes: {names})")
                    c = names.index(key)
                else:
                    try:
                        c = operator.index(key)
                    except TypeError:
                        raise ValueError(
                            f"class_probs keys must be class names or indices, got {key!r}"
                        ) from None
                if not 0 <= c < len(names):
                    raise ValueError(f"class_probs names no class {key!r} (classes: {names})")
                weights[c] = float(value)
        else:
            weights = np.asarray(list(class_probs), dtype=np.float64)
            if weights.shape != (len(names),):
                raise ValueError(
                    f"class_probs needs one value per class ({len(names)}: {names}), "
                    f"got {weights.size}"
                )
        if not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise ValueError(f"class_probs must be finite and >= 0, got {weights.tolist()}")
        given = class_probs is not None and weights.sum() > 0
        weights = np.where(present, weights, 0.0)
        if given and weights.sum() == 0 and self.foreground_prob > 0:
            raise ValueError(
                "class_probs gives weight only to classes absent from this view "
                f"(present: {[n for n, p in zip(names, present, strict=True) if p]})"
            )
        classes = np.flatnonzero(weights > 0)
        probs = weights[classes] / weights[classes].sum() if classes.size else weights[classes]
        with_class = [np.flatnonzero(counts[:, c] > 0) for c in classes]
        return classes, probs, with_class

    # -- drawing -------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.n // self.batch_size)

    def batch_patches(self, b: int) -> int:
        """Number of patches in batch ``b``."""
        return max(0, min(self.batch_size, self.n - b * self.batch_size))

    def place(self, epoch: int, b: int) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """Where the patches of batch ``b`` of ``epoch`` go: view positions ``(B,)``,
        starts ``(B, ndim)``, and the labels already read to check uniform ones."""
        epoch = check_int("epoch", epoch, 0)
        count = self.batch_patches(check_int("batch", b, 0))
        rng = np.random.default_rng([self.seed, epoch, self.rank, b])
        ndim = self.shards.ndim
        index = np.empty(count, dtype=np.int64)
        start = np.empty((count, ndim), dtype=np.int64)
        checked: dict[int, np.ndarray] = {}
        labels_src = self.shards._source("labels")
        void = self.shards.void_label
        for p in range(count):
            if self._classes.size and rng.random() < self.foreground_prob:
                index[p], start[p] = self._foreground(rng)
                continue
            for _ in range(MAX_DRAWS):
                i = int(rng.integers(len(self.shards)))
                s = self._uniform_start(rng, i)
                buf = {"labels": np.empty((1, *self.size), labels_src.dtype)}
                self.shards._patch_into(i, tuple(s.tolist()), self.size, ["labels"], buf, 0)
                if (buf["labels"] != void).any():
                    break
            else:
                raise StoreError(
                    f"{self.shards.location}: no {self.size} patch with an annotated pixel "
                    f"in {MAX_DRAWS} uniform draws (the view is almost all void; use "
                    "foreground_prob=1 or a larger patch)"
                )
            index[p], start[p] = i, s
            checked[p] = buf["labels"][0]
        return index, start, checked

    def _shape(self, i: int) -> np.ndarray:
        return self.shards._shapes[self.shards._index[i]]

    def _uniform_start(self, rng: np.random.Generator, i: int) -> np.ndarray:
        room = self._shape(i) - np.asarray(self.size)
        lo, hi = np.minimum(room, 0), np.maximum(room, 0)
        return rng.integers(lo, hi + 1)

    def _foreground(self, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        k = int(rng.choice(self._classes.size, p=self._class_p))
        c = int(self._classes[k])
        candidates = self._with_class[k]
        i = int(candidates[rng.integers(candidates.size)])
        found = self.shards.class_locations(i)[c]
        valid = found[found[:, 0] >= 0]
        loc = valid[rng.integers(valid.shape[0])].astype(np.int64)
        size = np.asarray(self.size)
        room = self._shape(i) - size
        lo = np.maximum(loc - size + 1, np.minimum(room, 0))
        hi = np.minimum(loc, np.maximum(room, 0))
        return i, rng.integers(lo, hi + 1)

    # -- reading ---------------------------------------------------------------
    def read(
        self,
        index: np.ndarray,
        start: np.ndarray,
        checked: dict[int, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """The patches at ``start`` of samples ``index``, stacked, with ``index`` and
        ``start`` (widened by :attr:`margin` on every side, if set)."""
        shards = self.shards
        margin = np.asarray(self.margin)
        size = tuple(int(s + 2 * m) for s, m in zip(self.size, self.margin, strict=True))
        out: dict[str, np.ndarray] = {}
        for name in self.arrays:
            src = shards._source(name)
            out[name] = np.empty((index.size, *size, *src.sample_shape[shards.ndim :]), src.dtype)
        reuse = checked if checked and not margin.any() and "labels" in out else {}
        for p in range(index.size):
            names = [n for n in self.arrays if not (n == "labels" and p in reuse)]
            at = tuple((start[p] - margin).tolist())
            shards._patch_into(int(index[p]), at, size, names, out, p)
            if p in reuse:
                out["labels"][p] = reuse[p]
        out["index"] = index
        out["start"] = start
        return out

    def batch(self, epoch: int, b: int) -> dict[str, np.ndarray]:
        """Batch ``b`` of ``epoch``."""
        return self.read(*self.place(epoch, b))

    def epoch(self, epoch: int, first: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """The batches of ``epoch``, from batch ``first`` on."""
        for b in range(first, len(self)):
            yield self.batch(epoch, b)
