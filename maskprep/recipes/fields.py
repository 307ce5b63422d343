"""Typed reading of a recipe's TOML values: every error names the key."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from maskprep.errors import DataError
from maskprep.ingest import check_inside
from maskprep.weighting import ClassWeightConfig

__all__ = [
    "BUILD_KEYS",
    "FLOAT_KEYS",
    "RecipeError",
    "build_pairs",
    "int_key",
    "nonnegative_int",
    "read_codes",
    "read_text",
    "toml_value",
    "typed",
    "unknown_key",
]

BUILD_KEYS = (
    "void_label",
    "class_weights",
    "w0",
    "sigma",
    "border_region",
    "tolerance",
    "spacing",
    "shard_size",
    "zstd_level",
    "max_pixels",
    "targets",
    "tile",
    "class_locations",
    "intensity_stats",
)
FLOAT_KEYS = ("w0", "sigma", "tolerance")


class RecipeError(DataError):
    """A recipe file is invalid (the message names the file and the key)."""


def toml_value(value: Any) -> Any:
    if isinstance(value, ClassWeightConfig):
        # TOML has no null: unset parameters are left out (from_dict restores them).
        return {k: v for k, v in value.to_dict().items() if v is not None}
    return list(value) if isinstance(value, tuple) else value


def unknown_key(key: str, known: Any, prefix: str = "") -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return f"unknown key {prefix}{key!r}{hint}"


def typed(value: Any, kind: type, key: str, fail: Any) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise fail(f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def nonnegative_int(value: Any, key: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"{key} must be a non-negative integer, got {value!r}")
    return value


def int_key(key: str, where: str, fail: Any) -> int:
    try:
        value = int(key)
    except ValueError:
        raise fail(f"{where}: key {key!r} is not an integer source value") from None
    if value < 0:
        raise fail(f"{where}: key {key!r} is negative")
    return value


def build_pairs(table: dict[str, Any], fail: Any) -> tuple[tuple[str, Any], ...]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in BUILD_KEYS:
            raise fail(unknown_key(key, BUILD_KEYS, "[build] "))
        if key == "class_weights":
            try:
                if isinstance(value, str):
                    value = ClassWeightConfig(scheme=value)
                elif isinstance(value, dict):
                    value = ClassWeightConfig.from_dict(value)
                else:
                    raise fail("[build] class_weights must be a scheme name or a table")
            except ValueError as exc:
                if isinstance(exc, RecipeError):
                    raise
                raise fail(f"[build] class_weights: {exc}") from None
        elif key == "spacing":
            if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                raise fail(f"[build] spacing must be a list of numbers, got {value!r}")
            value = tuple(float(v) for v in value)
        elif key in FLOAT_KEYS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail(f"[build] {key} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise fail(f"[build] {key} must be finite, got {value!r}")
        elif key == "border_region":
            value = typed(value, str, f"[build] {key}", fail)
        elif key == "targets":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(f"[build] targets must be a list of target names, got {value!r}")
            value = tuple(value)
        elif key == "zstd_level":
            value = typed(value, int, f"[build] {key}", fail)
        elif key == "intensity_stats":
            if not isinstance(value, bool):
                raise fail(f"[build] intensity_stats must be true or false, got {value!r}")
        else:
            value = nonnegative_int(value, f"[build] {key}", fail)
        out[key] = value
    return tuple(sorted(out.items()))


def read_text(path: Path, what: str, missing: str, error: type[DataError] = DataError) -> str:
    """The UTF-8 text of ``path``; ``error`` naming the file if it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None


def read_codes(root: Path, name: str) -> list[str]:
    """The class names listed in the dataset's codes file ``name``, one a line."""
    path = root / name
    check_inside(root, path)  # a symlink out of the dataset is refused, never read
    text = read_text(path, "the class names", "the recipe's codes_file does not exist")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: lists no class names")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{path}: class name {dup[0]!r} appears twice")
    return names
