"""Training targets against their peers' own code and slow obviously-correct references.

Peers: scikit-image (``find_boundaries``), stardist (``edt_prob``, C++
``star_dist`` / ``star_dist3D``), MONAI (``ComputeHoVerMaps``). Where a peer
caps or relabels ids (stardist casts to uint16, MONAI compares ids in
float32), it gets the image relabelled to 1..n, which changes nothing for
a target that only compares ids.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import stardist.utils
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from monai.transforms import ComputeHoVerMaps
from scipy import ndimage
from skimage.segmentation import find_boundaries, relabel_sequential
from stardist import Rays_GoldenSpiral
from stardist.geometry import star_dist, star_dist3D
from stardist.utils import edt_prob

import maskprep.targets.stardist as sd_mod
from maskprep.targets.affinities import affinities
from maskprep.targets.boundary import boundary_map
from maskprep.targets.distance import distance_map
from maskprep.targets.hover import hover_maps
from maskprep.targets.stardist import golden_spiral_rays, star_distances
from maskprep.targets.voidband import void_border_mask

# --------------------------------------------------------------------------
# inputs


def touching(
    shape: tuple[int, ...], n: int, seed: int, dtype: type = np.int64, max_id: int = 2**31 - 1
) -> np.ndarray:
    """Random disks (balls) split by nearest centre, so neighbours share borders.

    Centres may lie near or on the image edge, so instances are cut by it;
    ids are random, distinct and non-sequential in ``[1, max_id]``.
    """
    rng = np.random.default_rng(seed)
    grids = np.indices(shape, dtype=np.float64)
    centres = rng.uniform(0, np.asarray(shape, dtype=float), size=(n, len(shape)))
    radii = rng.uniform(2.0, max(3.0, min(shape) / 3), size=n)
    d = np.stack(
        [np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, ce, strict=True))) for ce in centres]
    )
    near = d.argmin(axis=0)
    inside = np.take_along_axis(d, near[None], 0)[0] <= radii[near]
    ids = rng.choice(max_id, size=n, replace=False) + 1
    out = np.where(inside, ids[near], 0)
    return out.astype(dtype)


def cases_2d() -> list[tuple[str, np.ndarray]]:
    full = np.full((9, 11), 77, np.int32)
    two = np.zeros((10, 12), np.uint16)
    two[2:8, 1:6] = 300
    two[2:8, 6:11] = 5
    edge = np.zeros((8, 10), np.uint32)
    edge[:, :4] = 2**32 - 1
    edge[3:, 4:] = 12
    return [
        ("empty", np.zeros((7, 9), np.uint8)),
        ("one", np.pad(np.full((4, 5), 3, np.int16), ((1, 2), (3, 1)))),
        ("one-full", full),
        ("two", two),
        ("edge", edge),
        ("single-row", np.array([[0, 4, 4, 4, 9, 9, 0, 4]], np.int64)),
        ("single-col", np.array([[4], [4], [9], [9], [9], [0]], np.uint64)),
        ("touching-u8", touching((40, 48), 12, 1, np.uint8, max_id=255)),
        ("touching-u16", touching((41, 37), 15, 2, np.uint16, max_id=65535)),
        ("touching-u32", touching((48, 40), 20, 3, np.uint32)),
        ("touching-i64", touching((36, 52), 25, 4, np.int64)),
        ("touching-i32", touching((30, 30), 8, 5, np.int32)),
    ]


def cases_3d() -> list[tuple[str, np.ndarray]]:
    full = np.full((4, 5, 6), 9, np.int32)
    two = np.zeros((6, 7, 8), np.uint16)
    two[1:5, 1:6, 1:4] = 1000
    two[1:5, 1:6, 4:7] = 3
    return [
        ("empty-3d", np.zeros((3, 4, 5), np.int32)),
        ("one-full-3d", full),
        ("two-3d", two),
        ("touching-3d-u32", touching((14, 18, 16), 10, 6, np.uint32)),
        ("touching-3d-i64", touching((12, 16, 20), 12, 7, np.int64)),
        ("flat-3d", touching((1, 20, 24), 6, 8, np.int32)),
    ]


CASES_2D = cases_2d()
CASES_3D = cases_3d()
ALL = CASES_2D + CASES_3D


def ids(cases: list[tuple[str, np.ndarray]]) -> list[str]:
    return [name for name, _ in cases]


def sequential(lab: np.ndarray) -> np.ndarray:
    """Ids relabelled to 1..n (int32), for peers that cap or round ids."""
    return relabel_sequential(lab.astype(np.int64))[0].astype(np.int32)


def test_touching_inputs_touch() -> None:
    lab = touching((40, 48), 12, 1)
    a, b = lab[:, 1:], lab[:, :-1]
    assert np.any((a != b) & (a > 0) & (b > 0))
    assert np.any(lab[0] > 0) or np.any(lab[-1] > 0) or np.any(lab[:, 0] > 0)
    assert len(np.unique(lab)) > 8


small_labels = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int32, np.uint64]),
    shape=st.one_of(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
    ),
    elements=st.sampled_from([0, 1, 2, 7, 200]),
)


# --------------------------------------------------------------------------
# boundary


def boundary_reference(lab: np.ndarray, width: int) -> np.ndarray:
    """City-block distance to another value in the image, by shifting over every offset."""
    near = np.zeros(lab.shape, bool)
    rng = range(-width, width + 1)
    for off in itertools.product(rng, repeat=lab.ndim):
        if sum(map(abs, off)) > width or not any(off):
            continue
        if any(abs(o) >= n for o, n in zip(off, lab.shape, strict=True)):
            continue
        dst = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, lab.shape, strict=True))
        src = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(off, lab.shape, strict=True))
        near[dst] |= lab[dst] != lab[src]
    return np.where(lab == 0, 0, np.where(near, 2, 1)).astype(np.uint8)


def iterated_find_boundaries(lab: np.ndarray, width: int) -> np.ndarray:
    """find_boundaries(inner) applied ``width`` times, removing what it found each time."""
    rest = lab.astype(np.int64)
    bnd = np.zeros(lab.shape, bool)
    for _ in range(width):
        found = find_boundaries(rest, mode="inner") & (rest != 0)
        bnd |= found
        rest = np.where(found, 0, rest)
    return np.where(lab == 0, 0, np.where(bnd, 2, 1)).astype(np.uint8)


@pytest.mark.parametrize(("name", "lab"), ALL, ids=ids(ALL))
def test_boundary_width1_is_find_boundaries_inner(name: str, lab: np.ndarray) -> None:
    got = boundary_map(lab)
    fb = find_boundaries(lab.astype(np.int64), mode="inner")
    want = np.where(lab == 0, 0, np.where(fb, 2, 1)).astype(np.uint8)
    assert got.dtype == np.uint8
    assert got.shape == lab.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("width", [1, 2, 3, 5])
@pytest.mark.parametrize(("name", "lab"), ALL, ids=ids(ALL))
def test_boundary_width_matches_references(name: str, lab: np.ndarray, width: int) -> None:
    got = boundary_map(lab, width=width)
    np.testing.assert_array_equal(got, boundary_reference(lab, width))
    np.testing.assert_array_equal(got, iterated_find_boundaries(lab, width))


@settings(max_examples=60, deadline=None)
@given(lab=small_labels, width=st.integers(1, 4))
def test_boundary_property(lab: np.ndarray, width: int) -> None:
    np.testing.assert_array_equal(boundary_map(lab, width=width), boundary_reference(lab, width))


def test_boundary_bool_and_noncontiguous() -> None:
    lab = touching((30, 40), 10, 9, np.int32)
    np.testing.assert_array_equal(boundary_map(lab > 0), boundary_map((lab > 0).astype(np.uint8)))
    view = lab.T
    np.testing.assert_array_equal(boundary_map(view), boundary_map(np.ascontiguousarray(view)))
    swapped = lab.astype(lab.dtype.newbyteorder(">"))
    np.testing.assert_array_equal(boundary_map(swapped), boundary_map(lab))


def test_boundary_huge_width() -> None:
    lab = touching((20, 24), 6, 15, np.int32)
    np.testing.assert_array_equal(boundary_map(lab, width=2**40), boundary_map(lab, width=44))
    assert set(np.unique(boundary_map(lab, width=2**40))) <= {0, 2}


@pytest.mark.parametrize("width", [0, -1, 1.5, True, "2"])
def test_boundary_rejects_bad_width(width: object) -> None:
    with pytest.raises(ValueError, match="width"):
        boundary_map(np.zeros((3, 3), np.int32), width=width)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [np.zeros(5, np.int32), np.zeros((2, 2, 2, 2), np.int32), np.zeros((3, 3), float)]
)
def test_targets_reject_bad_instances(bad: np.ndarray) -> None:
    for fn in (boundary_map, distance_map, star_distances, affinities):
        with pytest.raises(ValueError, match="instances"):
            fn(bad)
    with pytest.raises(ValueError, match="instances"):
        void_border_mask(bad, width=1)
    with pytest.raises(ValueError, match="instances"):
        hover_maps(bad)


# --------------------------------------------------------------------------
# distance (stardist edt_prob)


def edt_reference(lab: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
    """One full-image scipy EDT per instance, normalised as edt_prob."""
    out = np.zeros(lab.shape, np.float32)
    vals = np.unique(lab)
    vals = vals[vals != 0]
    for v in vals:
        mask = lab == v
        if mask.all():
            # stardist: a single instance everywhere has background around the image.
            sl = (slice(1, -1),) * lab.ndim
            d = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing)[sl]
        else:
            d = ndimage.distance_transform_edt(mask, sampling=spacing)
        out[mask] = d[mask] / (d[mask].max() + 1e-10)
    return out


@pytest.fixture
def edt_prob_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin edt_prob to its default scipy path.

    With the optional seung-lab ``edt`` installed, stardist switches to it,
    which normalises in float32 (last-bit differences); the scipy path and
    maskprep both divide in float64, then round.
    """
    monkeypatch.setattr(stardist.utils, "_edt_available", False)


