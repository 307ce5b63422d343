"""Drawing the preview figures with matplotlib's Agg canvas (imported only when drawing)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskprep.tools.preview.data import PreviewData, PreviewSample

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "HISTOGRAM_FIGSIZE",
    "OUTLINE_COLOR",
    "SAMPLE_FIGSIZE",
    "VOID_COLOR",
    "render_class_histogram",
    "render_sample",
    "save_png",
]

SAMPLE_FIGSIZE = (10.0, 8.4)
"""Size in inches of a sample figure; pixels = size x dpi."""
HISTOGRAM_FIGSIZE = (9.0, 3.6)
"""Size in inches of ``class_histogram.png``."""
VOID_COLOR = (1.0, 0.0, 1.0)
"""Void pixels in the labels and weights panels (magenta, in no class palette)."""
OUTLINE_COLOR = (1.0, 1.0, 0.0)
"""Instance outlines over the image (yellow)."""

# Class colours: class 0 (usually background) dark grey, then tab10 without its
# pink and grey (too close to void magenta and to class 0).
_CLASS_COLORS = (
    (0.17, 0.17, 0.17),
    (1.0, 0.498, 0.055),
    (0.122, 0.467, 0.706),
    (0.173, 0.627, 0.173),
    (0.839, 0.153, 0.157),
    (0.58, 0.404, 0.741),
    (0.549, 0.337, 0.294),
    (0.737, 0.741, 0.133),
    (0.09, 0.745, 0.812),
)
_UNKNOWN_COLOR = (1.0, 1.0, 1.0)  # a label that is neither a class nor void


def new_figure(figsize: tuple[float, float], dpi: float) -> Figure:
    """A matplotlib figure with an Agg canvas (no pyplot, no display), constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _class_colors(n: int) -> np.ndarray:
    """RGB colour of each class: the palette, then distinct generated hues.

    Beyond the palette (semantic datasets have 19-80 classes), hues step by
    the golden ratio so neighbours differ, with alternating brightness, and
    skip the magenta and white reserved for void and unknown labels.
    """
    import colorsys

    colors = [tuple(c) for c in _CLASS_COLORS[:n]]
    hue = 0.0
    k = 0
    while len(colors) < n:
        hue = (hue + 0.618033988749895) % 1.0
        k += 1
        if abs(hue - 5 / 6) < 0.06:  # too close to the void colour
            continue
        value = (0.95, 0.7, 0.5)[k % 3]
        colors.append(colorsys.hsv_to_rgb(hue, 0.75, value))
    return np.asarray(colors, dtype=float)


def _display_image(image: np.ndarray, ndim: int) -> tuple[np.ndarray, str]:
    """An image as float grey (2D) or RGB in [0, 1], and a note on channels."""
    note = ""
    img = image
    if img.ndim == ndim + 1:
        c = img.shape[-1]
        if c in (3, 4):
            img = img[..., :3]
        else:
            note = f" (channel 0 of {c})" if c > 1 else ""
            img = img[..., 0]
    a = img.astype(np.float64)
    if img.dtype == np.uint8:
        lo, hi = 0.0, 255.0
    elif a.size:
        lo, hi = (float(v) for v in np.percentile(a, [0.5, 99.5]))
    else:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0), note


def _outlines(instances: np.ndarray, target_px: int = 384) -> np.ndarray:
    """Boolean instance boundaries, thickened for images larger than the panel."""
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    edges = np.asarray(find_boundaries(instances, mode="inner", background=0), dtype=bool)
    grow = math.ceil(max(instances.shape) / target_px) - 1
    if grow > 0:
        edges = ndimage.binary_dilation(edges, iterations=grow) & (instances != 0)
    return edges


def _count(n: int) -> str:
    """
    >>> _count(1), _count(2)
    ('1 instance', '2 instances')
    """
    return f"{n} instance" if n == 1 else f"{n} instances"


def _num(value: float) -> str:
    return f"{value:g}"


