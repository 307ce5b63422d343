"""A newcomer's mistakes get one clear line naming the path and what is wrong, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner, Result

from maskprep import build_weights, make_sample
from maskprep.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("messages")
    data = make_sample(root / "data", n_images=3, size=(32, 32))
    build_weights(data, root / "s.zarr", scheduler="sync")
    return root / "s.zarr"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result: Result, code: int, *parts: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for part in parts:
        assert part in result.output, result.output


def test_preview_into_an_existing_file(store: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"x")
    result = run("preview", store, "-o", taken)
    assert_error(result, 1, f"{taken}: is a file", "the preview directory must be a directory")


def test_preview_under_a_file(store: Path, tmp_path: Path) -> None:
    taken = tmp_path / "file"
    taken.write_bytes(b"x")
    result = run("preview", store, "-o", taken / "sub")
    assert_error(
        result, 1, f"{taken / 'sub'}: cannot create the preview directory", f"{taken} is a file"
    )


def test_build_under_a_file(store: Path, tmp_path: Path) -> None:
    taken = tmp_path / "file"
    taken.write_bytes(b"x")
    data = store.parent / "data"
    result = run("build-weights", data, "-o", taken / "o.zarr", "-q")
    assert_error(result, 1, "cannot create the output store", f"{taken} is a file, not a directory")
    result = run("build-weights", data, "-o", taken, "-q")
    assert_error(result, 1, f"{taken}: is a file")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a Linux /proc")
def test_build_where_no_directory_can_be_made(store: Path) -> None:
    result = run("build-weights", store.parent / "data", "-o", "/proc/nope.zarr", "-q")
    assert_error(result, 1, "/proc/nope.zarr: cannot create the output store", "/proc writable")


def test_build_into_a_read_only_directory(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:
        # root may write anywhere: deny the write permission check as the kernel would.
        real = os.access

        def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
            if Path(str(path)) == locked and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", access)
    result = run("build-weights", store.parent / "data", "-o", locked / "o.zarr", "-q")
    assert_error(result, 1, f"{locked} is not writable")


def test_reweight_requires_a_scheme(store: Path) -> None:
    result = run("reweight", store)
    assert_error(result, 2, "Missing option '--class-weights'")


def test_dsb2018_layout_on_an_instances_dataset(store: Path, tmp_path: Path) -> None:
    data = store.parent / "data"
    result = run("build-weights", data, "-o", tmp_path / "o.zarr", "--layout", "dsb2018", "-q")
    assert_error(
        result,
        1,
        f"{data}: holds images/ and masks/ directly, which is the instances layout",
        "the dsb2018 layout expects one folder per sample, <stem>/images/<stem>.png",
    )
    assert "images/images/images.png" not in result.output


def test_dsb2018_folder_without_its_image(tmp_path: Path) -> None:
    root = tmp_path / "dsb"
    (root / "s1" / "images").mkdir(parents=True)
    (root / "s1" / "masks").mkdir()
    tifffile.imwrite(root / "s1" / "images" / "other.tif", np.zeros((4, 4), np.uint8))
    result = run("build-weights", root, "-o", tmp_path / "o.zarr", "--layout", "dsb2018", "-q")
    assert_error(
        result, 1, "expected the image s1/images/s1.png", "but s1/images/ holds other.tif"
    )


def test_images_and_masks_with_different_stems(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    tifffile.imwrite(root / "images" / "img2d.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(root / "masks" / "mask2d.tif", np.zeros((8, 8), np.uint16))
    result = run("build-weights", root, "-o", tmp_path / "o.zarr", "-q")
    assert_error(
        result,
        1,
        "1 image(s) have no mask in masks/: images/img2d.tif",
        "1 mask(s) have no image in images/: masks/mask2d.tif",
        "images and masks pair by file stem",
    )


def test_a_no_op_rerun_says_so(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "data", n_images=2, size=(16, 16))
    args = ("build-weights", data, "-o", tmp_path / "o.zarr", "-q")
    first = run(*args)
    assert first.exit_code == 0 and first.output.startswith("Wrote "), first.output
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert again.output.startswith(f"{tmp_path / 'o.zarr'} is already complete: 2 samples")
    assert "nothing written" in again.output and "Wrote" not in again.output
