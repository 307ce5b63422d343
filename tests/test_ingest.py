"""Dataset discovery and the clear errors bad inputs get."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from maskprep import DataError, discover, make_sample, read_sample


def _dataset(
    root: Path, stems: tuple[str, ...] = ("a", "b"), shape: tuple[int, int] = (8, 8)
) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for s in stems:
        Image.fromarray(np.zeros(shape, np.uint8)).save(root / "images" / f"{s}.png")
        m = np.zeros(shape, np.uint8)
        m[1:3, 1:3] = 5
        Image.fromarray(m).save(root / "masks" / f"{s}.png")
    return root


def test_discover_instances_sorted_with_split(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", ("c", "a", "b"))
    (root / "valid.txt").write_text("b.png\n\n# comment\n")
    ds = discover(root)
    assert ds.layout == "instances"
    assert [s.sample_id for s in ds.samples] == ["a", "b", "c"]
    assert [s.split for s in ds.samples] == ["train", "valid", "train"]


def test_discover_dsb2018(tmp_path: Path) -> None:
    root = make_sample(tmp_path / "dsb", n_images=2, size=(16, 16), layout="dsb2018")
    ds = discover(root)
    assert ds.layout == "dsb2018"
    assert all(len(s.masks) >= 1 for s in ds.samples)


def test_3d_tiff_sample(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    vol = np.zeros((4, 8, 8), np.uint16)
    vol[1:3, 2:5, 2:5] = 9
    tifffile.imwrite(root / "images" / "v.tif", vol.astype(np.uint8), photometric="minisblack")
    tifffile.imwrite(root / "masks" / "v.tif", vol, photometric="minisblack")
    s = read_sample(discover(root).samples[0])
    assert s.instances.shape == (4, 8, 8) and s.instances.dtype == np.int32
    np.testing.assert_array_equal(s.instances, vol)


def _bad(tmp_path: Path, case: str) -> tuple[Path, str]:
    """Build a dataset with one defect; return it and the expected message pattern."""
    root = _dataset(tmp_path / "d")
    if case == "unknown valid stem":
        (root / "valid.txt").write_text("a\nzebra\n")
        return root, r"valid\.txt: names samples that do not exist: 'zebra'"
    if case == "image without mask":
        (root / "masks" / "b.png").unlink()
        return root, r"d: 1 image\(s\) have no mask in masks/: images/b\.png \(.*pair by file stem"
    if case == "mask without image":
        (root / "images" / "b.png").unlink()
        return root, r"d: 1 mask\(s\) have no image in images/: masks/b\.png \(.*pair by file stem"
    if case == "duplicate stems":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / "a.tif")
        return root, r"two files share the stem 'a': a\.png and a\.tif"
    if case == "shape mismatch":
        Image.fromarray(np.zeros((9, 8), np.uint8)).save(root / "images" / "a.png")
        return root, r"a\.png: image shape \(9, 8\) does not match mask shape \(8, 8\)"
    if case == "float mask":
        (root / "masks" / "a.png").unlink()
        tifffile.imwrite(root / "masks" / "a.tif", np.zeros((8, 8), np.float32))
        return root, r"a\.tif: mask has floating-point dtype float32"
    if case == "negative mask":
        (root / "masks" / "a.png").unlink()
        tifffile.imwrite(root / "masks" / "a.tif", -np.ones((8, 8), np.int16))
        return root, r"a\.tif: mask has negative values"
    if case == "rgb mask":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "masks" / "a.png")
        return root, r"a\.png: mask is an RGB\(A\) image"
    if case == "truncated image":
        data = (root / "images" / "b.png").read_bytes()
        (root / "images" / "b.png").write_bytes(data[: len(data) // 2])
        return root, r"b\.png: cannot read image"
    if case == "unlabeled mismatch":
        (root / "unlabeled").mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "unlabeled" / "a.png")
        return root, r"unlabeled/a\.png: unlabeled mask shape \(4, 4\) does not match"
    if case == "symlink escape":
        outside = tmp_path / "outside.png"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(outside)
        (root / "images" / "c.png").symlink_to(outside)
        (root / "masks" / "c.png").symlink_to(outside)
        return root, r"c\.png: resolves outside the dataset directory"
    if case == "decompression bomb":
        Image.fromarray(np.zeros((300, 300), np.uint8)).save(root / "images" / "a.png")
        return root, r"a\.png: image has 90,000 pixel values, more than the limit of 10,000"
    if case == "id overflow":
        (root / "masks" / "a.png").unlink()
        tifffile.imwrite(root / "masks" / "a.tif", np.full((8, 8), 2**31 + 5, np.uint32))
        return root, r"a\.tif: instance id 2147483653 does not fit in int32"
    if case == "non-utf8 name":
        bad = os.fsdecode(b"bad\xff.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / bad)
        return root, r"file name 'bad\\udcff\.png' is not valid UTF-8"
    if case == "dsb2018 overlap":
        root = make_sample(tmp_path / "dsb", n_images=1, size=(16, 16), layout="dsb2018")
        masks = sorted((root / "dsb_000" / "masks").glob("*.png"))
        (root / "dsb_000" / "masks" / "zz.png").write_bytes(masks[0].read_bytes())
        return root, rf"zz\.png: overlaps .*{masks[0].name}"
    if case == "empty dataset":
        for p in [*(root / "images").iterdir(), *(root / "masks").iterdir()]:
            p.unlink()
        return root, r"the dataset is empty"
    if case == "unknown layout":
        for sub in ("images", "masks"):
            for p in (root / sub).iterdir():
                p.unlink()
            (root / sub).rmdir()
        return root, r"cannot detect the dataset layout"
    raise AssertionError(case)


BAD_CASES = [
    "unknown valid stem",
    "image without mask",
    "mask without image",
    "duplicate stems",
    "shape mismatch",
    "float mask",
    "negative mask",
    "rgb mask",
    "truncated image",
    "unlabeled mismatch",
    "symlink escape",
    "empty dataset",
    "unknown layout",
    "decompression bomb",
    "id overflow",
    "non-utf8 name",
    "dsb2018 overlap",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gets_a_clear_error(tmp_path: Path, case: str) -> None:
    root, pattern = _bad(tmp_path, case)

    def ingest_all() -> None:
        for s in discover(root).samples:
            read_sample(s, max_pixels=10_000)

    with pytest.raises(DataError, match=pattern):
        ingest_all()
