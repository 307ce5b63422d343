"""The store's metadata: one typed schema, the only code that knows its keys.

A store's group attribute ``maskprep`` is :meth:`StoreMetadata.to_dict`;
:meth:`StoreMetadata.from_dict` reads it back, checking the format version in
one place. :class:`StoreLayout` (:mod:`maskprep.store.layout`) gives the
shapes, dtypes and fill values of the arrays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from maskprep.errors import StoreError
from maskprep.intensity import IntensityStats
from maskprep.store.layout import (
    CHUNK_CHECKSUM,
    CORE_ARRAYS,
    DEFAULT_ARRAYS,
    DEFAULT_BLOCK,
    DEFAULT_TILE,
    MAX_TILES_PER_SHARD,
    ArraySpec,
    StoreLayout,
    default_block,
    default_tile,
)
from maskprep.weighting import ClassStats, ClassWeightConfig

__all__ = [
    "CHUNK_CHECKSUM",
    "CORE_ARRAYS",
    "DEFAULT_ARRAYS",
    "DEFAULT_BLOCK",
    "DEFAULT_TILE",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "MAX_TILES_PER_SHARD",
    "SHAPES_KEY",
    "STAGES",
    "TILED_FORMAT_VERSION",
    "ArraySpec",
    "ClassLocationInfo",
    "StoreLayout",
    "StoreMetadata",
    "default_block",
    "default_tile",
]

#: Format of an untiled store (one chunk per sample); the default.
FORMAT_VERSION = 1
#: Store key of the ``shapes`` array's only chunk.
SHAPES_KEY = "shapes/c/0/0"
#: Format of a tiled store (chunks of ``tile`` pixels per spatial axis).
TILED_FORMAT_VERSION = 2
#: Every format this maskprep reads and writes.
FORMAT_VERSIONS = (FORMAT_VERSION, TILED_FORMAT_VERSION)
#: ``creating`` -> ``writing`` -> ``complete``; ``reweighting`` while reweight runs.
STAGES = ("creating", "writing", "complete", "reweighting")


@dataclass(frozen=True)
class ClassLocationInfo:
    """How the ``class_locations`` array was made: K per class, the hash seed, and
    the sha256 of each of its shard files (None where a shard holds none)."""

    per_class: int
    seed: int
    shard_checksums: tuple[str | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_class": self.per_class,
            "seed": self.seed,
            "shard_checksums": list(self.shard_checksums),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassLocationInfo:
        return cls(
            per_class=int(d["per_class"]),
            seed=int(d["seed"]),
            shard_checksums=tuple(None if c is None else str(c) for c in d["shard_checksums"]),
        )


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


# Keys left out of the digest: the digest itself and the completion flags.
_UNDIGESTED = ("metadata_digest", "complete", "stage")


@dataclass(frozen=True)
class StoreMetadata:
    """Everything a store records about its build, typed.

    Per-sample fields (``sample_ids``, ``split``, ``instance_counts``,
    ``sample_class_counts``, ``void_pixels``) have one entry per stored
    sample, in store order. ``config`` is the :class:`~maskprep.BuildConfig`
    as a dict (:meth:`build_config` parses it), ``on_error`` and
    ``inputs_digest`` the rest of what a resumed build must match. Keys this
    version does not know are kept in ``extra`` and written back unchanged.

    Examples
    --------
    >>> from maskprep import example_store, open_shards
    >>> store = example_store(n_images=2)
    >>> meta = open_shards(store).store_metadata
    >>> meta.class_names, meta.stage, StoreMetadata.from_dict(meta.to_dict()) == meta
    (('background', 'object'), 'complete', True)
    """

    maskprep_version: str
    layout: str
    class_names: tuple[str, ...]
    void_label: int
    class_stats: ClassStats
    class_weights: tuple[float, ...]
    class_weight_config: ClassWeightConfig
    w0: float
    sigma: float
    border_region: str
    tolerance: float
    spacing: tuple[float, ...] | None
    sample_ids: tuple[str, ...]
    split: tuple[str, ...]
    instance_counts: tuple[int, ...]
    sample_class_counts: tuple[tuple[int, ...], ...]
    void_pixels: tuple[int, ...]
    shard_size: int
    inputs: tuple[dict[str, Any], ...]
    quarantine: tuple[dict[str, str], ...]
    notes: tuple[dict[str, str], ...]
    config: dict[str, Any]
    on_error: str
    inputs_digest: str
    layout_info: StoreLayout
    stage: str = "creating"
    complete: bool = False
    shard_checksums: tuple[dict[str, str | None], ...] | None = None
    metadata_digest: str | None = None
    reweight_target: dict[str, Any] | None = None
    #: sha256 of the ``shapes`` array's one chunk file (:data:`SHAPES_KEY`),
    #: checked by verify and by the reader; None in stores made before it.
    shapes_checksum: str | None = None
    format_version: int = FORMAT_VERSION
    padding: str = "end of each axis; image 0, labels void_label, instances 0, weights 0"
    #: Per-channel intensity statistics of the train split (builds with
    #: ``intensity_stats=True``); absent from older stores' metadata.
    intensity_stats: IntensityStats | None = None
    #: The ``class_locations`` array's parameters and checksums (builds with
    #: ``class_locations=K``); absent from older stores' metadata.
    class_locations: ClassLocationInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        n = len(self.sample_ids)
        for name in ("split", "instance_counts", "sample_class_counts", "void_pixels"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} samples")

    # -- derived ------------------------------------------------------------
    @property
    def class_counts(self) -> tuple[int, ...]:
        """Exact train-split pixel count per class (void excluded)."""
        return self.class_stats.class_counts

    @property
    def class_weight_scheme(self) -> str:
        return self.class_weight_config.scheme

    @property
    def arrays(self) -> tuple[str, ...]:
        """Names of the stored per-sample arrays (``shapes`` aside)."""
        return self.layout_info.array_names

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    def build_config(self) -> Any:
        """The :class:`~maskprep.BuildConfig` the store was built with."""
        from maskprep.config import BuildConfig

        return BuildConfig.from_dict(self.config)

    def digest(self) -> str:
        """sha256 of the metadata without its own digest and completion flags."""
        body = {k: v for k, v in self.to_dict().items() if k not in _UNDIGESTED}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def completed(self, shard_checksums: list[dict[str, str | None]]) -> StoreMetadata:
        """This metadata marked complete, with the shards' checksums and its digest."""
        done = replace(
            self,
            shard_checksums=tuple(shard_checksums),
            reweight_target=None,
            metadata_digest=None,
        )
        return replace(done, metadata_digest=done.digest(), stage="complete", complete=True)

    # -- serialisation ------------------------------------------------------
    @staticmethod
    def known_keys() -> frozenset[str]:
        """Every key :meth:`to_dict` may write (anything else is kept in ``extra``)."""
        return _KEYS

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe dict stored as the group attribute ``maskprep``."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "maskprep_version": self.maskprep_version,
            "layout": self.layout,
            "class_names": list(self.class_names),
            "void_label": self.void_label,
            "class_counts": list(self.class_counts),
            "class_stats": self.class_stats.to_dict(),
            "class_weights": list(self.class_weights),
            "class_weight_scheme": self.class_weight_scheme,
            "class_weight_config": self.class_weight_config.to_dict(),
            "w0": self.w0,
            "sigma": self.sigma,
            "border_region": self.border_region,
            "tolerance": self.tolerance,
            "spacing": None if self.spacing is None else list(self.spacing),
            "sample_ids": list(self.sample_ids),
            "split": list(self.split),
            "instance_counts": list(self.instance_counts),
            "sample_class_counts": [list(c) for c in self.sample_class_counts],
            "void_pixels": list(self.void_pixels),
            "padding": self.padding,
            "shard_size": self.shard_size,
            "inputs": [dict(i) for i in self.inputs],
            "quarantine": [dict(q) for q in self.quarantine],
            "notes": [dict(n) for n in self.notes],
            "config": self.config,
            "on_error": self.on_error,
            "inputs_digest": self.inputs_digest,
            "layout_info": self.layout_info.to_dict(),
            **self.extra,
        }
        if self.shard_checksums is not None:
            out["shard_checksums"] = [dict(c) for c in self.shard_checksums]
        if self.metadata_digest is not None:
            out["metadata_digest"] = self.metadata_digest
        if self.reweight_target is not None:
            out["reweight_target"] = self.reweight_target
        if self.shapes_checksum is not None:
            out["shapes_checksum"] = self.shapes_checksum
        # Left out when absent: a store without them keeps its exact metadata digest.
        if self.intensity_stats is not None:
            out["intensity_stats"] = self.intensity_stats.to_dict()
        if self.class_locations is not None:
            out["class_locations"] = self.class_locations.to_dict()
        out["stage"] = self.stage
        out["complete"] = self.complete
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "store") -> StoreMetadata:
        """Parse a store's ``maskprep`` attribute; StoreError naming ``where`` if unusable."""
        version = d.get("format_version")
        if version not in FORMAT_VERSIONS:
            raise StoreError(
                f"{where}: store format version {version} is not supported "
                f"(this maskprep reads versions {', '.join(map(str, FORMAT_VERSIONS))})"
            )
        try:
            checksums = d.get("shard_checksums")
            meta = cls(
                format_version=int(version),
                maskprep_version=str(d["maskprep_version"]),
                layout=str(d["layout"]),
                class_names=tuple(str(n) for n in d["class_names"]),
                void_label=int(d["void_label"]),
                class_stats=ClassStats.from_dict(d["class_stats"]),
                class_weights=tuple(float(w) for w in d["class_weights"]),
                class_weight_config=ClassWeightConfig.from_dict(d["class_weight_config"]),
                w0=float(d["w0"]),
                sigma=float(d["sigma"]),
                border_region=str(d["border_region"]),
                tolerance=float(d["tolerance"]),
                spacing=None if d["spacing"] is None else tuple(float(s) for s in d["spacing"]),
                sample_ids=tuple(str(s) for s in d["sample_ids"]),
                split=tuple(str(s) for s in d["split"]),
                instance_counts=_ints(d["instance_counts"]),
                sample_class_counts=tuple(_ints(c) for c in d["sample_class_counts"]),
                void_pixels=_ints(d["void_pixels"]),
                padding=str(d.get("padding", cls.padding)),
                shard_size=int(d["shard_size"]),
                inputs=tuple(dict(i) for i in d["inputs"]),
                quarantine=tuple(dict(q) for q in d.get("quarantine", [])),
                notes=tuple(dict(n) for n in d.get("notes", [])),
                config=dict(d["config"]),
                on_error=str(d["on_error"]),
                inputs_digest=str(d["inputs_digest"]),
                layout_info=StoreLayout.from_dict(d["layout_info"]),
                stage=str(d.get("stage", "complete" if d.get("complete") else "creating")),
                complete=bool(d.get("complete", False)),
                shard_checksums=None if checksums is None else tuple(dict(c) for c in checksums),
                metadata_digest=d.get("metadata_digest"),
                reweight_target=d.get("reweight_target"),
                shapes_checksum=d.get("shapes_checksum"),
                intensity_stats=(
                    None
                    if d.get("intensity_stats") is None
                    else IntensityStats.from_dict(d["intensity_stats"])
                ),
                class_locations=(
                    None
                    if d.get("class_locations") is None
                    else ClassLocationInfo.from_dict(d["class_locations"])
                ),
                extra={k: v for k, v in d.items() if k not in _KEYS},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{where}: the store's metadata is invalid ({exc!r})") from None
        if meta.layout_info.tiled != (version == TILED_FORMAT_VERSION):
            raise StoreError(
                f"{where}: format version {version} does not match its layout "
                f"({'tiled' if meta.layout_info.tiled else 'untiled'})"
            )
        # Derived keys are stored for readers of the JSON; they must agree.
        if list(d.get("class_counts", meta.class_counts)) != list(meta.class_counts):
            raise StoreError(f"{where}: class_stats and class_counts disagree")
        if d.get("class_weight_scheme", meta.class_weight_scheme) != meta.class_weight_scheme:
            raise StoreError(f"{where}: class_weight_scheme and class_weight_config disagree")
        return meta


# Derived keys written by to_dict besides the fields.
_KEYS = frozenset(
    {f.name for f in fields(StoreMetadata)} - {"extra"} | {"class_counts", "class_weight_scheme"}
)
