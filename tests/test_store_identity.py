"""The stores built from the quick start's sample data are pinned byte for byte.

The format-1 digests (an untiled build, ``tile=None``) were taken from the
store written by maskprep 0.x before the package was reorganised into stage
packages, when format 1 was the default; the format-2 digests from the first
build with tiles by default. Any change to what a build writes for the same
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
# The default build (tiles of 256 pixels, format 2): the sample data's 256x256
# images are one tile each, as in format 1, but every tile ends with its crc32c
# (zarr's crc32c codec), so the array files and their zarr.json differ; the
# shapes array is format 1's.
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
}
DEFAULT_METADATA_DIGEST = "2727bcfb7c165b2e39613e371eb339733f764b01959cef6fab09e94c4bace8f2"
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
