"""Bad inputs and faults, one case per item of "Nothing lost, nothing silently wrong".

Every case is deterministic: concurrency and changes during a build are staged
through monkeypatched hooks (a function of the build wrapped to act at a known
point), never by racing a process against the clock. CLI cases run through
click's CliRunner and expect exit code 1 and one ``Error: ...`` line naming
the file; library cases expect the message through ``pytest.raises``.
``docs/reliability.md`` lists the cases.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import tifffile
import zarr
from click.testing import CliRunner, Result
from PIL import Image

import maskprep.pipeline.build as build_module
from maskprep import (
    BuildConfig,
    ClassWeightConfig,
    MaskprepError,
    StoreError,
    build_weights,
    make_sample,
    open_shards,
    reweight,
    verify_store,
)
from maskprep.cli import main
from maskprep.pipeline.runner import CONNECT_TIMEOUT
from maskprep.store import SHAPES_KEY, Location, index_nbytes, lock_path

CFG = BuildConfig(shard_size=2)


def _data(tmp: Path, n: int = 4) -> Path:
    return make_sample(tmp / "data", n_images=n, size=(16, 16))


def _built(tmp: Path) -> tuple[Path, Path]:
    """A :func:`_data` dataset and the store ``tmp/out.zarr`` built from it with CFG."""
    data = _data(tmp)
    out = tmp / "out.zarr"
    build_weights(data, out, CFG, scheduler="sync")
    return data, out


def _tiff_data(tmp: Path, n: int = 3, sizes: dict[int, int] | None = None) -> Path:
    """An instances dataset of uncompressed TIFFs: a rewrite keeps the file size.

    Sample ``i`` is ``sizes[i]`` pixels square (default 16).
    """
    root = tmp / "tiffs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        side = (sizes or {}).get(i, 16)
        img = np.full((side, side), 10 * i, dtype=np.uint8)
        mask = np.zeros((side, side), dtype=np.uint16)
        mask[2:8, 2:8] = 1
        tifffile.imwrite(root / "images" / f"s{i}.tif", img)
        tifffile.imwrite(root / "masks" / f"s{i}.tif", mask)
    return root


def _files_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _cli(args: list[str]) -> Result:
    return CliRunner().invoke(main, args)


def _one_error_line(r: Result, *needles: str) -> None:
    """Exit 1, no traceback, one ``Error:`` line containing every needle."""
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, r.output
    for n in needles:
        assert n in errors[0], (n, errors[0])


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _after_pass_1(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` once, after pass 1 of the next build has finished."""
    real = build_module.scan_dataset

    def scan_then_act(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        action()
        return out

    monkeypatch.setattr(build_module, "scan_dataset", scan_then_act)


# -- item 1: --overwrite builds aside and replaces only on success ---------------------------


def case_overwrite_keeps_old_store_when_new_build_fails(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = _built(tmp)
    before = _files_digest(out)
    bad = sorted((data / "masks").iterdir())[1]
    bad.write_bytes(b"garbage, not a PNG")
    r = _cli(["build-weights", str(data), "-o", str(out), "--overwrite", "-q",
              "--scheduler", "sync", "--shard-size", "2"])  # fmt: skip
    _one_error_line(r, str(bad))
    assert _files_digest(out) == before
    assert verify_store(out).ok
    assert not Location.parse(out).sibling("build").path.exists()


def case_overwrite_failing_in_pass_2_keeps_old_store(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = _built(tmp)
    before = _files_digest(out)
    victim = sorted((data / "masks").iterdir())[0]
    _after_pass_1(monkeypatch, lambda: victim.write_bytes(b"truncated"))
    with pytest.raises(MaskprepError, match=f"{victim}: changed while the build"):
        build_weights(data, out, BuildConfig(shard_size=2, w0=3), scheduler="sync", overwrite=True)
    assert _files_digest(out) == before
    assert not Location.parse(out).sibling("build").path.exists()


def case_overwrite_success_replaces(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, out = _built(tmp)
    build_weights(data, out, BuildConfig(shard_size=2, w0=3), scheduler="sync", overwrite=True)
    assert verify_store(out).ok
    meta = json.loads((out / "zarr.json").read_text())["attributes"]["maskprep"]
    assert meta["w0"] == 3
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".out.zarr")] == []


# -- item 2: one writer at a time ------------------------------------------------------------


def case_concurrent_build_is_refused(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp)
    out = tmp / "out.zarr"
    second: list[BaseException] = []

    def second_writer() -> None:
        try:
            build_weights(data, out, BuildConfig(shard_size=2, w0=2), scheduler="sync")
        except StoreError as exc:
            second.append(exc)

    _after_pass_1(monkeypatch, second_writer)
    build_weights(data, out, BuildConfig(shard_size=2, w0=10), scheduler="sync")
    assert len(second) == 1
    assert "another maskprep writer" in str(second[0])
    assert f"pid {os.getpid()}" in str(second[0])
    meta = json.loads((out / "zarr.json").read_text())["attributes"]["maskprep"]
    assert meta["w0"] == 10 and verify_store(out).ok
    assert not lock_path(Location.parse(out)).exists()


def case_cli_second_writer_gets_error(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp)
    out = tmp / "out.zarr"
    lock = lock_path(Location.parse(out))
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    r = _cli(["build-weights", str(data), "-o", str(out), "-q", "--scheduler", "sync"])
    _one_error_line(r, "another maskprep writer", str(lock))
    assert not out.exists()


def case_reweight_during_a_build_is_refused(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _built(tmp)[1]
    before = _files_digest(out)
    lock = lock_path(Location.parse(out))
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    r = _cli(["reweight", str(out), "--class-weights", "none", "-q", "--scheduler", "sync"])
    _one_error_line(r, "another maskprep writer")
    assert _files_digest(out) == before


def case_stale_lock_is_taken_over(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp)
    out = tmp / "out.zarr"
    lock = lock_path(Location.parse(out))
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    build_weights(data, out, CFG, scheduler="sync")
    assert verify_store(out).ok and not lock.exists()


# -- item 3: inputs rewritten during the build -----------------------------------------------


def case_input_rewritten_between_passes(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tiff_data(tmp)
    out = tmp / "out.zarr"
    victim = data / "masks" / "s1.tif"

    def rewrite() -> None:
        mask = np.zeros((16, 16), dtype=np.uint16)
        mask[0:12, 0:12] = 1
        tifffile.imwrite(victim, mask)
        os.utime(victim, ns=(0, 12345))  # a different mtime

    _after_pass_1(monkeypatch, rewrite)
    with pytest.raises(ValueError, match=f"{victim}: changed while the build was running"):
        build_weights(data, out, CFG, scheduler="sync")
    assert "incomplete" in verify_store(out).problems[0]


def case_input_rewritten_with_same_size_and_mtime(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _tiff_data(tmp)
    out = tmp / "out.zarr"
    victim = data / "masks" / "s1.tif"

    def rewrite_keeping_stat() -> None:
        st = victim.stat()
        mask = np.zeros((16, 16), dtype=np.uint16)
        mask[0:12, 0:12] = 1
        tifffile.imwrite(victim, mask)
        assert victim.stat().st_size == st.st_size
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))

    _after_pass_1(monkeypatch, rewrite_keeping_stat)
    with pytest.raises(ValueError, match=r"s1\.tif: changed while the build .*class counts"):
        build_weights(data, out, CFG, scheduler="sync")
    assert not verify_store(out).ok


# -- item 4: multi-channel masks are refused, not read as volumes -----------------------------


def _pair(tmp: Path, image: np.ndarray, mask: np.ndarray, ext: str, **pil: Any) -> Path:
    root = tmp / "pair"
    for sub, arr in (("images", image), ("masks", mask)):
        (root / sub).mkdir(parents=True)
        path = root / sub / f"a{ext}"
        if ext == ".tif":
            tifffile.imwrite(path, arr, photometric="rgb" if arr.ndim == 3 else None)
        else:
            Image.fromarray(arr, **pil).save(path)
    return root


def case_rgb_tiff_mask_beside_rgb_image(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[4:8, 4:8] = (10, 200, 30)
    data = _pair(tmp, rgb, rgb, ".tif")
    r = _cli(["build-weights", str(data), "-o", str(tmp / "o.zarr"), "-q", "--scheduler", "sync"])
    _one_error_line(r, str(data / "masks" / "a.tif"), "RGB(A) image", "single-channel")
    assert not (tmp / "o.zarr").exists()


def case_grey_alpha_png_mask_beside_grey_alpha_image(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    la = np.zeros((16, 16, 2), dtype=np.uint8)
    la[..., 1] = 255
    la[4:8, 4:8, 0] = 1
    data = _pair(tmp, la, la, ".png")
    with pytest.raises(ValueError, match=r"a\.png: mask is a grey\+alpha image"):
        build_weights(data, tmp / "o.zarr", scheduler="sync")


# -- item 7: silent misreads ----------------------------------------------------------------


def case_dsb2018_mask_drawn_in_green_is_read(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp / "dsb"
    (root / "s0" / "images").mkdir(parents=True)
    (root / "s0" / "masks").mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, dtype=np.uint8)).save(root / "s0/images/s0.png")
    green = np.zeros((16, 16, 3), dtype=np.uint8)
    green[2:9, 3:7, 1] = 255
    Image.fromarray(green).save(root / "s0/masks/m1.png")
    build_weights(root, tmp / "o.zarr", scheduler="sync")
    sample = open_shards(tmp / "o.zarr")[0]
    assert int((sample["instances"] == 1).sum()) == 7 * 4
    assert int((sample["labels"] == 1).sum()) == 7 * 4


def case_output_inside_a_dsb2018_dataset(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_sample(tmp / "dsb", n_images=3, size=(16, 16), layout="dsb2018")
    out = data / "out.zarr"
    first = build_weights(data, out, scheduler="sync")
    again = build_weights(data, out, scheduler="sync")  # the store is not taken for a sample
    assert first.n_samples == again.n_samples == 3 and again.shards_written == 0


def case_palette_image_is_read_as_colours(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx = np.zeros((16, 16), dtype=np.uint8)
    idx[4:8, 4:8] = 1
    mask = (idx * 3).astype(np.uint8)
    data = _pair(tmp, idx, mask, ".png")
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 200, 10, 30] + [0] * (256 * 3 - 6))
    im.save(data / "images" / "a.png")
    build_weights(data, tmp / "o.zarr", scheduler="sync")
    image = open_shards(tmp / "o.zarr")[0]["image"]
    assert image.shape == (16, 16, 3)
    assert image[5, 5].tolist() == [200, 10, 30] and image[0, 0].tolist() == [0, 0, 0]


# -- item 5: the shapes array is checksummed --------------------------------------------------


def case_flipped_bit_in_shapes_fails_verify(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _built(tmp)[1]
    chunk = out / SHAPES_KEY
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.write_bytes(bytes(raw))
    r = _cli(["verify", str(out)])
    assert r.exit_code == 1 and f"{SHAPES_KEY}: checksum mismatch" in r.output
    with pytest.raises(StoreError, match="checksum mismatch"):
        open_shards(out)


def case_padded_shape_enlarged_fails_verify_and_reader(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp / "out.zarr"
    build_weights(_tiff_data(tmp, sizes={0: 24}), out, CFG, scheduler="sync")
    shapes = zarr.open_array(str(out / "shapes"), mode="r+")
    assert shapes[1].tolist() == [16, 16]
    shapes[1] = [24, 24]  # validly encoded: only the checksum can tell
    report = verify_store(out)
    assert any(f"{SHAPES_KEY}: checksum mismatch" in p for p in report.problems), report
    with pytest.raises(StoreError, match=f"{SHAPES_KEY}: checksum mismatch"):
        open_shards(out)


# -- item 6: every chunk of format 2 carries a crc32c that every read checks ------------------


def case_flipped_bits_in_shard_chunks_fail_every_read(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp / "out.zarr"
    build_weights(_data(tmp), out, BuildConfig(shard_size=2, tile=8), scheduler="sync")
    with open_shards(out) as shards:
        before = [shards[i] for i in range(len(shards))]
    shard = out / "weights" / "c" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    rng = np.random.default_rng(6)
    n_chunks = 2 * 2 * 2  # 2 samples of 2x2 tiles
    for byte in rng.choice(len(raw) - index_nbytes(n_chunks), size=40, replace=False):
        damaged = bytearray(raw)
        damaged[int(byte)] ^= 1 << int(rng.integers(8))
        shard.write_bytes(bytes(damaged))
        errors = []
        with open_shards(out) as shards:
            for i in range(len(shards)):
                try:
                    got = shards[i]
                except StoreError as exc:
                    errors.append(str(exc))
                    continue
                assert all(np.array_equal(got[n], before[i][n]) for n in got)
        assert len(errors) == 1, errors  # the one sample whose chunk holds the byte
        assert errors[0].startswith(f"{shard}: chunk (") and "crc32c" in errors[0]
    r = _cli(["verify", str(out)])
    assert r.exit_code == 1 and "fails its crc32c checksum" in r.output
    shard.write_bytes(bytes(raw))
    assert verify_store(out).ok


def case_reweight_of_a_damaged_store_changes_nothing(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp / "out.zarr"
    build_weights(_data(tmp), out, BuildConfig(shard_size=2, tile=8), scheduler="sync")
    shard = out / "labels" / "c" / "1" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[3] ^= 0x10
    shard.write_bytes(bytes(raw))
    before = _files_digest(out)
    r = _cli(["reweight", str(out), "--class-weights", "none", "-q", "--scheduler", "sync"])
    _one_error_line(r, f"{out}/labels/c/1/*: checksum mismatch", "the store was not changed")
    assert _files_digest(out) == before  # still complete: readers read its intact samples
    assert open_shards(out)[0]["labels"].shape == (16, 16)


# -- item 8: a reweight that cannot reach its scheduler changes nothing -----------------------


class _RefusingClient:
    """Stands in for distributed.Client: records the connect timeout and refuses."""

    timeouts: ClassVar[list[Any]] = []

    def __init__(self, address: str, timeout: Any = None, **kw: Any) -> None:
        _RefusingClient.timeouts.append(timeout)
        raise OSError(f"Timed out trying to connect to {address}: Connection refused")


def _refuse_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    import distributed

    _RefusingClient.timeouts = []
    monkeypatch.setattr(distributed, "Client", _RefusingClient)


def case_reweight_with_unreachable_scheduler_leaves_store_good(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _built(tmp)[1]
    before = _files_digest(out)
    _refuse_connections(monkeypatch)
    r = _cli(["reweight", str(out), "--class-weights", "none", "-q",
              "--scheduler", "tcp://127.0.0.1:1"])  # fmt: skip
    _one_error_line(r, "tcp://127.0.0.1:1: cannot connect to the dask scheduler")
    assert _files_digest(out) == before and verify_store(out).ok
    open_shards(out)


def case_interrupted_reweight_advises_finishing_it(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import maskprep.pipeline.reweighting as rw

    out = _built(tmp)[1]

    def crash(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("worker lost")  # stands in for a kill mid-reweight

    monkeypatch.setattr(rw, "_reweight_shard", crash)
    with pytest.raises(RuntimeError):
        reweight(out, ClassWeightConfig(scheme="none"), scheduler="sync")
    monkeypatch.undo()
    problem = verify_store(out).problems[0]
    assert "a reweight to the 'none' scheme did not finish" in problem
    assert "run the same reweight again" in problem
    with pytest.raises(StoreError, match="a reweight did not finish"):
        open_shards(out)
    reweight(out, ClassWeightConfig(scheme="none"), scheduler="sync")
    assert verify_store(out).ok


def case_reader_opened_before_a_reweight_refuses_to_mix(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import maskprep.pipeline.reweighting as rw

    out = _built(tmp)[1]
    shards = open_shards(out)
    shards[0]  # its shard file is open and its index cached, as in a training loop
    old_weights = shards.class_weights.copy()
    reweight(out, ClassWeightConfig(scheme="none"), scheduler="sync")
    changed = "the store was reweighted or rebuilt after this reader opened it"
    for read in (lambda: shards[0], lambda: shards[3], lambda: shards.read_batch([1, 2]),
                 lambda: shards.patch(0, (0, 0), (4, 4))):  # fmt: skip
        with pytest.raises(StoreError, match=f"{out}: {changed}.*open it again"):
            read()
    assert shards.class_weights.tolist() == old_weights.tolist()  # never half updated
    fresh = open_shards(out)
    assert fresh.class_weights.tolist() == [1.0, 1.0]
    # The same reweight again rewrites identical bytes: no change for an open reader.
    reweight(out, ClassWeightConfig(scheme="none"), scheduler="sync")
    np.testing.assert_array_equal(fresh[0]["weights"], open_shards(out)[0]["weights"])
    # A reader used while a reweight runs says so.
    seen: list[BaseException] = []
    real = rw._reweight_shard

    def read_during(*args: Any, **kwargs: Any) -> Any:
        try:
            fresh[1]
        except StoreError as exc:
            seen.append(exc)
        return real(*args, **kwargs)

    monkeypatch.setattr(rw, "_reweight_shard", read_during)
    reweight(out, ClassWeightConfig(scheme="balanced"), scheduler="sync")
    assert seen and all("a reweight started after this reader opened" in str(e) for e in seen)
    # A rebuild with --overwrite swaps the whole store.
    reader = open_shards(out)
    build_weights(tmp / "data", out, BuildConfig(shard_size=2, w0=3), scheduler="sync",
                  overwrite=True)  # fmt: skip
    with pytest.raises(StoreError, match=changed):
        reader[0]


def case_object_store_reader_opened_before_a_reweight(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec

    out = _built(tmp)[1]
    fs = fsspec.filesystem("memory")
    root = f"/faults-{os.getpid()}/out.zarr"

    def upload() -> None:
        for p in sorted(out.rglob("*")):
            if p.is_file():
                fs.pipe_file(f"{root}/{p.relative_to(out).as_posix()}", p.read_bytes())

    upload()
    try:
        shards = open_shards(f"memory://{root.lstrip('/')}")
        shards[0]  # shard 0's index is cached
        reweight(out, ClassWeightConfig(scheme="none"), scheduler="sync")
        upload()  # the reweighted store replaces the objects
        # A shard file read for the first time makes the reader look at the metadata again.
        with pytest.raises(StoreError, match="reweighted or rebuilt after this reader opened"):
            shards[3]
    finally:
        fs.rm(root.rsplit("/", 1)[0], recursive=True)


# -- item 10: one line instead of a traceback -------------------------------------------------


def case_build_with_unreachable_scheduler_fails_fast(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_connections(monkeypatch)
    r = _cli(["build-weights", str(_data(tmp)), "-o", str(tmp / "o.zarr"), "-q",
              "--scheduler", "tcp://127.0.0.1:1"])  # fmt: skip
    _one_error_line(r, "tcp://127.0.0.1:1: cannot connect")
    # A short connect timeout is passed, not distributed's default of 30 s.
    assert _RefusingClient.timeouts == [CONNECT_TIMEOUT] and CONNECT_TIMEOUT <= 10


def case_tiny_sigma_is_refused_by_the_config(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="sigma is too small"):
        BuildConfig(sigma=1e-300)
    r = _cli(["build-weights", str(_data(tmp)), "-o", str(tmp / "o.zarr"), "--sigma", "1e-300"])
    assert r.exit_code == 2 and "--sigma is too small" in r.output and "Traceback" not in r.output
    assert not (tmp / "o.zarr").exists()


def case_read_only_output_directory(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp)
    parent = tmp / "ro"
    parent.mkdir()
    real_open = os.open

    def no_write(path: Any, flags: int, *a: Any, **kw: Any) -> int:
        if str(path).startswith(str(parent)) and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **kw)

    # Root ignores directory modes, so the refusal is staged at os.open.
    monkeypatch.setattr(os, "open", no_write)
    r = _cli(["build-weights", str(data), "-o", str(parent / "o.zarr"), "-q",
              "--scheduler", "sync"])  # fmt: skip
    _one_error_line(r, str(parent), "Permission denied")


def case_disk_full_while_writing_shards(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp)
    out = tmp / "o.zarr"
    real = Location.write_bytes

    def full(self: Location, key: str, blob: bytes) -> None:
        if key.startswith("weights/"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path / key))
        real(self, key, blob)

    monkeypatch.setattr(Location, "write_bytes", full)
    r = _cli(["build-weights", str(data), "-o", str(out), "-q", "--scheduler", "sync",
              "--shard-size", "2"])  # fmt: skip
    _one_error_line(r, str(out / "weights"), "No space left on device", "re-run")
    assert "incomplete" in verify_store(out).problems[0]
    monkeypatch.undo()
    r = _cli(["build-weights", str(data), "-o", str(out), "-q", "--scheduler", "sync",
              "--shard-size", "2"])  # fmt: skip
    assert r.exit_code == 0 and verify_store(out).ok


def case_overwrite_through_a_symlink(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp)
    real = tmp / "real.zarr"
    build_weights(data, real, CFG, scheduler="sync")
    link = tmp / "link.zarr"
    link.symlink_to(real)
    r = _cli(["build-weights", str(data), "-o", str(link), "--overwrite", "-q",
              "--scheduler", "sync", "--w0", "3"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and verify_store(link).ok
    assert json.loads((real / "zarr.json").read_text())["attributes"]["maskprep"]["w0"] == 3


def _damaged(tmp: Path, damage: str) -> Path:
    out = _built(tmp)[1]
    victim = out / damage
    if victim.is_dir():
        shutil.rmtree(victim)
    else:
        victim.unlink()
    return out


def _verify_and_reweight_refuse_damaged(tmp: Path, damage: str) -> None:
    out = _damaged(tmp, damage)
    r = _cli(["verify", str(out)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert damage.split("/")[0] in r.output
    r = _cli(["reweight", str(out), "--class-weights", "none", "-q", "--scheduler", "sync"])
    _one_error_line(r, "array metadata is missing", "not changed")
    meta = json.loads((out / "zarr.json").read_text())["attributes"]["maskprep"]
    assert meta["stage"] == "complete"


def case_verify_and_reweight_without_labels_metadata(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _verify_and_reweight_refuse_damaged(tmp, "labels/zarr.json")


def case_verify_and_reweight_without_shapes(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _verify_and_reweight_refuse_damaged(tmp, "shapes")


# -- weak items -------------------------------------------------------------------------------


def case_store_files_honour_the_umask(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = os.umask(0o022)
    try:
        out = _built(tmp)[1]
    finally:
        os.umask(old)
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in out.rglob("*")
             if p.is_file()}  # fmt: skip
    assert set(modes.values()) == {0o644}, modes


def case_every_sample_in_valid_split(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp)
    stems = sorted(p.stem for p in (data / "images").iterdir())
    (data / "valid.txt").write_text("\n".join(stems) + "\n")
    r = _cli(["build-weights", str(data), "-o", str(tmp / "o.zarr"), "-q", "--scheduler", "sync"])
    _one_error_line(r, str(data), "the train split is empty")
    assert not (tmp / "o.zarr").exists()


def case_on_error_skip_with_every_sample_bad_lists_them(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(tmp, n=3)
    masks = sorted((data / "masks").iterdir())
    for m in masks:
        m.write_bytes(b"not a png")
    r = _cli(["build-weights", str(data), "-o", str(tmp / "o.zarr"), "-q", "--scheduler", "sync",
              "--on-error", "skip"])  # fmt: skip
    _one_error_line(r, "no usable samples (3 had problems)")
    for m in masks:
        assert f"{m}: cannot read mask" in r.output


def case_empty_output_path(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp)
    r = _cli(["build-weights", str(_data(tmp)), "-o", "", "-q", "--scheduler", "sync"])
    assert r.exit_code == 2 and "--out must name a store" in r.output, r.output
    assert sorted(p.name for p in tmp.iterdir()) == ["data"]


def case_shard_size_too_large_for_the_reader(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="shard_size must be at most 65,536 samples"):
        BuildConfig(shard_size=10_000_000)
    r = _cli(["build-weights", str(_data(tmp)), "-o", str(tmp / "o.zarr"),
              "--shard-size", "10000000"])  # fmt: skip
    assert r.exit_code == 2 and "--shard-size must be at most" in r.output, r.output
    assert not (tmp / "o.zarr").exists()


def case_reweight_on_a_missing_path(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _cli(["reweight", str(tmp / "nope.zarr"), "--class-weights", "none"])
    _one_error_line(r, f"{tmp / 'nope.zarr'}: no such store")


def case_torn_zarr_json_is_cleared_by_overwrite(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = _built(tmp)
    (out / "zarr.json").write_text('{"attributes": {"maskp')
    with pytest.raises(StoreError, match="is not a maskprep store"):
        build_weights(data, out, CFG, scheduler="sync")
    build_weights(data, out, CFG, scheduler="sync", overwrite=True)
    assert verify_store(out).ok


def case_reader_refuses_hand_edited_metadata(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _built(tmp)[1]
    doc = json.loads((out / "zarr.json").read_text())
    doc["attributes"]["maskprep"]["void_label"] = 0
    (out / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match=r"zarr\.json: the metadata was edited"):
        open_shards(out)


def case_on_error_skip_skips_images_without_masks(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(tmp, n=5)
    masks = sorted((data / "masks").iterdir())
    masks[1].unlink()
    masks[3].unlink()
    orphan = data / "masks" / "zz_orphan.png"
    orphan.write_bytes(masks[0].read_bytes())
    args = ["build-weights", str(data), "-o", str(tmp / "o.zarr"), "-q", "--scheduler", "sync"]
    _one_error_line(_cli(args), "2 image(s) have no mask in masks/")
    r = _cli([*args, "--on-error", "skip"])
    assert r.exit_code == 0, r.output
    assert "3 sample(s) quarantined" in r.output
    assert f"{orphan}: has no image in images/" in r.output
    for m in (masks[1], masks[3]):
        assert f"{data / 'images' / m.name}: has no mask in masks/" in r.output
    shards = open_shards(tmp / "o.zarr")
    assert len(shards) == 3 and verify_store(tmp / "o.zarr").ok


def case_nan_in_float_image_is_noted(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = np.ones((16, 16), dtype=np.float32)
    img[3, 4] = np.nan
    img[5, 6] = np.inf
    mask = np.zeros((16, 16), dtype=np.uint16)
    mask[2:8, 2:8] = 1
    data = _pair(tmp, img, mask, ".tif")
    r = _cli(["build-weights", str(data), "-o", str(tmp / "o.zarr"), "-q", "--scheduler", "sync"])
    assert r.exit_code == 0, r.output
    assert f"note: {data / 'images' / 'a.tif'}: image has 2 NaN or infinite value(s)" in r.output


def case_valid_txt_symlinked_outside_the_dataset(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(tmp)
    outside = tmp / "elsewhere.txt"
    outside.write_text("secret line\n")
    (data / "valid.txt").unlink(missing_ok=True)
    (data / "valid.txt").symlink_to(outside)
    r = _cli(["build-weights", str(data), "-o", str(tmp / "o.zarr"), "-q", "--scheduler", "sync"])
    _one_error_line(r, f"{data / 'valid.txt'}: resolves outside the dataset directory")
    assert "secret" not in r.output


def case_codes_txt_symlinked_outside_the_dataset(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp / "camvid"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / "images" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "labels" / "a_P.png")
    outside = tmp / "elsewhere.txt"
    outside.write_text("secret class\nVoid\n")
    (data / "codes.txt").symlink_to(outside)
    r = _cli(["build-weights", str(data), "-o", str(tmp / "o.zarr"), "--recipe", "camvid",
              "-q", "--scheduler", "sync"])  # fmt: skip
    _one_error_line(r, f"{data / 'codes.txt'}: resolves outside the dataset directory")
    assert "secret" not in r.output and not (tmp / "o.zarr").exists()


def case_max_pixels_is_the_one_limit_above_pillows(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import PIL.Image

    # Pillow's own limit made smaller than these 16x16 images (past twice it,
    # Pillow refuses to open them), as 2**28 = --max-pixels's default is past
    # Pillow's default 178,956,970.
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)
    data = _data(tmp)
    args = ["build-weights", str(data), "-q", "--scheduler", "sync"]
    r = _cli([*args, "-o", str(tmp / "a.zarr")])  # max_pixels above Pillow's: read
    assert r.exit_code == 0, r.output
    assert verify_store(tmp / "a.zarr").ok and PIL.Image.MAX_IMAGE_PIXELS == 100
    image = sorted((data / "images").iterdir())[0]
    r = _cli([*args, "-o", str(tmp / "b.zarr"), "--max-pixels", "200"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "4 of 4 samples have problems" in r.output
    assert f"{image}: image has 256 pixel values, more than the limit of 200" in r.output
    assert "raise --max-pixels" in r.output and "decompression bomb DOS" not in r.output


def _coco(tmp: Path, categories: list[Any], annotations: list[dict[str, Any]], n: int = 2) -> Path:
    """A COCO dataset (bundled ``coco`` recipe) of ``n`` 16x16 images in train2017."""
    root = tmp / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    images = []
    for k in range(1, n + 1):
        pixels = np.full((16, 16, 3), 40 * k, np.uint8)
        Image.fromarray(pixels).save(root / "train2017" / f"{k}.png")
        images.append({"id": k, "file_name": f"{k}.png", "height": 16, "width": 16})
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(doc))
    return root


def _coco_ann(aid: int, image: int, category: Any, polygon: list[float] | None = None) -> Any:
    return {"id": aid, "image_id": image, "category_id": category, "iscrowd": 0,
            "segmentation": [polygon or [2, 2, 10, 2, 10, 10]]}  # fmt: skip


_CATS = [{"id": 1, "name": "cell"}, {"id": 7, "name": "debris"}]


def case_bad_coco_category_ids(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = [_coco_ann(1, 1, 1), _coco_ann(2, 2, 7)]
    bad: list[tuple[list[Any], list[Any], str]] = [
        ([{"id": -1, "name": "cell"}], good, "category 'cell' has id -1; maskprep reads "
         "category ids from 0 to 65535"),
        ([{"id": 2**31, "name": "cell"}], good, f"category 'cell' has id {2**31}"),
        ([{"id": "1", "name": "cell"}], good, "category 'cell' has no integer 'id'"),
        ([{"id": 1.0, "name": "cell"}], good, "category 'cell' has no integer 'id'"),
        ([*_CATS, {"id": 1, "name": "nucleus"}], good,
         "category id 1 appears twice ('cell', 'nucleus')"),
        (_CATS, [*good, _coco_ann(3, 1, 99)],
         "annotation 3 has category_id 99, which is not in categories"),
        (_CATS, [*good, _coco_ann(3, 1, "7")], "annotation 3 has no integer 'category_id'"),
        (_CATS, [*good, _coco_ann(3, 1, None)], "annotation 3 has no integer 'category_id'"),
    ]  # fmt: skip
    for k, (cats, anns, message) in enumerate(bad):
        data = _coco(tmp / str(k), cats, anns)
        r = _cli(["build-weights", str(data), "-o", str(tmp / f"{k}.zarr"), "--recipe", "coco",
                  "-q", "--scheduler", "sync"])  # fmt: skip
        _one_error_line(r, f"{data / 'annotations' / 'instances_train2017.json'}: {message}")
    ok = _coco(tmp / "ok", _CATS, good)
    build_weights(ok, tmp / "ok.zarr", BuildConfig.from_recipe("coco", ok), scheduler="sync")
    assert open_shards(tmp / "ok.zarr").class_names == ["background", "cell", "debris"]


def case_malformed_coco_polygons_are_refused(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    anns = [_coco_ann(1, 1, 1), _coco_ann(2, 2, 7, [2, 2, 1e9, 2, 10, 10]),
            _coco_ann(3, 3, 1, [2, 2, float("nan"), 2, 10, 10])]  # fmt: skip
    data = _coco(tmp, _CATS, anns, n=3)
    where = data / "annotations" / "instances_train2017.json"
    expected = [
        f"{where}: annotation 2 (image 2.png): polygon point (1000000000.0, 2.0) lies outside "
        "the 16 x 16 image",
        f"{where}: annotation 3 (image 3.png): polygon point (nan, 2.0) lies outside",
    ]
    args = ["build-weights", str(data), "--recipe", "coco", "-q", "--scheduler", "sync"]
    # 1e9 crashed pycocotools (segmentation fault) and NaN grew the process until the
    # OOM killer: the first build runs in a child process, so a regression is reported.
    r = subprocess.run([sys.executable, "-m", "maskprep", *args, "-o", str(tmp / "a.zarr")],
                       capture_output=True, text=True, timeout=600,
                       cwd=Path(__file__).parents[1])  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert all(e in r.stderr for e in expected), r.stderr
    r = _cli([*args, "-o", str(tmp / "b.zarr"), "--on-error", "skip"])
    assert r.exit_code == 0, r.output
    assert "2 sample(s) quarantined" in r.output and all(e in r.output for e in expected)
    assert open_shards(tmp / "b.zarr").sample_ids == ["1"]


def case_fifo_directory_and_jpeg_named_like_inputs(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs FIFOs")
    data = _data(tmp, n=2)
    args = ["build-weights", str(data), "-o", str(tmp / "o.zarr"), "-q", "--scheduler", "sync"]
    mask = sorted((data / "masks").iterdir())[0]
    saved = mask.read_bytes()
    mask.unlink()
    os.mkfifo(mask)
    _one_error_line(_cli(args), f"{mask}: is a FIFO (named pipe), not an image file")
    mask.unlink()
    mask.mkdir()
    _one_error_line(_cli(args), f"{mask}: is a directory, not an image file")
    mask.rmdir()
    mask.symlink_to(mask)  # a loop
    _one_error_line(_cli(args), f"{mask}: is a broken symbolic link")
    mask.unlink()
    jpeg = mask.with_suffix(".jpg")
    jpeg.write_bytes(saved)
    _one_error_line(_cli(args), f"{jpeg}: .jpg files are not read in masks/")


def case_dataset_path_is_a_file(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp / "data.txt"
    f.write_text("x")
    r = _cli(["build-weights", str(f), "-o", str(tmp / "o.zarr")])
    _one_error_line(r, f"{f}: is a file, not a dataset directory")


CASES: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {
    name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fault_case(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    CASES[case](tmp_path, monkeypatch)
