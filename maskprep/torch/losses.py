"""Void-aware weighted cross entropy, and forbidding class channels at inference."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import SupportsIndex

import torch
from torch import Tensor

from maskprep.metrics import check_classes


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
    cls = check_classes(classes, num_classes)
    mask_shape = [1] * logits.ndim
    mask_shape[d] = num_classes
    mask = torch.zeros(num_classes, dtype=torch.bool, device=logits.device)
    mask[cls] = True
    return logits.masked_fill(mask.reshape(mask_shape), float("-inf"))
