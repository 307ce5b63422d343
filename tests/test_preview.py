from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.axes import Axes
from PIL import Image
from scipy import ndimage
from skimage.segmentation import find_boundaries

from maskprep import BuildConfig, StoreError, build_weights, make_sample, open_shards
from maskprep.cli import main
from maskprep.tools.preview import (
    HISTOGRAM_FIGSIZE,
    OUTLINE_COLOR,
    SAMPLE_FIGSIZE,
    VOID_COLOR,
    PreviewData,
    PreviewSample,
    load_dataset_preview,
    load_store_preview,
    preview,
    render_sample,
)

DPI = 80
VOID_RGB = np.asarray(VOID_COLOR) * 255
OUTLINE_RGB = np.asarray(OUTLINE_COLOR) * 255


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample(tmp_path_factory.mktemp("preview") / "nuclei", n_images=6, size=(64, 64))


@pytest.fixture(scope="module")
def store(dataset: Path) -> Path:
    out = dataset.parent / "nuclei.zarr"
    build_weights(dataset, out, scheduler="sync")
    return out


def _size(figsize: tuple[float, float]) -> tuple[int, int]:
    return round(figsize[0] * DPI), round(figsize[1] * DPI)


def _panel_colors(png: np.ndarray, ax: Axes, shape: tuple[int, ...]) -> np.ndarray:
    """RGB of the PNG at the centre of every data pixel of one panel, shape (*shape, 3)."""
    box = ax.get_window_extent()
    h, w = shape
    cols = np.floor(box.x0 + (np.arange(w) + 0.5) / w * box.width).astype(int)
    rows = np.floor(png.shape[0] - box.y1 + (np.arange(h) + 0.5) / h * box.height).astype(int)
    return png[np.ix_(rows, cols)].astype(float)


def _is(colors: np.ndarray, rgb: np.ndarray, tol: float = 3.0) -> np.ndarray:
    return np.abs(colors - rgb).max(axis=-1) <= tol


def _check_sample_png(path: Path, sample: PreviewSample, data: PreviewData) -> None:
    png = np.asarray(Image.open(path).convert("RGB"))
    assert (png.shape[1], png.shape[0]) == _size(SAMPLE_FIGSIZE)
    fig, axes = render_sample(sample, data, dpi=DPI)  # same drawing, for the panel positions
    fig.canvas.draw()
    labels = np.asarray(sample.arrays["labels"])
    void = labels == data.void_label

    # Labels: magenta exactly where void is (away from edges, where colours blend).
    colors = _panel_colors(png, axes["labels"], labels.shape)
    magenta = _is(colors, VOID_RGB)
    inner_void = ndimage.binary_erosion(void)
    inner_rest = ndimage.binary_erosion(~void)
    if void.any():
        assert magenta[inner_void].all()
    assert not magenta[inner_rest].any()
    assert not _is(colors[inner_rest], np.asarray([255.0, 255.0, 255.0])).any()

    # Outlines: yellow on instance boundaries, not far from them.
    instances = np.asarray(sample.arrays["instances"])
    edges = find_boundaries(instances, mode="inner", background=0)
    colors = _panel_colors(png, axes["instances"], instances.shape)
    yellow = _is(colors, OUTLINE_RGB)
    assert edges.any() == (sample.n_instances > 0)
    if edges.any():
        assert yellow[edges].mean() > 0.95
    assert not yellow[~ndimage.binary_dilation(edges, iterations=2)].any()

    # Weights: every pixel in its viridis colour (not constant), void in magenta.
    weights = np.asarray(sample.arrays["weights"], dtype=float)
    colors = _panel_colors(png, axes["weights"], labels.shape)
    if void.any():
        assert _is(colors[inner_void], VOID_RGB).all()
    lo, hi = weights[~void].min(), weights[~void].max()
    assert hi > lo
    expected = mpl.colormaps["viridis"]((weights - lo) / (hi - lo))[..., :3] * 255
    assert _is(colors[inner_rest], expected[inner_rest], tol=6).all()
    assert len(np.unique(colors[inner_rest], axis=0)) >= 2