@pytest.mark.usefixtures("edt_prob_scipy")
@pytest.mark.parametrize(("name", "lab"), ALL, ids=ids(ALL))
def test_distance_equals_stardist_edt_prob(name: str, lab: np.ndarray) -> None:
    got = distance_map(lab)
    assert got.dtype == np.float32
    assert got.shape == lab.shape
    seq = sequential(lab)
    if name.startswith("one-full"):
        with pytest.warns(UserWarning, match="constant label image"):
            want = edt_prob(seq)
    else:
        want = edt_prob(seq)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, edt_reference(lab, None))


@pytest.mark.usefixtures("edt_prob_scipy")
@pytest.mark.parametrize(
    "spacing2", [(1.0, 0.5), (0.3, 1.7), (2.0, 2.0)], ids=["half", "odd", "double"]
)
@pytest.mark.parametrize(("name", "lab"), ALL, ids=ids(ALL))
def test_distance_spacing(name: str, lab: np.ndarray, spacing2: tuple[float, float]) -> None:
    spacing = spacing2 if lab.ndim == 2 else (1.3, *spacing2)
    got = distance_map(lab, spacing=spacing)
    # Envelope and scipy sum the squared per-axis terms in different orders
    # and may pick different nearest pixels among near-ties: float64 last
    # bits, so a few float32 ulps at most.
    np.testing.assert_allclose(got, edt_reference(lab, spacing), rtol=2e-7, atol=1e-7)
    seq = sequential(lab)
    if name.startswith("one-full"):
        with pytest.warns(UserWarning, match="constant label image"):
            want = edt_prob(seq, anisotropy=spacing)
    else:
        want = edt_prob(seq, anisotropy=spacing)
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(lab=small_labels)
def test_distance_property(lab: np.ndarray) -> None:
    np.testing.assert_array_equal(distance_map(lab), edt_reference(lab, None))


