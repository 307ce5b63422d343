"""PyTorch losses and inference helpers that honour void labels and weight maps.

Requires the optional ``torch`` extra (``pip install maskprep[torch]``); nothing
else in maskprep imports this module.

* :func:`weighted_cross_entropy` / :class:`WeightedCrossEntropyLoss`: cross
  entropy with per-pixel weight maps and per-class weights, void pixels
  ignored, normalised by the total weight of the valid pixels.
* :func:`forbid_classes`: set class channels to ``-inf`` so ``argmax`` and
  ``softmax`` can never pick them.
* :class:`ShardDataset` (map-style) and :class:`ShardIterableDataset` (whole
  batches, split over DataLoader workers and distributed ranks): a maskprep
  store as tensors, safe in forked DataLoader workers.

The void label comes from the dataset: pass ``ignore_index=shards.void_label``.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, SupportsIndex

import numpy as np
import torch
from torch import Tensor

from maskprep.metrics import _check_classes
from maskprep.reader import Shards, epoch_order, open_shards

__all__ = [
    "ShardDataset",
    "ShardIterableDataset",
    "WeightedCrossEntropyLoss",
    "collate_padded",
    "forbid_classes",
    "to_tensors",
    "weighted_cross_entropy",
]


def _ignore_int(ignore_index: SupportsIndex | None) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool):
        raise ValueError("ignore_index must be an integer label or None, got a bool")
    try:
        return operator.index(ignore_index)
    except TypeError:
        raise ValueError(
            f"ignore_index must be an integer label or None, got {ignore_index!r}"
        ) from None


def weighted_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    weights: Tensor | None = None,
    class_weights: Tensor | None = None,
    ignore_index: SupportsIndex | None = 255,
) -> Tensor:
    r"""Cross entropy weighted per pixel and per class, ignoring void pixels.

    With ``l = -log softmax(logits, dim=1)[label]`` per pixel,
    ``w = weights * class_weights[label]`` (each factor 1 when not given) and
    ``valid = labels != ignore_index``, the result is

    .. math:: \frac{\sum l \, w \, \mathrm{valid}}{\sum w \, \mathrm{valid}}

    i.e. the weighted mean over valid pixels of the whole batch. When that
    denominator is 0 (for example an all-void batch) the loss is ``0`` -- never
    NaN -- and still has a (zero) gradient, so ``backward()`` works. Void pixels
    contribute exactly 0 to the loss and to the gradient, whatever their
    weights or logits (even ``-inf`` from :func:`forbid_classes`).

    Parameters
    ----------
    logits : Tensor, shape (N, C, \*spatial)
        Unnormalised scores, floating point. Half precision is computed in
        float32.
    labels : Tensor of int, shape (N, \*spatial)
        Class index per pixel, any integer dtype (maskprep's uint8/uint16 label
        maps work as stored). Non-void labels must lie in ``[0, C)``; the void
        label may be anything, including a value ``>= C`` such as 255.
    weights : Tensor, shape (N, \*spatial), optional
        Per-pixel weights, e.g. maskprep's U-Net border weight maps. Expected
        finite and non-negative (not checked, to avoid a device sync).
    class_weights : Tensor, shape (C,), optional
        Per-class weights, multiplied into the per-pixel weight of each
        pixel's true class.
    ignore_index : int or None, default 255
        Void label. Take it from the dataset: ``ignore_index=shards.void_label``
        (any integer type, including numpy integers, is accepted). ``None``
        ignores nothing.

    Returns
    -------
    Tensor
        Scalar loss.

    Raises
    ------
    ValueError
        On wrong dtypes or shapes, or a non-void label outside ``[0, C)`` (this
        one check synchronises with the device).

    Notes
    -----
    Without ``weights`` and ``class_weights`` this equals
    ``F.cross_entropy(logits, labels, ignore_index=ignore_index)``, and with
    only ``class_weights`` it equals ``F.cross_entropy(..., weight=class_weights)``,
    except that an all-void batch gives 0 here and NaN there.

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(1, 2, 3, requires_grad=True)   # uniform over 2 classes
    >>> labels = torch.tensor([[0, 1, 255]])
    >>> loss = weighted_cross_entropy(logits, labels)
    >>> round(loss.item(), 4)   # log(2)
    0.6931
    >>> loss.backward()
    >>> logits.grad[0, :, 2].tolist()   # void pixel: no gradient
    [0.0, 0.0]
    >>> void = torch.full((1, 3), 255)
    >>> weighted_cross_entropy(logits, void).item()
    0.0
    """
    if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
        raise ValueError("logits and labels must be torch tensors")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(f"logits must have shape (N, C, *spatial), got {tuple(logits.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(
            f"labels must have shape (N, *spatial) = {expected} for logits of shape "
            f"{tuple(logits.shape)}, got {tuple(labels.shape)}"
        )
    num_classes = logits.shape[1]
    if num_classes < 1:
        raise ValueError("logits must have at least one class channel")
    void = _ignore_int(ignore_index)

    dtype = torch.promote_types(logits.dtype, torch.float32)
    # int64 working copy: uint16 label maps (maskprep's dtype above 255) lack comparison ops
    labels = labels.long()
    valid = torch.ones_like(labels, dtype=torch.bool) if void is None else labels != void
    out_of_range = valid & ((labels < 0) | (labels >= num_classes))
    if bool(out_of_range.any()):
        bad = torch.unique(labels[out_of_range])[:5].tolist()
        raise ValueError(
            f"non-void labels must lie in [0, {num_classes}), found {bad} "
            f"(is ignore_index={void!r} the dataset's void_label?)"
        )
    # void pixels may hold any value (255 >= C): gather from channel 0 there, then mask
    safe = torch.where(valid, labels, torch.zeros((), dtype=labels.dtype, device=labels.device))

    logp = torch.log_softmax(logits.to(dtype), dim=1)
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    # where (not multiply) so an inf/nan at a void pixel cannot leak as 0 * inf
    nll = torch.where(valid, nll, torch.zeros((), dtype=dtype, device=nll.device))

    w = valid.to(dtype)
    if weights is not None:
        if not isinstance(weights, Tensor):
            raise ValueError("weights must be a torch tensor")
        if tuple(weights.shape) != tuple(labels.shape):
            raise ValueError(
                f"weights must have the shape of labels {tuple(labels.shape)}, "
                f"got {tuple(weights.shape)}"
            )
        if weights.is_complex() or weights.dtype == torch.bool:
            raise ValueError(f"weights must be real numbers, got {weights.dtype}")
        w = w * weights.to(dtype)
    if class_weights is not None:
        if not isinstance(class_weights, Tensor):
            raise ValueError("class_weights must be a torch tensor")
        if tuple(class_weights.shape) != (num_classes,):
            raise ValueError(
                f"class_weights must have shape ({num_classes},) for {num_classes} classes, "
                f"got {tuple(class_weights.shape)}"
            )
        if class_weights.is_complex() or class_weights.dtype == torch.bool:
            raise ValueError(f"class_weights must be real numbers, got {class_weights.dtype}")
        w = w * class_weights.to(device=w.device, dtype=dtype)[safe]
    # zero weight at void pixels even if a weight there is inf/nan
    w = torch.where(valid, w, torch.zeros((), dtype=dtype, device=w.device))

    total = (nll * w).sum()
    denom = w.sum()
    # denom == 0 -> total == 0 exactly; divide by 1 instead of 0 to stay NaN-free (also in grad)
    safe_denom = torch.where(denom > 0, denom, torch.ones((), dtype=dtype, device=denom.device))
    return total / safe_denom


class WeightedCrossEntropyLoss(torch.nn.Module):
    """Module form of :func:`weighted_cross_entropy`.

    Parameters
    ----------
    class_weights : Tensor, shape (C,), optional
        Registered as a buffer, so ``.to(device)`` moves it with the module.
    ignore_index : int or None, default 255
        Void label; pass the dataset's ``shards.void_label``.

    Examples
    --------
    >>> import torch
    >>> loss_fn = WeightedCrossEntropyLoss(class_weights=torch.tensor([1.0, 3.0]))
    >>> logits = torch.zeros(1, 2, 2)
    >>> labels = torch.tensor([[1, 255]])
    >>> weights = torch.tensor([[2.0, 5.0]])    # per-pixel weight map
    >>> round(loss_fn(logits, labels, weights).item(), 4)
    0.6931
    """

    class_weights: Tensor | None

    def __init__(
        self, class_weights: Tensor | None = None, ignore_index: SupportsIndex | None = 255
    ) -> None:
        super().__init__()
        self.ignore_index = _ignore_int(ignore_index)
        if class_weights is not None:
            if not isinstance(class_weights, Tensor) or class_weights.ndim != 1:
                raise ValueError("class_weights must be a 1D torch tensor")
            class_weights = class_weights.detach().clone()
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
        return weighted_cross_entropy(
            logits, labels, weights, self.class_weights, self.ignore_index
        )

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"


def forbid_classes(
    logits: Tensor, classes: SupportsIndex | Iterable[SupportsIndex], dim: int = 1
) -> Tensor:
    """Return ``logits`` with the channels ``classes`` set to ``-inf`` (new tensor).

    Use it before ``argmax``/``softmax`` at inference: a forbidden class is never
    the argmax (unless the other logits are NaN) and gets a softmax probability
    of exactly 0. It is the exact form of the hack of setting a class's output
    bias to -500, and leaves the model untouched. The result is differentiable;
    the forbidden entries get zero gradient. Integer classes are validated
    against the channel count; forbidding every class is an error.

    Parameters
    ----------
    logits : Tensor
        Floating-point scores with channels along ``dim``.
    classes : int or iterable of int
        Channel indices in ``[0, C)``.
    dim : int, default 1
        Channel dimension (1 for ``(N, C, *spatial)``).

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``logits``.

    Notes
    -----
    Why a zero class weight is not enough. In
    ``CrossEntropyLoss(weight=w)`` the weight ``w[c]`` only scales the loss
    of pixels whose *target* is ``c``: with ``w[void] = 0`` those pixels drop
    out (exactly like ``ignore_index``) and the void channel never gets a
    positive example. It does not forbid the channel. On every other pixel
    the loss ``-z_target + logsumexp(z)`` penalises probability on the void
    channel only the way it penalises any wrong class: a gradient ``p_void``
    on its logit that fades as ``p_void`` gets small. Training therefore only
    makes the void channel *unlikely* on pixels that look like the labelled
    training pixels. The void pixels themselves, often the ambiguous regions,
    give no gradient at all. So on such regions, or on new images, the void
    logit can still be the largest and ``argmax`` picks it. Masking the
    channel to ``-inf`` at inference makes it impossible. The cleanest fix is
    to have no void channel at all: ``C`` real classes and a void label such
    as 255 ``>= C``, ignored by :func:`weighted_cross_entropy`.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[[3.0], [1.0], [2.0]]])    # (N=1, C=3, W=1)
    >>> safe = forbid_classes(logits, [0])
    >>> safe.argmax(dim=1).tolist()
    [[2]]
    >>> safe.softmax(dim=1)[0, 0, 0].item()
    0.0
    """
    if not isinstance(logits, Tensor):
        raise ValueError("logits must be a torch tensor")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point to hold -inf, got {logits.dtype}")
    if not -logits.ndim <= dim < logits.ndim:
        raise ValueError(f"dim {dim} is out of range for logits of shape {tuple(logits.shape)}")
    d = dim % logits.ndim
    num_classes = logits.shape[d]
    if isinstance(classes, Tensor):
        classes = classes.reshape(-1).tolist()
    cls = _check_classes(classes, num_classes)
    mask_shape = [1] * logits.ndim
    mask_shape[d] = num_classes
    mask = torch.zeros(num_classes, dtype=torch.bool, device=logits.device)
    mask[cls] = True
    return logits.masked_fill(mask.reshape(mask_shape), float("-inf"))


# --------------------------------------------------------------------------- data

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


class ShardDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
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
    >>> import tempfile, pathlib
    >>> from maskprep import build_weights, make_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = build_weights(make_sample(tmp / "d", n_images=4, size=(16, 16)), tmp / "o.zarr",
    ...                   scheduler="sync")
    >>> ds = ShardDataset(tmp / "o.zarr", split="train")
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
        self._store = _StoreHandle(
            path, split=split, arrays=arrays, storage_options=storage_options
        )
        shards = self._store.get()
        self._len = len(shards)
        self.void_label = shards.void_label
        self.class_names = shards.class_names
        self.class_weights = torch.as_tensor(shards.class_weights, dtype=torch.float32)
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


class ShardIterableDataset(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
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
    >>> import tempfile, pathlib
    >>> from maskprep import build_weights, make_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = build_weights(make_sample(tmp / "d", n_images=5, size=(16, 16)), tmp / "o.zarr",
    ...                   scheduler="sync")
    >>> ds = ShardIterableDataset(tmp / "o.zarr", batch_size=2, seed=0)
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
        self._store = _StoreHandle(
            path, split=split, arrays=arrays, storage_options=storage_options
        )
        shards = self._store.get()
        self._n = len(shards)
        self.void_label = shards.void_label
        self.class_names = shards.class_names
        self.class_weights = torch.as_tensor(shards.class_weights, dtype=torch.float32)
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
        rank, world = self.rank, self.world_size
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        if world is None:
            world = dist.get_world_size() if initialised else 1
        if rank is None:
            rank = dist.get_rank() if initialised else 0
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, {world}), got {rank}")
        return rank, world

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
