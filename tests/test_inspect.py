from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskprep import StoreError, build_weights, make_sample
from maskprep.cli import main
from maskprep.store import read_store_metadata
from maskprep.tools.inspect import format_inspection, inspect_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("inspect")
    data = make_sample(tmp / "nuclei", n_images=6, size=(64, 64))
    out = tmp / "nuclei.zarr"
    build_weights(data, out, scheduler="sync")
    return out


def _meta(store: Path) -> dict[str, Any]:
    """The store's metadata with its records inline (format 3 keeps them in arrays)."""
    meta = read_store_metadata(store)
    assert meta is not None
    return meta.to_dict(inline=True)


def _edit_meta(store: Path, **changes: Any) -> None:
    path = store / "zarr.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["attributes"]["maskprep"].update(changes)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_values_equal_the_store_metadata(store: Path) -> None:
    info = inspect_store(store)
    meta = _meta(store)
    assert json.loads(json.dumps(info)) == info  # JSON-safe, nothing lost
    assert info["complete"] is True
    assert info["problems"] == []
    assert info["samples"] == {"total": 6, "by_split": {"train": 5, "valid": 1}}
    assert [c["name"] for c in info["classes"]] == meta["class_names"]
    assert [c["pixels"] for c in info["classes"]] == meta["class_counts"]
    assert [c["weight"] for c in info["classes"]] == meta["class_weights"]
    assert [c["images"] for c in info["classes"]] == meta["class_stats"]["image_counts"]
    counts = np.asarray(meta["class_counts"], dtype=float)
    np.testing.assert_allclose([c["frequency"] for c in info["classes"]], counts / counts.sum())
    assert info["class_weights"]["scheme"] == meta["class_weight_scheme"] == "balanced"
    void = info["void"]
    assert void["label"] == 255
    assert void["pixels"] == sum(meta["void_pixels"]) > 0
    assert void["total_pixels"] == 6 * 64 * 64
    assert void["fraction"] == pytest.approx(sum(meta["void_pixels"]) / (6 * 64 * 64))
    assert void["samples_with_void"] == sum(v > 0 for v in meta["void_pixels"])
    inst = info["instances"]
    assert inst["total"] == sum(meta["instance_counts"])
    assert (inst["min"], inst["max"]) == (
        min(meta["instance_counts"]),
        max(meta["instance_counts"]),
    )
    assert sum(inst["histogram"]["counts"]) == 6
    assert inst["samples_without_instances"] == meta["instance_counts"].count(0) == 1
    assert info["geometry"]["padded_shape"] == info["geometry"]["largest_shape"] == [64, 64]
    assert info["geometry"]["ndim"] == 2
    assert info["shards"]["n_shards"] == 1
    assert info["shards"]["arrays"]["weights"]["dtype"] == "float32"
    assert info["shards"]["arrays"]["weights"]["shape"] == [6, 64, 64]
    assert info["size_on_disk"]["bytes"] > sum(
        a["bytes"] for a in info["shards"]["arrays"].values()
    )
    assert (info["border"]["w0"], info["border"]["sigma"]) == (meta["w0"], meta["sigma"])
    assert info["build_config"] == meta["config"]
    assert info["inputs"]["files"] == len(meta["inputs"])
    assert info["inputs"]["bytes"] == sum(f["bytes"] for f in meta["inputs"])


def test_text_summary(store: Path) -> None:
    text = format_inspection(inspect_store(store))
    assert "[complete]" in text and "INCOMPLETE" not in text
    assert "Samples: 6 (train 5, valid 1)" in text
    meta = _meta(store)
    for name, count, weight in zip(
        meta["class_names"], meta["class_counts"], meta["class_weights"], strict=True
    ):
        row = next(line for line in text.splitlines() if f"  {name} " in line)
        assert f"{count:,}" in row and f"{weight:.4f}" in row
    assert f"Void: label 255 (the loss's ignore_index): {sum(meta['void_pixels']):,} of" in text
    assert "Instances per sample: min 0" in text
    assert "Border term: w0 10, sigma 5" in text
    assert "Size on disk:" in text and "Build parameters:" in text and "Provenance:" in text
    assert all(len(line) <= 110 for line in text.splitlines()[1:])


