"""The scan's numba kernels against obviously-correct references (skimage, numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from maskprep.pipeline.scan import count_instances, instance_pieces, split_instances


def reference_pieces(instances: np.ndarray) -> tuple[list[int], int]:
    """Ids in several pieces (skimage.measure.label, full connectivity) and the id count."""
    from skimage.measure import label

    n_ids = int(np.count_nonzero(np.unique(instances)))
    if instances.size == 0:
        return [], 0
    pieces = label(instances, background=0, connectivity=instances.ndim)
    n = int(pieces.max())
    if n == 0:
        return [], n_ids
    id_of_piece = np.zeros(n + 1, dtype=instances.dtype)
    id_of_piece[pieces.ravel()] = instances.ravel()
    ids, counts = np.unique(id_of_piece[1:], return_counts=True)
    return [int(i) for i in ids[counts > 1]], n_ids


def check(instances: np.ndarray) -> None:
    split, n_ids = reference_pieces(instances)
    pieces = instance_pieces(instances)
    assert pieces.dtype == instances.dtype
    assert split_instances(instances) == split
    assert int(np.unique(pieces).size) == n_ids
    # Every piece is one connected component: as many entries as skimage finds.
    from skimage.measure import label

    if instances.size:
        n = int(label(instances, background=0, connectivity=instances.ndim).max())
        assert pieces.size == n
    else:
        assert pieces.size == 0


EDGE_2D = [
    np.zeros((0, 0), np.int32),
    np.zeros((1, 1), np.int32),
    np.ones((1, 1), np.int32),
    np.zeros((4, 5), np.uint16),
    np.full((3, 4), 9, np.int64),
    np.array([[1, 0, 1]], np.int32),  # one row, split
    np.array([[1], [0], [1]], np.int32),  # one column, split
    np.array([[1, 0], [0, 1]], np.int32),  # diagonal: one piece in 8-connectivity
    np.array([[0, 1], [1, 0]], np.int32),  # anti-diagonal
    np.array([[1, 2], [2, 1]], np.int32),  # both diagonals, two ids
    np.array([[3, 0, 0, 3], [0, 3, 3, 0]], np.int32),
    np.array([[5, 5, 0, 7, 7], [0, 0, 0, 0, 0], [7, 0, 0, 0, 5]], np.uint8),
    np.array([[-1, 0, -1], [2**31 - 1, 0, -(2**31)]], np.int32),  # signed extremes
    np.array([[2**63, 0, 2**63], [0, 1, 0]], np.uint64),
    np.array([[2**40, 0], [0, 2**40]], np.int64),
    np.array([[True, False, True]]),
]


@pytest.mark.parametrize("instances", EDGE_2D, ids=lambda a: f"{a.dtype}{a.shape}")
def test_pieces_edge_2d(instances: np.ndarray) -> None:
    check(instances)


def test_pieces_edge_3d() -> None:
    corner = np.zeros((2, 2, 2), np.int32)
    corner[0, 0, 0] = corner[1, 1, 1] = 4  # touch at a corner only: one piece (26)
    check(corner)
    assert split_instances(corner) == []
    apart = np.zeros((3, 2, 2), np.int32)
    apart[0, 0, 0] = apart[2, 1, 1] = 4  # a plane between them: two pieces
    assert split_instances(apart) == [4]
    check(apart)
    # A U shape whose arms join only in the last plane, read first as two runs.
    u = np.zeros((3, 3, 3), np.uint16)
    u[:, 0, 0] = u[:, 0, 2] = 6
    u[2, 0, 1] = 6
    check(u)
    assert split_instances(u) == []
    check(np.zeros((1, 1, 1), np.int32))
    check(np.full((2, 3, 4), 3, np.int32))
    check(np.zeros((0, 3, 4), np.int32))


def test_pieces_join_late_spirals() -> None:
    """A comb whose teeth join at the bottom only: unions after many runs."""
    comb = np.zeros((9, 17), np.int32)
    comb[:, ::2] = 8
    comb[-1] = 8
    comb[0, 1] = 2
    comb[2, 1] = 2  # 2 in two pieces between the teeth
    check(comb)
    assert split_instances(comb) == [2]
    check(np.ascontiguousarray(comb.T))
    check(np.ascontiguousarray(comb[::-1]))


@pytest.mark.parametrize("seed", range(6))
def test_pieces_random_3d(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 14, 3))
    n = int(rng.integers(1, 6))
    ids = rng.choice([0, 3, 7, 2**20, 99, 12345], n + 1, replace=False)
    instances = ids[rng.integers(0, n + 1, shape)].astype(rng.choice(["int32", "int64", "uint32"]))
    check(instances)
    # Sparse blobs: some split, some not.
    sparse = np.where(rng.random(shape) < 0.15, instances, 0)
    check(sparse)
    check(np.ascontiguousarray(sparse.transpose(2, 0, 1)))


@pytest.mark.parametrize("seed", range(6))
def test_pieces_random_2d(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(s) for s in rng.integers(1, 40, 2))
    instances = rng.integers(0, 4, shape).astype(np.uint16) * 5
    check(instances)
    check(np.where(rng.random(shape) < 0.3, instances, 0).astype(np.uint16))


def test_pieces_of_a_non_contiguous_view() -> None:
    rng = np.random.default_rng(7)
    big = rng.integers(0, 3, (6, 20, 20)).astype(np.int32)
    check(big[1:5, ::2, 3:17])
    check(big[2][:, ::-1])


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.int32,
        st.tuples(*(st.integers(1, 7),) * 3) | st.tuples(*(st.integers(1, 12),) * 2),
        elements=st.sampled_from([0, 0, 1, 2, -5, 1000]),
    )
)
def test_pieces_hypothesis(instances: np.ndarray) -> None:
    check(instances)
    assert count_instances(np.abs(instances)) == int(
        np.unique(instance_pieces(np.abs(instances))).size
    )


@pytest.mark.parametrize("num_classes", [1, 2, 3, 8, 9, 40])
@pytest.mark.parametrize("void_label", [0, 1, 255, 300])
def test_count_classes_equals_bincount(num_classes: int, void_label: int) -> None:
    """Both paths of count_classes (per-class comparisons, chunked bincount) against
    one np.bincount, on images bigger than a chunk, with void and stray values."""
    from maskprep.weighting import count_classes

    rng = np.random.default_rng(num_classes * 1000 + void_label)
    dtype = np.uint16 if void_label > 255 else np.uint8
    for size in (0, 7, (1 << 20) + 3, 3 * (1 << 20)):
        labels = rng.integers(0, num_classes + 2, size).astype(dtype)
        labels[rng.random(size) < 0.1] = void_label
        labels = labels.reshape((-1, 1) if size % 2 else (1, -1))
        ref = np.bincount(labels.ravel(), minlength=max(num_classes, void_label + 1))
        ref[void_label] = 0
        got = count_classes(labels, void_label, num_classes)
        assert got.dtype == np.int64
        assert got.tolist() == ref[:num_classes].tolist()
