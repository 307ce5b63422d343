"""Dataset discovery and sample reading.

Two layouts need no configuration:

``instances``
    ``images/<stem>.(png|tif|tiff)`` and ``masks/<stem>.(png|tif|tiff)``, each
    mask an instance label image (0 background, any other value one instance;
    ids need not be sequential). 2D images or 3D TIFF stacks. Unannotated
    pixels come from an optional ``unlabeled/<stem>.(png|tif|tiff)`` (nonzero =
    not annotated) or from a mask value (``unlabeled_value``).
``dsb2018``
    ``<stem>/images/<stem>.png`` and ``<stem>/masks/*.png``, one binary mask per
    instance, as in the Kaggle Data Science Bowl 2018.

An optional ``valid.txt`` at the dataset root lists validation stems, one per
line (fastai's ``split_by_fname_file``); every other sample is train. Both
layouts have two classes, background and object.

Three more layouts carry semantic classes and are described by a
:class:`SourceSpec` (normally made from a recipe, see :mod:`maskprep.recipes.recipe`):

``semantic``
    Image and class-index mask files found by path patterns such as
    ``images/{stem}.png`` and ``labels/{stem}_P.png``. Each mask value is
    mapped to a class index or to void by the spec's ``label_map`` and
    ``void_values`` (plus ``unlabeled_value``); any other value is an error
    naming the file and the value.
``cityscapes``
    As ``semantic``, but the masks are Cityscapes ``*_gtFine_instanceIds.png``
    files: a value ``v >= 1000`` is label id ``v // 1000`` and instance ``v``;
    a value below 1000 is a label id with no instance (stuff, or a crowd
    "group" region).
``coco``
    COCO instance annotation JSON files (``annotations/instances_{split}.json``)
    and the images they list. Class 0 is background, then one class per
    category in category id order. Annotations are painted in ascending
    annotation id, so where two overlap the later id wins; an ``iscrowd``
    annotation paints void. Polygons and RLE (compressed or not) are decoded
    with pycocotools; polygons with fewer than 3 points have no area and are
    skipped.

Instance ids of these layouts (``SourceSpec.instances``):

``"layout"``
    From the annotations: Cityscapes keeps ``v`` (``class * 1000 + k``); COCO
    numbers each image's non-crowd annotations ``1, 2, ...`` in ascending
    annotation id order.
``"connected-components"``
    Each connected component (full connectivity: 8 neighbours in 2D, 26 in 3D)
    of each class in ``instance_classes`` is one instance. Ids run ``1..N``:
    the components of the lowest instance class first, each class's
    components numbered in raster order of their first pixel. Other classes
    are "stuff": instance 0, background for the border term.
``"none"``
    Every pixel is instance 0 (no border term).

Void pixels always have instance 0.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import DataError

__all__ = [
    "ALL_LAYOUTS",
    "INSTANCE_SOURCES",
    "LAYOUTS",
    "RECIPE_LAYOUTS",
    "CocoAnnotation",
    "Dataset",
    "LoadedSample",
    "PathPattern",
    "SampleSource",
    "SourceSpec",
    "coco_categories",
    "detect_layout",
    "discover",
    "read_sample",
]

LAYOUTS = ("auto", "instances", "dsb2018")
# Layouts that need a SourceSpec (class mapping and path patterns), i.e. a recipe.
RECIPE_LAYOUTS = ("semantic", "cityscapes", "coco")
ALL_LAYOUTS = (*LAYOUTS, *RECIPE_LAYOUTS)
INSTANCE_SOURCES = ("layout", "connected-components", "none")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
# Suffixes a split file may give for the recipe layouts (COCO images are JPEG).
RECIPE_IMAGE_SUFFIXES = (*IMAGE_SUFFIXES, ".jpg", ".jpeg", ".bmp", ".webp")
SPLITS = ("train", "valid")
# Split rules of a SourceSpec besides a split file name such as "valid.txt".
SPLIT_RULES = ("directory", "none")
# Cityscapes instanceIds: v >= 1000 is class v // 1000, instance v.
CITYSCAPES_INSTANCE_FACTOR = 1000
# Largest source value a label_map or void_values may list (a lookup table entry each).
MAX_SOURCE_VALUE = 65535


@dataclass(frozen=True)
class CocoAnnotation:
    """One COCO annotation of one image; ``segmentation`` is its JSON text."""

    id: int
    category_id: int
    iscrowd: bool
    segmentation: str


@dataclass(frozen=True)
class SampleSource:
    """Where one sample's files are on disk.

    COCO samples have the annotation JSON as their only mask file, and carry
    their annotations and the ``(height, width)`` the JSON gives.
    """

    sample_id: str
    image: Path
    masks: tuple[Path, ...]
    unlabeled: Path | None
    split: str
    layout: str
    annotations: tuple[CocoAnnotation, ...] = ()
    shape: tuple[int, ...] | None = None

    def files(self) -> tuple[Path, ...]:
        """All input files of this sample, image first."""
        extra = (self.unlabeled,) if self.unlabeled is not None else ()
        return (self.image, *self.masks, *extra)


@dataclass(frozen=True)
class Dataset:
    """A discovered dataset: its root, layout and samples sorted by id."""

    root: Path
    layout: str
    samples: tuple[SampleSource, ...]

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class LoadedSample:
    """One sample in memory, before void fill.

    ``image`` is None when the sample was read with ``image=False``: the image
    file was then checked (header, and PNG chunk checksums) but not decoded.
    """

    image: np.ndarray | None
    image_shape: tuple[int, ...]
    image_dtype: np.dtype[Any]
    instances: np.ndarray  # int32, 0 = background; 0 also on void pixels
    void: np.ndarray  # bool, True where the pixel is not annotated
    # Semantic layouts: class indices with void_label on void pixels (uint8 or
    # uint16). None for the instances and dsb2018 layouts, whose labels follow
    # from the instances (0 background, 1 object).
    labels: np.ndarray | None = None


_FIELD_RE = re.compile(r"\{([^{}]*)\}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_IMAGE_MODES = ("L", "LA", "RGB", "RGBA", "I", "I;16")


@dataclass(frozen=True)
class PathPattern:
    """A dataset-relative path with ``{field}`` placeholders.

    Each field stands for part of one path component (never a ``/``); a field
    may appear more than once and must then have the same value everywhere.
    Glob wildcards, ``..`` and absolute paths are refused.

    Examples
    --------
    >>> p = PathPattern("gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png")
    >>> p.fields
    ('split', 'city', 'stem')
    >>> p.match("gtFine/val/ulm/ulm_000001_000019_gtFine_instanceIds.png")
    {'split': 'val', 'city': 'ulm', 'stem': 'ulm_000001_000019'}
    >>> p.format({"split": "train", "city": "a", "stem": "a_1"})
    'gtFine/train/a/a_1_gtFine_instanceIds.png'
    >>> PathPattern("images/*.png")
    Traceback (most recent call last):
    ...
    ValueError: path pattern 'images/*.png': use {field} placeholders, not glob wildcards
    """

    text: str

    def __post_init__(self) -> None:
        t = self.text
        where = f"path pattern {t!r}"
        if not isinstance(t, str) or not t:
            raise ValueError(f"path pattern must be a non-empty string, got {t!r}")
        if "\\" in t or t.startswith("/") or re.match(r"[A-Za-z]:", t):
            raise ValueError(f"{where}: must be a relative path with / separators")
        if any(part in ("", ".", "..") for part in t.split("/")):
            raise ValueError(f"{where}: empty, '.' or '..' path components are not allowed")
        names = _FIELD_RE.findall(t)
        bad = [n for n in names if not _NAME_RE.match(n)]
        if bad:
            raise ValueError(f"{where}: {{{bad[0]}}} is not a valid field name")
        rest = _FIELD_RE.sub("", t)
        if "{" in rest or "}" in rest:
            raise ValueError(f"{where}: unbalanced {{ or }}")
        if any(c in rest for c in "*?[]"):
            raise ValueError(f"{where}: use {{field}} placeholders, not glob wildcards")
        if "}{" in t:
            raise ValueError(f"{where}: two fields need text between them")

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names in order of first appearance."""
        return tuple(dict.fromkeys(_FIELD_RE.findall(self.text)))

    @property
    def _regex(self) -> re.Pattern[str]:
        return _pattern_regex(self.text)

    def glob(self) -> str:
        """The pattern with every field replaced by ``*``."""
        return _FIELD_RE.sub("*", self.text)

    def match(self, relpath: str) -> dict[str, str] | None:
        """Field values if ``relpath`` (``/``-separated) matches, else None."""
        m = self._regex.match(relpath)
        return None if m is None else {k: m.group(k) for k in self.fields}

    def format(self, values: Mapping[str, str]) -> str:
        """The path for these field values."""
        return _FIELD_RE.sub(lambda m: values[m.group(1)], self.text)

    def find(self, root: Path) -> list[tuple[dict[str, str], Path]]:
        """Files under ``root`` matching the pattern, sorted by path.

        Names starting with ``.`` are skipped; names that are not UTF-8 and
        paths resolving outside ``root`` are errors.
        """
        found = []
        for path in sorted(root.glob(self.glob())):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            _check_name(path)
            values = self.match(rel.as_posix())
            if values is None:
                continue
            if not _inside(root, path):
                raise DataError(f"{path}: resolves outside the dataset directory {root}")
            found.append((values, path))
        return found


