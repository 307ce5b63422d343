"""Chunked inputs read region by region: TIFF, zarr, OME-Zarr and HDF5 (issue 12 item 4).

The invariant, for every format: ``read_region(src, R)`` equals
``read_sample(src)`` cropped to ``R``, field by field, and ``probe_sample``
agrees with ``read_sample``'s shapes and dtype. For the chunked formats a
small region reads only part of the file (chunk reads counted, bytes read
counted, or memory traced; never timed).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskprep import BuildConfig, DataError, build_weights, discover, open_shards, read_sample
from maskprep.ingest import (
    LoadedSample,
    SampleGeometry,
    SourceSpec,
    available_layouts,
    crop_sample,
    detect_layout,
    is_chunked,
    probe_sample,
    read_region,
)
from maskprep.ingest import arrays as arrays_module
from maskprep.tools.volume_data import VOLUME_FORMATS, make_volume_sample, write_volume

h5py = pytest.importorskip("h5py")
pytest.importorskip("ome_zarr")

FORMATS = sorted(VOLUME_FORMATS)


def assert_same(got: LoadedSample, want: LoadedSample) -> None:
    """Field by field equality, dtypes included."""
    assert got.image_shape == want.image_shape
    assert got.image_dtype == want.image_dtype
    for name in ("image", "instances", "void", "labels"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)


def check_invariant(src: Any, region: tuple[slice, ...], **kw: Any) -> None:
    whole = read_sample(src, **kw)
    for image in (True, False):
        want = crop_sample(read_sample(src, image=image, **kw), region)
        assert_same(read_region(src, region, image=image, **kw), want)
    g = probe_sample(src, **kw)
    assert g.shape == whole.instances.shape
    assert g.image_shape == whole.image_shape
    assert g.image_dtype == whole.image_dtype


def _regions(shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """Whole, each corner pixel, the far border strip, an interior box."""
    out = [tuple(slice(0, n) for n in shape)]
    out.append(tuple(slice(0, 1) for _ in shape))
    out.append(tuple(slice(n - 1, n) for n in shape))
    out.append(tuple(slice(max(0, n - 3), n) for n in shape))
    out.append(tuple(slice(n // 3, max(n // 3 + 1, 2 * n // 3)) for n in shape))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("shape", "channels"), [((5, 37, 29), None), ((5, 37, 29), 3), ((41, 33), None), ((41, 33), 2)]
)
def test_region_equals_cropped_whole(
    tmp_path: Path, fmt: str, shape: tuple[int, ...], channels: int | None
) -> None:
    chunks = (2, 16, 16)[-len(shape) :]
    d = make_volume_sample(
        tmp_path / "d", format=fmt, shape=shape, n_samples=1, chunks=chunks, channels=channels
    )
    ds = discover(d)
    assert ds.layout == VOLUME_FORMATS[fmt]
    src = ds.samples[0]
    assert is_chunked(src)
    for region in _regions(shape):
        check_invariant(src, region)
    # unlabeled_value applies to regions as to whole samples
    some_id = int(read_sample(src).instances.max())
    check_invariant(src, _regions(shape)[-1], unlabeled_value=some_id)


_ids = st.sampled_from(
    [
        lambda rng, s: np.zeros(s, np.uint16),  # no instance
        lambda rng, s: np.full(s, 9, np.uint16),  # one instance everywhere
        lambda rng, s: rng.choice(np.array([0, 3, 70000], np.uint32), size=s),  # two, sparse ids
        lambda rng, s: rng.integers(0, 6, size=s).astype(np.int32),  # touching, many
    ]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    fmt=st.sampled_from(FORMATS),
    shape=st.one_of(
        st.tuples(st.integers(1, 24), st.integers(1, 24)),
        st.tuples(st.integers(1, 5), st.integers(1, 12), st.integers(1, 12)),
    ),
    chunk=st.integers(1, 9),
    channels=st.sampled_from([None, 3]),
    make_ids=_ids,
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_region_equals_cropped_whole_hypothesis(
    fmt: str,
    shape: tuple[int, ...],
    chunk: int,
    channels: int | None,
    make_ids: Any,
    seed: int,
    data: st.DataObject,
) -> None:
    rng = np.random.default_rng(seed)
    ids = make_ids(rng, shape)
    image = rng.integers(0, 60000, size=shape + ((channels,) if channels else ()))
    image = image.astype(np.uint16)
    region = tuple(
        slice(a, data.draw(st.integers(a + 1, n)))
        for n in shape
        for a in [data.draw(st.integers(0, n - 1))]
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_volume(tmp, "s", image, ids, format=fmt, chunks=(chunk,) * len(shape))
        src = discover(tmp).samples[0]
        check_invariant(src, region)


def test_non_chunked_samples_read_regions_whole(tmp_path: Path) -> None:
    from maskprep import make_sample

    d = make_sample(tmp_path / "png", n_images=3, size=(24, 32))
    for src in discover(d).samples:
        assert not is_chunked(src)
        for region in _regions((24, 32)):
            check_invariant(src, region)
    g = probe_sample(discover(d).samples[0])
    assert g.chunks is None and g.spacing is None


def test_3d_tiff_stacks_of_make_sample_are_chunked(tmp_path: Path) -> None:
    from maskprep import make_sample

    d = make_sample(tmp_path / "tif", n_images=3, size=(8, 20, 24))
    for src in discover(d).samples:
        assert is_chunked(src)  # images, masks and unlabeled/ are all TIFF
        for region in _regions((8, 20, 24)):
            check_invariant(src, region)


def test_bad_regions_name_the_file(tmp_path: Path) -> None:
    d = make_volume_sample(tmp_path / "d", format="zarr", shape=(4, 16, 16), n_samples=1)
    src = discover(d).samples[0]
    bad: list[Any] = [
        (slice(0, 2), slice(0, 2)),  # two axes of three
        (slice(0, 5), slice(0, 2), slice(0, 2)),  # past the end
        (slice(2, 2), slice(0, 2), slice(0, 2)),  # empty
        (slice(0, 2, 2), slice(0, 2), slice(0, 2)),  # step
        (slice(-1, 2), slice(0, 2), slice(0, 2)),  # negative
        [slice(0, 2)] * 3,  # not a tuple
    ]
    for region in bad:
        with pytest.raises(ValueError, match=str(src.image)):
            read_region(src, region)
    part = read_region(src, (slice(1, None), slice(None), slice(None, 3)))
    assert part.instances.shape == (3, 16, 3)


def test_geometry_round_trips_and_reports_chunks_and_spacing(tmp_path: Path) -> None:
    d = make_volume_sample(
        tmp_path / "h", format="hdf5", shape=(6, 32, 32), n_samples=1, chunks=(2, 8, 16)
    )
    g = probe_sample(discover(d).samples[0])
    assert g == SampleGeometry((6, 32, 32), (6, 32, 32), np.dtype("uint8"), (2, 8, 16),
                               (40.0, 4.0, 4.0))
    assert SampleGeometry.from_dict(json.loads(json.dumps(g.to_dict()))) == g


# --------------------------------------------------------------------------- #
# a region reads only part of the data
# --------------------------------------------------------------------------- #


def _counting_zarr(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every chunk key zarr reads through maskprep's store."""
    from zarr.storage import WrapperStore

    keys: list[str] = []

    class Counting(WrapperStore):  # type: ignore[type-arg]
        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if not key.endswith((".json", ".zarray", ".zattrs", ".zgroup")):
                keys.append(key)
            return await self._store.get(key, prototype, byte_range)

    real = arrays_module.zarr_store
    monkeypatch.setattr(arrays_module, "zarr_store", lambda path: Counting(real(path)))
    return keys


