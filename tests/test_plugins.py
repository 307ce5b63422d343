"""A third-party layout and target, installed through entry points, build a dataset.

The plugin of ``docs/plugins.md`` is written to a temporary directory as an
installed distribution (a package plus its ``.dist-info`` with
``entry_points.txt``, which is what pip leaves in site-packages) and used from
a fresh interpreter that has that directory on its path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"

ENTRY_POINTS = """\
[maskprep.layouts]
flat = maskprep_flat:FlatLayout

[maskprep.targets]
foreground = maskprep_flat:ForegroundTarget
"""

BUILD = """
import json, sys
import numpy as np
import maskprep
from maskprep import BuildConfig, build_weights, open_shards

data, out = sys.argv[1], sys.argv[2]
config = BuildConfig(layout="auto", targets=("weights", "foreground"))
summary = build_weights(data, out, config, scheduler="sync")
shards = open_shards(out)
sample = shards[0]
print(json.dumps({
    "layouts": list(maskprep.available_layouts()),
    "targets": list(maskprep.available_targets()),
    "layout": shards.store_metadata.layout,
    "arrays": sorted(sample),
    "n": summary.n_samples,
    "foreground_equals_instances": all(
        bool(np.array_equal(s["foreground"], (s["instances"] != 0).astype(np.uint8)))
        for s in shards
    ),
    "dtype": str(sample["foreground"].dtype),
}))
"""


def _install_plugin(site: Path) -> None:
    code = re.search(r"`maskprep_flat/__init__.py`:\n\n```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code is not None, "docs/plugins.md lost its plugin module"
    (site / "maskprep_flat").mkdir(parents=True)
    (site / "maskprep_flat" / "__init__.py").write_text(code.group(1))
    info = site / "maskprep_flat-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: maskprep-flat\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def _flat_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    for k in range(3):
        mask = np.zeros((24, 24), dtype=np.uint16)
        mask[2:10, 2:10] = 7
        mask[10:18, 8 + k : 16 + k] = 300 + k  # touching the first, non-sequential ids
        Image.fromarray(mask).save(root / f"s{k}_mask.png")
        image = rng.integers(0, 255, (24, 24), dtype=np.uint8)
        Image.fromarray(image).save(root / f"s{k}.png")
    return root


def test_plugin_layout_and_target_build_a_dataset(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install_plugin(site)
    data = _flat_dataset(tmp_path / "flat")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", BUILD, str(data), str(tmp_path / "o.zarr")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "flat" in result["layouts"] and "instances" in result["layouts"]
    assert {"foreground", "weights", "boundary"} <= set(result["targets"])
    assert result["layout"] == "flat"  # found by auto detection
    assert result["arrays"] == ["foreground", "image", "instances", "labels", "weights"]
    assert result["n"] == 3
    assert result["foreground_equals_instances"]
    assert result["dtype"] == "uint8"


def test_a_broken_plugin_names_itself(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[maskprep.targets]\nnope = no_such_module:Nope\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    code = "import maskprep; maskprep.available_targets()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "target plugin 'nope' (no_such_module:Nope) failed to load" in out.stderr
