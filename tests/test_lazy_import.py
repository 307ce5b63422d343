"""Importing maskprep, opening a store and reading batches load no heavy stage.

Run in a fresh interpreter: the test process itself has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from maskprep import build_weights, make_sample

HEAVY = ("numba", "dask", "distributed", "matplotlib")

CHECK = """
import json, sys
import maskprep
after_import = sorted(m for m in {heavy} if m in sys.modules)
shards = maskprep.open_shards(sys.argv[1], split="train")
sample = shards[0]
batch = next(shards.batches(2, seed=0))
after_read = sorted(m for m in {heavy} if m in sys.modules)
print(json.dumps({{"import": after_import, "read": after_read, "n": len(shards)}}))
"""


def test_import_and_read_load_no_numba_dask_or_matplotlib(tmp_path: Path) -> None:
    data = make_sample(tmp_path / "d", n_images=4, size=(16, 16))
    build_weights(data, tmp_path / "o.zarr", scheduler="sync")
    code = CHECK.format(heavy=repr(HEAVY))
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "o.zarr")],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result == {"import": [], "read": [], "n": result["n"]}
    assert result["n"] > 0


def test_names_resolve_lazily() -> None:
    import maskprep

    for name in maskprep.__all__:
        assert getattr(maskprep, name) is not None
    assert "available_targets" in dir(maskprep)
