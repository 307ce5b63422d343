"""The README works as written.

* Every ```python block runs on its own, in a fresh interpreter, in a directory
  where the quick start's first command has run (sample_data, sample.zarr).
* The CLI reference is the CLI's own --help output; regenerate it with
  ``MASKPREP_UPDATE_README=1 python -m pytest tests/test_readme.py``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskprep.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def cli_reference() -> str:
    runner = CliRunner()
    parts = []
    for command in [None, *sorted(main.commands)]:  # type: ignore[attr-defined]
        args = ["--help"] if command is None else [command, "--help"]
        result = runner.invoke(main, args, terminal_width=100)
        assert result.exit_code == 0, result.output
        title = "maskprep" if command is None else f"maskprep {command}"
        parts.append(f"### `{title}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


def test_readme_cli_reference_matches_help() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert match, "README.md lacks the cli-reference markers"
    expected = cli_reference()
    if os.environ.get("MASKPREP_UPDATE_README") == "1":
        README.write_text(
            text[: match.start(1)] + expected + text[match.end(1) :], encoding="utf-8"
        )
        return
    assert match.group(1) == expected, (
        "README CLI reference is stale: run "
        "MASKPREP_UPDATE_README=1 python -m pytest tests/test_readme.py"
    )


def test_readme_quick_start_and_ci_agree() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_cmd = next(line for line in text.splitlines() if "pytest" in line and "pip" in line)
    assert test_cmd.strip() in ci


def _blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.S | re.M)


PYTHON_BLOCKS = _blocks("python")


def _quick_start_commands() -> list[list[str]]:
    """The maskprep commands of the quick start's first command line."""
    first = _blocks("bash")[0].strip()
    parts = [shlex.split(p) for p in first.split("&&")]
    commands = [p[1:] for p in parts if p and p[0] == "maskprep"]
    assert [c[0] for c in commands] == ["make-sample", "build-weights"], first
    return commands


def _env() -> dict[str, str]:
    # The maskprep under test, also when it is not installed (a plain checkout).
    root = str(README.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def quick_start_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("quick_start")
    for args in _quick_start_commands():
        done = subprocess.run(
            [sys.executable, "-m", "maskprep", *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
    return cwd


def test_readme_has_the_python_blocks() -> None:
    assert len(PYTHON_BLOCKS) >= 5
    assert all(b.strip() for b in PYTHON_BLOCKS)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs_as_written(index: int, quick_start_dir: Path) -> None:
    """Block ``index`` runs as a script of its own after the quick start (nothing skipped)."""
    script = quick_start_dir / f"readme_block_{index}.py"
    script.write_text(PYTHON_BLOCKS[index], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=quick_start_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"README python block {index} failed:\n{PYTHON_BLOCKS[index]}\n{done.stderr}"
    )
