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
# images are one tile each, so every array file is format 1's; the shard marker
# and the metadata (format 2, the layout's tile and block) differ.
DEFAULT_FILES = {
    **ARRAY_FILES,
    "_maskprep/shards/000000.json": (
        "3d694ac21e50b547671c4e139ee284d618498d06120f61f9625984b6b0e99348"
    ),
}
DEFAULT_METADATA_DIGEST = "a5a83c64c58eb084609bfd7c21469bc233dd302d53c5a5f98c431e5046755bd1"
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
