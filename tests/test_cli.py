from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskprep import open_shards
from maskprep.cli import main


def _commands() -> list[str]:
    return sorted(main.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [None, *_commands()])
def test_every_command_has_help_with_an_example(command: str | None) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert "maskprep " in result.output.split("Example:")[1]


def test_make_sample_then_build(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "nuclei"
    r = runner.invoke(main, ["make-sample", str(data), "-n", "4", "--size", "48,48"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "nuclei.zarr"
    r = runner.invoke(
        main,
        [
            "build-weights",
            str(data),
            "-o",
            str(out),
            "--class-weights",
            "clamped",
            "--w0",
            "8",
            "--sigma",
            "4",
            "--scheduler",
            "sync",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "4 samples" in r.output and "background" in r.output and "object" in r.output
    s = open_shards(out)
    assert s.metadata["class_weight_scheme"] == "clamped"
    assert (s.metadata["w0"], s.metadata["sigma"]) == (8.0, 4.0)
    n_c = s.class_counts.astype(float)
    np.testing.assert_allclose(s.class_weights, np.maximum(1, np.log(2 * n_c.sum() / n_c)))


def test_data_error_exits_1_with_the_file_named(tmp_path: Path) -> None:
    data = tmp_path / "d"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "images" / "a.png").write_bytes(b"not a png")
    (data / "masks" / "a.png").write_bytes(b"not a png either")
    r = CliRunner().invoke(main, ["build-weights", str(data), "-o", str(tmp_path / "o.zarr")])
    assert r.exit_code == 1
    assert "a.png" in r.output and "cannot read" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "o.zarr").exists()


def test_usage_error_exits_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["build-weights", str(tmp_path), "-o", str(tmp_path / "o.zarr"), "--sigma", "-1"]
    )
    assert r.exit_code == 2
    assert "sigma" in r.output


def test_python_dash_m(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "maskprep", "--version"], capture_output=True, text=True, check=True
    )
    assert r.stdout.startswith("maskprep, version")
