from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maskprep import BuildConfig, build_weights, make_sample


@pytest.fixture(scope="session")
def nuclei_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small 2D instances-layout dataset with unlabeled masks and valid.txt."""
    return make_sample(tmp_path_factory.mktemp("data") / "nuclei", n_images=10, size=(64, 64))


@pytest.fixture(scope="session")
def build_nuclei(
    nuclei_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, int], Path]:
    """``build(name, shard_size)``: a new store of :func:`nuclei_dir` in a new folder ``name``."""

    def build(name: str, shard_size: int) -> Path:
        out = tmp_path_factory.mktemp(name) / "nuclei.zarr"
        build_weights(nuclei_dir, out, BuildConfig(shard_size=shard_size), scheduler="sync")
        return out

    return build
