"""The ``cellpose`` target against cellpose's own ``masks_to_flows_gpu`` (CPU device).

torch sums the 9 neighbours of the last ``N % 16`` instance pixels (C order,
``N`` of them in the image) in another order than the rest (its vectorised
reduction's tail), so those pixels' heat differs from a plain left-to-right
sum in the last float64 bit. maskprep sums every pixel left to right; the
exact oracle therefore appends, below a background row, a dummy instance of
``16 - N % 16`` pixels, which moves the tail onto it, and passes cellpose's
own step count of the real image (``niter``). Without that, the outputs
agree to 1e-6 (a test checks that too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cellpose.dynamics import masks_to_flows_gpu
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.ndimage import find_objects
from test_targets import CASES_2D, ids, sequential, touching

from maskprep import BuildConfig, build_weights, compute_target, make_sample, open_shards
from maskprep.errors import DataError
from maskprep.targets.cellpose import cellpose_flows


def _niter(seq: np.ndarray) -> int:
    """cellpose's default step count (``get_centers``' extents)."""
    exts = [(s[0].stop - s[0].start) + (s[1].stop - s[1].start) + 2 for s in find_objects(seq)]
    return 2 * max(exts)


def cellpose_oracle(lab: np.ndarray, *, exact: bool = True) -> np.ndarray:
    """cellpose's flows of ``lab``, channel last, float32 (as ``labels_to_flows``)."""
    seq = sequential(lab)
    if seq.max() == 0 or not exact:
        mu, _ = masks_to_flows_gpu(seq, device=torch.device("cpu"))
    else:
        h, w = seq.shape
        k = (16 - np.count_nonzero(seq) % 16) % 16
        extra = np.zeros((1 + -(-k // w), w), np.int32)
        extra.reshape(-1)[w : w + k] = seq.max() + 1
        padded = np.concatenate([seq, extra])
        mu, _ = masks_to_flows_gpu(padded, device=torch.device("cpu"), niter=_niter(seq))
        mu = mu[:, :h]
    return np.moveaxis(mu, 0, -1).astype(np.float32)


def _pieces() -> np.ndarray:
    lab = touching((30, 150), 10, 10, np.int32)
    lab[2:9, 3:20] = 5  # one id in three pieces, its box spanning the others
    lab[20:28, 120:148] = 5
    lab[12, :] = 5
    return lab


EXTRA = [
    ("wide", touching((50, 140), 20, 12, np.int32)),
    ("pieces", _pieces()),
    ("dots", np.kron(np.arange(1, 13, dtype=np.int32).reshape(3, 4), np.ones((1, 1), np.int32))),
    ("bool", touching((20, 24), 4, 13, np.int32) > 0),
]
CASES = CASES_2D + EXTRA


@pytest.mark.parametrize(("name", "lab"), CASES, ids=ids(CASES))
def test_cellpose_flows_equal_cellpose(name: str, lab: np.ndarray) -> None:
    got = cellpose_flows(lab)
    assert got.dtype == np.float32
    assert got.shape == (*lab.shape, 2)
    np.testing.assert_array_equal(got, cellpose_oracle(lab))
    assert not got[lab == 0].any()


@pytest.mark.parametrize(("name", "lab"), CASES, ids=ids(CASES))
def test_cellpose_flows_near_cellpose_without_the_tail_shift(name: str, lab: np.ndarray) -> None:
    np.testing.assert_allclose(cellpose_flows(lab), cellpose_oracle(lab, exact=False), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    lab=hnp.arrays(
        np.int32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=14),
        elements=st.integers(0, 4),
    )
)
def test_cellpose_flows_property(lab: np.ndarray) -> None:
    np.testing.assert_array_equal(cellpose_flows(lab), cellpose_oracle(lab))


def test_cellpose_flows_sample_data_and_refusals(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "d", n_images=3, size=(64, 72), seed=3)
    out = tmp_path / "o.zarr"
    build_weights(data, out, BuildConfig(targets=("weights", "cellpose")), scheduler="sync")
    shards = open_shards(out)
    for i in range(len(shards)):
        s = shards[i]
        np.testing.assert_array_equal(s["cellpose"], cellpose_oracle(s["instances"]))
        np.testing.assert_array_equal(s["cellpose"], compute_target("cellpose", s["instances"]))
    # The step count depends on the largest instance: never built block by block.
    with pytest.raises(DataError, match="target 'cellpose' needs"):
        build_weights(
            data,
            tmp_path / "b.zarr",
            BuildConfig(tile=16, block=32, targets=("cellpose",)),
            scheduler="sync",
        )
    with pytest.raises(ValueError, match="2D"):
        cellpose_flows(np.zeros((3, 4, 5), np.int32))
    with pytest.raises(ValueError, match="integer or bool"):
        cellpose_flows(np.zeros((3, 4), np.float32))