def test_incomplete_store_is_reported(store: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    _edit_meta(broken, complete=False, stage="writing")
    shard = next(p for p in (broken / "weights" / "c").rglob("*") if p.is_file())
    shard.unlink()
    info = inspect_store(broken)
    assert info["complete"] is False
    assert any("weights: 0 of 1 shard files" in p for p in info["problems"])
    text = format_inspection(info)
    assert "INCOMPLETE" in text.splitlines()[0]
    assert "INCOMPLETE STORE:" in text
    # The CLI reports instead of failing.
    r = CliRunner().invoke(main, ["inspect", str(broken)])
    assert r.exit_code == 0, r.output
    assert "INCOMPLETE" in r.output


def test_bare_metadata_and_unknown_keys_do_not_crash(store: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd.zarr"
    shutil.copytree(store, odd)
    _edit_meta(odd, added_later={"x": 1})
    info = inspect_store(odd)
    assert "added_later" in info["other_metadata_keys"]
    assert "added_later" in format_inspection(info)

    bare = tmp_path / "bare.zarr"
    bare.mkdir()
    doc = {"zarr_format": 3, "node_type": "group", "attributes": {"maskprep": {}}}
    (bare / "zarr.json").write_text(json.dumps(doc), encoding="utf-8")
    info = inspect_store(bare)
    assert info["complete"] is False and info["samples"]["total"] == 0
    assert "INCOMPLETE" in format_inspection(info)


def test_padded_samples_of_different_sizes(tmp_path: Path) -> None:
    data = tmp_path / "mixed"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for stem, shape in (("a", (20, 30)), ("b", (24, 16))):
        mask = np.zeros(shape, dtype=np.uint16)
        mask[2:8, 3:9] = 7
        Image.fromarray(np.full(shape, 50, dtype=np.uint8)).save(data / "images" / f"{stem}.png")
        Image.fromarray(mask).save(data / "masks" / f"{stem}.png")
    build_weights(data, tmp_path / "mixed.zarr", scheduler="sync")
    info = inspect_store(tmp_path / "mixed.zarr")
    g = info["geometry"]
    # Real samples, by pixel count: not the per-axis minimum 20x16 that no sample has.
    assert (g["smallest_shape"], g["smallest_sample"]) == ([24, 16], "b")
    assert (g["largest_shape"], g["largest_sample"]) == ([20, 30], "a")
    assert (g["padded_shape"], g["padded_samples"]) == ([24, 30], 2)
    assert info["void"]["total_pixels"] == 20 * 30 + 24 * 16
    text = format_inspection(info)
    assert "samples from 24x16 (b) to 20x30 (a), 2 padded to 24x30" in text
    assert "20x16" not in text


def test_channels_agree_in_text_and_json(tmp_path: Path) -> None:
    """A grey image has 1 channel in both views (it was null in JSON, '1 channel' in text)."""
    data = make_sample(tmp_path / "d", n_images=2, size=(16, 16))
    build_weights(data, tmp_path / "g.zarr", scheduler="sync")
    info = inspect_store(tmp_path / "g.zarr")
    assert info["geometry"]["channels"] == 1
    assert "(1 channel)" in format_inspection(info)
    assert json.loads(json.dumps(info))["geometry"]["channels"] == 1


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store"):
        inspect_store(tmp_path / "missing.zarr")
    with pytest.raises(StoreError, match="not a maskprep store"):
        inspect_store(tmp_path)
    r = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert r.exit_code == 1
    assert "not a maskprep store" in r.output


def test_cli_text_and_json(store: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["inspect", str(store)])
    assert r.exit_code == 0, r.output
    assert "Samples: 6 (train 5, valid 1)" in r.output
    r = runner.invoke(main, ["inspect", str(store), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc == inspect_store(store)
    meta = _meta(store)
    assert [c["pixels"] for c in doc["classes"]] == meta["class_counts"]
    assert [c["weight"] for c in doc["classes"]] == meta["class_weights"]
    assert doc["samples"]["by_split"] == {s: meta["split"].count(s) for s in ("train", "valid")}