@pytest.mark.parametrize("fmt", ["zarr", "zarr2", "ome-zarr", "ome-zarr-0.4"])
def test_zarr_region_reads_only_the_chunks_it_touches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    d = make_volume_sample(
        tmp_path / "d", format=fmt, shape=(8, 64, 64), n_samples=1, chunks=(4, 16, 16)
    )
    src = discover(d).samples[0]
    keys = _counting_zarr(monkeypatch)
    read_sample(src)
    whole = len(keys)
    assert whole == 2 * (2 * 4 * 4)  # image + labels, every chunk
    keys.clear()
    # one voxel inside one chunk: one chunk of the image, one of the labels
    read_region(src, (slice(5, 6), slice(20, 21), slice(40, 41)))
    assert len(keys) == 2
    keys.clear()
    # a region across a chunk corner touches 2 x 2 x 2 chunks per array
    read_region(src, (slice(3, 5), slice(15, 17), slice(31, 33)))
    assert len(keys) == 2 * 8
    keys.clear()
    probe_sample(src)
    assert keys == []  # metadata only


class _CountingFile(io.FileIO):
    """A file that counts the bytes read from it."""

    total = 0

    def readinto(self, b: Any) -> int | None:
        n = super().readinto(b)
        _CountingFile.total += n or 0
        return n

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        _CountingFile.total += len(data)
        return data


