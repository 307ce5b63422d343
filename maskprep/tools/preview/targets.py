"""Preview figure of a sample's training targets beyond the weight map."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from maskprep.tools.preview.data import PreviewData, PreviewSample
from maskprep.tools.preview.render import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["TARGET_PANEL_INCHES", "extra_targets", "render_targets"]

#: Width and height of one target panel.
TARGET_PANEL_INCHES = 3.6
_BUILT_IN = ("image", "labels", "instances", "weights")


def extra_targets(sample: PreviewSample) -> list[str]:
    """Names of the sample's stored targets that the main figure does not draw."""
    return [name for name in sample.arrays if name not in _BUILT_IN]


def _panels(name: str, array: np.ndarray, ndim: int) -> list[tuple[str, np.ndarray]]:
    """2D images to draw for one target: each channel of a short channel axis,
    the first and the mean of a long one (stardist rays)."""
    if array.ndim == ndim:
        return [(name, array)]
    c = array.shape[-1]
    if c <= 3:
        return [(f"{name}[..., {k}]", array[..., k]) for k in range(c)]
    return [(f"{name}[..., 0]", array[..., 0]), (f"{name}: mean of {c}", array.mean(axis=-1))]


def render_targets(sample: PreviewSample, data: PreviewData, *, dpi: float = 80) -> Figure:
    """One panel per target image (3D: the middle slice), each with its colour bar."""
    import matplotlib as mpl

    ndim = np.asarray(sample.arrays["labels"]).ndim
    panels: list[tuple[str, np.ndarray]] = []
    for name in extra_targets(sample):
        panels += _panels(name, np.asarray(sample.arrays[name]), ndim)
    if ndim == 3:
        z = np.asarray(sample.arrays["labels"]).shape[0] // 2
        panels = [(f"{title} (z={z})", img[z]) for title, img in panels]
    cols = min(3, max(1, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure((TARGET_PANEL_INCHES * cols, TARGET_PANEL_INCHES * rows), dpi)
    fig.suptitle(f"{sample.sample_id}: training targets", fontsize=11)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    cmap = mpl.colormaps["viridis"]
    for ax, (title, img) in zip(axes, panels, strict=False):
        im = ax.imshow(img, cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(title, fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    return fig
