"""Format 3: per-sample, per-input and per-shard records in arrays, not in zarr.json.

Also format 2 (the same tiles, records in zarr.json) read as before, and
``maskprep upgrade`` turning it into format 3.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from maskprep import BuildConfig, StoreError, build_weights, make_sample, open_shards
from maskprep.cli import main
from maskprep.store import (
    RECORD_FIELDS,
    RECORDS_GROUP,
    Location,
    StoreMetadata,
    StoreRecords,
    read_store_metadata,
)
from maskprep.tools.inspect import inspect_store
from maskprep.tools.upgrade import upgrade_store
from maskprep.tools.verify import verify_store

ids = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=8)
free = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def records(draw: st.DrawFn) -> tuple[dict, tuple[str, ...]]:
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 3))
    arrays = ("image", "labels", "instances", *draw(st.sampled_from([(), ("weights",)])))
    count = st.integers(0, 2**40)
    values = {
        "sample_ids": draw(st.lists(ids, min_size=n, max_size=n)),
        "split": draw(st.lists(st.sampled_from(["train", "valid"]), min_size=n, max_size=n)),
        "instance_counts": draw(st.lists(count, min_size=n, max_size=n)),
        "sample_class_counts": [draw(st.lists(count, min_size=c, max_size=c)) for _ in range(n)],
        "void_pixels": draw(st.lists(count, min_size=n, max_size=n)),
        "inputs": [
            {"path": p, "bytes": b} for p, b in draw(st.lists(st.tuples(ids, count), max_size=4))
        ],
        "quarantine": [
            {"sample_id": i, "error": e}
            for i, e in draw(st.lists(st.tuples(ids, free), max_size=3))
        ],
        "notes": [
            {"sample_id": i, "note": t} for i, t in draw(st.lists(st.tuples(ids, free), max_size=3))
        ],
    }
    if draw(st.booleans()):
        digest = st.one_of(st.none(), st.binary(min_size=32, max_size=32).map(bytes.hex))
        shards = draw(st.integers(0, 3))
        values["shard_checksums"] = [
            {a: draw(digest) for a in sorted(arrays)} for _ in range(shards)
        ]
    return values, arrays


@settings(max_examples=60, deadline=None)
@given(records())
def test_records_round_trip_through_their_arrays(case: tuple[dict, tuple[str, ...]]) -> None:
    values, arrays = case
    r = StoreRecords(array_names=arrays, **values)
    files = {key: data for key, _, _, data in r.pending_files("x").values()}
    back = StoreRecords.from_store(r.summary(), files.get, len(values["sample_ids"]), arrays)
    for name in RECORD_FIELDS:
        want = r.get(name)
        got = back.get(name)
        if name in ("quarantine", "notes"):  # a NUL in free text is written as \x00
            want = tuple({k: v.replace("\0", "\\x00") for k, v in d.items()} for d in want)
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == np.int64 and not got.flags.writeable
        else:
            assert got == want, name
    np.testing.assert_array_equal(
        back.split_codes, [["train", "valid"].index(s) for s in values["split"]]
    )


def test_records_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="NUL"):
        StoreRecords(sample_ids=["a\0b"], split=["train"], instance_counts=[0],
                     sample_class_counts=[[1]], void_pixels=[0]).summary()  # fmt: skip
    with pytest.raises(ValueError, match="split must be"):
        StoreRecords(sample_ids=["a"], split=["test"], instance_counts=[0],
                     sample_class_counts=[[1]], void_pixels=[0])  # fmt: skip
    with pytest.raises(ValueError, match="2 entries for 1 samples"):
        StoreRecords(sample_ids=["a"], split=["train"], instance_counts=[0, 1],
                     sample_class_counts=[[1]], void_pixels=[0])  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("records")
    data = make_sample(tmp / "data", n_images=7, size=(48, 40))
    out = {"data": data}
    for name, tile in (("v3", "auto"), ("v1", None)):
        out[name] = tmp / f"{name}.zarr"
        cfg = BuildConfig(shard_size=3, tile=tile)
        build_weights(data, out[name], cfg, scheduler="sync")
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _as_format_2(store: Path) -> None:
    """Rewrite a format-3 store as format 2 wrote it (records inline in zarr.json)."""
    import zarr

    meta = read_store_metadata(store)
    assert meta is not None
    meta.records.load_all()
    old = replace(meta, format_version=2, metadata_digest=None)
    old = replace(old, metadata_digest=old.digest())
    zarr.open_group(Location.parse(store).zarr_store(), mode="r+").attrs["maskprep"] = old.to_dict()
    shutil.rmtree(store / RECORDS_GROUP)


def test_zarr_json_holds_no_per_sample_records(built: dict[str, Path]) -> None:
    doc = json.loads((built["v3"] / "zarr.json").read_text())["attributes"]["maskprep"]
    assert doc["format_version"] == 3
    assert not set(RECORD_FIELDS) & set(doc)
    assert set(doc["records"]) >= {"sample_ids", "split", "sample_class_counts", "shard_checksums"}
    # Untiled stores keep format 1: records in zarr.json, as every store before.
    v1 = json.loads((built["v1"] / "zarr.json").read_text())["attributes"]["maskprep"]
    assert v1["format_version"] == 1 and "records" not in v1 and "sample_ids" in v1


def test_format_3_records_equal_format_1_and_are_standard_zarr(built: dict[str, Path]) -> None:
    import zarr

    a, b = read_store_metadata(built["v3"]), read_store_metadata(built["v1"])
    assert a is not None and b is not None
    for name in RECORD_FIELDS:
        if name != "shard_checksums":  # the arrays are encoded differently (tiles, crc)
            want, got = b.to_dict(inline=True)[name], a.to_dict(inline=True)[name]
            assert got == want, name
    group = zarr.open_group(str(built["v3"] / RECORDS_GROUP), mode="r")
    np.testing.assert_array_equal(group["sample_class_counts"][:], a.sample_class_counts)
    np.testing.assert_array_equal(group["split"][:], a.records.split_codes)
    ids = bytes(group["sample_ids"][:]).decode().split("\0")
    assert ids == list(a.sample_ids)
    ts = pytest.importorskip("tensorstore")
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(built["v3"])}}
    arr = ts.open({**spec, "path": f"{RECORDS_GROUP}/void_pixels"}).result()
    np.testing.assert_array_equal(arr.read().result(), a.void_pixels)


def test_opening_reads_only_the_records_it_needs(built: dict[str, Path], tmp_path: Path) -> None:
    store = _copy(built["v3"], tmp_path / "s.zarr")
    (store / RECORDS_GROUP / "sample_ids" / "c" / "0").unlink()
    (store / RECORDS_GROUP / "shard_checksums" / "c" / "0" / "0" / "0").unlink()
    shards = open_shards(store, split="valid")  # the split codes, not the ids or checksums
    ref = open_shards(built["v3"], split="valid")
    assert len(shards) == len(ref) and shards.splits == ref.splits
    np.testing.assert_array_equal(shards[0]["weights"], ref[0]["weights"])
    with pytest.raises(StoreError, match=r"metadata/sample_ids/c/0: missing"):
        shards.sample_ids  # noqa: B018
    assert "metadata/sample_ids/c/0: missing" in verify_store(store).problems[0]


def test_a_modified_record_array_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    store = _copy(built["v3"], tmp_path / "s.zarr")
    import zarr

    counts = zarr.open_array(str(store / RECORDS_GROUP / "void_pixels"), mode="r+")
    counts[0] = int(counts[0]) + 1  # a well-formed array with another value
    with pytest.raises(StoreError, match=r"metadata/void_pixels/c/0: checksum mismatch"):
        open_shards(store).store_metadata.void_pixels  # noqa: B018
    report = verify_store(store)
    assert not report.ok and "metadata/void_pixels/c/0: checksum mismatch" in report.problems[0]
    info = inspect_store(store)
    assert any("void_pixels/c/0: checksum mismatch" in p for p in info["problems"])
    r = CliRunner().invoke(main, ["verify", str(store)])
    assert r.exit_code == 1 and "Traceback" not in r.output


def test_format_2_stores_read_as_before_and_upgrade(built: dict[str, Path], tmp_path: Path) -> None:
    store = _copy(built["v3"], tmp_path / "old.zarr")
    _as_format_2(store)
    doc = json.loads((store / "zarr.json").read_text())["attributes"]["maskprep"]
    assert doc["format_version"] == 2 and "sample_ids" in doc and "records" not in doc
    old, new = open_shards(store), open_shards(built["v3"])
    assert old.sample_ids == new.sample_ids and old.splits == new.splits
    assert old.store_metadata.records == new.store_metadata.records
    for i in range(len(new)):
        for name in new.arrays:
            np.testing.assert_array_equal(old[i][name], new[i][name])
    assert verify_store(store).ok
    assert inspect_store(store)["samples"] == inspect_store(built["v3"])["samples"]
    r = CliRunner().invoke(main, ["upgrade", str(store)])
    assert r.exit_code == 0, r.output
    assert "format 2 -> 3" in r.output
    # Byte for byte the store a format-3 build writes (the records and zarr.json).
    for p in sorted((built["v3"] / RECORDS_GROUP).rglob("*")):
        if p.is_file():
            q = store / p.relative_to(built["v3"])
            assert (
                hashlib.sha256(q.read_bytes()).digest() == hashlib.sha256(p.read_bytes()).digest()
            )
    assert (store / "zarr.json").read_bytes() == (built["v3"] / "zarr.json").read_bytes()
    assert verify_store(store).ok
    r = CliRunner().invoke(main, ["upgrade", str(store)])
    assert r.exit_code == 0 and "already format 3" in r.output


def test_upgrade_refuses_format_1_and_incomplete_stores(
    built: dict[str, Path], tmp_path: Path
) -> None:
    before = (built["v1"] / "zarr.json").read_bytes()
    with pytest.raises(StoreError, match=r"format-1 .* cannot be upgraded in place"):
        upgrade_store(built["v1"])
    assert (built["v1"] / "zarr.json").read_bytes() == before
    store = _copy(built["v3"], tmp_path / "s.zarr")
    meta = read_store_metadata(store)
    assert meta is not None
    import zarr

    zarr.open_group(str(store), mode="r+").attrs["maskprep"] = {
        **meta.to_dict(),
        "complete": False,
        "stage": "writing",
    }
    r = CliRunner().invoke(main, ["upgrade", str(store)])
    assert r.exit_code == 1 and "incomplete" in r.output and "Traceback" not in r.output


def test_metadata_round_trips_inline_and_in_arrays(built: dict[str, Path]) -> None:
    meta = read_store_metadata(built["v3"])
    assert meta is not None
    inline = meta.to_dict(inline=True)
    assert StoreMetadata.from_dict(inline) == meta
    assert StoreMetadata.from_dict(inline).digest() == meta.digest() == meta.metadata_digest
    again = StoreMetadata.from_dict(meta.to_dict(), "s", Location.parse(built["v3"]).read_bytes)
    assert again == meta
    with pytest.raises(StoreError, match="cannot be read here"):
        StoreMetadata.from_dict(meta.to_dict()).sample_ids  # noqa: B018
