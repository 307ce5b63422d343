"""Faults: verify, kill -9 and resume, quarantine, reweight, dask-distributed clusters."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from maskprep import (
    BuildConfig,
    ClassWeightConfig,
    DataError,
    StoreError,
    build_weights,
    open_shards,
    reweight,
    verify_store,
)
from maskprep.cli import main
from maskprep.weighting import SCHEMES

CFG = BuildConfig(shard_size=2)


def _digest(path: Path, *, arrays_only: bool = False) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(path))
        # The metadata (zarr.json, and format 3's record arrays) lists the inputs
        # and the quarantine, which differ between the builds compared.
        if arrays_only and (rel.startswith(("_maskprep", "metadata/")) or rel == "zarr.json"):
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def reference(nuclei_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    build_weights(nuclei_dir, out, CFG, scheduler="sync")
    return out


def test_verify_accepts_a_clean_store(reference: Path) -> None:
    report = verify_store(reference)
    assert report.ok, report.problems
    assert report.shards_checked == 5
    assert report.samples_recounted == 10
    r = CliRunner().invoke(main, ["verify", str(reference)])
    assert r.exit_code == 0
    assert r.stdout.startswith("OK")  # progress goes to stderr


def test_verify_detects_flipped_byte(reference: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    shutil.copytree(reference, store)
    shard = store / "weights" / "c" / "1" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x01
    shard.write_bytes(bytes(data))
    report = verify_store(store)
    assert any("weights/c/1/0/0: checksum mismatch" in p for p in report.problems)
    r = CliRunner().invoke(main, ["verify", str(store)])
    assert r.exit_code == 1
    assert "checksum mismatch" in r.output


def test_verify_detects_deleted_shard(reference: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    shutil.copytree(reference, store)
    (store / "labels" / "c" / "3" / "0" / "0").unlink()
    report = verify_store(store)
    assert any("labels/c/3/0/0: shard file is missing" in p for p in report.problems)
    # the recount sees the lost labels as well (they read back as void)
    assert any("stored labels count" in p for p in report.problems)


def test_verify_detects_edited_metadata(reference: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    shutil.copytree(reference, store)
    doc = json.loads((store / "zarr.json").read_text())
    doc["attributes"]["maskprep"]["class_weights"][1] *= 2
    (store / "zarr.json").write_text(json.dumps(doc))
    problems = verify_store(store).problems
    assert any("metadata was edited" in p for p in problems)
    assert any("do not follow from the counts" in p for p in problems)


def test_verify_missing_and_foreign(tmp_path: Path) -> None:
    assert "no such store" in verify_store(tmp_path / "nothing.zarr").problems[0]
    (tmp_path / "foreign").mkdir()
    assert "not a maskprep store" in verify_store(tmp_path / "foreign").problems[0]


def _cli_build(data: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "maskprep", "build-weights", str(data), "-o", str(out),
           "--shard-size", "2", "--scheduler", "sync", "--quiet"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the build to reach the kill point")


def _markers(out: Path) -> int:
    d = out / "_maskprep" / "shards"
    return len(list(d.glob("*.json"))) if d.is_dir() else 0


@pytest.mark.parametrize("kill_point", ["early", "store created", "two shards written"])
def test_kill_9_then_rerun_completes_identically(
    nuclei_dir: Path, reference: Path, tmp_path: Path, kill_point: str
) -> None:
    out = tmp_path / "k.zarr"
    env = {**os.environ, "MASKPREP_TEST_SHARD_DELAY": "0.4"}
    proc = _cli_build(nuclei_dir, out, env)
    try:
        if kill_point == "early":
            time.sleep(1.0)  # importing or scanning: the store may not exist yet
        elif kill_point == "store created":
            _wait_for(lambda: (out / "weights" / "zarr.json").exists())
        else:
            _wait_for(lambda: _markers(out) >= 2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    done_at_kill = _markers(out)
    assert done_at_kill < 5
    report = verify_store(out)
    assert not report.ok
    assert "incomplete" in report.problems[0] or "no such store" in report.problems[0]
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 1
    # An early kill may land before or after the store is created (it depends on
    # the machine's load); either way readers must refuse what is there.
    created = (out / "zarr.json").exists()
    with pytest.raises(StoreError, match="incomplete" if created else "no such store"):
        open_shards(out)
    rerun = _cli_build(nuclei_dir, out, dict(os.environ))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr.decode()
    assert f"already complete: {done_at_kill}" in stdout.decode()
    assert _digest(out) == _digest(reference)
    assert verify_store(out).ok


def test_changed_inputs_are_detected_on_rerun(nuclei_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(nuclei_dir, data)
    out = tmp_path / "o.zarr"
    build_weights(data, out, CFG, scheduler="sync")
    mask = next((data / "masks").glob("*.png"))
    time.sleep(0.01)
    mask.write_bytes(mask.read_bytes())  # same content, new mtime: inputs changed
    with pytest.raises(StoreError, match="other inputs or parameters"):
        build_weights(data, out, CFG, scheduler="sync")
    summary = build_weights(data, out, CFG, scheduler="sync", overwrite=True)
    assert summary.shards_written == 5


def test_on_error_skip_quarantines_and_keeps_good_samples(nuclei_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(nuclei_dir, data)
    clean = tmp_path / "clean"
    shutil.copytree(nuclei_dir, clean)
    stems = sorted(p.stem for p in (data / "images").glob("*.png"))
    bad = [stems[1], stems[6]]
    (data / "images" / f"{bad[0]}.png").write_bytes(b"\x89PNG truncated")
    (data / "masks" / f"{bad[1]}.png").write_bytes(b"garbage")
    for stem in bad:
        for sub in ("images", "masks", "unlabeled"):
            (clean / sub / f"{stem}.png").unlink(missing_ok=True)
    valid = [s for s in (clean / "valid.txt").read_text().split() if s not in bad]
    (clean / "valid.txt").write_text("\n".join(valid) + "\n")
    (data / "valid.txt").write_text("\n".join(valid) + "\n")

    with pytest.raises(DataError, match="2 of 10 samples have problems") as info:
        build_weights(data, tmp_path / "fail.zarr", CFG, scheduler="sync")
    assert f"{bad[0]}.png: cannot read image" in str(info.value)
    assert f"{bad[1]}.png: cannot read mask" in str(info.value)
    assert not (tmp_path / "fail.zarr").exists()

    out = tmp_path / "skip.zarr"
    summary = build_weights(data, out, CFG, scheduler="sync", on_error="skip")
    assert [q["sample_id"] for q in summary.quarantined] == bad
    meta = open_shards(out).metadata
    assert [q["sample_id"] for q in meta["quarantine"]] == bad
    assert "cannot read" in meta["quarantine"][0]["error"]
    ref = tmp_path / "clean.zarr"
    build_weights(clean, ref, CFG, scheduler="sync")
    assert _digest(out, arrays_only=True) == _digest(ref, arrays_only=True)
    assert open_shards(out).sample_ids == open_shards(ref).sample_ids


def test_cli_on_error_skip_prints_quarantine(nuclei_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(nuclei_dir, data)
    victim = sorted((data / "images").glob("*.png"))[2]
    victim.write_bytes(b"nope")
    r = CliRunner().invoke(
        main,
        ["build-weights", str(data), "-o", str(tmp_path / "o.zarr"), "--on-error", "skip",
         "--scheduler", "sync", "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1 sample(s) quarantined" in r.output
    assert f"{victim.name}: cannot read image" in r.output


@pytest.mark.parametrize("scheme", SCHEMES)
def test_reweight_equals_fresh_build(
    nuclei_dir: Path, reference: Path, tmp_path: Path, scheme: str
) -> None:
    store = tmp_path / "r.zarr"
    shutil.copytree(reference, store)
    cw = ClassWeightConfig(scheme=scheme)
    reweight(store, cw, scheduler="sync")
    fresh = tmp_path / "fresh.zarr"
    build_weights(nuclei_dir, fresh, BuildConfig(shard_size=2, class_weights=cw), scheduler="sync")
    assert _digest(store) == _digest(fresh)
    assert verify_store(store).ok
    assert open_shards(store).metadata["class_weight_scheme"] == scheme


def test_reweight_cli(reference: Path, tmp_path: Path) -> None:
    store = tmp_path / "r.zarr"
    shutil.copytree(reference, store)
    r = CliRunner().invoke(
        main, ["reweight", str(store), "--class-weights", "none", "--scheduler", "sync", "-q"]
    )
    assert r.exit_code == 0, r.output
    assert "-> 1.0000" in r.output
    s = open_shards(store)
    np.testing.assert_array_equal(s.class_weights, [1.0, 1.0])
    # weight maps follow: background far from cells is exactly the new class weight
    w = s[0]["weights"]
    labels = s[0]["labels"]
    assert np.isclose(w[labels == 0].min(), 1.0)
    assert (w[labels == 1] == 1.0).all()


def _cluster_build(nuclei_dir: Path, out: Path, n_workers: int) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        build_weights(nuclei_dir, out, CFG, scheduler=cluster.scheduler_address)


@pytest.mark.parametrize("n_workers", [1, 2])
def test_local_cluster_matches_sync(
    nuclei_dir: Path, reference: Path, tmp_path: Path, n_workers: int
) -> None:
    out = tmp_path / "c.zarr"
    with warnings.catch_warnings():
        # distributed may warn about ports or slow shutdown on a loaded machine
        warnings.simplefilter("ignore")
        _cluster_build(nuclei_dir, out, n_workers)
    assert _digest(out) == _digest(reference)


def test_killed_worker_still_gives_identical_output(
    nuclei_dir: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    monkeypatch.setenv("MASKPREP_TEST_SHARD_DELAY", "0.5")
    out = tmp_path / "w.zarr"
    errors: list[BaseException] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            pids = [w.process.pid for w in cluster.workers.values()]  # type: ignore[attr-defined]

            def run() -> None:
                try:
                    build_weights(nuclei_dir, out, CFG, scheduler=cluster.scheduler_address)
                except BaseException as exc:
                    errors.append(exc)

            t = threading.Thread(target=run)
            t.start()
            _wait_for(lambda: _markers(out) >= 1)
            os.kill(pids[0], signal.SIGKILL)
            t.join(timeout=300)
    assert not errors, errors
    assert _markers(out) == 5
    assert _digest(out) == _digest(reference)


def test_interrupted_store_is_refused_by_reader(reference: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    shutil.copytree(reference, store)
    g = zarr.open_group(str(store), mode="r+")
    meta = dict(g.attrs["maskprep"])  # type: ignore[arg-type]
    g.attrs["maskprep"] = {**meta, "complete": False, "stage": "writing"}
    with pytest.raises(StoreError, match="re-run the same maskprep build-weights"):
        open_shards(store)


def _break(data: Path, stem: str, case: str) -> str:
    """Damage one sample of an instances dataset; return the expected message pattern."""
    import tifffile
    from PIL import Image

    img, mask = data / "images" / f"{stem}.png", data / "masks" / f"{stem}.png"
    if case == "truncated image":
        img.write_bytes(img.read_bytes()[:200])
        return rf"{stem}\.png: cannot read image"
    if case == "shape mismatch":
        Image.fromarray(np.zeros((40, 64), np.uint8)).save(img)
        return rf"{stem}\.png: image shape \(40, 64\) does not match mask shape \(64, 64\)"
    if case == "float mask":
        mask.unlink()
        tifffile.imwrite(mask.with_suffix(".tif"), np.zeros((64, 64), np.float32))
        return rf"{stem}\.tif: mask has floating-point dtype float32"
    if case == "negative mask":
        mask.unlink()
        tifffile.imwrite(mask.with_suffix(".tif"), -np.ones((64, 64), np.int16))
        return rf"{stem}\.tif: mask has negative values"
    if case == "rgb mask":
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(mask)
        return rf"{stem}\.png: mask is an RGB\(A\) image"
    if case == "id overflow":
        mask.unlink()
        tifffile.imwrite(mask.with_suffix(".tif"), np.full((64, 64), 2**31 + 5, np.uint32))
        return rf"{stem}\.tif: instance id 2147483653 does not fit in int32"
    if case == "decompression bomb":
        Image.fromarray(np.zeros((128, 128), np.uint8)).save(img)
        return rf"{stem}\.png: image has 16,384 pixel values, more than the limit"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["truncated image", "shape mismatch", "float mask", "negative mask", "rgb mask",
     "id overflow", "decompression bomb"],
)  # fmt: skip
def test_each_bad_sample_fails_or_is_quarantined(
    nuclei_dir: Path, tmp_path: Path, case: str
) -> None:
    data, clean = tmp_path / "data", tmp_path / "clean"
    shutil.copytree(nuclei_dir, data)
    shutil.copytree(nuclei_dir, clean)
    stem = sorted(p.stem for p in (data / "images").glob("*.png"))[3]
    pattern = _break(data, stem, case)
    for sub in ("images", "masks", "unlabeled"):
        (clean / sub / f"{stem}.png").unlink(missing_ok=True)
    cfg = BuildConfig(shard_size=2, max_pixels=64 * 64 * 3)
    with pytest.raises(DataError, match=pattern):
        build_weights(data, tmp_path / "fail.zarr", cfg, scheduler="sync")
    assert not (tmp_path / "fail.zarr").exists()
    out, ref = tmp_path / "skip.zarr", tmp_path / "ref.zarr"
    summary = build_weights(data, out, cfg, scheduler="sync", on_error="skip")
    assert [q["sample_id"] for q in summary.quarantined] == [stem]
    build_weights(clean, ref, cfg, scheduler="sync")
    assert _digest(out, arrays_only=True) == _digest(ref, arrays_only=True)
    assert verify_store(out).ok


def test_split_instance_is_reported_and_kept(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    m = np.zeros((16, 16), np.uint8)
    m[1:4, 1:4] = 9
    m[10:13, 10:13] = 9  # same id, two separate pieces
    m[1:4, 10:13] = 4
    Image.fromarray(m).save(root / "masks" / "x.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "images" / "x.png")
    summary = build_weights(root, tmp_path / "o.zarr", scheduler="sync")
    assert len(summary.notes) == 1
    assert "x.png: instance id(s) 9 have several separate pieces" in summary.notes[0]["note"]
    np.testing.assert_array_equal(open_shards(tmp_path / "o.zarr")[0]["instances"], m)


def test_sample_order_on_disk_does_not_matter(
    nuclei_dir: Path, reference: Path, tmp_path: Path
) -> None:
    data = tmp_path / "reversed"
    for sub in ("images", "masks", "unlabeled"):
        (data / sub).mkdir(parents=True)
        # create files newest-name-first so directory order differs from sorted order
        for p in sorted((nuclei_dir / sub).iterdir(), reverse=True):
            shutil.copy2(p, data / sub / p.name)
    shutil.copy2(nuclei_dir / "valid.txt", data / "valid.txt")
    out = tmp_path / "o.zarr"
    build_weights(data, out, CFG, scheduler="threads", workers=2)
    assert _digest(out, arrays_only=True) == _digest(reference, arrays_only=True)


def test_leftovers_of_a_killed_writer_are_swept(
    nuclei_dir: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o.zarr"
    shutil.copytree(reference, out)
    # What a writer killed mid-shard leaves: a half-written temporary, no marker.
    stray = out / "weights" / "c" / "2" / "0" / ".0.maskprep-tmp-abc123"
    stray.write_bytes(b"half a shard")
    (out / "_maskprep" / "shards" / "000002.json").unlink()
    g = zarr.open_group(str(out), mode="r+")
    meta = dict(g.attrs["maskprep"])  # type: ignore[arg-type]
    g.attrs["maskprep"] = {**meta, "complete": False, "stage": "writing"}
    summary = build_weights(nuclei_dir, out, CFG, scheduler="sync")
    assert (summary.shards_written, summary.shards_skipped) == (1, 4)
    assert not stray.exists()
    assert _digest(out) == _digest(reference)


def test_an_empty_output_directory_is_no_store_and_builds(nuclei_dir: Path, tmp_path: Path) -> None:
    # What a build killed between creating the directory and writing zarr.json leaves.
    out = tmp_path / "empty.zarr"
    out.mkdir()
    assert verify_store(out).problems == (
        f"{out}: no such store: the directory is empty (not a maskprep store yet)",
    )
    with pytest.raises(StoreError, match="no such store"):
        open_shards(out)
    build_weights(nuclei_dir, out, CFG, scheduler="sync")
    assert verify_store(out).ok
