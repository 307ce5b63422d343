"""The store's metadata: one typed schema, the only code that knows its keys.

A store's group attribute ``maskprep`` is :meth:`StoreMetadata.to_dict`;
:meth:`StoreMetadata.from_dict` reads it back, checking the format version in
one place. :class:`StoreLayout` (:mod:`maskprep.store.layout`) gives the
shapes, dtypes and fill values of the arrays; :class:`StoreRecords`
(:mod:`maskprep.store.records`) the per-sample, per-input and per-shard
records, which format 3 keeps in arrays rather than in the JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
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
from maskprep.store.records import RECORD_FIELDS, RECORDS_GROUP, SPLITS, StoreRecords
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
    "RECORDS_FORMAT_VERSION",
    "RECORDS_GROUP",
    "RECORD_FIELDS",
    "SHAPES_KEY",
    "SPLITS",
    "STAGES",
    "TILED_FORMAT_VERSION",
    "ArraySpec",
    "ClassLocationInfo",
    "StoreLayout",
    "StoreMetadata",
    "StoreRecords",
    "default_block",
    "default_tile",
]

#: Format of an untiled store (one chunk per sample); the default.
FORMAT_VERSION = 1
#: Store key of the ``shapes`` array's only chunk.
SHAPES_KEY = "shapes/c/0/0"
#: Format of a tiled store (chunks of ``tile`` pixels per spatial axis) whose
#: records are in ``zarr.json``: written by maskprep 0.x before format 3, read.
TILED_FORMAT_VERSION = 2
#: Format of a tiled store whose records are arrays (:mod:`maskprep.store.records`):
#: what tiled builds write.
RECORDS_FORMAT_VERSION = 3
#: Every format this maskprep reads (it writes 1 and 3).
FORMAT_VERSIONS = (FORMAT_VERSION, TILED_FORMAT_VERSION, RECORDS_FORMAT_VERSION)
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


def _records(
    d: Mapping[str, Any],
    where: str,
    read: Callable[[str], bytes | None] | None,
    layout: StoreLayout,
) -> StoreRecords:
    """The records of ``d``: inline (formats 1, 2, or :meth:`StoreMetadata.to_dict`
    with ``inline``), else the arrays a format-3 store lists."""
    names = layout.array_names
    if "sample_ids" in d or d.get("format_version") != RECORDS_FORMAT_VERSION:
        checksums = d.get("shard_checksums")
        return StoreRecords(
            array_names=names,
            where=where,
            sample_ids=d["sample_ids"],
            split=d["split"],
            instance_counts=d["instance_counts"],
            sample_class_counts=d["sample_class_counts"],
            void_pixels=d["void_pixels"],
            inputs=d["inputs"],
            quarantine=d.get("quarantine", []),
            notes=d.get("notes", []),
            shard_checksums=checksums,
        )

    def unreadable(key: str) -> bytes | None:
        raise StoreError(f"{where}: the store's records ({RECORDS_GROUP}/) cannot be read here")

    return StoreRecords.from_store(d["records"], read or unreadable, layout.n_samples, names, where)


# Keys left out of the digest: the digest itself and the completion flags.
_UNDIGESTED = ("metadata_digest", "complete", "stage")


@dataclass(frozen=True)
class StoreMetadata:
    """Everything a store records about its build, typed.

    ``records`` (:class:`StoreRecords`) holds the per-sample records, one
    entry per stored sample in store order (``sample_ids``, ``split``,
    ``instance_counts``, ``sample_class_counts``, ``void_pixels``: attributes
    of the metadata too), the input files, notes, quarantine and the shard
    checksums. ``config`` is the :class:`~maskprep.BuildConfig` as a dict
    (:meth:`build_config` parses it), ``on_error`` and ``inputs_digest`` the
    rest of what a resumed build must match. Keys this version does not know
    are kept in ``extra`` and written back unchanged.

    Examples
    --------
    >>> from maskprep import example_store, open_shards
    >>> store = example_store(n_images=2)
    >>> meta = open_shards(store).store_metadata
    >>> meta.class_names, meta.stage, meta.format_version, meta.sample_ids
    (('background', 'object'), 'complete', 3, ('d_000', 'd_001'))
    >>> sorted(meta.to_dict()["records"])[:3]
    ['input_bytes', 'input_paths', 'instance_counts']
    >>> StoreMetadata.from_dict(meta.to_dict(inline=True)) == meta
    True
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
    records: StoreRecords
    shard_size: int
    config: dict[str, Any]
    on_error: str
    inputs_digest: str
    layout_info: StoreLayout
    stage: str = "creating"
    complete: bool = False
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
        if self.records.n_samples != self.layout_info.n_samples:
            raise ValueError(
                f"{self.records.n_samples} sample records for the layout's "
                f"{self.layout_info.n_samples} samples"
            )

    # -- records ------------------------------------------------------------
    @property
    def sample_ids(self) -> tuple[str, ...]:
        """Id of each sample, in store order."""
        return self.records.sample_ids

    @property
    def split(self) -> tuple[str, ...]:
        """``"train"`` or ``"valid"`` for each sample."""
        return self.records.split

    @property
    def instance_counts(self) -> Any:
        """Instances per sample (int64 array)."""
        return self.records.instance_counts

    @property
    def sample_class_counts(self) -> Any:
        """Pixels per class per sample, void excluded (int64 array ``(n, n_classes)``)."""
        return self.records.sample_class_counts

    @property
    def void_pixels(self) -> Any:
        """Void pixels per sample (int64 array)."""
        return self.records.void_pixels

    @property
    def inputs(self) -> tuple[dict[str, Any], ...]:
        """Every input file once: ``{"path", "bytes"}``."""
        return self.records.inputs

    @property
    def quarantine(self) -> tuple[dict[str, str], ...]:
        """Samples left out by ``on_error="skip"``: ``{"sample_id", "error"}``."""
        return self.records.quarantine

    @property
    def notes(self) -> tuple[dict[str, str], ...]:
        """Notes on samples: ``{"sample_id", "note"}``."""
        return self.records.notes

    @property
    def shard_checksums(self) -> tuple[dict[str, str | None], ...] | None:
        """Per shard, the sha256 of each array's files (None until complete)."""
        return self.records.shard_checksums

    @property
    def records_in_arrays(self) -> bool:
        """True for format 3: the records are arrays of the group ``metadata``."""
        return self.format_version >= RECORDS_FORMAT_VERSION

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
        return self.records.n_samples

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
            records=self.records.replace(shard_checksums=tuple(shard_checksums)),
            reweight_target=None,
            metadata_digest=None,
        )
        return replace(done, metadata_digest=done.digest(), stage="complete", complete=True)

    # -- serialisation ------------------------------------------------------
    @staticmethod
    def known_keys() -> frozenset[str]:
        """Every key :meth:`to_dict` may write (anything else is kept in ``extra``)."""
        return _KEYS

    def to_dict(self, inline: bool = False) -> dict[str, Any]:
        """The JSON-safe dict stored as the group attribute ``maskprep``.

        Format 3 lists its records' arrays (``records``: shape and sha256 of
        each); with ``inline`` the records themselves are in the dict under
        their names, as formats 1 and 2 store them (:meth:`from_dict` reads
        both).
        """
        inline = inline or not self.records_in_arrays
        records: dict[str, Any] = (
            {n: self.records.to_json(n) for n in RECORD_FIELDS}
            if inline
            else {"records": self.records.summary()}
        )
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
        }
        # Formats 1 and 2 keep their key order: the JSON is byte-identical.
        out.update({k: records.pop(k) for k in RECORD_FIELDS[:5] if k in records})
        out["padding"] = self.padding
        out["shard_size"] = self.shard_size
        out.update({k: records.pop(k) for k in ("inputs", "quarantine", "notes") if k in records})
        checksums = records.pop("shard_checksums", None)
        out.update(records)  # format 3: the summary of its arrays
        out.update(
            {
                "config": self.config,
                "on_error": self.on_error,
                "inputs_digest": self.inputs_digest,
                "layout_info": self.layout_info.to_dict(),
                **self.extra,
            }
        )
        if checksums is not None:
            out["shard_checksums"] = checksums
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
    def from_dict(
        cls,
        d: Mapping[str, Any],
        where: str = "store",
        read: Callable[[str], bytes | None] | None = None,
    ) -> StoreMetadata:
        """Parse a store's ``maskprep`` attribute; StoreError naming ``where`` if unusable.

        A format-3 store's records are read with ``read(key)`` (a store key
        such as ``metadata/split/c/0``) the first time each is used, unless
        ``d`` holds them inline (:meth:`to_dict` with ``inline``).
        """
        version = d.get("format_version")
        if version not in FORMAT_VERSIONS:
            raise StoreError(
                f"{where}: store format version {version} is not supported "
                f"(this maskprep reads versions {', '.join(map(str, FORMAT_VERSIONS))})"
            )
        try:
            layout_info = StoreLayout.from_dict(d["layout_info"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{where}: the store's metadata is invalid ({exc!r})") from None
        if layout_info.tiled != (version != FORMAT_VERSION):
            raise StoreError(
                f"{where}: format version {version} does not match its layout "
                f"({'tiled' if layout_info.tiled else 'untiled'})"
            )
        try:
            records = _records(d, where, read, layout_info)
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
                records=records,
                padding=str(d.get("padding", cls.padding)),
                shard_size=int(d["shard_size"]),
                config=dict(d["config"]),
                on_error=str(d["on_error"]),
                inputs_digest=str(d["inputs_digest"]),
                layout_info=layout_info,
                stage=str(d.get("stage", "complete" if d.get("complete") else "creating")),
                complete=bool(d.get("complete", False)),
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
        # Derived keys are stored for readers of the JSON; they must agree.
        if list(d.get("class_counts", meta.class_counts)) != list(meta.class_counts):
            raise StoreError(f"{where}: class_stats and class_counts disagree")
        if d.get("class_weight_scheme", meta.class_weight_scheme) != meta.class_weight_scheme:
            raise StoreError(f"{where}: class_weight_scheme and class_weight_config disagree")
        return meta


# Derived keys written by to_dict besides the fields.
_KEYS = frozenset(
    {f.name for f in fields(StoreMetadata)} - {"extra"}
    | {"class_counts", "class_weight_scheme", *RECORD_FIELDS}
)
