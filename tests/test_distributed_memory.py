"""A volume whose instance labels alone exceed a worker's memory limit builds on a
real dask scheduler with two memory-limited workers on loopback, block by block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from maskprep import BuildConfig, build_weights, open_shards
from maskprep.targets import border_weights

# The worker processes (dask, numba, scipy, zarr loaded) sit at about 250 MB;
# a 496^3 volume's int32 instance ids alone are 488 MB (465 MiB).
MEMORY_LIMIT = 450 * 2**20
SIDE = 496
CELL = 16  # one blob per 16^3 cube: about 27 000 instances


def _blobs(z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` of the volume: a ball of radius 7 to 9 in each cell, ids non-sequential."""
    z, y, x = np.ogrid[z0:z1, :SIDE, :SIDE]
    cz, cy, cx = z // CELL, y // CELL, x // CELL
    ids = (cz * 1000 + cy) * 1000 + cx
    radius = 7 + (ids % 3)
    inside = (z % CELL - 8) ** 2 + (y % CELL - 8) ** 2 + (x % CELL - 8) ** 2 <= radius**2
    return np.where(inside, ids * 3 + 1, 0).astype(np.int32)


def _write_volume(root: Path) -> None:
    import zarr

    for sub, dtype in (("images", "uint8"), ("masks", "int32")):
        (root / sub).mkdir(parents=True)
        arr = zarr.create_array(
            str(root / sub / "vol.zarr"),
            shape=(SIDE,) * 3,
            chunks=(64, 64, 64),
            dtype=dtype,
            fill_value=0,
        )
        for z0 in range(0, SIDE, 64):
            lab = _blobs(z0, min(z0 + 64, SIDE))
            arr[z0 : z0 + lab.shape[0]] = (lab % 251).astype(np.uint8) if sub == "images" else lab


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    dask_cli = str(Path(sys.executable).with_name("dask"))
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [
                dask_cli,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("the dask scheduler did not start")
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        dask_cli,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--memory-limit",
                        str(MEMORY_LIMIT),
                        "--name",
                        f"w{i}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


def test_volume_bigger_than_a_worker_builds_block_by_block(tmp_path: Path, cluster: str) -> None:
    import resource

    from distributed import Client

    data = tmp_path / "data"
    _write_volume(data)
    assert SIDE**3 * 4 > MEMORY_LIMIT  # the labels alone do not fit a worker
    config = BuildConfig(tile=32, block=96, sigma=1.5, shard_size=1)
    out = tmp_path / "out.zarr"
    summary = build_weights(data, out, config, scheduler=cluster, retries=0)
    with Client(cluster) as client:
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        restarted = [
            w
            for w, info in client.scheduler_info()["workers"].items()
            if info["name"] not in ("w0", "w1")
        ]
    assert len(peaks) == 2 and not restarted
    assert max(peaks.values()) < MEMORY_LIMIT  # no worker ever held the volume
    shards = open_shards(out)
    meta = shards.store_metadata
    assert summary.n_samples == 1 and meta.complete
    # Exact integer statistics: every voxel counted once.
    full = np.concatenate([_blobs(z, min(z + 64, SIDE)) for z in range(0, SIDE, 64)])
    assert meta.class_counts == (int((full == 0).sum()), int((full != 0).sum()))
    assert meta.instance_counts.tolist() == [len(np.unique(full)) - 1]
    # A region across block seams equals the border term computed on a crop
    # holding everything within the cutoff radius.
    region = (slice(80, 112), slice(180, 200), slice(280, 300))
    halo = 12
    crop = tuple(slice(r.start - halo, r.stop + halo) for r in region)
    expected = border_weights(full[crop], w0=config.w0, sigma=config.sigma)[
        tuple(slice(halo, halo + r.stop - r.start) for r in region)
    ]
    del full
    weights = shards.patch(
        0, tuple(r.start for r in region), tuple(r.stop - r.start for r in region)
    )
    labels = weights["labels"]
    stored = weights["weights"] - np.asarray(shards.class_weights, np.float32)[labels]
    np.testing.assert_allclose(stored, expected, atol=1e-5 * config.w0)
