"""Stacked batches of a store's samples: :meth:`read_batch` and one epoch of
:meth:`batches`, rank-aware (mixed into :class:`~maskprep.reader.Shards`)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from maskprep.reader.order import check_int, epoch_order

if TYPE_CHECKING:
    from maskprep.reader.arrays import SampleSource

__all__ = ["BatchReads"]

_T = TypeVar("_T")


class BatchReads:
    """The batch reads of :class:`~maskprep.reader.Shards` (a mixin: it uses the
    view's samples, shapes and sources)."""

    if TYPE_CHECKING:  # provided by Shards
        _index: np.ndarray
        _shapes: np.ndarray
        _sources: dict[str, SampleSource]
        ndim: int

        def __len__(self) -> int: ...
        def pad_value(self, name: str) -> int | float: ...
        def _watched(self, read: Callable[[], _T]) -> _T: ...

    def read_batch(self, indices: Iterable[int], *, threads: int = 1) -> dict[str, np.ndarray]:
        """Samples ``indices`` (positions in this view) stacked into one batch.

        Arrays are stacked to the largest true shape in the batch; the rest is
        padded with :meth:`pad_value` (labels void, everything else 0), so
        padding is ignored by a void-aware, weighted loss. The batch also holds
        ``shape`` (``(B, ndim)`` int64 true shapes) and ``index`` (``(B,)``
        int64, the positions given; ``shards.sample_ids[k]`` names them).
        ``threads > 1`` decodes samples in that many threads (zstd releases
        the GIL).

        Examples
        --------
        >>> from maskprep import example_store
        >>> store = example_store(n_images=3)
        >>> from maskprep import open_shards
        >>> batch = open_shards(store).read_batch([2, 0])
        >>> batch["labels"].shape, batch["index"].tolist()
        ((2, 16, 16), [2, 0])
        """
        threads = check_int("threads", threads, 1)
        pos = np.asarray([operator.index(i) for i in indices], dtype=np.int64).reshape(-1)
        n = len(self)
        if pos.size and ((pos < -n) | (pos >= n)).any():
            raise IndexError(f"sample index out of range for {n} samples")
        if threads == 1:
            return self._read_batch(pos % max(n, 1), None)
        with ThreadPoolExecutor(threads) as pool:
            return self._read_batch(pos % max(n, 1), pool)

    def _read_batch(
        self, pos: np.ndarray, pool: ThreadPoolExecutor | None
    ) -> dict[str, np.ndarray]:
        return self._watched(lambda: self._decode_batch(pos, pool))

    def _decode_batch(
        self, pos: np.ndarray, pool: ThreadPoolExecutor | None
    ) -> dict[str, np.ndarray]:
        store_idx = self._index[pos]
        shapes = self._shapes[store_idx]
        ndim = self.ndim
        bshape = tuple(int(m) for m in shapes.max(axis=0)) if pos.size else (0,) * ndim
        out: dict[str, np.ndarray] = {}
        jobs = []
        for name, src in self._sources.items():
            full = src.sample_shape
            buf = np.empty((pos.size, *bshape, *full[ndim:]), dtype=src.dtype)
            out[name] = buf
            whole = bshape == full[:ndim]
            for b, j in enumerate(store_idx.tolist()):
                shape = tuple(int(s) for s in shapes[b])
                jobs.append((src, name, b, j, shape, whole and shape == bshape))
        if pool is None:
            for job in jobs:
                self._fill(out, *job)
        else:
            for f in [pool.submit(self._fill, out, *job) for job in jobs]:
                f.result()
        out["shape"] = shapes.copy()
        out["index"] = pos
        return out

    def _fill(
        self,
        out: dict[str, np.ndarray],
        src: SampleSource,
        name: str,
        b: int,
        j: int,
        shape: tuple[int, ...],
        direct: bool,
    ) -> None:
        slot = out[name][b]
        if direct and not src.tiled:  # same shape as the stored chunk: decode straight in
            src.read(j, slot)
            return
        crop = tuple(slice(0, s) for s in shape)
        if shape != slot.shape[: len(shape)]:
            slot[...] = self.pad_value(name)
        if src.tiled:  # only the tiles inside the true shape
            src.read_window(j, (0,) * len(shape), shape, slot[crop])
            return
        full = src.read(j)
        slot[crop] = full[crop]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = None,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        threads: int = 1,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Iterate one epoch of this view in stacked batches (see :meth:`read_batch`).

        Every rank of ``world_size`` draws the same permutation from ``seed``
        and ``epoch`` (pass the same seed everywhere, a new epoch number each
        epoch) and reads a disjoint part of it: together the ranks read every
        sample exactly once. Ranks may get one batch more than others and the
        last batch may be short unless ``drop_last``, which gives every rank
        the same number of full batches and skips the remainder (see
        :func:`epoch_order`). ``shuffle=False`` reads in store order.

        Examples
        --------
        >>> from maskprep import example_store
        >>> store = example_store(n_images=5)
        >>> from maskprep import open_shards
        >>> shards = open_shards(store, arrays=("image", "labels", "weights"))
        >>> for batch in shards.batches(2, seed=0, rank=1, world_size=2):
        ...     print(sorted(batch), batch["weights"].shape)
        ['image', 'index', 'labels', 'shape', 'weights'] (2, 16, 16)
        ['image', 'index', 'labels', 'shape', 'weights'] (1, 16, 16)
        """
        order = epoch_order(
            len(self),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            epoch=epoch,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
        )
        threads = check_int("threads", threads, 1)
        if threads == 1:
            for positions in order:
                yield self._read_batch(positions, None)
            return
        with ThreadPoolExecutor(threads) as pool:
            for positions in order:
                yield self._read_batch(positions, pool)
