"""A maskprep store as torch datasets of tensor dicts, safe in forked DataLoader workers."""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from maskprep.reader import Shards, epoch_order, open_shards

# numpy dtypes torch has no (or few) operations for, widened losslessly
_WIDEN = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64}


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """Tensors of a sample or batch from :class:`maskprep.Shards` (no copy where possible).

    ``labels`` become int64 (what ``cross_entropy`` wants), uint16/uint32 arrays
    are widened to int32/int64, everything else keeps its dtype (``weights``
    float32, ``instances`` int32, ``shape``/``index`` int64).

    Examples
    --------
    >>> import numpy as np
    >>> t = to_tensors({"labels": np.array([[0, 255]], np.uint8),
    ...                 "image": np.zeros((1, 2), np.uint16)})
    >>> t["labels"].dtype, t["image"].dtype
    (torch.int64, torch.int32)
    """
    out = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        native = np.dtype(a.dtype.newbyteorder("=").str)
        target = np.dtype(np.int64) if name == "labels" else np.dtype(_WIDEN.get(native, native))
        if a.dtype != target or not a.dtype.isnative or not a.flags.writeable:
            a = a.astype(target)
        out[name] = torch.from_numpy(a)
    return out


def collate_padded(
    samples: Sequence[dict[str, Tensor]], void_label: int = 255
) -> dict[str, Tensor]:
    """Stack samples of different shapes: pad labels with ``void_label``, the rest with 0.

    The collate function for a DataLoader over :class:`ShardDataset` when the
    store holds samples of different sizes (``ShardDataset.collate`` binds the
    store's void label). Padding is at the end of each spatial axis, like the
    store's, so void-aware losses never train on it.

    Examples
    --------
    >>> a = {"labels": torch.zeros(1, 2, dtype=torch.int64), "shape": torch.tensor([1, 2])}
    >>> b = {"labels": torch.ones(2, 1, dtype=torch.int64), "shape": torch.tensor([2, 1])}
    >>> collate_padded([a, b])["labels"].tolist()
    [[[0, 0], [255, 255]], [[1, 255], [1, 255]]]
    """
    if not samples:
        raise ValueError("collate_padded needs at least one sample")
    out = {}
    for name in samples[0]:
        items = [s[name] for s in samples]
        if name in ("shape", "index") or all(t.shape == items[0].shape for t in items):
            out[name] = torch.stack(items)
            continue
        ndim = max(t.ndim for t in items)
        big = [max(t.shape[a] for t in items) for a in range(ndim)]
        fill = void_label if name == "labels" else 0
        batch = torch.full((len(items), *big), fill, dtype=items[0].dtype)
        for b, t in enumerate(items):
            batch[(b, *(slice(0, k) for k in t.shape))] = t
        out[name] = batch
    return out


def _ranks(rank: int | None, world: int | None) -> tuple[int, int]:
    """The given rank and world size, else ``torch.distributed``'s, else 0 and 1."""
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if world is None:
        world = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    return rank, world


class _StoreHandle:
    """Opens the store lazily and again in every new process (never shares handles)."""

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        self.path = path
        self.kwargs = kwargs
        self._shards: Shards | None = None
        self._pid = -1

    def get(self) -> Shards:
        if self._shards is None or self._pid != os.getpid():
            self._shards = open_shards(self.path, **self.kwargs)
            self._pid = os.getpid()
        return self._shards

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "kwargs": self.kwargs, "_shards": None, "_pid": -1}


class _StoreDataset:
    """What both datasets take from their store: the handle and the class information."""

    def _open_store(
        self,
        path: str | os.PathLike[str],
        split: str | None,
        arrays: Sequence[str] | None,
        storage_options: dict[str, Any] | None,
    ) -> Shards:
        """Open the store; set ``void_label``, ``class_names`` and ``class_weights``."""
        self._store = _StoreHandle(
            path, split=split, arrays=arrays, storage_options=storage_options
        )
        shards = self._store.get()
        self.void_label = shards.void_label
        self.class_names = shards.class_names
        self.class_weights = torch.as_tensor(shards.class_weights, dtype=torch.float32)
        return shards


