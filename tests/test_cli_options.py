"""The CLI's option groups: defaults from the dataclasses, recipe overrides, flag names, help."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import maskprep.cli.build as build_cmds
import maskprep.cli.preview as preview_cmds
from maskprep.cli import main
from maskprep.cli.app import HELP_WIDTH, flag_table, translate
from maskprep.cli.options import CLASS_WEIGHT_PARAMS, DATASET_PARAMS, default_of
from maskprep.cli.progress import ProgressRenderer
from maskprep.config import BuildConfig
from maskprep.errors import StoreError
from maskprep.pipeline import build_weights, reweight
from maskprep.tools.preview import preview
from maskprep.tools.sample_data import make_sample
from maskprep.weighting import ClassWeightConfig

COMMANDS = sorted(main.commands)  # type: ignore[attr-defined]


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, [*args], prog_name="maskprep")


class _Calls:
    """Stands in for a library function: records its arguments, then stops the command."""

    def __init__(self) -> None:
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.args, self.kwargs = args, kwargs
        raise StoreError("stopped by the test")


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> _Calls:
    calls = _Calls()
    monkeypatch.setattr(build_cmds, "build_weights", calls)
    return calls


def _library_defaults(fn: Any, *names: str) -> dict[str, Any]:
    return {n: default_of(fn, n) for n in names}


def test_build_weights_without_options_passes_the_library_defaults(
    fake_build: _Calls, tmp_path: Path
) -> None:
    r = _invoke("build-weights", str(tmp_path), "-o", str(tmp_path / "o.zarr"))
    assert r.exit_code == 1 and "stopped by the test" in r.output
    dataset_dir, out, config = fake_build.args
    assert (dataset_dir, out) == (tmp_path, str(tmp_path / "o.zarr"))
    assert config == BuildConfig()
    kwargs = dict(fake_build.kwargs)
    assert isinstance(kwargs.pop("progress"), ProgressRenderer)
    names = ("scheduler", "workers", "overwrite", "on_error", "retries")
    assert kwargs == _library_defaults(build_weights, *names)


def test_build_weights_options_reach_the_config(fake_build: _Calls, tmp_path: Path) -> None:
    r = _invoke(
        *("build-weights", str(tmp_path), "-o", "s3://b/o.zarr", "-q", "--overwrite"),
        *("--w0", "3", "--sigma", "2", "--spacing", "1,0.5", "--shard-size", "8"),
        *("--class-weights", "enet", "--enet-c", "1.5", "--class-weights-normalize", "mean"),
        *("--void-label", "254", "--unlabeled-value", "7", "--max-pixels", "1000"),
        *("--layout", "dsb2018", "--border-region", "all", "--class-weights-max", "9"),
        *("--scheduler", "sync", "--workers", "3", "--retries", "0", "--on-error", "skip"),
    )
    assert r.exit_code == 1, r.output
    cw = ClassWeightConfig(scheme="enet", enet_c=1.5, normalize="mean", max_weight=9.0)
    assert fake_build.args[2] == BuildConfig(
        layout="dsb2018",
        void_label=254,
        unlabeled_value=7,
        class_weights=cw,
        w0=3.0,
        sigma=2.0,
        border_region="all",
        spacing=(1.0, 0.5),
        shard_size=8,
        max_pixels=1000,
    )
    assert fake_build.kwargs == {
        "scheduler": "sync",
        "workers": 3,
        "overwrite": True,
        "progress": None,
        "on_error": "skip",
        "retries": 0,
    }


def test_reweight_with_only_a_scheme_passes_the_library_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--class-weights is required (no silent switch to balanced); the rest default."""
    calls = _Calls()
    monkeypatch.setattr(build_cmds, "reweight", calls)
    r = _invoke("reweight", str(tmp_path), "--class-weights", "enet", "-q")
    assert r.exit_code == 1, r.output
    assert calls.args == (str(tmp_path), ClassWeightConfig(scheme="enet"))
    assert calls.kwargs == {**_library_defaults(reweight, "scheduler", "workers"), "progress": None}


def test_preview_passes_a_config_only_when_build_options_are_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _Calls()
    monkeypatch.setattr(preview_cmds, "preview", calls)
    r = _invoke("preview", str(tmp_path), "-o", str(tmp_path / "png"))
    assert r.exit_code == 1, r.output
    assert calls.kwargs == {
        **_library_defaults(preview, "samples", "dpi", "scan_limit", "palette"),
        "ids": None,
        "config": None,
        "progress": calls.kwargs["progress"],  # the renderer (not given -q)
    }
    _invoke("preview", str(tmp_path), "-o", str(tmp_path / "png"), "--w0", "5")
    assert calls.kwargs["config"] == BuildConfig(w0=5.0)
    # --scan-limit only matters for a dataset directory, so it asks for a dataset preview.
    _invoke("preview", str(tmp_path), "-o", str(tmp_path / "png"), "--scan-limit", "3")
    assert calls.kwargs["config"] == BuildConfig()