def test_distance_huge_ids_and_bad_spacing() -> None:
    lab = touching((30, 34), 9, 10, np.int64)
    big = np.where(lab > 0, lab + 2**50, 0)
    np.testing.assert_array_equal(distance_map(big), distance_map(lab))
    neg = np.where(lab > 0, -lab, 0)
    np.testing.assert_array_equal(distance_map(neg), distance_map(lab))
    for bad in [(1.0,), (1.0, 0.0), (1.0, np.inf), (1.0, -2.0), "ab"]:
        with pytest.raises(ValueError, match="spacing"):
            distance_map(lab, spacing=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# stardist rays


@pytest.mark.parametrize("n_rays", [3, 4, 8, 17, 32, 64, 96])
@pytest.mark.parametrize(("name", "lab"), CASES_2D, ids=ids(CASES_2D))
def test_star_distances_equal_stardist_cpp(name: str, lab: np.ndarray, n_rays: int) -> None:
    got = star_distances(lab, n_rays=n_rays)
    assert got.dtype == np.float32
    assert got.shape == (*lab.shape, n_rays)
    np.testing.assert_array_equal(got, star_dist(sequential(lab), n_rays, mode="cpp"))


def test_star_distances_long_rays_equal_stardist_cpp() -> None:
    lab = touching((150, 180), 30, 11, np.uint32)
    lab[:, 90:] = np.where(lab[:, 90:] > 0, 0, 5)
    for n_rays in (32, 100):
        got = star_distances(lab, n_rays=n_rays)
        np.testing.assert_array_equal(got, star_dist(sequential(lab), n_rays, mode="cpp"))


@pytest.mark.parametrize("ndim", [2, 3])
def test_star_distances_exact_path_equal_stardist_cpp(
    ndim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Steps whose float32 position is near one half (rare: about 1 in 1000
    # on 1024^2) take each pixel's own coordinate; a huge bound sends most
    # steps there, so that path is checked against the C++ too.
    monkeypatch.setattr(sd_mod, "_walk_eps", lambda shape: 0.45)
    if ndim == 2:
        lab = touching((60, 70), 12, 13, np.int32)
        lab[:, 40:] = np.where(lab[:, 40:] > 0, 0, 5)
        for n_rays in (12, 32):
            want = star_dist(sequential(lab), n_rays, mode="cpp")
            np.testing.assert_array_equal(star_distances(lab, n_rays=n_rays), want)
    else:
        lab = touching((12, 20, 22), 8, 14, np.int32)
        want = star_dist3D(sequential(lab), Rays_GoldenSpiral(30), mode="cpp")
        np.testing.assert_array_equal(star_distances(lab, n_rays=30), want)


def wide_cases() -> list[tuple[str, np.ndarray]]:
    """Instances across the 64-pixel words of the row walks: full rows of 63-65, 128,
    129 and 200 pixels, touching instances on a wide image, one id in several
    pieces far apart (one box spanning others), a volume wider than a word."""
    out = [(f"full-{w}", np.full((7, w), 3, np.int32)) for w in (63, 64, 65, 128, 129, 200)]
    out.append(("touching-wide", touching((40, 230), 14, 9, np.int32)))
    pieces = touching((30, 150), 10, 10, np.int32)
    pieces[2:9, 3:20] = 5
    pieces[20:28, 120:148] = 5
    pieces[12, :] = 5
    out.append(("pieces", pieces))
    out.append(("touching-3d-wide", touching((6, 9, 140), 8, 11, np.int32)))
    return out


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize(("name", "lab"), wide_cases(), ids=ids(wide_cases()))
def test_star_distances_wide_instances_equal_stardist_cpp(
    name: str, lab: np.ndarray, exact: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if exact:  # most steps through the per-pixel float32 path
        monkeypatch.setattr(sd_mod, "_walk_eps", lambda shape: 0.45)
    if lab.ndim == 2:
        want = star_dist(sequential(lab), 24, mode="cpp")
    else:
        want = star_dist3D(sequential(lab), Rays_GoldenSpiral(24), mode="cpp")
    np.testing.assert_array_equal(star_distances(lab, n_rays=24), want)


def test_star_distances_ids_beyond_uint16() -> None:
    # stardist casts to uint16 first, where 7 and 65543 would merge.
    lab = np.zeros((6, 8), np.int64)
    lab[1:5, 1:4] = 7
    lab[1:5, 4:7] = 7 + 65536
    got = star_distances(lab, n_rays=8)
    np.testing.assert_array_equal(got, star_dist(sequential(lab), 8, mode="cpp"))
    assert not np.array_equal(got, star_dist(lab, 8, mode="cpp"))


@pytest.mark.parametrize("anisotropy", [None, (2.0, 1.0, 1.0), (1.0, 0.7, 1.3)])
@pytest.mark.parametrize("n_rays", [4, 33, 96])
def test_golden_spiral_rays_equal_stardist(n_rays: int, anisotropy: tuple | None) -> None:
    want = Rays_GoldenSpiral(n_rays, anisotropy=anisotropy).vertices
    np.testing.assert_array_equal(golden_spiral_rays(n_rays, anisotropy), want)


@pytest.mark.parametrize("n_rays", [6, 32, 96])
@pytest.mark.parametrize(("name", "lab"), CASES_3D, ids=ids(CASES_3D))
def test_star_distances_3d_equal_stardist_cpp(name: str, lab: np.ndarray, n_rays: int) -> None:
    got = star_distances(lab, n_rays=n_rays)
    assert got.shape == (*lab.shape, n_rays)
    want = star_dist3D(sequential(lab), Rays_GoldenSpiral(n_rays), mode="cpp")
    np.testing.assert_array_equal(got, want)


def test_star_distances_3d_anisotropy() -> None:
    lab = touching((10, 20, 20), 8, 12, np.int32)
    rays = Rays_GoldenSpiral(40, anisotropy=(2.0, 1.0, 1.0))
    got = star_distances(lab, n_rays=40, anisotropy=(2.0, 1.0, 1.0))
    np.testing.assert_array_equal(got, star_dist3D(sequential(lab), rays, mode="cpp"))


@settings(max_examples=40, deadline=None)
@given(lab=small_labels, n_rays=st.integers(4, 40))
def test_star_distances_property(lab: np.ndarray, n_rays: int) -> None:
    seq = sequential(lab)
    if lab.ndim == 2:
        want = star_dist(seq, n_rays, mode="cpp")
    else:
        want = star_dist3D(seq, Rays_GoldenSpiral(n_rays), mode="cpp")
    np.testing.assert_array_equal(star_distances(lab, n_rays=n_rays), want)


def test_star_distances_rejects_bad_arguments() -> None:
    lab2 = np.zeros((4, 4), np.int32)
    lab3 = np.zeros((4, 4, 4), np.int32)
    for bad in [2, 0, 3.0, True]:
        with pytest.raises(ValueError, match="n_rays"):
            star_distances(lab2, n_rays=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_rays"):
        star_distances(lab3, n_rays=3)
    with pytest.raises(ValueError, match="anisotropy"):
        star_distances(lab2, anisotropy=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        star_distances(lab3, anisotropy=(1.0, 0.0, 1.0))


# --------------------------------------------------------------------------
# HoVer maps (MONAI)


@pytest.mark.parametrize(("name", "lab"), CASES_2D, ids=ids(CASES_2D))
def test_hover_equals_monai(name: str, lab: np.ndarray) -> None:
    got = hover_maps(lab)
    assert got.dtype == np.float32
    assert got.shape == (*lab.shape, 2)
    want = np.asarray(ComputeHoVerMaps()(sequential(lab)[None]))
    np.testing.assert_array_equal(got, np.moveaxis(want, 0, -1))


@settings(max_examples=40, deadline=None)
@given(
    lab=hnp.arrays(
        dtype=np.int32,
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=14),
        elements=st.sampled_from([0, 1, 3, 50]),
    )
)
def test_hover_property(lab: np.ndarray) -> None:
    want = np.asarray(ComputeHoVerMaps()(sequential(lab)[None]))
    np.testing.assert_array_equal(hover_maps(lab), np.moveaxis(want, 0, -1))


def test_hover_orientation_and_3d_refused() -> None:
    lab = np.zeros((5, 9), np.int64)
    lab[1:4, 2:7] = 2**40
    h = hover_maps(lab)
    assert h[2, 2, 0] == -1 and h[2, 6, 0] == 1  # channel 0 runs along x
    assert h[1, 4, 1] == -1 and h[3, 4, 1] == 1  # channel 1 runs along y
    with pytest.raises(ValueError, match="2D"):
        hover_maps(np.zeros((3, 4, 5), np.int32))


# --------------------------------------------------------------------------
# affinities


def affinities_reference(lab: np.ndarray, offsets: list[tuple[int, ...]]) -> np.ndarray:
    """Per offset, a pixel loop over the image (gunpowder's definition, channels last)."""
    out = np.zeros((*lab.shape, len(offsets)), np.uint8)
    for c, off in enumerate(offsets):
        for p in np.ndindex(lab.shape):
            q = tuple(a + o for a, o in zip(p, off, strict=True))
            if all(0 <= qa < s for qa, s in zip(q, lab.shape, strict=True)):
                out[(*p, c)] = lab[p] != 0 and lab[p] == lab[q]
    return out


OFFSETS_2D = [None, [(-1, 0), (0, -1), (-3, 0), (0, -3), (2, 2), (-1, 4)], [(40, 0), (0, -100)]]
OFFSETS_3D = [None, [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (-2, 0, 0), (0, -4, -4), (1, 1, 1)]]


@pytest.mark.parametrize("offsets", OFFSETS_2D)
@pytest.mark.parametrize(("name", "lab"), CASES_2D, ids=ids(CASES_2D))
def test_affinities_2d_match_reference(name: str, lab: np.ndarray, offsets: list | None) -> None:
    got = affinities(lab, offsets=offsets)
    offs = [(-1, 0), (0, -1)] if offsets is None else offsets
    assert got.dtype == np.uint8
    assert got.shape == (*lab.shape, len(offs))
    np.testing.assert_array_equal(got, affinities_reference(lab, offs))


@pytest.mark.parametrize("offsets", OFFSETS_3D)
@pytest.mark.parametrize(("name", "lab"), CASES_3D, ids=ids(CASES_3D))
def test_affinities_3d_match_reference(name: str, lab: np.ndarray, offsets: list | None) -> None:
    got = affinities(lab, offsets=offsets)
    offs = [(-1, 0, 0), (0, -1, 0), (0, 0, -1)] if offsets is None else offsets
    np.testing.assert_array_equal(got, affinities_reference(lab, offs))


@settings(max_examples=60, deadline=None)
@given(lab=small_labels, data=st.data())
def test_affinities_property(lab: np.ndarray, data: st.DataObject) -> None:
    offs = data.draw(st.lists(st.tuples(*[st.integers(-5, 5)] * lab.ndim), min_size=1, max_size=4))
    np.testing.assert_array_equal(affinities(lab, offsets=offs), affinities_reference(lab, offs))


@pytest.mark.parametrize("offsets", [[], [(1,)], [(1, 2, 3)], [(1.0, 0)], [(True, 0)], [5], "ab"])
def test_affinities_reject_bad_offsets(offsets: object) -> None:
    with pytest.raises(ValueError, match="offset"):
        affinities(np.zeros((3, 3), np.int32), offsets=offsets)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# void band


def void_reference(lab: np.ndarray, width: float, mode: str) -> np.ndarray:
    """Border pixels by explicit neighbour pairs, then scipy's EDT to them."""
    seeds = np.zeros(lab.shape, bool)
    for axis in range(lab.ndim):
        n = lab.shape[axis]
        a = np.take(lab, range(n - 1), axis=axis)
        b = np.take(lab, range(1, n), axis=axis)
        pair = a != b
        if mode == "between":
            pair &= (a != 0) & (b != 0)
        lo = [slice(None)] * lab.ndim
        hi = [slice(None)] * lab.ndim
        lo[axis] = slice(0, n - 1)
        hi[axis] = slice(1, n)
        seeds[tuple(lo)] |= pair
        seeds[tuple(hi)] |= pair
    if not seeds.any():
        return seeds
    return ndimage.distance_transform_edt(~seeds) <= width


WIDTHS = [0, 0.5, 1, 1.5, np.sqrt(2), 2.9, 5, 100]


@pytest.mark.parametrize("mode", ["between", "around"])
@pytest.mark.parametrize(("name", "lab"), ALL, ids=ids(ALL))
def test_void_matches_reference(name: str, lab: np.ndarray, mode: str) -> None:
    for width in WIDTHS:
        got = void_border_mask(lab, width=width, mode=mode)
        assert got.dtype == np.bool_
        assert got.shape == lab.shape
        np.testing.assert_array_equal(got, void_reference(lab, width, mode), err_msg=f"{width}")


@pytest.mark.parametrize(("name", "lab"), ALL, ids=ids(ALL))
def test_void_around_width0_is_find_boundaries_thick(name: str, lab: np.ndarray) -> None:
    got = void_border_mask(lab, width=0, mode="around")
    np.testing.assert_array_equal(got, find_boundaries(lab.astype(np.int64), mode="thick"))


@settings(max_examples=60, deadline=None)
@given(
    lab=small_labels,
    width=st.floats(0, 8, allow_nan=False),
    mode=st.sampled_from(["between", "around"]),
)
def test_void_property(lab: np.ndarray, width: float, mode: str) -> None:
    np.testing.assert_array_equal(
        void_border_mask(lab, width=width, mode=mode), void_reference(lab, width, mode)
    )


def test_void_rejects_bad_arguments() -> None:
    lab = np.zeros((3, 3), np.int32)
    for width in [-1, np.nan, np.inf, "1", True]:
        with pytest.raises(ValueError, match="width"):
            void_border_mask(lab, width=width)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        void_border_mask(lab, width=1, mode="inner")
