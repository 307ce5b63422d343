"""The progress renderer: bars on a terminal, one line per pass start and end elsewhere."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import maskprep.cli.build as build_cmds
from maskprep.cli import main
from maskprep.cli.progress import ProgressRenderer, progress_for
from maskprep.pipeline import BuildSummary


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _events() -> Iterator[tuple[float, str, int, int]]:
    """(time, stage, done, total): a scan of one task, then a write of four shards."""
    yield 0.0, "scanning 24 sample(s)", 0, 1
    yield 0.4, "scanning 24 sample(s)", 1, 1
    yield 0.5, "writing 4 shard(s)", 0, 4
    for k in range(1, 5):
        yield 0.5 + k, "writing 4 shard(s)", k, 4


def _render(tty: bool) -> str:
    out, clock = io.StringIO(), _Clock()
    show = ProgressRenderer(out, tty=tty, clock=clock, width=60, interval=0.0)
    for t, stage, done, total in _events():
        clock.now = t
        show(stage, done, total)
    show.close()
    return out.getvalue()


def test_log_output_is_one_line_per_pass_start_and_end() -> None:
    text = _render(tty=False)
    assert "\r" not in text
    assert text.splitlines() == [
        "scanning 24 sample(s) ...",
        "scanning 24 sample(s): 1/1 done in 0.4 s",
        "writing 4 shard(s) ...",
        "writing 4 shard(s): 4/4 done in 4.0 s",
    ]


def test_terminal_output_is_a_bar_per_pass() -> None:
    text = _render(tty=True)
    lines = text.split("\n")
    assert lines[-1] == ""  # the last bar is ended, so what follows starts a line
    assert len(lines) == 3  # one final line per pass
    scan, write = lines[0].split("\r")[-1], lines[1].split("\r")[-1]
    assert scan.startswith("scanning 24 sample(s) [") and "] 1/1 0.4 s" in scan
    assert write.startswith("writing 4 shard(s) [") and "] 4/4 4.0 s" in write
    frames = lines[1].split("\r")[1:]
    assert [f.split("] ")[1].split()[0] for f in frames] == ["0/4", "1/4", "2/4", "3/4", "4/4"]
    assert all(len(f) <= 59 for f in frames)
    assert "#" * 10 in write and "-" not in write.split("[")[1].split("]")[0]


def test_terminal_redraws_are_rate_limited() -> None:
    out, clock = io.StringIO(), _Clock()
    show = ProgressRenderer(out, tty=True, clock=clock, width=60, interval=1.0)
    for k in range(1000):
        clock.now = k / 1000
        show("writing 1000 shard(s)", k, 1000)
    show("writing 1000 shard(s)", 1000, 1000)
    assert out.getvalue().count("\r") == 2  # the first frame and the last
    assert out.getvalue().endswith("\n")


def test_an_unfinished_pass_is_ended_by_the_next_and_by_close() -> None:
    out, clock = io.StringIO(), _Clock()
    show = ProgressRenderer(out, tty=False, clock=clock)
    show("scanning 3 sample(s)", 0, 3)
    clock.now = 1.0
    show("scanning 3 sample(s)", 2, 3)
    show("writing 1 shard(s)", 0, 1)
    clock.now = 3.0
    show.close()
    show.close()
    assert out.getvalue().splitlines() == [
        "scanning 3 sample(s) ...",
        "scanning 3 sample(s): 2/3 done in 1.0 s",
        "writing 1 shard(s) ...",
        "writing 1 shard(s): 0/1 done in 2.0 s",
    ]


def test_repeats_and_empty_passes() -> None:
    out = io.StringIO()
    show = ProgressRenderer(out, tty=False, clock=lambda: 0.0)
    show("writing 0 shard(s)", 0, 0)
    show("writing 0 shard(s)", 0, 0)  # a repeated final report prints nothing
    show("a", 1, 1)
    show("a", 0, 1)  # the same stage again from 0: a new pass
    show("a", 1, 1)
    assert out.getvalue().splitlines() == [
        "writing 0 shard(s) ...",
        "writing 0 shard(s): 0/0 done in 0.0 s",
        "a ...",
        "a: 1/1 done in 0.0 s",
        "a ...",
        "a: 1/1 done in 0.0 s",
    ]


def test_long_stage_names_are_cut_to_the_width() -> None:
    out = io.StringIO()
    show = ProgressRenderer(out, tty=True, clock=lambda: 0.0, width=40)
    show("x" * 100, 0, 2)
    frame = out.getvalue().split("\r")[-1]
    assert len(frame) == 39 and "..." in frame


def test_quiet_means_no_renderer() -> None:
    with progress_for(True) as progress:
        assert progress is None
    with progress_for(False) as progress:
        assert isinstance(progress, ProgressRenderer)


def test_build_weights_renders_the_library_progress(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The command hands the library a renderer (not on a terminal here: plain lines)."""

    def fake_build(*args: Any, progress: Any = None, **kwargs: Any) -> BuildSummary:
        for stage, total in (("scanning 2 sample(s)", 1), ("writing 1 shard(s)", 1)):
            for done in range(total + 1):
                if progress is not None:
                    progress(stage, done, total)
        return BuildSummary(
            *(str(tmp_path / "o.zarr"), 2, 2, 0, ("background", "object"), (3, 1), (1.0, 2.0)),
            *(0, 100, 0.1, 1, 0),
        )

    monkeypatch.setattr(build_cmds, "build_weights", fake_build)
    args = ["build-weights", str(tmp_path), "-o", str(tmp_path / "o.zarr")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "\r" not in r.output
    lines = r.output.splitlines()
    assert lines[:4] == [
        "scanning 2 sample(s) ...",
        lines[1],
        "writing 1 shard(s) ...",
        lines[3],
    ]
    assert lines[1].startswith("scanning 2 sample(s): 1/1 done in ")
    assert lines[3].startswith("writing 1 shard(s): 1/1 done in ")
    assert lines[4].startswith(f"Wrote {tmp_path / 'o.zarr'}: 2 samples")
    quiet = CliRunner().invoke(main, [*args, "-q"])  # no renderer: only the summary
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.startswith("Wrote ")


def test_verify_and_preview_report_their_passes(tmp_path: Path) -> None:
    """One line per pass off a terminal; -q keeps only the result."""
    from maskprep import build_weights, make_sample

    data = make_sample(tmp_path / "d", n_images=2, size=(16, 16))
    store = tmp_path / "s.zarr"
    build_weights(data, store, scheduler="sync")
    r = CliRunner().invoke(main, ["verify", str(store)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "checking the checksums of 1 shard(s) ..."
    assert lines[1].startswith("checking the checksums of 1 shard(s): 1/1 done in ")
    assert lines[2] == "recounting the labels of 1 shard(s) ..."
    assert lines[4].startswith("OK ")
    quiet = CliRunner().invoke(main, ["verify", str(store), "-q"])
    assert quiet.output.startswith("OK "), quiet.output
    r = CliRunner().invoke(main, ["preview", str(store), "-o", str(tmp_path / "p"), "-n", "1"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[:2] == [
        "drawing 2 PNG(s) ...",
        r.output.splitlines()[1],
    ]
    assert r.output.splitlines()[1].startswith("drawing 2 PNG(s): 2/2 done in ")
