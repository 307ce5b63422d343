from __future__ import annotations

from pathlib import Path

import pytest

from maskprep import make_sample


@pytest.fixture(scope="session")
def nuclei_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small 2D instances-layout dataset with unlabeled masks and valid.txt."""
    return make_sample(tmp_path_factory.mktemp("data") / "nuclei", n_images=10, size=(64, 64))