def test_store_preview_pngs_look_right(store: Path, tmp_path: Path) -> None:
    paths = preview(store, tmp_path / "png", samples=2, dpi=DPI)
    # Samples with void first (nuclei_001 and nuclei_004 have unlabeled/ masks).
    assert [p.name for p in paths] == ["nuclei_001.png", "nuclei_004.png", "class_histogram.png"]
    data = load_store_preview(store, samples=2)
    assert [s.sample_id for s in data.samples] == ["nuclei_001", "nuclei_004"]
    for path, sample in zip(paths, data.samples, strict=False):
        assert sample.void_pixels > 0
        _check_sample_png(path, sample, data)
    hist = np.asarray(Image.open(paths[-1]).convert("RGB"))
    assert (hist.shape[1], hist.shape[0]) == _size(HISTOGRAM_FIGSIZE)
    assert _is(hist.astype(float), VOID_RGB).sum() > 100  # the void bar


def test_samples_ranked_by_void_then_instances(store: Path) -> None:
    meta = open_shards(store).metadata
    data = load_store_preview(store, samples=4)
    chosen = [meta["sample_ids"].index(s.sample_id) for s in data.samples]
    assert chosen == sorted(chosen)  # written in dataset order
    no_void = [i for i in range(6) if meta["void_pixels"][i] == 0]
    by_instances = sorted(no_void, key=lambda i: (-meta["instance_counts"][i], i))
    assert set(chosen) == {1, 4, *by_instances[:2]}
    assert [s.n_instances for s in data.samples] == [meta["instance_counts"][i] for i in chosen]


def test_dataset_preview_equals_the_build(dataset: Path, store: Path, tmp_path: Path) -> None:
    data = load_dataset_preview(dataset, samples=3)
    shards = open_shards(store)
    # All 6 samples are scanned, so the class weights are the build's.
    assert data.class_weights == tuple(shards.class_weights)
    assert data.class_counts == tuple(shards.class_counts)
    assert "before build" in data.note and "all train samples" in data.note
    for s in data.samples:
        built = shards[shards.sample_ids.index(s.sample_id)]
        for name in ("image", "labels", "instances", "weights"):
            np.testing.assert_array_equal(s.arrays[name], built[name], err_msg=name)
    paths = preview(dataset, tmp_path / "png", samples=3, dpi=DPI)
    assert len(paths) == 4
    _check_sample_png(paths[0], data.samples[0], data)


def test_dataset_preview_options(dataset: Path, tmp_path: Path) -> None:
    config = BuildConfig(w0=3.0, sigma=2.0, void_label=200)
    data = load_dataset_preview(dataset, ids=["nuclei_001"], config=config, scan_limit=3)
    assert "3 of 6" in data.note
    assert (data.w0, data.sigma, data.void_label) == (3.0, 2.0, 200)
    assert (np.asarray(data.samples[0].arrays["labels"]) == 200).any()
    paths = preview(dataset, tmp_path, ids=["nuclei_002"], config=config)
    assert [p.name for p in paths] == ["nuclei_002.png", "class_histogram.png"]


