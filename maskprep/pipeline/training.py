"""Training statistics in pass 2: per-shard partial results, merged at completion.

With ``class_locations=K`` or ``intensity_stats=True`` in the config, the
shard task computes, from the labels (and images) it holds anyway, each
sample's :class:`~maskprep.weighting.locations.ClassLocations` and, for
train samples, its :class:`~maskprep.intensity.IntensityPartial`, and writes
their sum to ``_maskprep/partials/`` before the shard's marker (so a shard
with a marker always has its partial, and a resumed build finds them).
:func:`finish_training_stats` merges them, shard by shard (memory bounded by
one shard), into the ``class_locations`` array and the metadata's
``intensity_stats``; the build then removes them. Both merges are exact and
independent of grouping, so a sample computed in blocks
(:func:`sample_partials` with ``origin`` and ``sample_shape``) gives the same
result as a whole one. Class locations are found by a one-pass numba kernel
(:func:`class_locations_fast`) equal to the numpy reference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from maskprep.config import BuildConfig
from maskprep.errors import StoreError
from maskprep.intensity import IntensityPartial, intensity_partial
from maskprep.store import (
    ClassLocationInfo,
    Location,
    StoreLayout,
    StoreMetadata,
    create_class_locations,
    partial_files,
    read_partial,
    write_class_locations,
    write_partial,
)
from maskprep.weighting.locations import ClassLocations, location_key

__all__ = [
    "LOCATION_SEED",
    "TrainingPartials",
    "class_locations_fast",
    "finish_training_stats",
    "parts_with_partials",
    "sample_partials",
    "shards_with_partials",
    "wants_training_stats",
    "write_training_partials",
]

#: Seed of the class-location hash (with each sample's id).
LOCATION_SEED = 0


def wants_training_stats(config: BuildConfig) -> bool:
    """Whether the build records class locations or intensity statistics."""
    return config.class_locations > 0 or config.intensity_stats


@dataclass(frozen=True)
class TrainingPartials:
    """The partial class locations and intensity statistics of some samples or blocks."""

    locations: ClassLocations | None
    intensity: IntensityPartial | None

    def __add__(self, other: TrainingPartials) -> TrainingPartials:
        def add(a: object, b: object) -> object:
            if a is None:
                return b
            return a if b is None else a + b  # type: ignore[operator]

        return TrainingPartials(
            add(self.locations, other.locations),  # type: ignore[arg-type]
            add(self.intensity, other.intensity),  # type: ignore[arg-type]
        )

    @classmethod
    def merge(cls, parts: list[TrainingPartials]) -> TrainingPartials:
        """The sum of ``parts`` in one merge each (adding one by one is quadratic)."""
        locations = [p.locations for p in parts if p.locations is not None]
        intensity = [p.intensity for p in parts if p.intensity is not None]
        return cls(
            ClassLocations.merge(locations) if locations else None,
            IntensityPartial.merge(intensity) if intensity else None,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.locations is not None:
            out.update({f"locations.{k}": v for k, v in self.locations.to_arrays().items()})
        if self.intensity is not None:
            out.update(self.intensity.to_arrays("intensity"))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TrainingPartials:
        loc = {k[len("locations.") :]: v for k, v in arrays.items() if k.startswith("locations.")}
        has_intensity = "intensity.exact" in arrays
        return cls(
            ClassLocations.from_arrays(loc) if loc else None,
            IntensityPartial.from_arrays(arrays, "intensity") if has_intensity else None,
        )


def class_locations_fast(
    labels: np.ndarray,
    *,
    per_class: int,
    num_classes: int,
    origin: tuple[int, ...] | None = None,
    sample_shape: tuple[int, ...] | None = None,
    key: int = 0,
    sample: int = 0,
) -> ClassLocations:
    """:func:`~maskprep.weighting.locations.class_location_partial`, by a one-pass
    numba kernel (the same result; labels ``>= num_classes`` are void)."""
    from maskprep._kernels._locations import smallest_locations

    lab = np.ascontiguousarray(labels)
    ndim = lab.ndim
    org = (0,) * ndim if origin is None else tuple(int(o) for o in origin)
    full = lab.shape if sample_shape is None else tuple(int(s) for s in sample_shape)
    strides = np.cumprod((1, *full[::-1]))[:-1][::-1].astype(np.int64)
    pad = 3 - ndim
    prio = np.empty((num_classes, per_class), np.uint64)
    flat = np.empty((num_classes, per_class), np.int64)
    counts = np.zeros(num_classes, np.int64)
    smallest_locations(
        lab.reshape((1,) * pad + lab.shape),
        np.asarray((0,) * pad + org, np.int64),
        np.concatenate([np.zeros(pad, np.int64), strides]),
        np.uint64(key),
        num_classes,
        prio,
        flat,
        counts,
    )
    keep = np.arange(per_class)[np.newaxis, :] < counts[:, np.newaxis]
    cls = np.broadcast_to(np.arange(num_classes, dtype=np.int32)[:, np.newaxis], keep.shape)[keep]
    flats = flat[keep]
    coords = np.stack(np.unravel_index(flats, full), axis=1) if flats.size else np.zeros((0, ndim))
    return ClassLocations.from_rows(
        per_class, ndim, np.full(flats.size, sample), cls, prio[keep], flats, coords
    )


def sample_partials(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    index: int,
    sample_id: str,
    split: str,
    config: BuildConfig,
    layout: StoreLayout,
    origin: tuple[int, ...] | None = None,
    sample_shape: tuple[int, ...] | None = None,
) -> TrainingPartials:
    """The partial results of sample ``index`` (or of the block of it at ``origin``).

    ``image`` has the store's image dtype and ``labels`` are the stored
    (void-filled) labels, both unpadded; ``sample_shape`` is the whole
    sample's shape when they are one block of it.
    """
    locations = None
    if config.class_locations > 0:
        locations = class_locations_fast(
            labels,
            per_class=config.class_locations,
            num_classes=config.num_classes,
            origin=origin,
            sample_shape=sample_shape,
            key=location_key(sample_id, LOCATION_SEED),
            sample=index,
        )
    intensity = None
    if config.intensity_stats:
        channels = layout.channels or 1
        if split == "train":
            intensity = intensity_partial(
                image, labels, void_label=config.void_label, channels=channels
            )
        else:
            intensity = IntensityPartial.empty(np.dtype(layout.image_dtype).kind in "iub", channels)
    return TrainingPartials(locations, intensity)


def write_training_partials(
    loc: Location, shard: int, partials: TrainingPartials, part: str | None = None
) -> None:
    """Write shard ``shard``'s partial results (``part`` names one of several files of
    the shard, e.g. a block of a big sample); call before the shard's marker."""
    name = f"{shard:06d}" if part is None else f"{shard:06d}.{part}"
    write_partial(loc, name, partials.to_arrays())


