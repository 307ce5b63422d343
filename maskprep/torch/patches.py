"""Random patches (or whole samples) as resumable, worker- and rank-aware torch batches."""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from maskprep.intensity import NORMALIZATION_SCHEMES
from maskprep.intensity import normalize as normalize_image
from maskprep.reader import Shards, epoch_order
from maskprep.reader.patches import PatchSampler
from maskprep.torch.data import _ranks, _StoreDataset, to_tensors

__all__ = ["PatchDataset", "PatchLoader"]

_WEIGHTS = ("stored", "recompute")


class PatchDataset(_StoreDataset, torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """Class-aware random patches of a store as ready batches, resumable mid-epoch.

    Each epoch is ``n`` patches per rank drawn by :meth:`maskprep.Shards.patches`
    (``size=None``: every sample of the view once, in a seeded shuffle split
    over ranks, as :func:`maskprep.reader.epoch_order`), in batches of
    ``batch_size``. Batch ``b`` depends only on ``(seed, epoch, rank, b)``:
    DataLoader worker ``k`` of ``m`` makes batches ``k, k + m, ...``, so the
    loader yields the same batches in the same order whatever ``num_workers``,
    and :meth:`state_dict` / :meth:`load_state_dict` resume with exactly the
    batches an uninterrupted run would have yielded next. Iterate it through
    :meth:`loader` (a DataLoader that counts what it hands out) or directly.

    A batch is a dict of tensors: ``image`` float32 ``(B, C, *size)`` (C = 1
    for single-channel images), normalised with the store's intensity
    statistics (``normalize``); ``labels`` int64; ``weights`` and other targets
    as stored (channel targets channel-last); ``index`` (view position of each
    patch's sample), ``start`` (each patch's origin) and ``batch`` (its number
    in the epoch).

    Parameters
    ----------
    path : path or URL
        The ``.zarr`` store.
    size : sequence of int or None
        Patch extent per spatial axis; None for whole samples (padded to the
        largest of the batch, then to ``pad_multiple``).
    batch_size : int
    n : int, optional
        Patches per rank and epoch (required with ``size``).
    seed : int
        Same on every rank.
    foreground_prob, class_probs
        As for :meth:`maskprep.Shards.patches`.
    split : {"train", "valid"}, optional
    arrays : sequence of str
        Arrays in each batch (default image, labels, weights).
    transform : optional
        A joint augmentation of each patch: an albumentations or
        torchvision.transforms.v2 pipeline, or a callable on the patch's dict
        of numpy arrays (see :mod:`maskprep.augment`); it gets the image as
        float32 before normalisation, and the label maps (labels, instances,
        stored targets) to warp as masks (nearest). Leave the masks' fill at 0:
        what a transform brings in from outside becomes void.
    weights : {"stored", "recompute"}
        ``recompute``: every target in ``arrays`` (the weight map and the
        others) is computed again after the transform from the transformed
        instances, with the store's own parameters, on the patch widened by
        :func:`maskprep.augment.recompute_margin` (exact where the stored map
        is: an identity transform gives the stored map). Loads numba in the
        workers.
    normalize : {"zscore", "percentile", "ct"} or None
        :func:`maskprep.normalize` scheme with the store's statistics
        (``Shards.intensity_stats``); None keeps the raw values (as float32).
    margin : int or sequence of int, optional
        Context read around each patch for the transform (cropped after);
        default :func:`~maskprep.augment.recompute_margin` with ``recompute``,
        else 0.
    pad_multiple : int or sequence of int, optional
        Pad each batch's spatial axes at the end to a multiple of this (e.g.
        ``2**depth`` of a U-Net): image 0, labels void, targets their fill.
    rank, world_size : int, optional
        Default ``torch.distributed``'s when initialised, else 0 and 1.
    storage_options : dict, optional

    Notes
    -----
    Call :meth:`set_epoch` before each epoch (as with ``DistributedSampler``);
    use the default ``persistent_workers=False``.

    Examples
    --------
    >>> from maskprep import example_store
    >>> store = example_store(n_images=4, size=(32, 32), class_locations=16)
    >>> ds = PatchDataset(store, (16, 16), batch_size=4, n=10, seed=0)
    >>> [tuple(b["image"].shape) for b in ds.loader()]
    [(4, 1, 16, 16), (4, 1, 16, 16), (2, 1, 16, 16)]
    >>> ds.state_dict()["batches"]
    3
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        size: Sequence[int] | None,
        batch_size: int,
        n: int | None = None,
        *,
        seed: int = 0,
        foreground_prob: float = 0.33,
        class_probs: Sequence[float] | Mapping[Any, float] | None = None,
        split: str | None = None,
        arrays: Sequence[str] = ("image", "labels", "weights"),
        transform: Any = None,
        weights: str = "stored",
        normalize: str | None = "zscore",
        margin: int | Sequence[int] | None = None,
        pad_multiple: int | Sequence[int] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if weights not in _WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(_WEIGHTS)}, got {weights!r}")
        self.arrays = tuple(arrays)
        shards = self._open_store(path, split, None, storage_options)
        meta = shards.store_metadata
        unknown = [a for a in self.arrays if a not in shards.arrays]
        if unknown or not self.arrays:
            raise ValueError(f"arrays must be among {', '.join(shards.arrays)}, got {unknown}")
        self.recomputed = (
            tuple(a for a in self.arrays if a not in ("image", "labels", "instances"))
            if weights == "recompute"
            else ()
        )
        self.size = None if size is None else tuple(operator.index(s) for s in size)
        self.batch_size = batch_size
        self.seed = seed
        self.foreground_prob = foreground_prob
        self.class_probs = class_probs
        self.transform = transform
        self.weights = weights
        self.normalize = normalize
        self.rank, self.world_size = rank, world_size
        ndim = shards.ndim
        if self.size is None:
            margin = 0  # whole samples: all the context there is
        elif margin is None:
            if self.recomputed:
                from maskprep.augment import recompute_margin

                margin = recompute_margin(meta)
            else:
                margin = 0
        self.margin = (margin,) * ndim if isinstance(margin, int) else tuple(margin)
        if pad_multiple is None:
            pad_multiple = 1
        self.pad_multiple = (
            (pad_multiple,) * ndim if isinstance(pad_multiple, int) else tuple(pad_multiple)
        )
        if len(self.pad_multiple) != ndim or min(self.pad_multiple) < 1:
            raise ValueError(f"pad_multiple must be >= 1 per axis, got {pad_multiple!r}")
        if normalize is not None and normalize not in NORMALIZATION_SCHEMES:
            raise ValueError(
                f"normalize must be one of {', '.join(NORMALIZATION_SCHEMES)} or None, "
                f"got {normalize!r}"
            )
        self.stats = shards.intensity_stats if normalize is not None else None
        self._read = tuple(dict.fromkeys(
            [a for a in self.arrays if a not in self.recomputed]
            + (["labels", "instances"] if self.recomputed or transform is not None else [])
        ))  # fmt: skip
        if transform is not None:  # the transform moves all of them alike
            self._read = tuple(dict.fromkeys([*self._read, "image", "labels", "instances"]))
        if self.size is None:
            if n is not None:
                raise ValueError("n is the number of patches: leave it out with size=None")
            self.n = None
        else:
            if n is None:
                raise ValueError("n (patches per rank and epoch) is required with a size")
            self.n = operator.index(n)
        self.epoch = 0
        self._skip = 0
        self._consumed = 0
        self._sampler_cache: tuple[int, PatchSampler] | None = None
        self._augment_cache: tuple[int, Any] | None = None
        self._sampler(shards)  # validate the sampling arguments now
        len(self)

    # -- epochs and resuming ---------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Draw the patches of ``epoch`` from the next iteration on, from its first batch."""
        self.epoch = operator.index(epoch)
        self._skip = 0
        self._consumed = 0

    def state_dict(self) -> dict[str, Any]:
        """Where the iteration is: the epoch and the batches handed out of it so far.

        Counted by iterating the dataset itself or through :meth:`loader` (a plain
        DataLoader with workers cannot tell the dataset what it handed out).
        """
        rank, world = _ranks(self.rank, self.world_size)
        return {
            "epoch": self.epoch,
            "batches": self._consumed,
            "seed": self.seed,
            "n": self.n,
            "batch_size": self.batch_size,
            "size": None if self.size is None else list(self.size),
            "rank": rank,
            "world_size": world,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration starts at the batch after the last one handed out."""
        mine = self.state_dict()
        for key in ("seed", "n", "batch_size", "size", "rank", "world_size"):
            if key in state and state[key] != mine[key]:
                raise ValueError(
                    f"the state is of a dataset with {key}={state[key]!r}, this one has "
                    f"{mine[key]!r}: resuming would not continue the same batches"
                )
        self.epoch = operator.index(state["epoch"])
        self._skip = self._consumed = operator.index(state["batches"])

    def loader(self, **kwargs: Any) -> PatchLoader:
        """A DataLoader over this dataset (``batch_size=None``) that keeps
        :meth:`state_dict` up to date, also with ``num_workers > 0``."""
        return PatchLoader(self, **kwargs)

    # -- batches ---------------------------------------------------------------
    def _sampler(self, shards: Shards) -> PatchSampler | None:
        if self.size is None:
            return None
        pid = os.getpid()
        if self._sampler_cache is None or self._sampler_cache[0] != pid:
            rank, world = _ranks(self.rank, self.world_size)
            sampler = PatchSampler(
                shards,
                self.size,
                self.batch_size,
                self.n or 0,
                seed=self.seed,
                foreground_prob=self.foreground_prob,
                class_probs=self.class_probs,
                rank=rank,
                world_size=world,
                arrays=self._read,
                margin=self.margin,
            )
            self._sampler_cache = (pid, sampler)
        return self._sampler_cache[1]

    def _order(self) -> list[np.ndarray]:
        rank, world = _ranks(self.rank, self.world_size)
        return epoch_order(
            len(self._store.get()),
            self.batch_size,
            seed=self.seed,
            epoch=self.epoch,
            rank=rank,
            world_size=world,
        )

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        sampler = self._sampler(self._store.get())
        return len(sampler) if sampler is not None else len(self._order())

    def _augment(self) -> Any:
        if self.transform is None and not self.recomputed:
            return None
        pid = os.getpid()
        if self._augment_cache is None or self._augment_cache[0] != pid:
            from maskprep.augment import PatchAugment

            meta = self._store.get().store_metadata
            aug = PatchAugment(meta, self.transform, self.recomputed, self.margin)
            self._augment_cache = (pid, aug)
        return self._augment_cache[1]

    def batch(self, b: int) -> dict[str, Tensor]:
        """Batch ``b`` of the current epoch (what iterating yields at that position)."""
        shards = self._store.get()
        sampler = self._sampler(shards)
        if sampler is not None:
            raw = sampler.batch(self.epoch, b)
            index, start = raw.pop("index"), raw.pop("start")
            items = [{k: v[p] for k, v in raw.items()} for p in range(index.size)]
        else:
            index = self._order()[b]
            start = np.zeros((index.size, shards.ndim), np.int64)
            items = [shards._patch_arrays(int(i), self._read) for i in index]
        augment = self._augment()
        if augment is not None:
            # Each patch's augmentation is seeded by its place in the epoch, so it
            # too is the same whatever the workers, and on resuming.
            rank, _ = _ranks(self.rank, self.world_size)
            seeds = np.random.SeedSequence([self.seed, self.epoch, rank, b]).generate_state(
                len(items), dtype=np.uint64
            )
            insides = [self._inside(shards, int(i), st) for i, st in zip(index, start, strict=True)]
            items = [
                augment(item, int(s), region)
                for item, s, region in zip(items, seeds, insides, strict=True)
            ]
        elif any(self.margin):
            items = [{k: self._crop(v) for k, v in item.items()} for item in items]
        out = self._stack(items, shards)
        out["index"] = np.asarray(index, np.int64)
        out["start"] = np.asarray(start, np.int64)
        tensors = to_tensors(out)
        tensors["batch"] = torch.tensor(b, dtype=torch.int64)
        return tensors

    def _inside(self, shards: Shards, i: int, start: np.ndarray) -> tuple[slice, ...]:
        """The part of the patch read at ``start - margin`` that lies inside sample ``i``."""
        shape = shards._shapes[shards._index[i]]
        size = self.size or tuple(int(v) for v in shape)
        out = []
        for a, n, m, s in zip(start.tolist(), size, self.margin, shape.tolist(), strict=True):
            lo = a - m
            out.append(slice(max(0, -lo), min(n + 2 * m, s - lo)))
        return tuple(out)

    def _crop(self, a: np.ndarray) -> np.ndarray:
        window = tuple(
            slice(m, n - m) for m, n in zip(self.margin, a.shape[: len(self.margin)], strict=True)
        )
        return a[window]

    def _stack(self, items: list[dict[str, np.ndarray]], shards: Shards) -> dict[str, np.ndarray]:
        ndim = shards.ndim
        shapes = np.asarray([item["labels" if "labels" in item else self.arrays[0]].shape[:ndim]
                             for item in items])  # fmt: skip
        big = shapes.max(axis=0) if len(items) else np.zeros(ndim, np.int64)
        mult = np.asarray(self.pad_multiple)
        target = tuple(int(v) for v in -(-big // mult) * mult)
        out: dict[str, np.ndarray] = {}
        for name in self.arrays:
            first = items[0][name] if items else np.zeros(target)
            rest = first.shape[ndim:]
            if name == "image":
                fill: float = 0.0
                dtype: Any = np.float32
            else:
                fill, dtype = shards.pad_value(name), first.dtype
            buf = np.full((len(items), *target, *rest), fill, dtype=dtype)
            for p, item in enumerate(items):
                a = item[name]
                if name == "image":
                    a = self._image(a, shards)
                buf[(p, *(slice(0, k) for k in a.shape[:ndim]))] = a
            if name == "image":
                channels = shards.store_metadata.layout_info.channels
                buf = np.moveaxis(buf, -1, 1) if channels is not None else buf[:, np.newaxis]
                buf = np.ascontiguousarray(buf)
            out[name] = buf
        return out

    def _image(self, a: np.ndarray, shards: Shards) -> np.ndarray:
        if self.normalize is None or self.stats is None:
            return a.astype(np.float32, copy=False)
        channels = shards.store_metadata.layout_info.channels
        axis = -1 if channels is not None else None
        return normalize_image(a, self.stats, self.normalize, channel_axis=axis)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        info = torch.utils.data.get_worker_info()
        first = self._skip
        if info is None:  # in this process: count what is handed out
            self._skip = 0
            self._consumed = first
        todo = range(first, len(self))
        if info is not None:
            todo = todo[info.id :: info.num_workers]
        for b in todo:
            batch = self.batch(b)
            if info is None:
                self._consumed = b + 1
            yield batch


class PatchLoader(torch.utils.data.DataLoader):  # type: ignore[type-arg]
    """A DataLoader over a :class:`PatchDataset` that counts the batches it hands out
    (so ``dataset.state_dict()`` is right with workers too). ``batch_size`` is None:
    the dataset makes whole batches."""

    def __init__(self, dataset: PatchDataset, **kwargs: Any) -> None:
        if kwargs.get("batch_size") is not None:
            raise ValueError("the dataset makes the batches: leave batch_size out")
        if kwargs.get("persistent_workers"):
            raise ValueError("persistent workers would not see set_epoch; leave them off")
        kwargs["batch_size"] = None
        super().__init__(dataset, **kwargs)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds = self.dataset
        assert isinstance(ds, PatchDataset)
        if self.num_workers == 0:
            yield from super().__iter__()  # the dataset counts itself
            return
        first = ds._skip
        it = super().__iter__()  # the workers start here, with the dataset as it is now
        ds._skip = 0
        ds._consumed = first
        for batch in it:
            ds._consumed += 1
            yield batch