def render_sample(
    sample: PreviewSample,
    data: PreviewData,
    *,
    dpi: float = 80,
) -> tuple[Figure, dict[str, Axes]]:
    """Draw one sample: image, labels with void, instance outlines, weight map.

    Returns the figure and its axes by panel name (``image``, ``labels``,
    ``instances``, ``weights``); 3D samples show up to three evenly spaced
    slices along axis 0 and the maximum projection, tiled (white lines between
    the tiles) in the arrangement closest to square, so narrow volumes fill the
    panels too.
    """
    from matplotlib.patches import Patch

    arrays = sample.arrays
    labels = np.asarray(arrays["labels"])
    instances = np.asarray(arrays["instances"])
    # A store built without the weights target still previews (its panel is blank).
    weights = np.asarray(arrays.get("weights", np.zeros(np.shape(arrays["labels"]), np.float32)))
    image = np.asarray(arrays["image"])
    shape = labels.shape
    where = ""
    tiles: tuple[int, int, int, int] | None = None  # rows, cols, tile height, tile width
    if labels.ndim == 3:
        zs = sorted({round(f * (shape[0] - 1)) for f in (0.25, 0.5, 0.75)})
        labels, instances, weights, image, tiles = _volume_mosaic(
            labels, instances, weights, image, zs, data.void_label
        )
        where = f"; slices z={', '.join(map(str, zs))} of {shape[0]} and the max projection"
    void = labels == data.void_label

    fig = new_figure(SAMPLE_FIGSIZE, dpi)
    grid = fig.subplots(2, 2)
    axes = {
        "image": grid[0, 0],
        "labels": grid[0, 1],
        "instances": grid[1, 0],
        "weights": grid[1, 1],
    }
    for ax in axes.values():
        ax.set_xticks([])
        ax.set_yticks([])

    shape_text = "x".join(str(s) for s in shape)
    fig.suptitle(
        f"{sample.sample_id} ({sample.split}): {shape_text}, {_count(sample.n_instances)}, "
        f"void {100 * sample.void_pixels / max(1, math.prod(shape)):.1f}%{where}\n{data.note}",
        fontsize=11,
    )

    shown, channel_note = _display_image(image, labels.ndim)
    gray = "gray" if shown.ndim == 2 else None
    axes["image"].imshow(shown, cmap=gray, vmin=0, vmax=1, interpolation="nearest")
    axes["image"].set_title(f"image{channel_note}", fontsize=10)

    n_classes = len(data.class_names)
    lut = np.tile(np.asarray(_UNKNOWN_COLOR), (max(int(labels.max(initial=0)), n_classes) + 1, 1))
    lut[:n_classes] = _class_colors(n_classes)
    if data.void_label < lut.shape[0]:
        lut[data.void_label] = VOID_COLOR
    axes["labels"].imshow(lut[labels], interpolation="nearest")
    axes["labels"].set_title(
        f"labels (void = {data.void_label}, magenta:\nthe loss's ignore_index)", fontsize=10
    )
    handles = [
        Patch(facecolor=tuple(c), edgecolor="black", label=f"{i} {name}")
        for i, (name, c) in enumerate(zip(data.class_names, _class_colors(n_classes), strict=True))
    ]
    handles.append(Patch(facecolor=VOID_COLOR, edgecolor="black", label=f"{data.void_label} void"))
    axes["labels"].legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=9,
        ncols=1 if len(handles) <= 12 else 2,
    )

    base = shown if shown.ndim == 3 else np.repeat(shown[..., None], 3, axis=-1)
    edges = _outlines(instances)
    overlay = np.zeros((*edges.shape, 4))
    overlay[edges] = (*OUTLINE_COLOR, 1.0)
    axes["instances"].imshow(base, interpolation="nearest")
    axes["instances"].imshow(overlay, interpolation="nearest")
    n_here = int(np.count_nonzero(np.unique(instances)))
    here = f", {n_here} in these views" if where else ""
    axes["instances"].set_title(
        f"instance outlines (yellow):\n{_count(sample.n_instances)}{here}", fontsize=10
    )

    import matplotlib as mpl

    cmap = mpl.colormaps["viridis"].with_extremes(bad=VOID_COLOR)
    masked = np.ma.masked_array(weights, mask=void)
    im = axes["weights"].imshow(masked, cmap=cmap, interpolation="nearest")
    # An inset colour bar follows the image's drawn (aspect-fitted) box.
    cax = axes["weights"].inset_axes((1.04, 0.0, 0.05, 1.0))
    fig.colorbar(im, cax=cax, label="weight")
    axes["weights"].set_title(
        f"weights = class weight + border term\n(w0={_num(data.w0)}, sigma={_num(data.sigma)}; "
        "void = 0, magenta)",
        fontsize=10,
    )
    if tiles is not None:
        rows, cols, h, w = tiles
        for ax in axes.values():
            for r in range(1, rows):
                ax.axhline(r * h - 0.5, color="white", linewidth=1.5)
            for c in range(1, cols):
                ax.axvline(c * w - 0.5, color="white", linewidth=1.5)
    return fig, axes


