"""The README's CLI reference is the CLI's own --help output, kept in sync by this test.

Regenerate it with ``MASKPREP_UPDATE_README=1 python -m pytest tests/test_readme.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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