@functools.lru_cache(maxsize=64)
def _pattern_regex(text: str) -> re.Pattern[str]:
    out = []
    seen: set[str] = set()
    pos = 0
    for m in _FIELD_RE.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class SourceSpec:
    """How to find and decode a dataset of the semantic, cityscapes or coco layout.

    Normally made from a recipe (:meth:`maskprep.recipes.recipe.Recipe.build_config`);
    part of :class:`~maskprep.config.BuildConfig` and so of every store's
    metadata. Everything here is explicit: class names and sources are
    resolved, so a store can be re-derived without the recipe.

    Parameters
    ----------
    layout : {"semantic", "cityscapes", "coco"}
        See the module docstring.
    images : str
        Image path pattern (:class:`PathPattern`). semantic and cityscapes:
        matched against the files, must contain ``{stem}`` (the sample id);
        coco: filled in with the annotation file's fields and each image's
        ``{file_name}``, its stem is the sample id.
    labels : str or None
        Mask path pattern (semantic, cityscapes), filled in with the image's
        fields.
    annotations : str or None
        COCO annotation JSON pattern, e.g. ``annotations/instances_{split}.json``.
    split : str
        ``"directory"``: the ``{split}`` field decides, through ``splits``;
        ``"none"``: every sample is train; anything else: a file at the dataset
        root listing validation samples, one stem or file name a line (when
        the file is absent every sample is train).
    splits : tuple of (str, str)
        ``{split}`` value -> ``"train"`` or ``"valid"``. Samples under other
        values (e.g. Cityscapes ``test``, which has no labels) are left out.
    label_map : tuple of (int, int)
        Source value -> class index. The source value is the mask value
        (semantic), the label id (cityscapes) or the category id (coco).
    void_values : tuple of int
        Source values that mean "not annotated". Every other source value
        is an error naming the file and the value.
    instances : {"layout", "connected-components", "none"}
        Where instance ids come from (module docstring); ``"layout"`` is for
        cityscapes and coco only.
    instance_classes : tuple of int
        With ``"connected-components"``: the classes whose components are
        instances.
    image_mode : str or None
        Pillow mode every image is converted to (e.g. ``"RGB"``: COCO has
        some greyscale images); None keeps images as stored.

    Examples
    --------
    >>> spec = SourceSpec("semantic", "images/{stem}.png", labels="masks/{stem}.png",
    ...                   label_map=((1, 0), (2, 1)), void_values=(0,),
    ...                   instances="connected-components", instance_classes=(1,))
    >>> SourceSpec.from_dict(spec.to_dict()) == spec
    True
    """

    layout: str
    images: str
    labels: str | None = None
    annotations: str | None = None
    split: str = "valid.txt"
    splits: tuple[tuple[str, str], ...] = ()
    label_map: tuple[tuple[int, int], ...] = ()
    void_values: tuple[int, ...] = ()
    instances: str = "none"
    instance_classes: tuple[int, ...] = ()
    image_mode: str | None = None

    def __post_init__(self) -> None:
        if self.layout not in RECIPE_LAYOUTS:
            raise ValueError(
                f"source layout must be one of {', '.join(RECIPE_LAYOUTS)}, got {self.layout!r}"
            )
        images = PathPattern(self.images)
        img_fields = set(images.fields)
        if self.layout == "coco":
            if self.annotations is None or self.labels is not None:
                raise ValueError("the coco layout needs annotations and no labels pattern")
            ann_fields = set(PathPattern(self.annotations).fields)
            if "file_name" not in img_fields:
                raise ValueError(f"coco images pattern {self.images!r} must contain {{file_name}}")
            extra = img_fields - ann_fields - {"file_name"}
            if extra:
                raise ValueError(
                    f"coco images pattern {self.images!r} uses {{{sorted(extra)[0]}}}, "
                    f"which the annotations pattern {self.annotations!r} does not give"
                )
            split_fields = ann_fields
        else:
            if self.labels is None or self.annotations is not None:
                raise ValueError(f"the {self.layout} layout needs a labels pattern")
            if "stem" not in img_fields:
                raise ValueError(f"images pattern {self.images!r} must contain {{stem}}")
            extra = set(PathPattern(self.labels).fields) - img_fields
            if extra:
                raise ValueError(
                    f"labels pattern {self.labels!r} uses {{{sorted(extra)[0]}}}, "
                    f"which the images pattern {self.images!r} does not have"
                )
            split_fields = img_fields
        if self.split == "directory":
            if "split" not in split_fields:
                raise ValueError(
                    "split = 'directory' needs a {split} field in the "
                    + ("annotations" if self.layout == "coco" else "images")
                    + " pattern"
                )
            if not self.splits:
                raise ValueError("split = 'directory' needs splits ({split} value -> train/valid)")
        elif self.splits:
            raise ValueError("splits only applies with split = 'directory'")
        if self.split != "none" and self.split != "directory":
            PathPattern(self.split)  # a relative path inside the dataset
            if "{" in self.split:
                raise ValueError(f"split file {self.split!r} cannot have fields")
        splits = tuple(sorted((str(k), str(v)) for k, v in dict(self.splits).items()))
        for key, value in splits:
            if value not in SPLITS:
                raise ValueError(f"splits: {key!r} must map to train or valid, got {value!r}")
        object.__setattr__(self, "splits", splits)
        label_map = tuple(
            sorted((_int(k, "label_map"), _int(v, "label_map")) for k, v in self.label_map)
        )
        keys = [k for k, _ in label_map]
        if len(set(keys)) != len(keys):
            raise ValueError("label_map maps a source value twice")
        void_values = tuple(sorted({_int(v, "void_values") for v in self.void_values}))
        huge = [v for v in (*keys, *void_values) if v > MAX_SOURCE_VALUE]
        if huge:
            raise ValueError(f"source values go up to {MAX_SOURCE_VALUE}, got {huge[0]}")
        both = sorted(set(keys) & set(void_values))
        if both:
            raise ValueError(f"source value {both[0]} is both in label_map and in void_values")
        if self.layout == "cityscapes":
            big = [v for v in (*keys, *void_values) if v >= CITYSCAPES_INSTANCE_FACTOR]
            if big:
                raise ValueError(
                    f"cityscapes label ids are below {CITYSCAPES_INSTANCE_FACTOR}, got {big[0]}"
                )
        object.__setattr__(self, "label_map", label_map)
        object.__setattr__(self, "void_values", void_values)
        if self.instances not in INSTANCE_SOURCES:
            raise ValueError(
                f"instances must be one of {', '.join(INSTANCE_SOURCES)}, got {self.instances!r}"
            )
        if self.instances == "layout" and self.layout == "semantic":
            raise ValueError(
                "the semantic layout has no instance ids: use instances = "
                "'connected-components' or 'none'"
            )
        classes = tuple(sorted({_int(c, "instance_classes") for c in self.instance_classes}))
        if classes and self.instances != "connected-components":
            raise ValueError("instance_classes only applies to instances = 'connected-components'")
        object.__setattr__(self, "instance_classes", classes)
        if self.image_mode is not None and self.image_mode not in _IMAGE_MODES:
            raise ValueError(
                f"image_mode must be one of {', '.join(_IMAGE_MODES)}, got {self.image_mode!r}"
            )

    @property
    def class_indices(self) -> tuple[int, ...]:
        """Class indices the label map produces, sorted."""
        return tuple(sorted({c for _, c in self.label_map}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary; :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceSpec:
        """Validated spec from :meth:`to_dict` output (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown source option(s): {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        for key in ("splits", "label_map"):
            if key in kwargs:
                kwargs[key] = tuple(tuple(pair) for pair in kwargs[key])
        for key in ("void_values", "instance_classes"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def lookup(self, void_label: int) -> np.ndarray:
        """int32 table source value -> class index, ``void_label`` for void, -1 undeclared."""
        return _lookup(self.label_map, self.void_values, void_label)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what}: expected a non-negative integer, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=32)
def _lookup(
    label_map: tuple[tuple[int, int], ...], void_values: tuple[int, ...], void_label: int
) -> np.ndarray:
    size = 1 + max([k for k, _ in label_map] + list(void_values), default=0)
    lut = np.full(size, -1, dtype=np.int32)
    for k, c in label_map:
        lut[k] = c
    for v in void_values:
        lut[v] = void_label
    lut.setflags(write=False)
    return lut


def _ranges(values: Sequence[int]) -> str:
    """'0-3, 7, 9-10' for [0, 1, 2, 3, 7, 9, 10]."""
    vals = sorted(set(values))
    if not vals:
        return "none"
    parts = []
    start = prev = vals[0]
    for v in [*vals[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def detect_layout(root: Path) -> str:
    """Return ``"instances"`` or ``"dsb2018"`` for a dataset directory.

    Raises
    ------
    DataError
        If the directory matches neither layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset directory does not exist")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "instances"
    for child in sorted(root.iterdir()):
        if child.is_dir() and (child / "images").is_dir() and (child / "masks").is_dir():
            return "dsb2018"
    raise DataError(
        f"{root}: cannot detect the dataset layout: expected images/ and masks/ "
        "(instances layout) or <stem>/images/ and <stem>/masks/ (dsb2018 layout)"
    )


def _inside(root: Path, path: Path) -> bool:
    # A symlink or '..' that resolves outside the dataset would let a crafted
    # dataset read arbitrary files; refuse it.
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _check_name(path: Path) -> None:
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"{path.parent}: file name {path.name!r} is not valid UTF-8; rename the file"
        ) from None


def _files_by_stem(root: Path, folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        _check_name(path)
        if not _inside(root, path):
            raise DataError(f"{path}: resolves outside the dataset directory {root}")
        stem = path.stem
        if stem in found:
            raise DataError(
                f"{folder}: two files share the stem {stem!r}: {found[stem].name} and {path.name}"
            )
        found[stem] = path
    return found


def _read_valid(
    root: Path,
    stems: Sequence[str],
    name: str = "valid.txt",
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
) -> set[str]:
    path = root / name
    if not path.exists():
        return set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the validation list: {exc}") from None
    known = set(stems)
    valid: set[str] = set()
    unknown: list[str] = []
    for line in lines:
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        # fastai lists file names; accept bare stems too.
        base = os.path.basename(name)
        stem = Path(base).stem if Path(base).suffix.lower() in suffixes else base
        if stem in known:
            valid.add(stem)
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise DataError(f"{path}: names samples that do not exist: {shown}{more}")
    return valid


def _discover_instances(root: Path) -> list[tuple[str, Path, tuple[Path, ...], Path | None]]:
    images = _files_by_stem(root, root / "images")
    masks = _files_by_stem(root, root / "masks")
    unlabeled = _files_by_stem(root, root / "unlabeled")
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        raise DataError(
            f"{root / 'images'}: {len(no_mask)} image(s) have no mask in masks/: "
            + ", ".join(no_mask[:5])
        )
    if no_image:
        raise DataError(
            f"{root / 'masks'}: {len(no_image)} mask(s) have no image in images/: "
            + ", ".join(no_image[:5])
        )
    stray = sorted(set(unlabeled) - set(images))
    if stray:
        raise DataError(
            f"{root / 'unlabeled'}: {len(stray)} file(s) have no image in images/: "
            + ", ".join(stray[:5])
        )
    return [(s, images[s], (masks[s],), unlabeled.get(s)) for s in sorted(images)]


def _discover_dsb2018(root: Path) -> list[tuple[str, Path, tuple[Path, ...], Path | None]]:
    found: list[tuple[str, Path, tuple[Path, ...], Path | None]] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        stem = child.name
        _check_name(child)
        if not _inside(root, child):
            raise DataError(f"{child}: resolves outside the dataset directory {root}")
        image = child / "images" / f"{stem}.png"
        if not image.is_file():
            raise DataError(f"{child}: expected the image {image.relative_to(root)}")
        masks_dir = child / "masks"
        masks = tuple(p for p in sorted(masks_dir.glob("*.png")) if not p.name.startswith("."))
        for m in masks:
            _check_name(m)
            if not _inside(root, m):
                raise DataError(f"{m}: resolves outside the dataset directory {root}")
        found.append((stem, image, masks, None))
    return found


@dataclass(frozen=True)
class _CocoFile:
    """The parts of a COCO instances JSON that maskprep uses, checked."""

    categories: tuple[tuple[int, str], ...]  # (id, name), ascending id
    images: tuple[tuple[int, str, int, int], ...]  # (id, file_name, height, width)
    annotations: Mapping[int, tuple[CocoAnnotation, ...]]  # image id -> ascending ann id


def _load_coco(path: Path) -> _CocoFile:
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the annotations: {exc}") from None
    return _load_coco_cached(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_coco_cached(name: str, size: int, mtime_ns: int) -> _CocoFile:
    # Keyed by size and mtime so that a changed file is read again.
    path = Path(name)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the annotations: {exc}") from None

    def fail(msg: str) -> DataError:
        return DataError(f"{path}: {msg}")

    def integer(obj: Mapping[str, Any], key: str, what: str) -> int:
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise fail(f"{what} has no integer {key!r}")
        return v

    if not isinstance(data, dict):
        raise fail("not a COCO annotation file (expected a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise fail(f"not a COCO instances file: no {key!r} list")
    categories: dict[int, str] = {}
    for cat in data["categories"]:
        if not isinstance(cat, dict) or not isinstance(cat.get("name"), str):
            raise fail(f"category {cat!r} has no name")
        cid = integer(cat, "id", f"category {cat.get('name')!r}")
        if cid in categories:
            raise fail(f"category id {cid} appears twice")
        categories[cid] = cat["name"]
    images: dict[int, tuple[int, str, int, int]] = {}
    for img in data["images"]:
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str):
            raise fail(f"image {img!r} has no file_name")
        what = f"image {img['file_name']!r}"
        iid = integer(img, "id", what)
        h, w = integer(img, "height", what), integer(img, "width", what)
        if iid in images:
            raise fail(f"image id {iid} appears twice")
        if h < 1 or w < 1:
            raise fail(f"{what} has size {h} x {w}")
        images[iid] = (iid, img["file_name"], h, w)
    by_image: dict[int, list[CocoAnnotation]] = {}
    seen: set[int] = set()
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            raise fail(f"annotation {ann!r} is not an object")
        aid = integer(ann, "id", "an annotation")
        what = f"annotation {aid}"
        if aid in seen:
            raise fail(f"annotation id {aid} appears twice")
        seen.add(aid)
        iid = integer(ann, "image_id", what)
        cid = integer(ann, "category_id", what)
        if iid not in images:
            raise fail(f"{what} refers to image id {iid}, which is not in images")
        if cid not in categories:
            raise fail(f"{what} has category_id {cid}, which is not in categories")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise fail(f"{what} has iscrowd {crowd!r}; expected 0 or 1")
        seg = ann.get("segmentation")
        if not isinstance(seg, (list, dict)):
            raise fail(f"{what} has no segmentation (polygons or RLE)")
        by_image.setdefault(iid, []).append(
            CocoAnnotation(aid, cid, bool(crowd), json.dumps(seg, separators=(",", ":")))
        )
    return _CocoFile(
        categories=tuple(sorted(categories.items())),
        images=tuple(images[i] for i in sorted(images)),
        annotations={i: tuple(sorted(a, key=lambda x: x.id)) for i, a in by_image.items()},
    )


def _split_of(values: Mapping[str, str], spec: SourceSpec) -> str | None:
    """train/valid from the {split} field, None if that split is left out."""
    if spec.split != "directory":
        return "train"
    return dict(spec.splits).get(values["split"])


def _coco_files(root: Path, spec: SourceSpec) -> list[tuple[dict[str, str], Path, str]]:
    assert spec.annotations is not None
    found = PathPattern(spec.annotations).find(root)
    if not found:
        raise DataError(f"{root}: no annotation file matches {spec.annotations!r}")
    chosen = [(v, p, s) for v, p in found if (s := _split_of(v, spec)) is not None]
    if not chosen:
        _all_left_out(root, [v["split"] for v, _ in found], spec)
    return chosen


def _all_left_out(root: Path, values: Sequence[str], spec: SourceSpec) -> None:
    raise DataError(
        f"{root}: every sample is in a split the recipe leaves out "
        f"({', '.join(sorted(set(values)))}); its splits table names "
        f"{', '.join(k for k, _ in spec.splits)}"
    )


def coco_categories(root: str | os.PathLike[str], spec: SourceSpec) -> tuple[tuple[int, str], ...]:
    """The ``(id, name)`` categories of a COCO dataset, the same in every annotation file.

    Raises
    ------
    DataError
        Naming the file, if annotation files disagree or cannot be read.
    """
    root_path = Path(root)
    first: tuple[tuple[int, str], ...] | None = None
    first_path = None
    for _, path, _ in _coco_files(root_path, spec):
        cats = _load_coco(path).categories
        if first is None:
            first, first_path = cats, path
        elif cats != first:
            raise DataError(f"{path}: categories differ from those of {first_path}")
    assert first is not None
    return first


def _discover_coco(root: Path, spec: SourceSpec) -> list[SampleSource]:
    images = PathPattern(spec.images)
    known = {k for k, _ in spec.label_map}
    samples: list[SampleSource] = []
    for values, path, split in _coco_files(root, spec):
        data = _load_coco(path)
        for cid, name in data.categories:
            if cid not in known:
                raise DataError(
                    f"{path}: category {cid} ({name!r}) is not a class of this build "
                    "(the categories changed since the build options were made?)"
                )
        for iid, file_name, h, w in data.images:
            image = root / images.format({**values, "file_name": file_name})
            if not image.is_file():
                raise DataError(
                    f"{path}: image id {iid} {file_name!r} is not at {image.relative_to(root)}"
                )
            _check_name(image)
            if not _inside(root, image):
                raise DataError(f"{image}: resolves outside the dataset directory {root}")
            anns = data.annotations.get(iid, ())
            stem = Path(file_name).stem
            samples.append(SampleSource(stem, image, (path,), None, split, "coco", anns, (h, w)))
    return samples


def _discover_pattern(root: Path, spec: SourceSpec) -> list[SampleSource]:
    assert spec.labels is not None
    images = PathPattern(spec.images)
    labels = PathPattern(spec.labels)
    keys = labels.fields
    label_files = {tuple(v[k] for k in keys): p for v, p in labels.find(root)}
    found = images.find(root)
    if not found:
        raise DataError(f"{root}: no file matches the images pattern {spec.images!r}")
    samples: list[SampleSource] = []
    missing: list[tuple[Path, str]] = []
    image_keys: set[tuple[str, ...]] = set()
    left_out: list[str] = []
    for values, image in found:
        key = tuple(values[k] for k in keys)
        image_keys.add(key)
        split = _split_of(values, spec)
        if split is None:
            left_out.append(values["split"])
            continue
        label = label_files.get(key)
        if label is None:
            missing.append((image, labels.format(values)))
            continue
        samples.append(SampleSource(values["stem"], image, (label,), None, split, spec.layout))
    if missing:
        shown = ", ".join(f"{p.relative_to(root)} (expected {m})" for p, m in missing[:5])
        raise DataError(f"{root}: {len(missing)} image(s) have no mask: {shown}")
    stray = sorted(
        p.relative_to(root).as_posix() for k, p in label_files.items() if k not in image_keys
    )
    if stray:
        raise DataError(
            f"{root}: {len(stray)} mask(s) have no image ({spec.images}): " + ", ".join(stray[:5])
        )
    if not samples and left_out:
        _all_left_out(root, left_out, spec)
    return samples


def _finish_recipe_samples(
    root: Path, spec: SourceSpec, samples: list[SampleSource]
) -> tuple[SampleSource, ...]:
    """Check sample ids are unique, apply a split file, sort by id."""
    by_id: dict[str, SampleSource] = {}
    for s in samples:
        if s.sample_id in by_id:
            raise DataError(
                f"{s.image}: sample id {s.sample_id!r} is also that of {by_id[s.sample_id].image}"
            )
        by_id[s.sample_id] = s
    if spec.split not in SPLIT_RULES:
        valid = _read_valid(root, list(by_id), spec.split, RECIPE_IMAGE_SUFFIXES)
        samples = [replace(s, split="valid" if s.sample_id in valid else "train") for s in samples]
    return tuple(sorted(samples, key=lambda s: s.sample_id))


def discover(
    root: str | os.PathLike[str], layout: str = "auto", *, source: SourceSpec | None = None
) -> Dataset:
    """Find every sample of a dataset directory and its split.

    Parameters
    ----------
    root : path
        Dataset directory.
    layout : {"auto", "instances", "dsb2018", "semantic", "cityscapes", "coco"}
        Directory layout; ``"auto"`` detects instances or dsb2018, or takes
        ``source.layout`` when a source is given.
    source : SourceSpec, optional
        Paths, split and classes of a semantic, cityscapes or coco dataset
        (usually from a recipe); required for those layouts.

    Returns
    -------
    Dataset
        Samples sorted by id, so the output order never depends on the file system.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import make_sample
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "nuclei"
    >>> _ = make_sample(d, n_images=4, size=(32, 32))
    >>> ds = discover(d)
    >>> ds.layout, len(ds), ds.samples[0].sample_id
    ('instances', 4, 'nuclei_000')
    """
    root_path = Path(root)
    if source is not None:
        if layout not in ("auto", source.layout):
            raise DataError(f"layout {layout!r} differs from the source's {source.layout!r}")
        layout = source.layout
    if layout not in ALL_LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(ALL_LAYOUTS)}")
    if layout in RECIPE_LAYOUTS and (source is None or source.layout != layout):
        raise DataError(
            f"the {layout} layout needs its classes and paths: build with a recipe "
            "(--recipe, or BuildConfig.from_recipe)"
        )
    if not root_path.is_dir():
        raise DataError(f"{root_path}: dataset directory does not exist")
    if source is not None:
        found = (
            _discover_coco(root_path, source)
            if layout == "coco"
            else _discover_pattern(root_path, source)
        )
        if not found:
            raise DataError(
                f"{root_path}: the dataset is empty (no samples in the {layout} layout)"
            )
        return Dataset(root_path, layout, _finish_recipe_samples(root_path, source, found))
    if layout == "auto":
        layout = detect_layout(root_path)
    entries = (
        _discover_instances(root_path) if layout == "instances" else _discover_dsb2018(root_path)
    )
    if not entries:
        raise DataError(f"{root_path}: the dataset is empty (no samples in the {layout} layout)")
    valid = _read_valid(root_path, [e[0] for e in entries])
    samples = tuple(
        SampleSource(stem, image, masks, unl, "valid" if stem in valid else "train", layout)
        for stem, image, masks, unl in entries
    )
    return Dataset(root_path, layout, samples)


def _too_big(path: Path, what: str, n: int, max_pixels: int | None) -> None:
    if max_pixels is not None and n > max_pixels:
        raise DataError(
            f"{path}: {what} has {n:,} pixel values, more than the limit of {max_pixels:,} "
            "(a decompression bomb? raise --max-pixels if the file is genuine)"
        )


def _read_array(path: Path, what: str, max_pixels: int | None = None) -> np.ndarray:
    # The size is checked from the header before anything is decoded, so a
    # small file claiming a huge image cannot exhaust memory.
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                _too_big(path, what, int(np.prod(series.shape)), max_pixels)
                return np.asarray(series.asarray())
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            _too_big(path, what, w * h * len(im.getbands()), max_pixels)
            im.load()
            return np.asarray(im)
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read {what}: {exc}") from None


def _probe_image(path: Path, max_pixels: int | None) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of an image without decoding its pixels where possible.

    PNG (and other Pillow formats) are checked from the header and their chunk
    checksums, which catches truncated and corrupted files at a fraction of a
    decode; TIFF stacks are decoded.
    """
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = _read_array(path, "image", max_pixels)
        return arr.shape, arr.dtype
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            _too_big(path, "image", w * h * len(im.getbands()), max_pixels)
            im.verify()
        # What np.asarray gives for this mode: dtype and channel axis.
        probe = np.asarray(Image.new(mode, (1, 1)))
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read image: {exc}") from None
    return (h, w, *probe.shape[2:]), probe.dtype


def _read_image(path: Path, max_pixels: int | None, mode: str | None) -> np.ndarray:
    if mode is None:
        return _read_array(path, "image", max_pixels)
    if path.suffix.lower() in (".tif", ".tiff"):
        raise DataError(f"{path}: image_mode {mode!r} applies to Pillow images, not TIFF")
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            _too_big(path, "image", w * h * len(im.getbands()), max_pixels)
            return np.asarray(im.convert(mode))
    except DataError:
        raise
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise DataError(f"{path}: cannot read image: {exc}") from None


def _probe_image_as(
    path: Path, max_pixels: int | None, mode: str | None
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """:func:`_probe_image`, for the image converted to ``mode`` if given."""
    if mode is None:
        return _probe_image(path, max_pixels)
    if path.suffix.lower() in (".tif", ".tiff"):
        raise DataError(f"{path}: image_mode {mode!r} applies to Pillow images, not TIFF")
    from PIL import Image

    shape, _ = _probe_image(path, max_pixels)
    probe = np.asarray(Image.new(mode, (1, 1)))
    return (*shape[:2], *probe.shape[2:]), probe.dtype


def _check_label_array(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        raise DataError(
            f"{path}: mask has floating-point dtype {arr.dtype}; a label image needs integer values"
        )
    if arr.dtype.kind not in "iu":
        raise DataError(f"{path}: mask has unsupported dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and path.suffix.lower() == ".png":
        raise DataError(
            f"{path}: mask is an RGB(A) image of shape {arr.shape}; "
            "expected a single-channel label image"
        )
    if arr.ndim not in (2, 3):
        raise DataError(f"{path}: mask must be 2D or 3D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise DataError(f"{path}: mask has negative values (minimum {arr.min()})")
    return arr


def _check_image_shape(
    image_shape: tuple[int, ...], shape: tuple[int, ...], src: SampleSource
) -> None:
    if image_shape == shape:
        return
    if len(image_shape) == len(shape) + 1 and image_shape[:-1] == shape and image_shape[-1] <= 4:
        return
    if src.layout == "coco":
        raise DataError(
            f"{src.image}: image shape {image_shape} does not match the size {shape} "
            f"{src.masks[0]} gives"
        )
    where = f" ({src.masks[0]})" if src.masks else ""
    raise DataError(
        f"{src.image}: image shape {image_shape} does not match mask shape {shape}{where}"
    )


def read_sample(
    src: SampleSource,
    *,
    unlabeled_value: int | None = None,
    max_pixels: int | None = None,
    image: bool = True,
    source: SourceSpec | None = None,
    void_label: int = 255,
) -> LoadedSample:
    """Read and check one sample's image, labels, instances and unannotated pixels.

    With ``image=False`` the image is checked but not decoded (see
    :class:`LoadedSample`), which is all a counting pass needs. Samples of the
    semantic, cityscapes and coco layouts need their ``source`` and get
    ``labels`` with ``void_label`` on void pixels.

    Raises
    ------
    DataError
        Naming the file, for unreadable files, shape mismatches, float or
        negative or RGB masks, overlapping dsb2018 instance masks, and mask
        values the source does not declare (naming the value).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import make_sample
    >>> d = make_sample(pathlib.Path(tempfile.mkdtemp()) / "n", n_images=2, size=(32, 32))
    >>> s = read_sample(discover(d).samples[1])
    >>> s.image.shape, s.instances.dtype, bool(s.void.any())  # sample 1 has a void patch
    ((32, 32), dtype('int32'), True)
    """
    mode = None if source is None else source.image_mode
    pixels: np.ndarray | None = None
    if image:
        pixels = _read_image(src.image, max_pixels, mode)
        image_shape, image_dtype = pixels.shape, pixels.dtype
    else:
        image_shape, image_dtype = _probe_image_as(src.image, max_pixels, mode)
    if src.layout in RECIPE_LAYOUTS:
        if source is None or source.layout != src.layout:
            raise ValueError(f"{src.image}: a {src.layout} sample needs its SourceSpec to be read")
        if src.layout == "coco":
            labels, void, instances = _read_coco(src, source, void_label)
        else:
            labels, void, instances = _read_semantic(
                src, source, void_label, unlabeled_value, max_pixels
            )
        _check_image_shape(tuple(image_shape), labels.shape, src)
        instances[void] = 0
        return LoadedSample(
            pixels, tuple(image_shape), np.dtype(image_dtype), instances, void, labels
        )
    if src.layout == "dsb2018":
        instances, void = _instances_from_binary_masks(src, image_shape[:2], max_pixels)
    else:
        raw = _check_label_array(_read_array(src.masks[0], "mask", max_pixels), src.masks[0])
        instances, void = _instances_from_label_image(raw, src.masks[0], unlabeled_value)
    if src.unlabeled is not None:
        extra = _read_array(src.unlabeled, "unlabeled mask", max_pixels)
        if extra.ndim == instances.ndim + 1 and extra.shape[-1] in (3, 4):
            extra = np.any(extra, axis=-1)
        if extra.shape != instances.shape:
            raise DataError(
                f"{src.unlabeled}: unlabeled mask shape {extra.shape} does not match "
                f"mask shape {instances.shape}"
            )
        void = void | (extra != 0)
    _check_image_shape(tuple(image_shape), instances.shape, src)
    instances[void] = 0
    return LoadedSample(pixels, tuple(image_shape), np.dtype(image_dtype), instances, void)


def _instances_from_label_image(
    raw: np.ndarray, path: Path, unlabeled_value: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if unlabeled_value is not None:
        void = raw == unlabeled_value
    else:
        void = np.zeros(raw.shape, dtype=bool)
    if raw.size and raw.max(initial=0) > np.iinfo(np.int32).max:
        raise DataError(
            f"{path}: instance id {raw.max()} does not fit in int32 "
            f"(maximum {np.iinfo(np.int32).max})"
        )
    instances = raw.astype(np.int32, copy=True)
    return instances, void


def _instances_from_binary_masks(
    src: SampleSource, image_shape: tuple[int, ...], max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    instances: np.ndarray | None = None
    owner: list[Path] = []
    for k, path in enumerate(src.masks, start=1):
        m = _read_array(path, "instance mask", max_pixels)
        if m.ndim == 3 and m.shape[-1] in (3, 4):
            m = m[..., 0]
        if m.ndim != 2:
            raise DataError(f"{path}: instance mask must be 2D, got shape {m.shape}")
        if instances is None:
            instances = np.zeros(m.shape, dtype=np.int32)
        elif m.shape != instances.shape:
            raise DataError(
                f"{path}: instance mask shape {m.shape} differs from {src.masks[0].name} "
                f"{instances.shape}"
            )
        on = m != 0
        clash = on & (instances != 0)
        if clash.any():
            other = owner[int(instances[clash][0]) - 1]
            raise DataError(
                f"{path}: overlaps {other} at {int(clash.sum())} pixel(s); "
                "dsb2018 instance masks must not overlap"
            )
        instances[on] = k
        owner.append(path)
    if instances is None:
        # A dsb2018 sample without masks is all background of the image's size.
        instances = np.zeros(image_shape[:2], dtype=np.int32)
    return instances, np.zeros(instances.shape, dtype=bool)


def _labels_dtype(spec: SourceSpec, void_label: int) -> type[np.unsignedinteger[Any]]:
    top = max([void_label, *spec.class_indices])
    return np.uint8 if top <= 255 else np.uint16


def _map_source_values(
    values: np.ndarray,
    path: Path,
    spec: SourceSpec,
    void_label: int,
    unlabeled_value: int | None,
    what: str,
) -> np.ndarray:
    """Source values -> class indices (``void_label`` on void), int32.

    Raises a DataError naming the file and the first undeclared value.
    """
    lut = spec.lookup(void_label)
    outside = values >= lut.size
    mapped = lut[np.minimum(values, lut.size - 1)] if outside.any() else lut[values]
    mapped = np.where(outside, -1, mapped) if outside.any() else mapped
    if unlabeled_value is not None:
        mapped = np.where(values == unlabeled_value, void_label, mapped)
    bad = mapped < 0
    if bad.any():
        _undeclared(path, values[bad], spec, void_label, unlabeled_value, what)
    return mapped


def _undeclared(
    path: Path,
    bad: np.ndarray,
    spec: SourceSpec,
    void_label: int,
    unlabeled_value: int | None,
    what: str,
) -> None:
    vals, counts = np.unique(bad, return_counts=True)
    hit = np.flatnonzero(vals == void_label)
    k = int(hit[0]) if hit.size else 0
    v, n = int(vals[k]), int(counts[k])
    more = f" (and {vals.size - 1} other undeclared value(s))" if vals.size > 1 else ""
    if v == void_label:
        raise DataError(
            f"{path}: {what} {v} ({n} pixel(s)) collides with the void label {void_label}: "
            "the recipe does not declare it void; list it in void_values (or set "
            f"unlabeled_value), or choose another void label{more}"
        )
    void = [*spec.void_values, *([] if unlabeled_value is None else [unlabeled_value])]
    raise DataError(
        f"{path}: {what} {v} ({n} pixel(s)) is not a declared class value{more}; "
        f"the recipe maps {_ranges([s for s, _ in spec.label_map])} to classes and "
        f"{_ranges(void)} to void"
    )


def _components(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Instance ids from the connected components of each class (module docstring)."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(labels.ndim, labels.ndim)
    out = np.zeros(labels.shape, dtype=np.int32)
    next_id = 0
    for c in sorted(classes):
        comp, n = ndimage.label(labels == c, structure=structure)
        if n:
            on = comp > 0
            out[on] = comp[on] + next_id
            next_id += int(n)
    return out


def _read_semantic(
    src: SampleSource,
    spec: SourceSpec,
    void_label: int,
    unlabeled_value: int | None,
    max_pixels: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labels (void filled), void, instances of a semantic or cityscapes sample."""
    path = src.masks[0]
    raw = _check_label_array(_read_array(path, "mask", max_pixels), path)
    given: np.ndarray | None = None
    if spec.layout == "cityscapes":
        if raw.size and int(raw.max()) > np.iinfo(np.int32).max:
            raise DataError(f"{path}: value {raw.max()} does not fit in int32")
        big = raw >= CITYSCAPES_INSTANCE_FACTOR
        source = np.where(big, raw // CITYSCAPES_INSTANCE_FACTOR, raw)
        given = np.where(big, raw, 0).astype(np.int32)
        what = "label id"
    else:
        source = raw
        what = "mask value"
    mapped = _map_source_values(source, path, spec, void_label, unlabeled_value, what)
    labels = mapped.astype(_labels_dtype(spec, void_label))
    void = labels == void_label
    if spec.instances == "layout" and given is not None:
        instances = given
    elif spec.instances == "connected-components":
        instances = _components(labels, spec.instance_classes)
    else:
        instances = np.zeros(labels.shape, dtype=np.int32)
    return labels, void, instances


def _rle_counts(text: str | bytes) -> list[int]:
    """Run lengths of a compressed COCO RLE string (the format of pycocotools' maskApi).

    Each count is stored in 5-bit groups as characters from ``0`` (48) up,
    bit 5 meaning "more groups follow" and bit 4 of the last group the sign;
    from the third count on, the value is a difference to the count two
    places before.
    """
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data):
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {chr(data[p])!r} in an RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _rle_mask(counts: Sequence[int], h: int, w: int) -> np.ndarray:
    """Boolean (h, w) mask from run lengths (column-major, starting with a 0 run)."""
    runs = np.asarray(counts, dtype=np.int64)
    if runs.size and (runs.min() < 0 or int(runs.sum()) != h * w):
        raise ValueError(f"run lengths add up to {int(runs.sum())}, not {h} x {w} = {h * w}")
    values = np.arange(runs.size) % 2 == 1
    flat = np.repeat(values, runs) if runs.size else np.zeros(h * w, dtype=bool)
    return flat.reshape(w, h).T.copy()


def _coco_mask(ann: CocoAnnotation, shape: tuple[int, ...], src: SampleSource) -> np.ndarray:
    h, w = shape
    json_path = src.masks[0]
    where = f"{json_path}: annotation {ann.id} (image {src.image.name})"
    seg = json.loads(ann.segmentation)
    try:
        if isinstance(seg, list):
            polygons = []
            for poly in seg:
                if not isinstance(poly, list) or len(poly) % 2:
                    raise DataError(f"{where}: a polygon must be a list of x, y pairs")
                if len(poly) >= 6:  # fewer than 3 points have no area
                    polygons.append([float(v) for v in poly])
            if not polygons:
                return np.zeros(shape, dtype=bool)
            try:
                from pycocotools import mask as coco_mask
            except ImportError:
                raise DataError(
                    f"{where}: polygons need pycocotools: pip install 'maskprep[coco]'"
                ) from None
            # pycocotools rasterizes the polygons (the COCO convention); its
            # decode() is avoided as it warns under NumPy 2.
            rle = coco_mask.merge(coco_mask.frPyObjects(polygons, h, w))
            counts = _rle_counts(rle["counts"])
        elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
            if [int(v) for v in seg["size"]] != [h, w]:
                raise DataError(
                    f"{where}: RLE size {seg['size']} differs from the image size {[h, w]}"
                )
            raw = seg["counts"]
            counts = [int(v) for v in raw] if isinstance(raw, list) else _rle_counts(raw)
        else:
            raise DataError(f"{where}: segmentation is neither polygons nor RLE")
        return _rle_mask(counts, h, w)
    except DataError:
        raise
    except Exception as exc:  # malformed input in any of many ways: one message
        raise DataError(f"{where}: cannot decode the segmentation: {exc}") from None


def _read_coco(
    src: SampleSource, spec: SourceSpec, void_label: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labels (void filled), void, instances of a COCO image (module docstring)."""
    assert src.shape is not None
    classes = dict(spec.label_map)
    labels = np.zeros(src.shape, dtype=_labels_dtype(spec, void_label))
    instances = np.zeros(src.shape, dtype=np.int32)
    rank = 0
    for ann in src.annotations:  # ascending annotation id
        m = _coco_mask(ann, src.shape, src)
        if ann.iscrowd:
            labels[m] = void_label
            instances[m] = 0
            continue
        rank += 1
        labels[m] = classes[ann.category_id]
        if spec.instances == "layout":
            instances[m] = rank
    void = labels == void_label
    if spec.instances == "connected-components":
        instances = _components(labels, spec.instance_classes)
    return labels, void, instances
