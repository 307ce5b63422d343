"""A readable summary of a built store: ``maskprep inspect``.

:func:`inspect_store` collects everything into a JSON-safe dict and
:func:`format_inspection` (in :mod:`maskprep.tools.inspect_text`) renders it
as text. Both read the ``maskprep`` group attributes straight from
``zarr.json`` rather than through
:func:`~maskprep.open_shards`, so a store whose build did not finish is still
reported (marked INCOMPLETE, with how many shard files exist) instead of
refused. Metadata keys this version does not know are listed, never an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskprep.errors import StoreError
from maskprep.store import (
    CORE_ARRAYS,
    DEFAULT_ARRAYS,
    FORMAT_VERSIONS,
    RECORD_FIELDS,
    Location,
    StoreMetadata,
    read_attrs,
)
from maskprep.tools.inspect_text import format_inspection

__all__ = ["format_inspection", "inspect_store"]

_MARKERS = ("_maskprep", "shards")


def _array_info(loc: Location, name: str) -> dict[str, Any] | None:
    """Shape, dtype, chunk and shard shape of one array, from its ``zarr.json``."""
    try:
        raw = loc.read_bytes(f"{name}/zarr.json")
        doc = json.loads(raw) if raw is not None else None
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    shape = [int(n) for n in doc.get("shape", [])]
    grid = doc.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
    chunks = shards = None
    compressor = None
    for codec in doc.get("codecs", []):
        if codec.get("name") == "sharding_indexed":
            conf = codec.get("configuration", {})
            shards = grid
            chunks = conf.get("chunk_shape")
            inner = conf.get("codecs", [])
            compressor = next((c["name"] for c in inner if c.get("name") != "bytes"), None)
            break
    else:
        chunks = grid
        compressor = next(
            (c.get("name") for c in doc.get("codecs", []) if c.get("name") != "bytes"), None
        )
    data_bytes, n_files = loc.tree_size(f"{name}/c")
    return {
        "shape": shape,
        "dtype": str(doc.get("data_type")),
        "chunks": None if chunks is None else [int(n) for n in chunks],
        "shards": None if shards is None else [int(n) for n in shards],
        "compressor": compressor,
        "files": n_files,
        "bytes": data_bytes,
    }


def _extreme_samples(shapes: np.ndarray | None, ids: object) -> dict[str, Any]:
    """The samples with the fewest and the most pixels: their ids and true shapes.

    Examples
    --------
    >>> out = _extreme_samples(np.array([[200, 300], [256, 256], [300, 200]]), ["a", "b", "c"])
    >>> out["smallest_shape"], out["smallest_sample"], out["largest_shape"], out["largest_sample"]
    ([200, 300], 'a', [256, 256], 'b')
    """
    if shapes is None or len(shapes) == 0:
        return dict.fromkeys(
            ("smallest_shape", "smallest_sample", "largest_shape", "largest_sample")
        )
    pixels = np.prod(shapes.astype(np.int64), axis=1)
    names = [str(i) for i in ids] if isinstance(ids, list | tuple) else []
    out: dict[str, Any] = {}
    for which, i in (("smallest", int(np.argmin(pixels))), ("largest", int(np.argmax(pixels)))):
        out[f"{which}_shape"] = [int(v) for v in shapes[i]]
        out[f"{which}_sample"] = names[i] if i < len(names) else None
    return out


def _read_shapes(loc: Location, n_samples: int) -> np.ndarray | None:
    """The ``shapes`` array, or None if it is missing, unreadable or never written."""
    try:
        import zarr

        arr = zarr.open_array(loc.zarr_store(read_only=True), path="shapes", mode="r")
        shapes = np.asarray(arr[:], dtype=np.int64)
    except Exception:  # an incomplete store may have anything here
        return None
    if shapes.ndim != 2 or shapes.shape[0] != n_samples or not (shapes > 0).all():
        return None
    return shapes


def _int_list(value: Any) -> list[int] | None:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return None
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        return None


def _instance_distribution(counts: Sequence[int]) -> dict[str, Any]:
    """Summary statistics and a small integer histogram of instances per sample."""
    if not counts:
        empty: dict[str, Any] = dict.fromkeys(("min", "median", "mean", "max"))
        return {
            "total": 0,
            **empty,
            "samples_without_instances": 0,
            "histogram": {"edges": [], "counts": []},
        }
    a = np.asarray(counts, dtype=np.int64)
    top = int(a.max())
    width = max(1, -(-(top + 1) // 8))  # at most 8 bins of equal integer width
    edges = np.arange(0, top + 1 + width, width)
    hist, _ = np.histogram(a, bins=edges)
    return {
        "total": int(a.sum()),
        "min": int(a.min()),
        "median": float(np.median(a)),
        "mean": float(a.mean()),
        "max": top,
        "samples_without_instances": int((a == 0).sum()),
        # bin i holds counts in [edges[i], edges[i + 1])
        "histogram": {"edges": [int(e) for e in edges], "counts": [int(h) for h in hist]},
    }


def inspect_store(
    path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything worth knowing about a built store, as a JSON-safe dict.

    Reads the ``maskprep`` attributes from ``zarr.json`` directly, so an
    incomplete store (a build that did not finish) is reported with
    ``"complete": False`` rather than refused.

    Parameters
    ----------
    path : path or URL
        A ``.zarr`` store written by ``maskprep build-weights``: a directory,
        or an fsspec URL such as ``s3://bucket/train.zarr``.
    storage_options : dict, optional
        fsspec options for a URL.

    Returns
    -------
    dict
        Keys ``path``, ``complete``, ``format_version``, ``maskprep_version``,
        ``layout``, ``samples`` (total and per split), ``classes`` (name, train
        pixel count, frequency, images containing it, weight), ``class_weights``
        (scheme and its config), ``void`` (label, pixels, total pixels,
        fraction), ``instances`` (distribution of instances per sample),
        ``geometry`` (dimensionality, largest and smallest sample shape,
        channels), ``shards`` (shard size, count, per-array layout),
        ``size_on_disk``, ``border`` (w0, sigma, region, tolerance, spacing),
        ``intensity_stats`` (per-channel statistics of the train split's images,
        or None if not recorded), ``class_locations`` (how many per class, or None),
        ``build_config``, ``inputs`` (files and bytes), ``problems`` (what an
        incomplete or unusual store lacks), ``quarantine`` and ``notes`` (samples
        skipped or noted by the build, where recorded), and
        ``other_metadata_keys``.

    Raises
    ------
    StoreError
        If ``path`` does not exist or is not a maskprep store.

    Examples
    --------
    >>> from maskprep import example_store
    >>> store = example_store(n_images=5, size=(32, 32))
    >>> info = inspect_store(store)
    >>> info["complete"], info["samples"]["by_split"], [c["name"] for c in info["classes"]]
    (True, {'train': 4, 'valid': 1}, ['background', 'object'])
    """
    p = str(path) if "://" in str(path) else Path(path)
    loc = Location.parse(path, storage_options)
    if not loc.exists():
        raise StoreError(f"{p}: no such store")
    attrs = read_attrs(loc)
    if attrs is None:
        raise StoreError(f"{p}: not a maskprep store (no maskprep metadata in zarr.json)")
    meta: Mapping[str, Any] = attrs
    problems: list[str] = []
    if "records" in attrs and "sample_ids" not in attrs:  # format 3: records in arrays
        try:
            inline = StoreMetadata.from_dict(attrs, str(p), loc.read_bytes).to_dict(inline=True)
            meta = {**attrs, **{k: inline[k] for k in RECORD_FIELDS}}
        except StoreError as exc:
            problems.append(f"the per-sample records cannot be read: {exc}")

    complete = bool(meta.get("complete"))
    if not complete:
        problems.append(
            "the build did not finish (complete flag not set); readers refuse this store: "
            "re-run maskprep build-weights"
        )
    fmt = meta.get("format_version")
    if fmt not in FORMAT_VERSIONS:
        versions = ", ".join(map(str, FORMAT_VERSIONS))
        problems.append(f"format version {fmt!r}; this maskprep reads versions {versions}")

    # Samples and splits.
    sample_ids = [str(s) for s in meta.get("sample_ids") or []]
    splits = [str(s) for s in meta.get("split") or []]
    n = len(sample_ids) or len(splits)
    by_split: dict[str, int] = {}
    for s in splits:
        by_split[s] = by_split.get(s, 0) + 1

    # Arrays, shards and sizes.
    arrays: dict[str, Any] = {}
    targets = (meta.get("layout_info") or {}).get("targets")
    stored = DEFAULT_ARRAYS if not targets else (*CORE_ARRAYS, *(t["name"] for t in targets))
    extra_arrays = ("class_locations",) if meta.get("class_locations") else ()
    for name in (*stored, "shapes", *extra_arrays):
        info = _array_info(loc, name)
        if info is None:
            problems.append(f"array {name} is missing")
        arrays[name] = info
    shard_size = meta.get("shard_size")
    n_shards = -(-n // int(shard_size)) if isinstance(shard_size, int) and shard_size > 0 else None
    marker_names = loc.list("/".join(_MARKERS))
    shards_done = (
        sum(1 for f in marker_names if f.endswith(".json") and not f.startswith("."))
        if marker_names
        else None
    )
    if n_shards is not None and not complete:
        if shards_done is not None:
            problems.append(f"{shards_done} of {n_shards} shards recorded as written")
        for name in stored:
            a = arrays.get(name)
            if a is not None and a["files"] < n_shards:
                problems.append(f"array {name}: {a['files']} of {n_shards} shard files written")
    total_bytes, total_files = loc.tree_size()

    # Geometry and void fraction.
    shapes = _read_shapes(loc, n) if n else None
    image = arrays.get("image")
    labels = arrays.get("labels")
    ndim = None if labels is None else len(labels["shape"]) - 1
    channels = None  # unknown without an image array
    if image is not None and ndim is not None:
        channels = int(image["shape"][-1]) if len(image["shape"]) == ndim + 2 else 1
    total_pixels = int(np.prod(shapes, axis=1).sum()) if shapes is not None else None
    if shapes is None and n:
        problems.append("sample shapes unknown (the shapes array is missing or unwritten)")
    void_per_sample = _int_list(meta.get("void_pixels")) or []
    void_total = sum(void_per_sample)
    void_train = sum(v for v, s in zip(void_per_sample, splits, strict=False) if s == "train")

    # Classes.
    names = [str(c) for c in meta.get("class_names") or []]
    counts = _int_list(meta.get("class_counts")) or []
    weights = [float(w) for w in meta.get("class_weights") or []]
    stats = meta.get("class_stats") or {}
    image_counts: list[int | None] = [*(_int_list(stats.get("image_counts")) or [])]
    n_images = stats.get("n_images")
    labeled = sum(counts)
    classes = [
        {
            "index": i,
            "name": name,
            "pixels": counts[i] if i < len(counts) else None,
            "frequency": (counts[i] / labeled) if labeled and i < len(counts) else 0.0,
            "images": image_counts[i] if i < len(image_counts) else None,
            "weight": weights[i] if i < len(weights) else None,
        }
        for i, name in enumerate(names)
    ]

    inputs = meta.get("inputs") or []
    input_bytes = sum(int(f.get("bytes", 0)) for f in inputs if isinstance(f, Mapping))
    spacing = meta.get("spacing")
    return {
        "path": str(p),
        "complete": complete,
        "stage": meta.get("stage"),
        "format_version": fmt,
        "maskprep_version": meta.get("maskprep_version"),
        "layout": meta.get("layout"),
        "samples": {"total": n, "by_split": by_split},
        "classes": classes,
        "class_weights": {
            "scheme": meta.get("class_weight_scheme"),
            "config": meta.get("class_weight_config"),
            "train_images": n_images,
        },
        "void": {
            "label": meta.get("void_label"),
            "pixels": void_total,
            "pixels_train": void_train,
            "total_pixels": total_pixels,
            "fraction": (void_total / total_pixels) if total_pixels else None,
            "samples_with_void": sum(v > 0 for v in void_per_sample),
        },
        "instances": _instance_distribution(_int_list(meta.get("instance_counts")) or []),
        "geometry": {
            "ndim": ndim,
            "padded_shape": None if labels is None else labels["shape"][1:],
            **_extreme_samples(shapes, sample_ids),
            "padded_samples": None
            if shapes is None or labels is None
            else int((shapes != np.asarray(labels["shape"][1:])).any(axis=1).sum()),
            "channels": channels,
            "image_dtype": None if image is None else image["dtype"],
            "labels_dtype": None if labels is None else labels["dtype"],
        },
        "shards": {
            "shard_size": shard_size,
            "n_shards": n_shards,
            "recorded_written": shards_done,
            "arrays": arrays,
        },
        "size_on_disk": {"bytes": total_bytes, "files": total_files},
        "border": {
            "w0": meta.get("w0"),
            "sigma": meta.get("sigma"),
            "region": meta.get("border_region"),
            "tolerance": meta.get("tolerance"),
            "spacing": spacing,
        },
        "intensity_stats": meta.get("intensity_stats"),
        "class_locations": meta.get("class_locations"),
        "build_config": meta.get("config"),
        "inputs": {
            "files": len(inputs),
            "bytes": input_bytes,
            "digest": meta.get("inputs_digest"),
        },
        "metadata_digest": meta.get("metadata_digest"),
        "on_error": meta.get("on_error"),
        "quarantine": list(meta.get("quarantine") or []),
        "notes": list(meta.get("notes") or []),
        "problems": problems,
        "other_metadata_keys": sorted(k for k in meta if k not in StoreMetadata.known_keys()),
    }
