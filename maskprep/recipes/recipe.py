"""The :class:`Recipe` dataclass: a validated dataset description and its build config."""


from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from maskprep.config import BuildConfig
from maskprep.errors import DataError
from maskprep.ingest import RECIPE_LAYOUTS, VOLUME_LAYOUTS, SourceSpec, coco_categories
from maskprep.recipes.fields import (
    BUILD_KEYS,
    FLOAT_KEYS,
    RecipeError,
    build_pairs,
    int_key,
    nonnegative_int,
    read_codes,
    toml_value,
    typed,
    unknown_key,
)

__all__ = ["RECIPE_LAYOUTS_ALL", "Recipe"]

RECIPE_LAYOUTS_ALL = ("instances", "dsb2018", *RECIPE_LAYOUTS, *VOLUME_LAYOUTS)
_STRING_KEYS = frozenset(
    {"layout", "description", "images", "labels", "annotations", "codes_file"}
    | {"instances", "split", "image_mode", "image_key", "labels_key"}
)
# Keys of the volume layouts that make a SourceSpec (the rest are defaults).
_VOLUME_SOURCE_KEYS = ("images", "image_key", "labels_key", "split", "splits")
_SEMANTIC_KEYS = frozenset(
    {
        "images",
        "labels",
        "class_names",
        "codes_file",
        "void_classes",
        "label_map",
        "void_values",
        "unlabeled_value",
        "instances",
        "instance_classes",
        "split",
        "splits",
        "image_mode",
    }
)
# Keys each layout accepts besides layout, description and build.
_LAYOUT_KEYS = {
    "instances": frozenset({"class_names", "unlabeled_value"}),
    "dsb2018": frozenset({"class_names"}),
    "semantic": _SEMANTIC_KEYS,
    "cityscapes": _SEMANTIC_KEYS,
    "coco": frozenset(
        {"images", "annotations", "instances", "instance_classes", "split", "splits", "image_mode"}
    ),
    "hdf5": frozenset({"class_names", "unlabeled_value", *_VOLUME_SOURCE_KEYS}),
    "ome-zarr": frozenset(
        {"class_names", "unlabeled_value", *(k for k in _VOLUME_SOURCE_KEYS if k != "image_key")}
    ),
}
_DEFAULT_INSTANCES = {"semantic": "connected-components", "cityscapes": "layout", "coco": "layout"}
_DEFAULT_SPLIT = {"semantic": "valid.txt", "cityscapes": "valid.txt", "coco": "directory"}


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated recipe; the keys are described in the module docstring.

    ``origin`` (the file it came from) is used in messages and is not part of
    equality. :meth:`build_config` resolves it against a dataset into a
    :class:`~maskprep.BuildConfig`.

    Examples
    --------
    >>> r = Recipe.from_dict({"layout": "semantic", "images": "img/{stem}.png",
    ...                       "labels": "lab/{stem}.png", "class_names": ["sky", "road"],
    ...                       "build": {"class_weights": "median-frequency"}})
    >>> r.instances, r.split
    ('connected-components', 'valid.txt')
    >>> Recipe.from_dict(r.to_dict()) == r
    True
    >>> Recipe.from_dict({"layout": "semantic", "lables": "x"}, origin="my.toml")
    Traceback (most recent call last):
    ...
    maskprep.recipes.fields.RecipeError: my.toml: unknown key 'lables' (did you mean 'labels'?)
    """

    layout: str
    description: str = ""
    images: str | None = None
    labels: str | None = None
    annotations: str | None = None
    class_names: tuple[str, ...] | None = None
    codes_file: str | None = None
    void_classes: tuple[str, ...] = ()
    label_map: tuple[tuple[int, int | str], ...] = ()
    void_values: tuple[int, ...] = ()
    unlabeled_value: int | None = None
    instances: str | None = None
    instance_classes: tuple[str, ...] | None = None
    split: str | None = None
    splits: tuple[tuple[str, str], ...] = ()
    image_mode: str | None = None
    image_key: str | None = None
    labels_key: str | None = None
    build: tuple[tuple[str, Any], ...] = ()
    origin: str = field(default="<recipe>", compare=False)

    def _fail(self, message: str) -> RecipeError:
        return RecipeError(f"{self.origin}: {message}")

    def __post_init__(self) -> None:
        if self.layout not in RECIPE_LAYOUTS_ALL:
            raise self._fail(
                f"layout must be one of {', '.join(RECIPE_LAYOUTS_ALL)}, got {self.layout!r}"
            )
        allowed = _LAYOUT_KEYS[self.layout]
        for f in fields(self):
            if f.name in ("layout", "description", "build", "origin"):
                continue
            if getattr(self, f.name) != f.default and f.name not in allowed:
                raise self._fail(f"key {f.name!r} does not apply to the {self.layout} layout")
        if self.layout in RECIPE_LAYOUTS:
            if self.instances is None:
                object.__setattr__(self, "instances", _DEFAULT_INSTANCES[self.layout])
            if self.split is None:
                object.__setattr__(self, "split", _DEFAULT_SPLIT[self.layout])
        self._check_classes()
        if self.layout in RECIPE_LAYOUTS:
            self._check_source()
        if self.layout in VOLUME_LAYOUTS:
            try:
                self._volume_spec()
            except ValueError as exc:
                raise self._fail(str(exc)) from None
        self._check_build()

    def _volume_spec(self) -> SourceSpec | None:
        """The SourceSpec of an hdf5 or ome-zarr recipe; None when it keeps the defaults."""
        given = [k for k in _VOLUME_SOURCE_KEYS if getattr(self, k) not in (None, ())]
        if not given:
            return None
        if self.images is None:
            raise ValueError(
                f"{given[0]} needs an images pattern too, e.g. images = "
                + ('"{stem}.hdf"' if self.layout == "hdf5" else '"{stem}.ome.zarr"')
            )
        return SourceSpec(
            layout=self.layout,
            images=self.images,
            split=self.split or "valid.txt",
            splits=self.splits,
            instances="layout",
            image_key=self.image_key,
            labels_key=self.labels_key,
        )

    def _check_classes(self) -> None:
        names = self.class_names
        if names is not None and (not names or len(set(names)) != len(names)):
            raise self._fail(f"class_names must be distinct and non-empty, got {list(names)}")
        if self.layout in ("instances", "dsb2018", *VOLUME_LAYOUTS):
            if names is not None and len(names) != 2:
                raise self._fail(
                    f"the {self.layout} layout has two classes (background, object); "
                    f"class_names has {len(names)}"
                )
            return
        if self.layout == "coco":
            return
        if (names is None) == (self.codes_file is None):
            raise self._fail(f"the {self.layout} layout needs class_names or codes_file (one)")
        if self.codes_file is not None:
            _relative(self.codes_file, "codes_file", self)
        if self.void_classes and self.label_map:
            raise self._fail(
                "void_classes works with the class list order; with label_map, list the "
                "void source values in void_values"
            )
        if names is not None:
            unknown = [n for n in self.void_classes if n not in names]
            unknown += [v for _, v in self.label_map if isinstance(v, str) and v not in names]
            if unknown:
                raise self._fail(f"{unknown[0]!r} is not in class_names")
            too_big = [v for _, v in self.label_map if isinstance(v, int) and v >= len(names)]
            if too_big:
                raise self._fail(
                    f"label_map class index {too_big[0]} is out of range for {len(names)} classes"
                )
            void = set(self.void_classes)
            for n in self.instance_classes or ():
                if n not in names or n in void:
                    raise self._fail(f"instance_classes: {n!r} is not a (non-void) class")

    def _check_source(self) -> None:
        try:
            # Class names are resolved later; check the source values now.
            self._spec(tuple((k, 0) for k, _ in self.label_map), ())
        except ValueError as exc:
            raise self._fail(str(exc)) from None
        if self.instance_classes is not None and self.instances != "connected-components":
            raise self._fail("instance_classes only applies to instances = 'connected-components'")

    def _spec(
        self,
        label_map: tuple[tuple[int, int], ...],
        instance_classes: tuple[int, ...],
        void_values: tuple[int, ...] | None = None,
    ) -> SourceSpec:
        assert self.images is not None and self.instances is not None and self.split is not None
        return SourceSpec(
            layout=self.layout,
            images=self.images,
            labels=self.labels,
            annotations=self.annotations,
            split=self.split,
            splits=self.splits,
            label_map=label_map,
            void_values=self.void_values if void_values is None else void_values,
            instances=self.instances,
            instance_classes=instance_classes,
            image_mode=self.image_mode,
        )

    def _check_build(self) -> None:
        kwargs = dict(self.build)
        unknown = sorted(set(kwargs) - set(BUILD_KEYS))
        if unknown:
            raise self._fail(unknown_key(unknown[0], BUILD_KEYS, "[build] "))
        trial = {k: v for k, v in kwargs.items() if k != "void_label"}
        void_label = kwargs.get("void_label")
        if void_label is not None and (
            isinstance(void_label, bool) or not isinstance(void_label, int) or void_label < 1
        ):
            raise self._fail(f"[build] void_label must be a positive integer, got {void_label!r}")
        try:
            BuildConfig(**trial, class_names=("a",))
        except (TypeError, ValueError) as exc:
            raise self._fail(f"[build] {exc}") from None

    @property
    def defaults(self) -> dict[str, Any]:
        """The ``[build]`` defaults as :class:`~maskprep.BuildConfig` keyword arguments."""
        out = dict(self.build)
        if self.unlabeled_value is not None:
            out["unlabeled_value"] = self.unlabeled_value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "<recipe>") -> Recipe:
        """A recipe from parsed TOML (or :meth:`to_dict` output).

        Raises
        ------
        RecipeError
            Naming ``origin`` and the key, for unknown keys and bad values.
        """

        def fail(message: str) -> RecipeError:
            return RecipeError(f"{origin}: {message}")

        if not isinstance(data, dict):
            raise fail("a recipe is a table of keys")
        known = [f.name for f in fields(cls) if f.name != "origin"]
        for key in data:
            if key not in known:
                raise fail(unknown_key(key, known))
        if "layout" not in data:
            raise fail(f"missing key 'layout' ({', '.join(RECIPE_LAYOUTS_ALL)})")
        kwargs: dict[str, Any] = {"origin": origin}
        for key, value in data.items():
            if key in _STRING_KEYS:
                kwargs[key] = typed(value, str, key, fail)
            elif key in ("class_names", "void_classes", "instance_classes"):
                kwargs[key] = tuple(
                    typed(v, str, key, fail) for v in typed(value, list, key, fail)
                )
            elif key == "void_values":
                values = typed(value, list, key, fail)
                kwargs[key] = tuple(nonnegative_int(v, key, fail) for v in values)
            elif key == "unlabeled_value":
                kwargs[key] = nonnegative_int(value, key, fail)
            elif key == "label_map":
                pairs: list[tuple[int, int | str]] = []
                for k, v in typed(value, dict, key, fail).items():
                    src = int_key(k, key, fail)
                    if isinstance(v, str):
                        pairs.append((src, v))
                    else:
                        pairs.append((src, nonnegative_int(v, f"{key}.{k}", fail)))
                kwargs[key] = tuple(sorted(pairs, key=lambda p: p[0]))
            elif key == "splits":
                table = typed(value, dict, key, fail)
                kwargs[key] = tuple(
                    sorted((str(k), typed(v, str, f"{key}.{k}", fail)) for k, v in table.items())
                )
            elif key == "build":
                kwargs[key] = build_pairs(typed(value, dict, key, fail), fail)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """TOML-shaped dictionary of the keys that differ from their defaults."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "origin" or (value == f.default and f.name != "layout"):
                continue
            if f.name == "label_map":
                value = {str(k): v for k, v in value}
            elif f.name == "splits":
                value = dict(value)
            elif f.name == "build":
                value = {k: toml_value(v) for k, v in value}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def build_config(self, dataset_dir: str | os.PathLike[str], **overrides: Any) -> BuildConfig:
        """The :class:`~maskprep.BuildConfig` for building ``dataset_dir`` with this recipe.

        ``overrides`` (BuildConfig fields) win over the recipe's ``[build]``
        defaults and ``unlabeled_value``; ``layout``, ``class_names`` and
        ``source`` come from the recipe and cannot be overridden.

        Raises
        ------
        DataError
            If the dataset's codes file or COCO annotations cannot be used.
        ValueError
            If the resulting options are invalid (e.g. a void label below the
            number of classes).
        """
        fixed = sorted({"layout", "class_names", "source"} & set(overrides))
        if fixed:
            raise ValueError(f"{fixed[0]} is set by the recipe {self.origin}")
        root = Path(dataset_dir)
        kwargs: dict[str, Any] = {**self.defaults, **overrides, "layout": self.layout}
        for key in FLOAT_KEYS:
            if isinstance(kwargs.get(key), int):
                kwargs[key] = float(kwargs[key])
        if self.layout in RECIPE_LAYOUTS:
            if not root.is_dir():
                raise DataError(f"{root}: dataset directory does not exist")
            names, spec = self._resolve(root)
            kwargs["class_names"] = names
            kwargs["source"] = spec
        else:
            if self.class_names is not None:
                kwargs["class_names"] = self.class_names
            volume = self._volume_spec() if self.layout in VOLUME_LAYOUTS else None
            if volume is not None:
                kwargs["source"] = volume
        try:
            return BuildConfig(**kwargs)
        except ValueError as exc:
            raise ValueError(f"{exc} (with recipe {self.origin})") from None

    def _resolve(self, root: Path) -> tuple[tuple[str, ...], SourceSpec]:
        if self.layout == "coco":
            cats = coco_categories(root, self._spec((), ()))
            names = ("background", *(name for _, name in cats))
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise DataError(
                    f"{root}: COCO class name {dup[0]!r} is used twice (categories, "
                    "plus background for class 0)"
                )
            label_map = tuple((cid, k) for k, (cid, _) in enumerate(cats, start=1))
            return names, self._spec(label_map, self._instance_classes(names, "categories"))
        where = "class_names"
        if self.class_names is not None:
            listed = list(self.class_names)
        else:
            assert self.codes_file is not None
            listed = read_codes(root, self.codes_file)
            where = str(root / self.codes_file)
        if self.label_map:
            pairs = []
            for src, cls in self.label_map:
                if isinstance(cls, str):
                    if cls not in listed:
                        raise self._fail(f"label_map: {cls!r} is not a class ({where})")
                    cls = listed.index(cls)
                elif cls >= len(listed):
                    raise self._fail(
                        f"label_map: class index {cls} is out of range for {len(listed)} "
                        f"classes ({where})"
                    )
                pairs.append((src, cls))
            names = tuple(listed)
            label_map = tuple(pairs)
            void_values = self.void_values
        else:
            void = set(self.void_classes)
            missing = sorted(void - set(listed))
            if missing:
                raise self._fail(f"void_classes: {missing[0]!r} is not a class ({where})")
            names = tuple(n for n in listed if n not in void)
            label_map = tuple((i, names.index(n)) for i, n in enumerate(listed) if n not in void)
            clash = sorted(set(self.void_values) & {i for i, _ in label_map})
            if clash:
                raise self._fail(
                    f"void_values: {clash[0]} is the value of class {listed[clash[0]]!r} ({where})"
                )
            void_values = tuple(
                sorted({*self.void_values, *(i for i, n in enumerate(listed) if n in void)})
            )
        return names, self._spec(label_map, self._instance_classes(names, where), void_values)

    def _instance_classes(self, names: tuple[str, ...], where: str) -> tuple[int, ...]:
        if self.instances != "connected-components":
            return ()
        if self.instance_classes is None:
            return tuple(range(1, len(names)))
        out = []
        for n in self.instance_classes:
            if n not in names:
                raise self._fail(f"instance_classes: {n!r} is not a (non-void) class ({where})")
            out.append(names.index(n))
        return tuple(out)


def _relative(path: str, key: str, recipe: Recipe) -> None:
    p = Path(path)
    if p.is_absolute() or ".." in p.parts:
        raise recipe._fail(f"{key} must be a path inside the dataset, got {path!r}")