def test_option_defaults_are_the_library_defaults() -> None:
    owners: dict[str, Any] = {
        "build-weights": (BuildConfig, ClassWeightConfig, build_weights),
        "reweight": (ClassWeightConfig, reweight),
        "preview": (BuildConfig, ClassWeightConfig, preview),
        "make-sample": (make_sample,),
    }
    for command, sources in owners.items():
        checked = 0
        for param in main.commands[command].params:  # type: ignore[attr-defined]
            if not isinstance(param, click.Option) or param.is_flag or param.multiple:
                continue
            if param.required:  # -o, and reweight's --class-weights: no default on purpose
                continue
            for owner in sources:
                try:
                    expected = default_of(owner, param.name)
                except LookupError:
                    continue
                if param.name == "size":
                    expected = ",".join(map(str, expected))
                assert param.default == expected, (command, param.name)
                checked += 1
                break
        assert checked >= 2, command
    fields = {f.name for f in dataclasses.fields(ClassWeightConfig)}
    assert set(CLASS_WEIGHT_PARAMS) == fields
    preview_params = {p.name for p in main.commands["preview"].params}  # type: ignore[attr-defined]
    assert set(DATASET_PARAMS) <= preview_params


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(
        'layout = "instances"\n[build]\nw0 = 3.0\nsigma = 2.0\n'
        'class_weights = { scheme = "enet", enet_c = 1.5 }\n',
        encoding="utf-8",
    )
    return path


def test_recipe_defaults_give_way_only_to_options_given(fake_build: _Calls, tmp_path: Path) -> None:
    recipe = str(_recipe(tmp_path))
    base = ("build-weights", str(tmp_path), "-o", str(tmp_path / "o.zarr"), "--recipe", recipe)
    assert _invoke(*base).exit_code == 1
    config = fake_build.args[2]
    assert (config.w0, config.sigma) == (3.0, 2.0)
    assert config.class_weights == ClassWeightConfig(scheme="enet", enet_c=1.5)
    # Given explicitly, an option wins even when its value is the dataclass default.
    assert _invoke(*base, "--w0", str(default_of(BuildConfig, "w0")), "--mu", "2").exit_code == 1
    config = fake_build.args[2]
    assert (config.w0, config.sigma) == (default_of(BuildConfig, "w0"), 2.0)
    assert config.class_weights == ClassWeightConfig(scheme="enet", enet_c=1.5, mu=2.0)
    r = _invoke(*base, "--layout", "dsb2018")
    assert r.exit_code == 2
    assert "--layout dsb2018 conflicts with the instances layout" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--w0", "-1"], "--w0 must be a finite number >= 0, got -1.0"),
        (["--sigma", "0"], "--sigma must be a finite number > 0, got 0.0"),
        (["--shard-size", "0"], "--shard-size must be a positive integer, got 0"),
        (["--max-pixels", "0"], "--max-pixels must be a positive integer, got 0"),
        (["--void-label", "70000"], "--void-label must be an integer <= 65535"),
        (["--unlabeled-value", "0"], "--unlabeled-value cannot be 0"),
        (["--spacing", "1,2,3,4"], "--spacing must be 2 or 3 positive numbers"),
        (["--class-weights-max", "-2"], "--class-weights-max must be > 0, got -2.0"),
        (["--enet-c", "1"], "--enet-c must be > 1"),
        (["--workers", "0"], "--workers must be at least 1, got 0"),
    ],
)
def test_library_errors_name_the_flag(tmp_path: Path, args: list[str], message: str) -> None:
    r = _invoke("build-weights", str(tmp_path), "-o", str(tmp_path / "o.zarr"), "-q", *args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Usage: maskprep build-weights" in r.output


def test_flag_table_and_translation() -> None:
    table = flag_table(main.commands["build-weights"])  # type: ignore[attr-defined]
    assert table["w0"] == "--w0"
    assert table["shard_size"] == "--shard-size"
    assert table["scheme"] == table["class_weights"] == "--class-weights"
    assert table["on_error"] == "--on-error"
    assert table["normalize"] == "--class-weights-normalize"
    assert table["dataset_dir"] == "DATASET_DIR"
    assert flag_table(main.commands["preview"])["samples"] == "--samples"  # type: ignore[attr-defined]
    assert flag_table(main.commands["make-sample"])["n_images"] == "--n-images"  # type: ignore[attr-defined]
    assert (
        translate("on_error must be one of fail, skip", table)
        == "--on-error must be one of fail, skip"
    )
    assert translate("scheme 'log-ratio' needs mu >= 1", table).startswith("--class-weights 'log")
    # Only a leading parameter name followed by a space is a parameter name.
    assert translate("w0: not a parameter", table) == "w0: not a parameter"
    assert translate("the w0 is fine", table) == "the w0 is fine"


def test_a_data_error_is_not_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # DataError is a ValueError too, but its message starts with a path ("out"
    # here, also the name of an option): exit 1 and the message as it is.
    monkeypatch.chdir(tmp_path)
    r = _invoke("build-weights", "out", "-o", "o.zarr", "-q")
    assert r.exit_code == 1
    assert r.output == "Error: out: dataset directory does not exist\n"


@pytest.mark.parametrize("command", [None, *COMMANDS])
@pytest.mark.parametrize("width", [80, 100, 200])
def test_help_fits_80_columns_and_says_maskprep(command: str | None, width: int) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    r = CliRunner().invoke(main, args, terminal_width=width)
    assert r.exit_code == 0, r.output
    too_long = [line for line in r.output.splitlines() if len(line) > HELP_WIDTH]
    assert not too_long
    assert r.output.startswith("Usage: maskprep ")
    if command is None:  # no short help cut off with "..."
        assert "..." not in r.output.split("Commands:")[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help(command: str) -> None:
    for param in main.commands[command].params:  # type: ignore[attr-defined]
        if isinstance(param, click.Option):
            assert param.help, (command, param.name)
