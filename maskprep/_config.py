"""Build configuration: one frozen, validated, serialisable dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from maskprep._class_weights import ClassWeightConfig
from maskprep._ingest import LAYOUTS

__all__ = ["BORDER_REGIONS", "BuildConfig"]

BORDER_REGIONS = ("background", "all")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the content of a built store.

    Two builds with equal configs and equal inputs give byte-identical arrays.

    Examples
    --------
    >>> cfg = BuildConfig(w0=5.0)
    >>> BuildConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> BuildConfig(void_label=1)
    Traceback (most recent call last):
    ...
    ValueError: void_label must be at least the number of classes (2), got 1
    """

    layout: str = "auto"
    void_label: int = 255
    unlabeled_value: int | None = None
    class_weights: ClassWeightConfig = field(default_factory=ClassWeightConfig)
    w0: float = 10.0
    sigma: float = 5.0
    border_region: str = "background"
    tolerance: float = 1e-6
    spacing: tuple[float, ...] | None = None
    shard_size: int = 64
    zstd_level: int = 3
    class_names: tuple[str, ...] = ("background", "object")
    max_pixels: int = 2**28

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if len(self.class_names) < 1 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must be distinct and non-empty, got {self.class_names}")
        if not isinstance(self.void_label, int) or self.void_label > 65535:
            raise ValueError(f"void_label must be an integer <= 65535, got {self.void_label!r}")
        if self.void_label < len(self.class_names):
            raise ValueError(
                f"void_label must be at least the number of classes ({len(self.class_names)}), "
                f"got {self.void_label}"
            )
        if self.unlabeled_value is not None and (
            not isinstance(self.unlabeled_value, int) or self.unlabeled_value < 0
        ):
            raise ValueError(
                f"unlabeled_value must be a non-negative integer, got {self.unlabeled_value!r}"
            )
        if self.unlabeled_value == 0:
            raise ValueError("unlabeled_value cannot be 0: 0 is background in instance masks")
        if not (math.isfinite(self.w0) and self.w0 >= 0):
            raise ValueError(f"w0 must be a finite number >= 0, got {self.w0}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {self.sigma}")
        if self.border_region not in BORDER_REGIONS:
            raise ValueError(
                f"border_region must be one of {', '.join(BORDER_REGIONS)}, "
                f"got {self.border_region!r}"
            )
        if not (0 < self.tolerance < 1):
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if self.spacing is not None and (
            len(self.spacing) not in (2, 3)
            or not all(math.isfinite(s) and s > 0 for s in self.spacing)
        ):
            raise ValueError(f"spacing must be 2 or 3 positive numbers, got {self.spacing}")
        if not isinstance(self.shard_size, int) or self.shard_size < 1:
            raise ValueError(f"shard_size must be a positive integer, got {self.shard_size!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {self.max_pixels!r}")
        if not isinstance(self.zstd_level, int) or not -7 <= self.zstd_level <= 22:
            raise ValueError(f"zstd_level must be an integer in [-7, 22], got {self.zstd_level!r}")

    @property
    def num_classes(self) -> int:
        """Number of semantic classes (void excluded)."""
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary; :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ClassWeightConfig):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildConfig:
        """Build a validated config from :meth:`to_dict` output (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown build option(s): {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        if isinstance(kwargs.get("class_weights"), dict):
            kwargs["class_weights"] = ClassWeightConfig.from_dict(kwargs["class_weights"])
        for key in ("spacing", "class_names"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("spacing") is not None:
            kwargs["spacing"] = tuple(float(s) for s in kwargs["spacing"])
        for key in ("w0", "sigma", "tolerance"):
            if isinstance(kwargs.get(key), int):
                kwargs[key] = float(kwargs[key])
        return cls(**kwargs)