class ShardDataset(_StoreDataset, torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A maskprep store as a map-style dataset of tensor dicts.

    ``dataset[i]`` holds the ``arrays`` of sample ``i`` cropped to its true
    shape (see :func:`to_tensors` for dtypes: labels int64), plus ``shape``
    (int64, its true spatial shape) and ``index`` (``i``). The store is opened
    lazily and separately in each DataLoader worker process. Samples of
    different sizes need ``collate_fn=dataset.collate`` (pads labels with the
    void label, the rest with 0); same-size stores work with the default
    collate.

    Parameters
    ----------
    path : path or URL
        The ``.zarr`` store (see :func:`maskprep.open_shards`).
    split : {"train", "valid"}, optional
        Restrict to one split.
    arrays : sequence of str, optional
        Arrays to read (default ``image``, ``labels``, ``weights``).
    transform : callable, optional
        Applied to each sample's dict of tensors.
    storage_options : dict, optional
        fsspec options for a URL.

    Examples
    --------
    >>> from maskprep import example_store
    >>> store = example_store(n_images=4)
    >>> ds = ShardDataset(store, split="train")
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=ds.collate)
    >>> batch = next(iter(loader))
    >>> batch["labels"].shape, batch["labels"].dtype, batch["weights"].dtype
    (torch.Size([2, 16, 16]), torch.int64, torch.float32)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        split: str | None = None,
        arrays: Sequence[str] | None = ("image", "labels", "weights"),
        transform: Callable[[dict[str, Tensor]], Any] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        shards = self._open_store(path, split, arrays, storage_options)
        self._len = len(shards)
        self.transform = transform

    @property
    def shards(self) -> Shards:
        """The underlying :class:`maskprep.Shards` of this process."""
        return self._store.get()

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> Any:
        shards = self._store.get()
        arrays = shards[i]
        pos = operator.index(i) % max(self._len, 1)
        j = int(shards._index[pos])
        arrays["shape"] = shards._shapes[j].astype(np.int64)
        arrays["index"] = np.asarray(pos, dtype=np.int64)
        sample = to_tensors(arrays)
        return sample if self.transform is None else self.transform(sample)

    def collate(self, samples: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """:func:`collate_padded` with this store's void label."""
        return collate_padded(samples, self.void_label)


class ShardIterableDataset(_StoreDataset, torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """A maskprep store as an iterable of ready batches, for ``DataLoader(batch_size=None)``.

    Each epoch is one permutation drawn from ``seed`` and the epoch number
    (:meth:`set_epoch`, as with ``DistributedSampler``), split into disjoint
    parts, one per distributed rank, and cut into batches exactly as
    :meth:`maskprep.Shards.batches` does:
    every sample is read exactly once per epoch over all ranks. DataLoader
    worker ``k`` of ``m`` reads the rank's batches ``k, k + m, ...`` in its own
    process with its own file handles, so the DataLoader yields the same
    batches in the same order whatever ``num_workers``. Batches are stacked and
    padded (void label / 0) to their largest sample and hold ``shape`` and
    ``index`` too (see :meth:`maskprep.Shards.read_batch`).

    Without ``drop_last`` each rank's last batch may be short and ranks may
    differ by one batch; with ``drop_last`` every rank gets
    ``n // (world_size * batch_size)`` full batches, which keeps distributed
    ranks in step.

    Parameters
    ----------
    path : path or URL
        The ``.zarr`` store (see :func:`maskprep.open_shards`).
    batch_size : int
        Samples per batch.
    split, arrays, transform, storage_options
        As for :class:`ShardDataset` (``transform`` gets whole batches).
    shuffle : bool, default True
    seed : int, default 0
        Must be the same on every rank.
    drop_last : bool, default False
    rank, world_size : int, optional
        Distributed rank and size; default ``torch.distributed``'s when it is
        initialised, else 0 and 1.
    threads : int, default 1
        Decoding threads per worker.

    Notes
    -----
    Call :meth:`set_epoch` before each epoch. With ``persistent_workers=True``
    the workers keep the dataset copy they started with, so the epoch does not
    reach them; use the default ``persistent_workers=False``.

    Examples
    --------
    >>> from maskprep import example_store
    >>> store = example_store(n_images=5)
    >>> ds = ShardIterableDataset(store, batch_size=2, seed=0)
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=None)
    >>> [b["labels"].shape[0] for b in loader], len(loader)
    ([2, 2, 1], 3)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int,
        *,
        split: str | None = None,
        arrays: Sequence[str] | None = ("image", "labels", "weights"),
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        threads: int = 1,
        transform: Callable[[dict[str, Tensor]], Any] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        shards = self._open_store(path, split, arrays, storage_options)
        self._n = len(shards)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.threads = threads
        self.transform = transform
        self.epoch = 0
        epoch_order(0, batch_size, seed=seed)  # validate arguments now
        self._ranks()

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` from the next iteration on."""
        self.epoch = operator.index(epoch)

    def _ranks(self) -> tuple[int, int]:
        return _ranks(self.rank, self.world_size)

    def _order(self) -> list[np.ndarray]:
        rank, world = self._ranks()
        return epoch_order(
            self._n,
            self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            rank=rank,
            world_size=world,
            drop_last=self.drop_last,
        )

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        info = torch.utils.data.get_worker_info()
        if info is not None:  # worker k of m reads batches k, k + m, ...: in DataLoader order
            order = order[info.id :: info.num_workers]
        shards = self._store.get()
        pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        try:
            for positions in order:
                tensors = to_tensors(shards._read_batch(positions, pool))
                yield tensors if self.transform is None else self.transform(tensors)
        finally:
            if pool is not None:
                pool.shutdown()

    def __len__(self) -> int:
        """Batches this rank yields per epoch (over all its DataLoader workers)."""
        return len(self._order())