def _grid(n: int, h: int, w: int) -> tuple[int, int]:
    """Rows and columns for ``n`` tiles of ``h`` x ``w`` whose mosaic is closest to square.

    Examples
    --------
    >>> _grid(4, 16, 256), _grid(4, 256, 16), _grid(4, 64, 64)
    ((4, 1), (1, 4), (2, 2))
    """
    options = [(r, -(-n // r)) for r in range(1, n + 1)]
    return min(options, key=lambda rc: (abs(math.log(rc[0] * h / (rc[1] * w))), rc[0] * rc[1]))


def _volume_mosaic(
    labels: np.ndarray,
    instances: np.ndarray,
    weights: np.ndarray,
    image: np.ndarray,
    zs: list[int],
    void_label: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The slices ``zs`` and the maximum projection of each array, tiled in one 2D mosaic.

    The projection of the labels is the largest non-void label along z (void
    where every slice is void); of the others, their maximum.
    """
    known = labels != void_label
    label_max = np.where(known.any(axis=0), np.where(known, labels, 0).max(axis=0), void_label)
    views = [
        [a[z] for z in zs] + [proj]
        for a, proj in (
            (labels, label_max.astype(labels.dtype)),
            (instances, instances.max(axis=0)),
            (weights, weights.max(axis=0)),
            (image, image.max(axis=0)),
        )
    ]
    h, w = labels.shape[1:]
    rows, cols = _grid(len(zs) + 1, h, w)

    def tile(parts: list[np.ndarray], fill: float) -> np.ndarray:
        blank = np.full_like(parts[0], fill)
        parts = parts + [blank] * (rows * cols - len(parts))
        return np.concatenate(
            [np.concatenate(parts[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0
        )

    mosaic = [tile(v, fill) for v, fill in zip(views, (void_label, 0, 0, 0), strict=True)]
    return mosaic[0], mosaic[1], mosaic[2], mosaic[3], (rows, cols, h, w)


def render_class_histogram(data: PreviewData, *, dpi: float = 80) -> Figure:
    """Bar charts of class pixel counts (with void) and class weights."""
    fig = new_figure(HISTOGRAM_FIGSIZE, dpi)
    ax_counts, ax_weights = fig.subplots(1, 2)
    n = len(data.class_names)
    colors = [tuple(c) for c in _class_colors(n)]
    names = [f"{i} {name}" for i, name in enumerate(data.class_names)]
    counts = [*data.class_counts, data.void_pixels_train]
    x = np.arange(n + 1)
    bars = ax_counts.bar(x, counts, color=[*colors, VOID_COLOR], edgecolor="black")
    bars[-1].set_hatch("//")
    ax_counts.set_xticks(x, [*names, f"{data.void_label} void\n(ignored)"], fontsize=9)
    positive = [c for c in counts if c > 0]
    if positive and max(positive) / min(positive) > 50:
        ax_counts.set_yscale("log")
    labeled = sum(data.class_counts)
    for bar, c in zip(bars[:-1], data.class_counts, strict=True):
        frac = c / labeled if labeled else 0.0
        ax_counts.annotate(
            f"{c:,}\n{100 * frac:.1f}%",
            (bar.get_x() + bar.get_width() / 2, max(c, 1)),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax_counts.annotate(
        f"{data.void_pixels_train:,}",
        (bars[-1].get_x() + bars[-1].get_width() / 2, max(data.void_pixels_train, 1)),
        ha="center",
        va="bottom",
        fontsize=8,
    )
    ax_counts.margins(y=0.25)
    log = " (log scale)" if ax_counts.get_yscale() == "log" else ""
    ax_counts.set_ylabel(f"pixels (train split){log}")
    ax_counts.set_title("class pixel counts (train; % of labeled)", fontsize=10)

    wbars = ax_weights.bar(np.arange(n), data.class_weights, color=colors, edgecolor="black")
    ax_weights.set_xticks(np.arange(n), names, fontsize=9)
    for bar, w in zip(wbars, data.class_weights, strict=True):
        ax_weights.annotate(
            f"{w:.3g}",
            (bar.get_x() + bar.get_width() / 2, w),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax_weights.margins(y=0.15)
    ax_weights.set_ylabel("class weight")
    ax_weights.set_title(f"class weights ({data.scheme}; void = 0)", fontsize=10)
    fig.suptitle(data.note, fontsize=10)
    return fig


def save_png(fig: Figure, target: Path, *, palette: bool) -> None:
    """Save as an RGB PNG (no alpha), or a 256-colour palette PNG about half the size."""
    from PIL import Image

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
    image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
    if palette:
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(target, format="PNG", optimize=True)
