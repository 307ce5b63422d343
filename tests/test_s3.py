"""Output to object storage: a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from maskprep import (
    BuildConfig,
    ClassWeightConfig,
    build_weights,
    inspect_store,
    open_shards,
    preview,
    reweight,
    verify_store,
)
from maskprep.cli import main

pytest.importorskip("s3fs")
pytest.importorskip("moto")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # Credentials and endpoint come from the usual environment, as on a cluster.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    if not fs.exists("maskprep-test"):
        fs.mkdir("maskprep-test")
    return s3_endpoint


def _remote_files(fs: Any) -> dict[str, str]:
    fs.invalidate_cache()
    return {
        p.split("nuclei.zarr/", 1)[1]: hashlib.sha256(fs.cat_file(p)).hexdigest()
        for p in fs.find("maskprep-test/nuclei.zarr")
    }


def _local_files(local: Path) -> dict[str, str]:
    return {
        str(p.relative_to(local)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in local.rglob("*")
        if p.is_file()
    }


def test_s3_round_trip(nuclei_dir: Path, tmp_path: Path, s3_env: str) -> None:
    import s3fs

    cfg = BuildConfig(shard_size=4)
    url = "s3://maskprep-test/nuclei.zarr"
    summary = build_weights(nuclei_dir, url, cfg, scheduler="threads")
    assert summary.n_samples == 10
    assert summary.bytes_on_disk > 0
    local = tmp_path / "local.zarr"
    build_weights(nuclei_dir, local, cfg, scheduler="sync")

    fs = s3fs.S3FileSystem()
    assert _remote_files(fs) == _local_files(local)

    assert verify_store(url).ok
    # re-running against the same bucket prefix is idempotent
    again = build_weights(nuclei_dir, url, cfg, scheduler="sync")
    assert again.shards_written == 0

    # Training straight from the bucket: shards decoded from byte ranges.
    remote, here = open_shards(url), open_shards(local)
    assert set(remote.backend.values()) == {"direct"}
    assert remote.sample_ids == here.sample_ids
    for i in range(len(here)):
        for name, arr in here[i].items():
            np.testing.assert_array_equal(remote[i][name], arr)
    batch = next(remote.batches(4, seed=0))
    assert batch["weights"].shape[0] == 4

    # inspect and preview work on the bucket as on the local copy.
    remote_info, local_info = inspect_store(url), inspect_store(local)
    for key in ("samples", "classes", "void", "instances", "geometry", "size_on_disk"):
        assert remote_info[key] == local_info[key], key
    r = CliRunner().invoke(main, ["inspect", url])
    assert r.exit_code == 0, r.output
    assert "[complete]" in r.output
    pngs = preview(url, tmp_path / "png", samples=2)
    assert len(pngs) == 3

    # Switching scheme in the bucket equals switching it locally, byte for byte.
    reweight(url, ClassWeightConfig(scheme="median-frequency"), scheduler="sync")
    reweight(local, ClassWeightConfig(scheme="median-frequency"), scheduler="sync")
    assert _remote_files(fs) == _local_files(local)
    assert verify_store(url).ok