def test_hdf5_region_reads_a_fraction_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = make_volume_sample(
        tmp_path / "h", format="hdf5", shape=(16, 128, 128), n_samples=1, chunks=(4, 32, 32)
    )
    src = discover(d).samples[0]
    size = src.image.stat().st_size
    class Counted(h5py.File):  # type: ignore[misc]
        """h5py reading through a counting Python file object (closed with the file)."""

        def __init__(self, path: Any, mode: str = "r", **kw: Any) -> None:
            self._counted = _CountingFile(path, "r")
            super().__init__(self._counted, mode, **kw)

        def close(self) -> None:
            super().close()
            self._counted.close()

    monkeypatch.setattr(h5py, "File", Counted)
    _CountingFile.total = 0
    whole = read_sample(src)
    assert _CountingFile.total >= size * 0.9
    _CountingFile.total = 0
    part = read_region(src, (slice(4, 8), slice(32, 64), slice(96, 128)))
    assert _CountingFile.total < size / 4  # 2 of 128 chunks per dataset, plus metadata
    assert_same(part, crop_sample(whole, (slice(4, 8), slice(32, 64), slice(96, 128))))


@pytest.mark.parametrize("fmt", ["tiff", "tiff-tiled"])
def test_tiff_region_does_not_allocate_the_whole(tmp_path: Path, fmt: str) -> None:
    shape = (16, 256, 256)
    # 64 x 64 tiles: tifffile's per-tile metadata (offsets, byte counts) is then
    # small next to the pixels; it is what a region read of a tiled TIFF allocates most.
    d = make_volume_sample(
        tmp_path / "t", format=fmt, shape=shape, n_samples=1, chunks=(1, 64, 64)
    )
    src = discover(d).samples[0]
    read_region(src, (slice(0, 1), slice(0, 1), slice(0, 1)))  # warm up imports and caches
    whole_bytes = int(np.prod(shape)) * (1 + 4 + 1)  # uint8 image, int32 ids, bool void
    tracemalloc.start()
    try:
        part = read_region(src, (slice(7, 9), slice(100, 140), slice(10, 50)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert part.instances.shape == (2, 40, 40)
    assert peak < whole_bytes / 20
    tracemalloc.start()
    try:
        read_sample(src)
        _, whole_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert whole_peak > whole_bytes / 2  # the measure sees whole reads


def test_max_pixels_bounds_one_region_read(tmp_path: Path) -> None:
    d = make_volume_sample(
        tmp_path / "z", format="zarr", shape=(8, 64, 64), n_samples=1, chunks=(4, 16, 16)
    )
    src = discover(d).samples[0]
    limit = 4 * 16 * 16 * 2  # two chunks
    with pytest.raises(DataError, match="more than the limit"):
        read_sample(src, max_pixels=limit)
    probe_sample(src, max_pixels=limit)  # the volume is not decoded whole
    read_region(src, (slice(0, 4), slice(0, 32), slice(0, 16)), max_pixels=limit)
    with pytest.raises(DataError, match=r"region has 4,096 pixel values.*limit of 2,048"):
        # 2 chunks' worth asked for, 4 touched: the limit counts what is decoded
        read_region(src, (slice(0, 4), slice(0, 32), slice(8, 24)), max_pixels=limit)


# --------------------------------------------------------------------------- #
# HDF5 (CREMI) and OME-Zarr specifics
# --------------------------------------------------------------------------- #


def _cremi(path: Path, ids: np.ndarray, **datasets: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["volumes/raw"] = np.arange(ids.size, dtype=np.uint8).reshape(ids.shape)
        f.create_dataset("volumes/labels/neuron_ids", data=ids, chunks=True)
        f["volumes/labels/neuron_ids"].attrs["resolution"] = (40.0, 4.0, 4.0)
        for key, value in datasets.items():
            f[key.replace("__", "/")] = value


def test_cremi_no_label_values_are_void_and_big_ids_an_error(tmp_path: Path) -> None:
    top = np.uint64(2**64 - 1)
    ids = np.array([[[0, 5, top], [top - 1, top - 2, 2**31 - 1], [7, top - 3, 0]]], np.uint64)
    # top - 3 (= 2**64 - 4) does not fit int32 and is no CREMI marker
    _cremi(tmp_path / "a" / "s.hdf", ids)
    src = discover(tmp_path / "a").samples[0]
    with pytest.raises(DataError, match=r"s\.hdf: labels 'volumes/labels/neuron_ids' have "
                       r"instance id 18446744073709551612, which does not fit in int32"):
        read_sample(src)
    # a region without it reads
    part = read_region(src, (slice(0, 1), slice(0, 2), slice(0, 3)))
    assert part.instances.tolist() == [[[0, 5, 0], [0, 0, 2**31 - 1]]]
    assert part.void.tolist() == [[[False, False, True], [True, True, False]]]
    assert probe_sample(src).spacing == (40.0, 4.0, 4.0)


def test_hdf5_keys_from_a_source_and_missing_keys(tmp_path: Path) -> None:
    ids = np.zeros((2, 4, 4), np.uint32)
    ids[:, 1:3, 1:3] = 4
    _cremi(tmp_path / "a" / "x.h5", ids, other__img=np.ones((2, 4, 4, 3), np.float32),
           other__ids=ids * 2)
    src = discover(tmp_path / "a").samples[0]
    spec = SourceSpec("hdf5", "{stem}.h5", instances="layout", image_key="other/img",
                      labels_key="other/ids")
    s = read_sample(src, source=spec)
    assert s.image.shape == (2, 4, 4, 3) and int(s.instances.max()) == 8
    check_invariant(src, (slice(1, 2), slice(0, 2), slice(1, 4)), source=spec)
    assert discover(tmp_path / "a", source=spec).samples == (src,)
    wrong = SourceSpec("hdf5", "{stem}.h5", instances="layout", labels_key="volumes/nope")
    with pytest.raises(DataError, match=r"x\.h5: has no dataset 'volumes/nope' for the labels; "
                       "it has other/ids, other/img, volumes/labels/neuron_ids, volumes/raw"):
        read_region(src, (slice(0, 1),) * 3, source=wrong)


def test_hdf5_shape_mismatch_and_float_ids_are_clear(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "bad.hdf", "w") as f:
        f["volumes/raw"] = np.zeros((3, 8, 8), np.uint8)
        f["volumes/labels/neuron_ids"] = np.zeros((2, 8, 8), np.float32)
        f["volumes/labels/neuron_ids"].attrs["offset"] = (40.0, 0.0, 0.0)
    src = discover(tmp_path).samples[0]
    with pytest.raises(DataError, match="floating-point"):
        probe_sample(src)
    with h5py.File(tmp_path / "bad.hdf", "a") as f:
        del f["volumes/labels/neuron_ids"]
        f["volumes/labels/neuron_ids"] = np.zeros((2, 8, 8), np.uint64)
        f["volumes/labels/neuron_ids"].attrs["offset"] = (40.0, 0.0, 0.0)
    for read in (read_sample, probe_sample):
        with pytest.raises(DataError, match=r"bad\.hdf: image 'volumes/raw' has shape "
                           r"\(3, 8, 8\), labels .* have shape \(2, 8, 8\).*offset"):
            read(src)


@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore:Dimension .* too small"
)
def test_ome_zarr_label_choice_axes_and_problems(tmp_path: Path) -> None:
    import zarr
    from ome_zarr.writer import write_image, write_labels

    root = tmp_path / "ome"
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (1, 1, 6, 20, 24), dtype=np.uint8)  # t, c (one), z, y, x
    a = rng.integers(0, 4, (6, 20, 24)).astype(np.uint16)
    g = zarr.open_group(root / "s1.ome.zarr", mode="w")
    write_image(img, g, axes="tczyx", scale_factors=())
    write_labels(a, g, name="nuclei", axes="zyx", scale_factors=())
    write_labels(a * 2, g, name="cells", axes="zyx", scale_factors=())
    g2 = zarr.open_group(root / "s2.ome.zarr", mode="w")
    write_image(img, g2, axes="tczyx", scale_factors=())  # no labels
    zarr.open_group(root / "store.zarr", mode="w")  # a plain group is not a sample
    assert detect_layout(root) == "ome-zarr"
    with pytest.raises(DataError, match=r"s2\.ome\.zarr: has no label image"):
        discover(root)
    ds = discover(root, skip_bad=True)
    assert [s.sample_id for s in ds.samples] == ["s1"] and ds.problems[0][0] == "s2"
    src = ds.samples[0]
    s = read_sample(src)
    assert s.image.shape == (6, 20, 24)  # t and a single channel dropped
    np.testing.assert_array_equal(s.instances, a)
    spec = SourceSpec("ome-zarr", "{stem}.ome.zarr", instances="layout", labels_key="cells")
    chosen = discover(root, source=spec, skip_bad=True).samples[0]
    np.testing.assert_array_equal(read_sample(chosen, source=spec).instances, a * 2)
    check_invariant(chosen, (slice(2, 5), slice(0, 20), slice(23, 24)), source=spec)
    # several time points are refused, naming the image
    g3 = zarr.open_group(root / "s3.ome.zarr", mode="w")
    write_image(np.zeros((2, 1, 4, 8, 8), np.uint8), g3, axes="tczyx", scale_factors=())
    write_labels(np.zeros((4, 8, 8), np.uint8), g3, name="x", axes="zyx", scale_factors=())
    bad = next(s for s in discover(root, skip_bad=True).samples if s.sample_id == "s3")
    with pytest.raises(DataError, match=r"s3\.ome\.zarr: image has 2 time points"):
        probe_sample(bad)


def test_layouts_are_registered_and_detected(tmp_path: Path) -> None:
    assert {"hdf5", "ome-zarr", "instances"} <= set(available_layouts())
    for fmt in FORMATS:
        d = make_volume_sample(tmp_path / fmt, format=fmt, shape=(4, 8, 8), n_samples=1)
        assert detect_layout(d) == VOLUME_FORMATS[fmt]


def test_instances_layout_finds_zarr_arrays_and_refuses_look_alikes(tmp_path: Path) -> None:
    d = make_volume_sample(tmp_path / "z", format="zarr", shape=(8, 8), n_samples=2)
    (d / "valid.txt").write_text("vol_001.zarr\n")
    ds = discover(d)
    assert [(s.sample_id, s.split) for s in ds.samples] == [
        ("vol_000", "train"), ("vol_001", "valid")
    ]
    (d / "masks" / "vol_002.zarr").write_text("not a directory")
    with pytest.raises(DataError, match=r"vol_002\.zarr: is a file, not a zarr array directory"):
        discover(d)
    (d / "masks" / "vol_002.zarr").unlink()
    (d / "masks" / "vol_002.zarr").mkdir()
    (d / "images" / "vol_002.zarr").mkdir()
    src = next(s for s in discover(d).samples if s.sample_id == "vol_002")
    with pytest.raises(DataError, match=r"vol_002\.zarr: image is not a zarr array"):
        read_sample(src)


def test_tiff_mask_with_channels_is_refused_from_its_header(tmp_path: Path) -> None:
    d = tmp_path / "t"
    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    tifffile.imwrite(d / "images" / "a.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(d / "masks" / "a.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    src = discover(d).samples[0]
    for read in (read_sample, probe_sample):
        with pytest.raises(DataError, match="RGB"):
            read(src)


def test_cremi_recipe_builds_a_store_with_spacing(tmp_path: Path) -> None:
    d = make_volume_sample(tmp_path / "cremi", format="hdf5", shape=(4, 24, 24), n_samples=2)
    config = BuildConfig.from_recipe("cremi", d)
    assert config.layout == "hdf5" and config.spacing == (40.0, 4.0, 4.0)
    assert config.source is None  # the layout's defaults are CREMI's keys
    build_weights(d, tmp_path / "o.zarr", config, scheduler="sync")
    s = open_shards(tmp_path / "o.zarr")
    want = read_sample(discover(d).samples[0])
    np.testing.assert_array_equal(s[0]["instances"], want.instances)
    assert (s[0]["labels"][want.void] == config.void_label).all()


READ_ONLY = """
import sys
from maskprep.ingest import discover, read_region
for root in sys.argv[1:]:
    src = discover(root).samples[0]
    read_region(src, (slice(0, 2), slice(0, 2), slice(0, 2)))
print(sorted(m for m in ("dask", "numba", "ome_zarr") if m in sys.modules))
"""


def test_reading_volumes_imports_no_dask_numba_or_ome_zarr(tmp_path: Path) -> None:
    roots = [
        make_volume_sample(tmp_path / f, format=f, shape=(4, 8, 8), n_samples=1)
        for f in ("hdf5", "ome-zarr", "tiff-tiled", "zarr")
    ]
    out = subprocess.run(
        [sys.executable, "-c", READ_ONLY, *map(str, roots)],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "[]"
