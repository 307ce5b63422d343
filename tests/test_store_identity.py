"""The stores built from the quick start's sample data are pinned byte for byte.

The format-1 digests (an untiled build, ``tile=None``) were taken from the
store written by maskprep 0.x before the package was reorganised into stage
packages, when format 1 was the default; the default's digests from the first
build with tiles by default (format 2), edited once when its records moved into
arrays (format 3). Any change to what a build writes for the same
inputs and options must show up here as a deliberate edit.
The group's ``zarr.json`` holds modification-time fingerprints of the inputs,
so its metadata is compared without those keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from maskprep import BuildConfig, build_weights, make_sample

ARRAY_FILES = {
    "_maskprep/shards/000000.json": (
        "86ccc6c34e32e9e4ee584ba80df51d7f39c3e1140c6617b4512b30a2f703a5c0"
    ),
    "image/c/0/0/0": "5f658e89d4f77a93edfcc4266796b47f1b02727d207b0dabaa20656729d97dff",
    "image/zarr.json": "e65005c8cfebb1dc5b3eb34480a82713822c69b311db962a678e2bf08d9b9253",
    "instances/c/0/0/0": "cd3cd7a3e2e1d03185cd534e7e7d36723e86294b642516b2894b4abdfaaa314a",
    "instances/zarr.json": "0cc0f44122bf034fa6309f0f264364336beb2d62db94a39cef8f71b88166fce6",
    "labels/c/0/0/0": "633d10f20ee16cac8ebb0ee33ea4d98f455ea8cf8f139b5a01cd11107373b9b6",
    "labels/zarr.json": "44e7813a2a8aab18c8ff8ad2537e3f179ec70c5912f0c125c2e13adae62d7cfc",
    "shapes/c/0/0": "8c2488acb55a585585c154c61c5d1d494d69828a75e8d72d73ba4c57077e2b5d",
    "shapes/zarr.json": "2d6effb069d6c4c8e0c2e4c9e564dc16e5d14fc89dc06fcf58c0395914b581ce",
    "weights/c/0/0/0": "fb980cf646083785e7bb325bfa7677da36e75ab93c89421f3e6bc93b84679436",
    "weights/zarr.json": "92ada7aa1679e373b77f437db2ea2a585558c8a5fd2162d6dd01b230e44817a0",
}
# The default build (tiles of 256 pixels, format 3): the sample data's 256x256
# images are one tile each, as in format 1, but every tile ends with its crc32c
# (zarr's crc32c codec), so the array files and their zarr.json differ; the
# shapes array is format 1's. Deliberate edit (format 3): the per-sample,
# per-input and per-shard records moved from zarr.json into the arrays of the
# group ``metadata``; the image, labels, instances and weights files are
# those of the format-2 build before it.
DEFAULT_FILES = {
    "_maskprep/shards/000000.json": (
        "fa6a94e6855c6b7244c6b91d1e9369e0043d741ebc3175f14ed1f80718ff7262"
    ),
    "image/c/0/0/0": "6d9cf3e89ec7dd32252d394583751c6abf8a77186f254e22c8d77f06eb1c718d",
    "image/zarr.json": "8da008489363437f503707e3119b75a9a94e3dca50cb9fa5550f981752f3f36b",
    "instances/c/0/0/0": "754edc54abed83eef85e921317c26cc31264fa9cf5b56f5d66f947cc531d7315",
    "instances/zarr.json": "a36d86ab31ae1234de1e96d503f061d2ee96ba60d9ea8298d2a787de2d468b9e",
    "labels/c/0/0/0": "80dfaff13716f47c21449671335b8e06007de13ba0187a20fd77cb559b47d49f",
    "labels/zarr.json": "1805e2c91ab7d04bf2b3459f9885117d8b0ac72b3c4f76fe53f4bc927f1812e2",
    "shapes/c/0/0": ARRAY_FILES["shapes/c/0/0"],
    "shapes/zarr.json": ARRAY_FILES["shapes/zarr.json"],
    "weights/c/0/0/0": "12b0b38ee72771f3a075b2d9b4fea1547f98aed64d87d48eb78356c67a724ffd",
    "weights/zarr.json": "c567c8d94ab6d7db25ea03a28e9fb6fc58f89033abaae93845df75c0c023be03",
    "metadata/input_bytes/c/0": "9fda4ee7927bec1e21a710ab1e1c0442e6831899ef8438eee517c6e3ddc83232",
    "metadata/input_bytes/zarr.json": (
        "374225289c83827c2a0aee62883b7f2475c057f8f7c49b593c6bf17cf0aa460c"
    ),
    "metadata/input_paths/c/0": "dbfbf440798bf3feb243572b8551b1517ba5578633a0a1eeb792026e750b1b31",
    "metadata/input_paths/zarr.json": (
        "7bca1b7577b463b72e1caf5b78472579d06a1ae42596b9dc880adceb803b567a"
    ),
    "metadata/instance_counts/c/0": (
        "4b02581801353b8898b09149f70b7c46ac781493d478a1787ad92b9b13e1a64c"
    ),
    "metadata/instance_counts/zarr.json": (
        "a0ed2f088e060805a49bf49dc065eb8aa1715b85d110bbfb77b8ee65466b373a"
    ),
    "metadata/note_samples/zarr.json": (
        "2e2d2a494a3be8fab49213d7c7e0e78d2d82830e4dbd1b7f779a789ee12b1877"
    ),
    "metadata/notes/zarr.json": "2e2d2a494a3be8fab49213d7c7e0e78d2d82830e4dbd1b7f779a789ee12b1877",
    "metadata/quarantine_errors/zarr.json": (
        "2e2d2a494a3be8fab49213d7c7e0e78d2d82830e4dbd1b7f779a789ee12b1877"
    ),
    "metadata/quarantine_ids/zarr.json": (
        "2e2d2a494a3be8fab49213d7c7e0e78d2d82830e4dbd1b7f779a789ee12b1877"
    ),
    "metadata/sample_class_counts/c/0/0": (
        "e8aab3600b92d51fc2936edfde637c1db90555e3713f79e0e63c2ed7334c365c"
    ),
    "metadata/sample_class_counts/zarr.json": (
        "95f723770b92d6b3974d47283192d37a3d61747ee3f9a21b88f67f66871c0b49"
    ),
    "metadata/sample_ids/c/0": "59f37de9e14ecbd19ccbba28e73287b9b7030db135468f9c28b5d4514fb25a2f",
    "metadata/sample_ids/zarr.json": (
        "50af9a7e36aab875a92f6e01c536db2162b34c917ac365b1ae50f7e86a5c202b"
    ),
    "metadata/shard_checksums/c/0/0/0": (
        "f64eacd8e20ebae72443c71ed0e02bc8f790f29c9a6c2d00aeeeaef746ba62a6"
    ),
    "metadata/shard_checksums/zarr.json": (
        "a2ac9168500313a2b962fe1bbb3fd52966199667723e86ddf22522880fa4bd9e"
    ),
    "metadata/split/c/0": "3d08eac8a9a990d774600b8b1e6253ab101273d6cbcca77945fb71598b1c11cb",
    "metadata/split/zarr.json": "96508751c0b6cf1bff36626baca0f163170b02cde5111288a7b3cb99b0a67a5b",
    "metadata/void_pixels/c/0": "7da63d94ed9be468b4f3da4646bc31e74a215c6975c3e770109d0c4acf7615df",
    "metadata/void_pixels/zarr.json": (
        "a0ed2f088e060805a49bf49dc065eb8aa1715b85d110bbfb77b8ee65466b373a"
    ),
    "metadata/zarr.json": "36615682d5be9646729635067a75185212eb0c48d708ef06ad34c1f58dd587d2",
}
# Format 2 (records in zarr.json) gave 2727bcfb7c165b2e39613e371eb339733f764b01959c...
DEFAULT_METADATA_DIGEST = "6fe552bb65151b87d6fbc1a80691424de87054e7652cce3baa6a0ac07c144ae7"
# Keys that depend on when the inputs were written or on the version string.
VOLATILE = ("inputs_digest", "metadata_digest", "maskprep_version")
# Deliberate edit: the metadata gained ``shapes_checksum`` (the sha256 of
# ``shapes/c/0/0`` above); without that key the digest is the earlier
# 0e8aed87067e5ef40c1146970bc2c4121e9f4b3194a3ab7dd50150e0213a7742.
METADATA_DIGEST = "8d9b44cd445dd8a1327311b0d0b26dfbe0724f24865708c6c6757760f829a33d"


@pytest.fixture(scope="module")
def quickstart_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("quickstart")
    data = make_sample(tmp / "sample_data")  # the quick start's defaults
    build_weights(data, tmp / "sample.zarr", BuildConfig(tile=None), scheduler="sync")
    return tmp / "sample.zarr"


@pytest.fixture(scope="module")
def default_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("quickstart-default")
    data = make_sample(tmp / "sample_data")
    build_weights(data, tmp / "sample.zarr", scheduler="sync")  # the quick start's command
    return tmp / "sample.zarr"


def test_default_build_is_pinned(default_store: Path) -> None:
    found = {
        p.relative_to(default_store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(default_store.rglob("*"))
        if p.is_file() and p != default_store / "zarr.json"
    }
    assert found == DEFAULT_FILES
    assert _metadata_digest(default_store) == DEFAULT_METADATA_DIGEST


def _metadata_digest(store: Path) -> str:
    meta = json.loads((store / "zarr.json").read_text())["attributes"]["maskprep"]
    body = {k: v for k, v in meta.items() if k not in VOLATILE}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_array_files_are_byte_identical(quickstart_store: Path) -> None:
    found = {
        p.relative_to(quickstart_store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(quickstart_store.rglob("*"))
        if p.is_file() and p != quickstart_store / "zarr.json"
    }
    assert found == ARRAY_FILES


def test_metadata_is_unchanged(quickstart_store: Path) -> None:
    assert _metadata_digest(quickstart_store) == METADATA_DIGEST


def test_shapes_checksum_is_the_shapes_chunk(quickstart_store: Path) -> None:
    meta = json.loads((quickstart_store / "zarr.json").read_text())["attributes"]["maskprep"]
    assert meta["shapes_checksum"] == ARRAY_FILES["shapes/c/0/0"]
