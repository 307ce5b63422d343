"""Build configuration: one frozen, validated, serialisable dataclass."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from maskprep.errors import check_known_keys
from maskprep.ingest import LAYOUTS, VOLUME_LAYOUTS, SourceSpec, available_layouts
from maskprep.ingest.source import json_value
from maskprep.weighting import ClassWeightConfig

if TYPE_CHECKING:
    from maskprep.recipes import Recipe

__all__ = ["BORDER_REGIONS", "VOID_BORDER_MODES", "BuildConfig"]

BORDER_REGIONS = ("background", "all")
VOID_BORDER_MODES = ("between", "around")
# Options added after the first store format: left out of to_dict() at their
# default, so the metadata of a store that does not use them is unchanged.
_OMITTED_AT_DEFAULT = (
    "targets",
    "boundary_width",
    "rays",
    "affinity_offsets",
    "void_border",
    "void_border_mode",
    "block",
    "class_locations",
    "intensity_stats",
)


#: Largest ``shard_size``: a shard index of 1 MiB per array.
MAX_SHARD_SIZE = 65536
#: Largest ``class_locations`` (per class and sample; nnU-Net keeps up to 10 000).
MAX_CLASS_LOCATIONS = 100_000


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the content of a built store.

    Two builds with equal configs and equal inputs give byte-identical arrays.

    ``source`` describes the semantic layouts (semantic, cityscapes, coco):
    paths, split, the source value -> class mapping and where instance ids
    come from. It is None for the instances and dsb2018 layouts, whose classes
    are background and object. :meth:`from_recipe` makes a config from a
    recipe (see :mod:`maskprep.recipes`).

    ``tile`` chunks every array in tiles of that many pixels per spatial
    axis (store format 2, see :mod:`maskprep.store`; default ``"auto"``: 256
    in 2D, 64 in 3D, :func:`maskprep.store.default_tile`): small samples of a
    mixed-size dataset and patches of big ones are read without decoding the
    padded whole, and big samples are built in blocks. ``None`` stores one
    chunk per sample (format 1, every store before tiles).
    ``block`` (tiled stores only; default
    :func:`maskprep.store.default_block`: 2048 pixels
    in 2D, 256 in 3D) is the extent of a shard along each spatial axis,
    rounded up to whole tiles: a sample longer than that along any axis is
    scanned and computed block by block, each block a task reading its
    region plus a halo (memory bounded by the block, not the sample).

    ``class_locations=K`` records, per sample and class, up to K seeded
    pixel coordinates (never void) for class-aware patch sampling
    (:meth:`maskprep.Shards.patches`); ``intensity_stats=True`` records the
    train split's per-channel intensity statistics (:mod:`maskprep.intensity`).
    Both are computed in pass 2 from mergeable per-shard results.

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
    source: SourceSpec | None = None
    targets: tuple[str, ...] = ("weights",)
    boundary_width: int = 1
    rays: int = 32
    affinity_offsets: tuple[tuple[int, ...], ...] | None = None
    void_border: float = 0.0
    void_border_mode: str = "between"
    tile: int | str | None = "auto"
    block: int | None = None
    class_locations: int = 0
    intensity_stats: bool = False

    def __post_init__(self) -> None:
        if self.layout == "auto" and isinstance(self.source, SourceSpec):
            object.__setattr__(self, "layout", self.source.layout)
        if self.layout != "auto" and self.layout not in LAYOUTS:
            raise ValueError(
                f"layout must be auto or one of {', '.join(available_layouts())}, "
                f"got {self.layout!r}"
            )
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
        if self.unlabeled_value == 0 and (
            self.source is None or self.source.layout in VOLUME_LAYOUTS
        ):
            raise ValueError("unlabeled_value cannot be 0: 0 is background in instance masks")
        self._check_source()
        self._check_targets()
        self._check_target_options()
        if not (math.isfinite(self.w0) and self.w0 >= 0):
            raise ValueError(f"w0 must be a finite number >= 0, got {self.w0}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {self.sigma}")
        two_s2 = 2.0 * self.sigma * self.sigma  # the border term divides by 2 sigma^2
        if not (two_s2 > 0 and math.isfinite(1.0 / two_s2)):
            raise ValueError(
                f"sigma is too small to compute with (2*sigma**2 underflows), got {self.sigma}"
            )
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
        if self.shard_size > MAX_SHARD_SIZE:
            # Every shard file holds an index of 16 bytes per sample slot, read
            # whole by readers: past this, stores bloat and readers run out of memory.
            raise ValueError(
                f"shard_size must be at most {MAX_SHARD_SIZE:,} samples, got {self.shard_size:,}"
            )
        if (
            self.tile is not None
            and self.tile != "auto"
            and (isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 1)
        ):
            raise ValueError(f"tile must be a positive integer, 'auto' or None, got {self.tile!r}")
        if self.block is not None and (
            isinstance(self.block, bool) or not isinstance(self.block, int) or self.block < 1
        ):
            raise ValueError(f"block must be a positive integer or None, got {self.block!r}")
        if (
            isinstance(self.class_locations, bool)
            or not isinstance(self.class_locations, int)
            or not 0 <= self.class_locations <= MAX_CLASS_LOCATIONS
        ):
            raise ValueError(
                f"class_locations must be an integer in [0, {MAX_CLASS_LOCATIONS}] "
                f"(locations per class and sample; 0: none), got {self.class_locations!r}"
            )
        if not isinstance(self.intensity_stats, bool):
            raise ValueError(f"intensity_stats must be True or False, got {self.intensity_stats!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {self.max_pixels!r}")
        if not isinstance(self.zstd_level, int) or not -7 <= self.zstd_level <= 22:
            raise ValueError(f"zstd_level must be an integer in [-7, 22], got {self.zstd_level!r}")

    def _check_source(self) -> None:
        src = self.source
        if src is None:
            if self.layout != "auto" and LAYOUTS.get(self.layout).needs_source:
                raise ValueError(
                    f"the {self.layout} layout needs a source (class mapping and paths); "
                    "make the config with BuildConfig.from_recipe"
                )
            return
        if not isinstance(src, SourceSpec):
            raise ValueError(f"source must be a SourceSpec, got {type(src).__name__}")
        if self.layout != src.layout:
            raise ValueError(f"layout {self.layout!r} differs from the source's {src.layout!r}")
        c = len(self.class_names)
        too_big = [k for k in (*src.class_indices, *src.instance_classes) if k >= c]
        if too_big:
            raise ValueError(f"class index {too_big[0]} is out of range for {c} classes")
        if self.unlabeled_value is not None:
            if src.layout == "coco":
                raise ValueError("unlabeled_value does not apply to the coco layout")
            mapped = dict(src.label_map)
            if self.unlabeled_value in mapped:
                name = self.class_names[mapped[self.unlabeled_value]]
                raise ValueError(
                    f"unlabeled_value {self.unlabeled_value} is also the source value of "
                    f"class {name!r}"
                )

    def _check_targets(self) -> None:
        from maskprep.targets import TARGETS, available_targets

        names = self.targets
        if isinstance(names, str) or not names or len(set(names)) != len(names):
            raise ValueError(f"targets must be distinct target names, got {names!r}")
        unknown = [t for t in names if t not in TARGETS]
        if unknown:
            raise ValueError(
                f"targets names an unknown target {unknown[0]!r}; available: "
                f"{', '.join(available_targets())}"
            )

    def _check_target_options(self) -> None:
        if isinstance(self.boundary_width, bool) or not isinstance(self.boundary_width, int):
            raise ValueError(f"boundary_width must be an integer >= 1, got {self.boundary_width!r}")
        if self.boundary_width < 1:
            raise ValueError(f"boundary_width must be an integer >= 1, got {self.boundary_width}")
        if isinstance(self.rays, bool) or not isinstance(self.rays, int) or self.rays < 3:
            raise ValueError(f"rays must be an integer >= 3, got {self.rays!r}")
        if self.affinity_offsets is not None:
            offsets = tuple(tuple(int(v) for v in o) for o in self.affinity_offsets)
            if not offsets or any(not o or not any(o) for o in offsets):
                raise ValueError(
                    f"affinity_offsets must be non-zero offset vectors, got {self.affinity_offsets}"
                )
            object.__setattr__(self, "affinity_offsets", offsets)
        if not (math.isfinite(self.void_border) and self.void_border >= 0):
            raise ValueError(f"void_border must be a finite number >= 0, got {self.void_border}")
        if self.void_border_mode not in VOID_BORDER_MODES:
            raise ValueError(
                f"void_border_mode must be one of {', '.join(VOID_BORDER_MODES)}, "
                f"got {self.void_border_mode!r}"
            )

    @property
    def num_classes(self) -> int:
        """Number of semantic classes (void excluded)."""
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary; :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "source":
                # Absent for instances and dsb2018: their stores stay as before.
                if value is not None:
                    out[f.name] = value.to_dict()
                continue
            if f.name in _OMITTED_AT_DEFAULT and value == f.default:
                continue  # stores built before these options existed stay identical
            if f.name == "tile" and value is None:
                continue  # untiled, as every store before tiles: its metadata stays as it was
            if isinstance(value, ClassWeightConfig):
                value = value.to_dict()
            out[f.name] = json_value(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildConfig:
        """Build a validated config from :meth:`to_dict` output (unknown keys are an error)."""
        check_known_keys(data, {f.name for f in fields(cls)}, "build option")
        kwargs = dict(data)
        kwargs.setdefault("tile", None)  # see to_dict: no tile is an untiled store
        if isinstance(kwargs.get("class_weights"), dict):
            kwargs["class_weights"] = ClassWeightConfig.from_dict(kwargs["class_weights"])
        if isinstance(kwargs.get("source"), dict):
            kwargs["source"] = SourceSpec.from_dict(kwargs["source"])
        if isinstance(kwargs.get("affinity_offsets"), list):
            kwargs["affinity_offsets"] = tuple(tuple(o) for o in kwargs["affinity_offsets"])
        for key in ("spacing", "class_names", "targets"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("spacing") is not None:
            kwargs["spacing"] = tuple(float(s) for s in kwargs["spacing"])
        for key in ("w0", "sigma", "tolerance", "void_border"):
            if isinstance(kwargs.get(key), int):
                kwargs[key] = float(kwargs[key])
        return cls(**kwargs)

    @classmethod
    def from_recipe(
        cls,
        recipe: Recipe | str | os.PathLike[str],
        dataset_dir: str | os.PathLike[str],
        **overrides: Any,
    ) -> BuildConfig:
        """Config for building ``dataset_dir`` with a recipe.

        ``recipe`` is a :class:`~maskprep.recipes.Recipe`, a recipe name
        (``"camvid"``) or a path to a TOML file. The recipe's class list may
        come from the dataset (CamVid ``codes.txt``, COCO categories), hence
        ``dataset_dir``. Keyword arguments override the recipe's build
        defaults (``void_label=254``, ``w0=5.0``, ...); the layout, classes
        and source are the recipe's.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from maskprep import make_sample
        >>> data = make_sample(pathlib.Path(tempfile.mkdtemp()) / "dsb", n_images=2,
        ...                    size=(32, 32), layout="dsb2018")
        >>> cfg = BuildConfig.from_recipe("dsb2018", data, w0=5.0)
        >>> cfg.layout, cfg.w0, cfg.class_names
        ('dsb2018', 5.0, ('background', 'object'))
        """
        from maskprep.recipes import Recipe, load_recipe

        if not isinstance(recipe, Recipe):
            recipe = load_recipe(recipe)
        return recipe.build_config(dataset_dir, **overrides)
