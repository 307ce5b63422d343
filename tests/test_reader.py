"""The shard reader: equal to zarr-python on every sample, batches, rank sharding."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import BytesCodec, GzipCodec, ZstdCodec

import maskprep.store.codec as codec_mod
from maskprep import StoreError, open_shards
from maskprep.reader import epoch_order
from maskprep.reader.arrays import DirectArray
from maskprep.store import DEFAULT_ARRAYS as ARRAY_NAMES
from maskprep.store import FORMAT_VERSION, StoreLayout, StoreMetadata, StoreRecords
from maskprep.weighting import ClassStats, ClassWeightConfig

VOID = 255


# --------------------------------------------------------------------------- helpers


def write_store(
    path: Path,
    samples: Sequence[dict[str, np.ndarray]],
    *,
    shard_size: int = 2,
    index_location: str = "end",
    endian: str = "little",
    compressor: str = "zstd",
    sharded: bool = True,
    splits: Sequence[str] | None = None,
) -> Path:
    """A maskprep store holding ``samples`` exactly, written with plain zarr-python."""
    n = len(samples)
    ndim = samples[0]["labels"].ndim
    spatial = tuple(max(s["labels"].shape[a] for s in samples) for a in range(ndim))
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name in ARRAY_NAMES:
        first = samples[0][name]
        shape = (n, *spatial, *first.shape[ndim:])
        fill = VOID if name == "labels" else 0
        kwargs: dict[str, Any] = {
            "compressors": ZstdCodec(level=1) if compressor == "zstd" else GzipCodec(),
        }
        if first.dtype.itemsize > 1:
            kwargs["serializer"] = BytesCodec(endian=endian)  # type: ignore[arg-type]
        if sharded:
            kwargs["shards"] = {"shape": (shard_size, *shape[1:]), "index_location": index_location}
        arr = group.create_array(
            name,
            shape=shape,
            chunks=(1, *shape[1:]),
            dtype=first.dtype,
            fill_value=fill,
            **kwargs,
        )
        block = np.full(shape, fill, dtype=first.dtype)
        for i, s in enumerate(samples):
            block[(i, *(slice(0, k) for k in s[name].shape))] = s[name]
        arr[:] = block
    shapes = group.create_array("shapes", shape=(n, ndim), chunks=(n, ndim), dtype="int32")
    shapes[:] = np.asarray([s["labels"].shape for s in samples], dtype=np.int32)
    first = samples[0]["image"]
    layout = StoreLayout(
        n_samples=n,
        spatial_shape=spatial,
        channels=first.shape[ndim] if first.ndim > ndim else None,
        image_dtype=str(first.dtype),
        labels_dtype=str(samples[0]["labels"].dtype),
        shard_size=shard_size,
        void_label=VOID,
    )
    meta = StoreMetadata(
        maskprep_version="test",
        layout="instances",
        class_names=("background", "object"),
        void_label=VOID,
        class_stats=ClassStats((0, 0), (0, 0), (0, 0), 0),
        class_weights=(1.0, 1.0),
        class_weight_config=ClassWeightConfig(scheme="none"),
        w0=10.0,
        sigma=5.0,
        border_region="background",
        tolerance=1e-6,
        spacing=None,
        records=StoreRecords(
            sample_ids=[f"s{i:03d}" for i in range(n)],
            split=list(splits) if splits is not None else ["train"] * n,
            instance_counts=[0] * n,
            sample_class_counts=[(0, 0)] * n,
            void_pixels=[0] * n,
        ),
        shard_size=shard_size,
        config={},
        on_error="fail",
        inputs_digest="",
        layout_info=layout,
        stage="complete",
        complete=True,
    )
    assert meta.format_version == FORMAT_VERSION
    group.attrs["maskprep"] = meta.to_dict()
    return path


def make_samples(
    rng: np.random.Generator,
    shapes: Sequence[tuple[int, ...]],
    *,
    image_dtype: str = "uint8",
    channels: int | None = None,
    labels_dtype: str = "uint8",
    empty: Sequence[int] = (),
) -> list[dict[str, np.ndarray]]:
    """Random samples; those in ``empty`` equal the fill values (chunks zarr omits)."""
    out = []
    for i, shape in enumerate(shapes):
        ishape = shape if channels is None else (*shape, channels)
        if i in empty:
            s = {
                "image": np.zeros(ishape, dtype=image_dtype),
                "labels": np.full(shape, VOID, dtype=labels_dtype),
                "instances": np.zeros(shape, dtype=np.int32),
                "weights": np.zeros(shape, dtype=np.float32),
            }
        else:
            s = {
                "image": (rng.random(ishape) * 200).astype(image_dtype),
                "labels": rng.choice(np.array([0, 1, VOID], dtype=labels_dtype), size=shape),
                "instances": rng.integers(-3, 1000, size=shape, dtype=np.int32),
                "weights": rng.random(shape, dtype=np.float32) * 10,
            }
        out.append(s)
    return out


def zarr_sample(path: Path, name: str, j: int, shape: Sequence[int]) -> np.ndarray:
    """Sample ``j`` of array ``name`` the plain zarr-python way, cropped."""
    arr = zarr.open_array(str(path / name), mode="r")
    return np.asarray(arr[(j, *(slice(0, k) for k in shape))])


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype.newbyteorder("=")
    assert got.dtype.byteorder in "=|"  # native, and repr'd as such ('float32', not '<f4')
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def padded_stack(samples: Sequence[np.ndarray], fill: int) -> np.ndarray:
    ndim = max(s.ndim for s in samples)
    big = tuple(max(s.shape[a] for s in samples) for a in range(ndim))
    out = np.full((len(samples), *big), fill, dtype=samples[0].dtype)
    for b, s in enumerate(samples):
        out[(b, *(slice(0, k) for k in s.shape))] = s
    return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built(build_nuclei: Callable[[str, int], Path]) -> Path:
    return build_nuclei("reader", 4)


@pytest.fixture(scope="module")
def ragged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, np.ndarray]]]:
    """7 samples of different shapes, 2 all-fill (absent chunks), one whole shard absent."""
    rng = np.random.default_rng(7)
    shapes = [(5, 7), (9, 3), (9, 8), (1, 1), (4, 4), (6, 8), (2, 5)]
    samples = make_samples(rng, shapes, channels=3, labels_dtype="uint16", empty=(2, 3))
    path = write_store(tmp_path_factory.mktemp("ragged") / "r.zarr", samples, shard_size=2)
    return path, samples


@pytest.fixture(params=["zstandard", "numcodecs"])
def zstd_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "zstandard" and codec_mod._zstandard is None:
        pytest.skip("python-zstandard not installed")
    monkeypatch.setattr(codec_mod, "_ZSTD", request.param)
    return str(request.param)


# --------------------------------------------------------------------------- equality


def test_every_sample_equals_zarr_python(built: Path, zstd_impl: str) -> None:
    shards = open_shards(built)
    assert shards.backend == dict.fromkeys(ARRAY_NAMES, "direct")
    shapes = zarr.open_array(str(built / "shapes"), mode="r")[:]
    for i in range(len(shards)):
        got = shards[i]
        assert sorted(got) == sorted(ARRAY_NAMES)
        for name in ARRAY_NAMES:
            assert_same(got[name], zarr_sample(built, name, i, shapes[i]))
            assert got[name].flags.writeable and got[name].flags.c_contiguous


def test_ragged_store_missing_chunks_and_shards(
    ragged: tuple[Path, list[dict[str, np.ndarray]]], zstd_impl: str
) -> None:
    path, samples = ragged
    # samples 2 and 3 (shard 1) equal the fill value: zarr writes no shard file at all
    assert not (path / "labels" / "c" / "1" / "0" / "0").exists()
    assert (path / "labels" / "c" / "0" / "0" / "0").exists()
    shards = open_shards(path)
    assert shards.backend == dict.fromkeys(ARRAY_NAMES, "direct")
    for i, want in enumerate(samples):
        got = shards[i]
        for name in ARRAY_NAMES:
            assert_same(got[name], want[name])
            assert_same(got[name], zarr_sample(path, name, i, want["labels"].shape))


def test_absent_inner_chunk_reads_as_fill(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    samples = make_samples(rng, [(4, 4)] * 3, empty=(1,))
    path = write_store(tmp_path / "s.zarr", samples, shard_size=3)
    src = open_shards(path)._sources["labels"]
    assert isinstance(src, DirectArray)
    index = src._index(0)
    assert index is not None and index[1] == (2**64 - 1, 2**64 - 1)
    np.testing.assert_array_equal(open_shards(path)[1]["labels"], np.full((4, 4), VOID))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 7),
    shard_size=st.integers(1, 3),
    ndim=st.sampled_from([2, 2, 3]),
    image_dtype=st.sampled_from(["uint8", "uint16", "float32", "int16"]),
    channels=st.sampled_from([None, 1, 3]),
    labels_dtype=st.sampled_from(["uint8", "uint16"]),
    index_location=st.sampled_from(["start", "end"]),
    endian=st.sampled_from(["little", "big"]),
    data=st.data(),
)
def test_random_stores_equal_zarr_python(
    seed: int,
    n: int,
    shard_size: int,
    ndim: int,
    image_dtype: str,
    channels: int | None,
    labels_dtype: str,
    index_location: str,
    endian: str,
    data: st.DataObject,
) -> None:
    shapes = [tuple(data.draw(st.integers(1, 6)) for _ in range(ndim)) for _ in range(n)]
    empty = data.draw(st.sets(st.integers(0, n - 1)))
    rng = np.random.default_rng(seed)
    samples = make_samples(
        rng,
        shapes,
        image_dtype=image_dtype,
        channels=channels,
        labels_dtype=labels_dtype,
        empty=sorted(empty),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_store(
            Path(tmp) / "s.zarr",
            samples,
            shard_size=shard_size,
            index_location=index_location,
            endian=endian,
        )
        shards = open_shards(path, backend="direct")
        for i, want in enumerate(samples):
            got = shards[i]
            for name in ARRAY_NAMES:
                assert_same(got[name], want[name])
                assert_same(got[name], zarr_sample(path, name, i, shapes[i]))
        order = rng.permutation(n)
        batch = shards.read_batch(order)
        np.testing.assert_array_equal(batch["index"], order)
        np.testing.assert_array_equal(batch["shape"], np.asarray(shapes)[order])
        for name in ARRAY_NAMES:
            fill = VOID if name == "labels" else 0
            want_b = padded_stack([samples[k][name] for k in order], fill)
            assert_same(batch[name], want_b)


# --------------------------------------------------------------------------- fallback


def test_other_codec_chains_fall_back_to_zarr_python(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    samples = make_samples(rng, [(3, 5), (6, 2), (4, 4)], image_dtype="float32")
    for kind, kwargs in [("gzip", {"compressor": "gzip"}), ("unsharded", {"sharded": False})]:
        path = write_store(tmp_path / f"{kind}.zarr", samples, **kwargs)  # type: ignore[arg-type]
        shards = open_shards(path)
        assert shards.backend == dict.fromkeys(ARRAY_NAMES, "zarr")
        for i, want in enumerate(samples):
            for name in ARRAY_NAMES:
                assert_same(shards[i][name], want[name])
        batch = shards.read_batch([2, 0])
        assert_same(
            batch["weights"], padded_stack([samples[2]["weights"], samples[0]["weights"]], 0)
        )
        with pytest.raises(StoreError, match="cannot be decoded directly"):
            open_shards(path, backend="direct")


def test_backend_zarr_matches_direct(built: Path) -> None:
    direct, slow = open_shards(built), open_shards(built, backend="zarr")
    assert slow.backend == dict.fromkeys(ARRAY_NAMES, "zarr")
    for i in range(len(direct)):
        a, b = direct[i], slow[i]
        for name in ARRAY_NAMES:
            assert_same(a[name], b[name])


def test_fsspec_url_reads_directly_and_equals_zarr_python(built: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/reader-{id(built)}.zarr"
    for p in built.rglob("*"):
        if p.is_file():
            fs.pipe_file(f"{root}/{p.relative_to(built).as_posix()}", p.read_bytes())
    try:
        url = f"memory://{root.lstrip('/')}"
        remote, local = open_shards(url, split="train"), open_shards(built, split="train")
        assert remote.path == url and remote.backend == dict.fromkeys(ARRAY_NAMES, "direct")
        via_zarr = open_shards(url, split="train", backend="zarr")
        assert via_zarr.backend == dict.fromkeys(ARRAY_NAMES, "zarr")
        assert remote.sample_ids == local.sample_ids
        for i in range(len(local)):
            for name in ARRAY_NAMES:
                assert_same(remote[i][name], local[i][name])
                assert_same(via_zarr[i][name], local[i][name])
        a, b = remote.read_batch([2, 0]), local.read_batch([2, 0])
        for key in a:
            assert_same(a[key], b[key])
        # pickled (as for DataLoader workers with spawn), the reader reopens itself
        again = pickle.loads(pickle.dumps(remote))
        assert_same(again[1]["weights"], local[1]["weights"])
    finally:
        fs.rm(root, recursive=True)


# --------------------------------------------------------------------------- corruption


def _shard_file(path: Path, name: str = "weights", s: int = 0) -> Path:
    return path / name / "c" / str(s) / "0" / "0"


def test_corrupt_index_checksum_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = write_store(tmp_path / "s.zarr", make_samples(rng, [(4, 4)] * 2))
    f = _shard_file(path)
    raw = bytearray(f.read_bytes())
    raw[-10] ^= 0xFF  # inside the index, before the crc32c
    f.write_bytes(bytes(raw))
    shards = open_shards(path)
    with pytest.raises(StoreError, match="checksum"):
        shards[0]
    assert open_shards(path, arrays=["labels"])[0]["labels"].shape == (4, 4)


def test_truncated_shard_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    path = write_store(tmp_path / "s.zarr", make_samples(rng, [(8, 8)] * 2), index_location="start")
    f = _shard_file(path)
    f.write_bytes(f.read_bytes()[:-20])
    with pytest.raises(StoreError, match=r"outside the data|truncated"):
        open_shards(path)[1]


def test_corrupt_chunk_is_an_error(tmp_path: Path, zstd_impl: str) -> None:
    rng = np.random.default_rng(5)
    path = write_store(tmp_path / "s.zarr", make_samples(rng, [(16, 16)] * 2))
    f = _shard_file(path)
    raw = bytearray(f.read_bytes())
    raw[20:60] = bytes(40)  # inside sample 0's zstd frame
    f.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="weights"):
        open_shards(path)[0]


def test_frame_without_content_size(zstd_impl: str) -> None:
    zstandard = pytest.importorskip("zstandard")
    a = np.arange(300, dtype=np.float32)
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(a.tobytes())
    assert codec_mod.frame_content_size(frame) is None
    out = np.empty_like(a)
    codec_mod.decode_chunk_into(frame, out, "x")
    np.testing.assert_array_equal(out, a)
    with pytest.raises(StoreError, match="expected"):
        codec_mod.decode_chunk_into(frame, np.empty(301, np.float32), "x")
    sized = zstandard.ZstdCompressor().compress(a.tobytes())
    assert codec_mod.frame_content_size(sized) == a.nbytes
    with pytest.raises(StoreError, match="expected"):
        codec_mod.decode_chunk_into(sized, np.empty(299, np.float32), "x")


# --------------------------------------------------------------------------- API


def test_arrays_selection_and_errors(built: Path) -> None:
    shards = open_shards(built, arrays=("labels", "weights"))
    assert shards.arrays == ("labels", "weights")
    assert sorted(shards[0]) == ["labels", "weights"]
    assert sorted(shards.read_batch([0])) == ["index", "labels", "shape", "weights"]
    assert sorted(open_shards(built, arrays="image")[0]) == ["image"]
    for bad in (("labels", "labels"), ("nope",), ()):
        with pytest.raises(ValueError, match="arrays"):
            open_shards(built, arrays=bad)
    with pytest.raises(ValueError, match="backend"):
        open_shards(built, backend="fast")
    with pytest.raises(IndexError):
        shards[len(shards)]
    with pytest.raises(IndexError):
        shards.read_batch([0, -len(shards) - 1])
    assert_same(shards[-1]["labels"], shards[len(shards) - 1]["labels"])
    assert_same(shards.read_batch([-1])["labels"][0], shards[len(shards) - 1]["labels"])


def test_split_views(built: Path) -> None:
    full = open_shards(built)
    valid = open_shards(built, split="valid")
    pos = [i for i, s in enumerate(full.splits) if s == "valid"]
    assert len(valid) == len(pos) > 0
    assert valid.sample_ids == [full.sample_ids[i] for i in pos]
    np.testing.assert_array_equal(valid.shapes, full.shapes[pos])
    seen = []
    for batch in valid.batches(2, seed=3):
        for b, k in enumerate(batch["index"].tolist()):
            assert_same(batch["labels"][b], full[pos[k]]["labels"])
            seen.append(k)
    assert sorted(seen) == list(range(len(valid)))


def test_batches_pad_with_void_and_zero(
    ragged: tuple[Path, list[dict[str, np.ndarray]]], zstd_impl: str
) -> None:
    path, samples = ragged
    shards = open_shards(path)
    for threads in (1, 2):
        seen = []
        for batch in shards.batches(3, seed=11, threads=threads):
            idx = batch["index"].tolist()
            seen += idx
            for name in ARRAY_NAMES:
                fill = VOID if name == "labels" else 0
                assert_same(batch[name], padded_stack([samples[k][name] for k in idx], fill))
            np.testing.assert_array_equal(batch["shape"], [samples[k]["labels"].shape for k in idx])
            assert batch["shape"].dtype == np.int64 and batch["index"].dtype == np.int64
        assert sorted(seen) == list(range(len(samples)))


def test_batches_equal_single_reads_and_threads(built: Path) -> None:
    shards = open_shards(built)
    one = list(shards.batches(3, seed=5))
    two = list(shards.batches(3, seed=5, threads=2))
    assert len(one) == len(two) == 4  # 10 samples: 3 + 3 + 3 + 1
    for a, b in zip(one, two, strict=True):
        for key in a:
            assert_same(a[key], b[key])
        for k, i in enumerate(a["index"].tolist()):
            for name in ARRAY_NAMES:
                assert_same(a[name][k], shards[i][name])


def test_shuffle_reproducible_with_seed(built: Path) -> None:
    shards = open_shards(built, arrays=["labels"])

    def order(**kw: Any) -> list[int]:
        return [i for b in shards.batches(4, **kw) for i in b["index"].tolist()]

    assert order(seed=1) == order(seed=1)
    assert order(seed=1, epoch=3) == order(seed=1, epoch=3)
    assert order(seed=1) != order(seed=1, epoch=1)  # 10! orders: a clash is (nearly) impossible
    assert order(seed=1) != order(seed=2)
    assert sorted(order(seed=1)) == list(range(10))
    assert order(shuffle=False) == list(range(10))
    assert sorted(order()) == list(range(10))  # no seed: fresh entropy, still a permutation


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_cover_every_sample_once(built: Path, world_size: int, drop_last: bool) -> None:
    shards = open_shards(built, arrays=["weights"])
    per_rank = []
    for rank in range(world_size):
        got = [
            i
            for b in shards.batches(
                3, seed=9, epoch=2, rank=rank, world_size=world_size, drop_last=drop_last
            )
            for i in b["index"].tolist()
        ]
        per_rank.append(got)
    everything = [i for r in per_rank for i in r]
    assert len(everything) == len(set(everything))  # disjoint
    if drop_last:
        full = len(shards) // (world_size * 3) * 3
        assert all(len(r) == full for r in per_rank)
    else:
        assert sorted(everything) == list(range(len(shards)))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60),
    batch_size=st.integers(1, 8),
    world_size=st.integers(1, 6),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 5),
)
def test_epoch_order_partitions(
    n: int, batch_size: int, world_size: int, drop_last: bool, shuffle: bool, seed: int, epoch: int
) -> None:
    ranks = [
        epoch_order(
            n,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            epoch=epoch,
            rank=r,
            world_size=world_size,
            drop_last=drop_last,
        )
        for r in range(world_size)
    ]
    flat = [int(i) for batches in ranks for b in batches for i in b]
    assert len(flat) == len(set(flat))
    assert all(0 <= i < n for i in flat)
    for batches in ranks:
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert all(len(b) == batch_size for b in batches[:-1])
    counts = [sum(len(b) for b in batches) for batches in ranks]
    if drop_last:
        assert len({len(b) for b in ranks}) == 1
        assert all(c == n // (world_size * batch_size) * batch_size for c in counts)
        assert all(len(b) == batch_size for batches in ranks for b in batches)
    else:
        assert sorted(flat) == list(range(n))
        assert max(counts, default=0) - min(counts, default=0) <= 1


def test_epoch_order_argument_errors() -> None:
    with pytest.raises(ValueError, match="needs a seed"):
        epoch_order(10, 2, world_size=2, rank=0)
    with pytest.raises(ValueError, match="rank"):
        epoch_order(10, 2, seed=0, world_size=2, rank=2)
    with pytest.raises(ValueError, match="batch_size"):
        epoch_order(10, 0)
    with pytest.raises(TypeError, match="batch_size"):
        epoch_order(10, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        epoch_order(10, 2, seed=-1)


# --------------------------------------------------------------------------- processes


def test_small_file_cache_and_close(built: Path) -> None:
    shards = open_shards(built, max_open_files=1)
    ref = open_shards(built)
    for i in [0, 9, 4, 1, 8, 5]:
        for name in ARRAY_NAMES:
            assert_same(shards[i][name], ref[i][name])
    assert len(shards._files._fds) == 1
    with shards:
        shards[3]
    assert len(shards._files._fds) == 0
    assert_same(shards[3]["labels"], ref[3]["labels"])  # reopens


def _child_read(args: tuple[Any, list[int]]) -> list[np.ndarray]:
    shards, idx = args
    return [shards[i]["weights"] for i in idx]


def test_pickle_and_fork(built: Path) -> None:
    shards = open_shards(built)
    want = [shards[i]["weights"] for i in range(len(shards))]  # parent has open files
    assert shards._files._fds
    clone = pickle.loads(pickle.dumps(shards))
    assert not clone._files._fds
    for i, w in enumerate(want):
        assert_same(clone[i]["weights"], w)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map(_child_read, [(shards, [0, 5, 9]), (shards, [9, 1])])
    for idx, res in zip([[0, 5, 9], [9, 1]], got, strict=True):
        for i, g in zip(idx, res, strict=True):
            assert_same(g, want[i])
    assert_same(shards[2]["weights"], want[2])  # the parent still reads after the fork


def test_fork_does_not_reuse_parent_descriptors(built: Path) -> None:
    shards = open_shards(built)
    shards[0]
    parent_fds = dict(shards._files._fds)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        same_pid, child_fds = pool.apply(_child_fds, (shards,))
    assert same_pid and child_fds and parent_fds
    # inherited descriptors stay open (and unused) in the child: its own get new numbers
    assert set(child_fds.values()).isdisjoint(parent_fds.values())
    assert shards._files._fds == parent_fds


def _child_fds(shards: Any) -> tuple[bool, dict[str, int]]:
    shards[0]
    return shards._files._pid == os.getpid(), dict(shards._files._fds)