def test_errors(store: Path, dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sample id"):
        preview(store, tmp_path, ids=["nope"])
    with pytest.raises(ValueError, match="build options apply only to a dataset"):
        preview(store, tmp_path, config=BuildConfig())
    with pytest.raises(StoreError, match="no such store or dataset"):
        preview(tmp_path / "missing", tmp_path)
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    doc = json.loads((broken / "zarr.json").read_text(encoding="utf-8"))
    doc["attributes"]["maskprep"]["complete"] = False
    (broken / "zarr.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StoreError, match="incomplete"):
        preview(broken, tmp_path / "out")


def _fake(sample: PreviewSample) -> PreviewData:
    return PreviewData(
        source="x",
        note="synthetic",
        class_names=("background", "object"),
        void_label=255,
        class_counts=(10, 5),
        class_weights=(0.75, 1.5),
        scheme="balanced",
        void_pixels_train=3,
        w0=10.0,
        sigma=5.0,
        samples=(sample,),
    )


@pytest.mark.parametrize("kind", ["3d", "rgb", "two-channel", "float"])
def test_render_other_images(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shape: tuple[int, ...] = (5, 24, 24) if kind == "3d" else (24, 24)
    instances = np.zeros(shape, dtype=np.int32)
    instances[..., 4:10, 4:10] = 3
    instances[..., 10:16, 4:10] = 9
    labels = (instances > 0).astype(np.uint8)
    labels[..., 20:, 20:] = 255
    weights = rng.uniform(0.5, 5.0, size=shape).astype(np.float32)
    image: np.ndarray
    if kind == "rgb":
        image = rng.integers(0, 255, size=(*shape, 3), dtype=np.uint8)
    elif kind == "two-channel":
        image = rng.integers(0, 4000, size=(*shape, 2), dtype=np.uint16)
    elif kind == "float":
        image = rng.normal(size=shape)
    else:
        image = rng.integers(0, 255, size=shape, dtype=np.uint8)
    arrays: dict[str, np.ndarray] = {
        "image": image,
        "labels": labels,
        "instances": instances,
        "weights": weights,
    }
    sample = PreviewSample("s", "train", arrays, 2, int((labels == 255).sum()))
    fig, axes = render_sample(sample, _fake(sample), dpi=40)
    fig.canvas.draw()
    title = fig.get_suptitle()
    assert ("slices z=1, 2, 3 of 5 and the max projection" in title) == (kind == "3d")
    assert ("channel 0 of 2" in axes["image"].get_title()) == (kind == "two-channel")


def test_3d_preview_tiles_slices_and_a_projection_close_to_square() -> None:
    """A narrow volume (slices 6 x 40) is tiled in a column, not one thin slice in a big panel."""
    shape = (9, 6, 40)
    instances = np.zeros(shape, dtype=np.int32)
    instances[0, 1:3, 2:8] = 1  # only in slice 0: seen in the projection alone
    instances[4, 2:5, 20:30] = 2
    labels = (instances > 0).astype(np.uint8)
    arrays = {
        "image": (instances * 100).astype(np.uint8),
        "labels": labels,
        "instances": instances,
        "weights": np.ones(shape, np.float32),
    }
    sample = PreviewSample("v", "train", arrays, 2, 0)
    fig, axes = render_sample(sample, _fake(sample), dpi=40)
    assert "slices z=2, 4, 6 of 9 and the max projection" in fig.get_suptitle()
    shown = axes["instances"].get_images()[0].get_array()
    assert shown.shape[:2] == (4 * 6, 40)  # 3 slices + projection, stacked: 24 x 40
    labels_rgb = axes["labels"].get_images()[0].get_array()
    projection = labels_rgb[18:24]
    assert not np.array_equal(projection[1:3, 2:8], projection[0:2, 30:36])  # instance 1 shows


def test_palette_pngs_are_smaller(store: Path, tmp_path: Path) -> None:
    full = preview(store, tmp_path / "full", samples=1)
    small = preview(store, tmp_path / "small", samples=1, palette=True)
    with Image.open(small[0]) as im:
        assert im.mode == "P"
        assert im.size == _size(SAMPLE_FIGSIZE)
    assert small[0].stat().st_size < full[0].stat().st_size


def test_cli(store: Path, dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["preview", str(store), "-o", str(tmp_path / "a"), "--samples", "1"])
    assert r.exit_code == 0, r.output
    assert "nuclei_001.png" in r.output and "class_histogram.png" in r.output
    assert (tmp_path / "a" / "nuclei_001.png").is_file()
    r = runner.invoke(
        main,
        [
            "preview",
            str(dataset),
            "-o",
            str(tmp_path / "b"),
            "-n",
            "1",
            "--w0",
            "5",
            "--sigma",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "class_histogram.png").is_file()
    # Build options with a store: usage error.
    r = runner.invoke(main, ["preview", str(store), "-o", str(tmp_path / "c"), "--w0", "5"])
    assert r.exit_code == 2
    assert "dataset directory" in r.output
    r = runner.invoke(main, ["preview", str(tmp_path / "nothing"), "-o", str(tmp_path / "d")])
    assert r.exit_code == 1
    assert "no such store or dataset directory" in r.output