def shards_with_partials(loc: Location) -> set[int]:
    """Shards that have at least one partial file."""
    return set(partial_files(loc))


def parts_with_partials(loc: Location) -> set[tuple[int, int]]:
    """``(shard, part)`` of the spatial shards whose own partial file is there."""
    out = set()
    for shard, names in partial_files(loc).items():
        for name in names:
            parts = name.split(".")
            if len(parts) == 3 and parts[1].isdigit():
                out.add((shard, int(parts[1])))
    return out


def finish_training_stats(loc: Location, meta: StoreMetadata, config: BuildConfig) -> StoreMetadata:
    """Merge the partial files into ``class_locations`` and ``intensity_stats``.

    Runs after every shard is written, before the store is marked complete;
    returns the metadata with the new fields (unchanged if the config asks
    for neither).

    Raises
    ------
    StoreError
        If a shard's partial results are missing.
    """
    if not wants_training_stats(config):
        return meta
    layout = meta.layout_info
    files = partial_files(loc)
    bounds = layout.shard_bounds()
    missing = [k for k in range(len(bounds)) if k not in files]
    if missing:
        raise StoreError(
            f"{loc}: the partial training statistics of shards {missing[:10]} are missing; "
            "re-run the build to complete it"
        )
    per_class = config.class_locations
    if per_class:
        create_class_locations(loc, layout, config.num_classes, per_class, config.zstd_level)
    checksums: list[str | None] = []
    intensity: IntensityPartial | None = None
    ndim = len(layout.spatial_shape)
    for k, (a, b) in enumerate(bounds):
        total = TrainingPartials.merge(
            [TrainingPartials.from_arrays(read_partial(loc, name)) for name in files[k]]
        )
        if per_class:
            found = total.locations or ClassLocations.empty(per_class, ndim)
            block = np.stack([found.array(i, config.num_classes) for i in range(a, b)])
            checksums.append(write_class_locations(loc, layout, k, block, config.zstd_level))
        if total.intensity is not None:
            intensity = total.intensity if intensity is None else intensity + total.intensity
    out = meta
    if per_class:
        out = replace(
            out,
            class_locations=ClassLocationInfo(per_class, LOCATION_SEED, tuple(checksums)),
        )
    if config.intensity_stats:
        if intensity is None:
            raise StoreError(f"{loc}: the partial results hold no intensity statistics")
        out = replace(out, intensity_stats=intensity.summary())
    return out
