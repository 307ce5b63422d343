"""The text ``maskprep inspect`` prints: an :func:`~maskprep.inspect_store` result, formatted."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_inspection"]

_MAX_LISTED = 10  # quarantined samples / notes shown in the text


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _shape(shape: Sequence[int] | None) -> str:
    return "?" if shape is None else "x".join(str(int(s)) for s in shape)


def _num(value: Any) -> str:
    """Short form of a number from the metadata (10.0 -> 10)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _stat(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def _intensity_lines(info: Mapping[str, Any]) -> list[str]:
    """The intensity statistics and class locations, or how to get them."""
    stats = info.get("intensity_stats")
    if not stats:
        lines = [
            "Intensity statistics: not recorded (build with --intensity-stats; readers "
            "compute them on demand)"
        ]
    else:
        kind = "exact" if stats.get("exact") else "float image: percentiles within 0.05%"
        lines = [f"Intensity statistics (train split, per channel; {kind}):"]
        keys = ("mean", "std", "min", "max", "percentile_00_5", "median", "percentile_99_5")
        heads = ("mean", "std", "min", "max", "p0.5", "median", "p99.5")
        lines.append(f"  {'pixels':<11}{'ch':>3}{'count':>13}" + "".join(f"{h:>11}" for h in heads))
        for region in ("all", "foreground"):
            r = stats.get(region) or {}
            for c, count in enumerate(r.get("count") or []):
                values = "".join(f"{_stat(r[k][c]):>11}" for k in keys)
                lines.append(f"  {region:<11}{c:>3}{count:>13,}{values}")
    loc = info.get("class_locations")
    if loc:
        lines.append(
            f"Class locations: up to {loc['per_class']} per class and sample "
            "(array class_locations; class-aware patch sampling)"
        )
    else:
        lines.append(
            "Class locations: not recorded (build with --class-locations K; readers compute "
            "them per sample on demand)"
        )
    return lines


def format_inspection(info: Mapping[str, Any]) -> str:
    """Human-readable text of an :func:`inspect_store` result.

    Examples
    --------
    >>> from maskprep import example_store, inspect_store
    >>> store = example_store(n_images=5, size=(32, 32))
    >>> print(format_inspection(inspect_store(store)).splitlines()[2])
    Samples: 5 (train 4, valid 1)
    """
    lines: list[str] = []
    status = "complete" if info["complete"] else "INCOMPLETE"
    if not info["complete"] and info.get("stage"):
        status += f", stage {info['stage']}"
    lines.append(f"maskprep store {info['path']} [{status}]")
    lines.append(
        f"  format {info['format_version']}, written by maskprep {info['maskprep_version']} "
        f"from a dataset in the {info['layout']} layout"
    )
    samples = info["samples"]
    parts = ", ".join(f"{k} {v}" for k, v in samples["by_split"].items())
    lines.append(f"Samples: {samples['total']} ({parts})")

    g = info["geometry"]
    n_channels = g["channels"]
    channels = f"{n_channels} channel{'s' if n_channels != 1 else ''}"
    if n_channels is None:
        channels = "channels unknown"
    if g["smallest_shape"] is None or g["smallest_shape"] == g["largest_shape"]:
        sizes = f"samples {_shape(g['padded_shape'])}"
    else:
        sizes = (
            f"samples from {_shape(g['smallest_shape'])} ({g['smallest_sample']}) "
            f"to {_shape(g['largest_shape'])} ({g['largest_sample']}), "
            f"{g['padded_samples']} padded to {_shape(g['padded_shape'])}"
        )
    lines.append(
        f"Geometry: {g['ndim']}D, {sizes}; image {g['image_dtype']} ({channels}), "
        f"labels {g['labels_dtype']}"
    )

    cw = info["class_weights"]
    lines.append("")
    lines.append(
        f"Classes (train split, void excluded; weights: {cw['scheme']}, "
        f"{cw['train_images']} train images):"
    )
    lines.append(
        f"  {'id':>3}  {'name':<16}{'pixels':>14}{'frequency':>11}{'images':>9}{'weight':>10}"
    )
    for c in info["classes"]:
        pixels = "?" if c["pixels"] is None else f"{c['pixels']:,}"
        images = "?" if c["images"] is None else str(c["images"])
        weight = "?" if c["weight"] is None else f"{c['weight']:.4f}"
        lines.append(
            f"  {c['index']:>3}  {c['name']:<16}{pixels:>14}{c['frequency']:>11.4f}"
            f"{images:>9}{weight:>10}"
        )
    config = cw.get("config")
    if isinstance(config, Mapping):
        extras = ", ".join(f"{k}={v}" for k, v in config.items() if k != "scheme")
        lines.append(f"  scheme parameters: {extras}")

    v = info["void"]
    frac = "?" if v["fraction"] is None else f"{100 * v['fraction']:.2f}%"
    total = "?" if v["total_pixels"] is None else f"{v['total_pixels']:,}"
    lines.append(
        f"Void: label {v['label']} (the loss's ignore_index): {v['pixels']:,} of {total} pixels "
        f"({frac}), in {v['samples_with_void']} of {samples['total']} samples"
    )
    lines.append(f"  {v['pixels_train']:,} void pixels in the train split")

    inst = info["instances"]
    if inst["min"] is None:
        lines.append("Instances per sample: no samples")
    else:
        lines.append(
            f"Instances per sample: min {inst['min']}, median {_num(inst['median'])}, "
            f"mean {inst['mean']:.1f}, max {inst['max']}; total {inst['total']:,}; "
            f"{inst['samples_without_instances']} sample(s) without instances"
        )
        edges, hist = inst["histogram"]["edges"], inst["histogram"]["counts"]
        top = max(hist) if hist else 0
        for lo, hi, k in zip(edges[:-1], edges[1:], hist, strict=True):
            label = str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"
            bar = "#" * (round(30 * k / top) if top else 0)
            lines.append(f"  {label:>9} | {bar} {k}")

    b = info["border"]
    spacing = "isotropic (1 per axis)" if b["spacing"] is None else _shape(b["spacing"])
    lines.append("")
    lines.append(
        f"Border term: w0 {_num(b['w0'])}, sigma {_num(b['sigma'])}, region {b['region']}, "
        f"tolerance {b['tolerance']}, spacing {spacing}"
    )

    lines.extend(_intensity_lines(info))

    s = info["shards"]
    lines.append(
        f"Shards: {s['n_shards']} shard(s) of up to {s['shard_size']} samples per array, "
        "one chunk per sample"
    )
    w = max(10, *(len(name) + 1 for name in s["arrays"]))  # class_locations is long
    lines.append(f"  {'array':<{w}}{'shape':<22}{'dtype':<9}{'shard':<22}{'files':>6}{'size':>11}")
    for name, a in s["arrays"].items():
        if a is None:
            lines.append(f"  {name:<{w}}MISSING")
            continue
        shard = _shape(a["shards"]) if a["shards"] is not None else "-"
        lines.append(
            f"  {name:<{w}}{_shape(a['shape']):<22}{a['dtype']:<9}{shard:<22}"
            f"{a['files']:>6}{_size(a['bytes']):>11}"
        )
    size = info["size_on_disk"]
    lines.append(
        f"Size on disk: {_size(size['bytes'])} ({size['bytes']:,} bytes, {size['files']} files)"
    )

    inputs = info["inputs"]
    digest = f", inputs sha256 {inputs['digest'][:16]}..." if inputs.get("digest") else ""
    lines.append(
        f"Provenance: maskprep {info['maskprep_version']}, {inputs['files']} input files "
        f"({_size(inputs['bytes'])}){digest}"
    )
    if info.get("on_error") is not None:
        lines.append(f"On error: {info['on_error']}; {len(info['quarantine'])} sample(s) skipped")
    for what, key, field in (("Skipped", "quarantine", "error"), ("Note", "notes", "note")):
        entries = info.get(key) or []
        for e in entries[:_MAX_LISTED]:
            if isinstance(e, Mapping):
                lines.append(f"  {what} {e.get('sample_id')}: {e.get(field)}")
        if len(entries) > _MAX_LISTED:
            lines.append(f"  ... and {len(entries) - _MAX_LISTED} more ({key} in --json)")
    config = info["build_config"]
    if isinstance(config, Mapping):
        flat: list[str] = []
        for k, val in config.items():
            if isinstance(val, Mapping):
                flat.extend(f"{k}.{k2}={v2}" for k2, v2 in val.items())
            else:
                flat.append(f"{k}={val}")
        lines.extend(
            textwrap.wrap(
                ", ".join(flat),
                width=100,
                initial_indent="Build parameters: ",
                subsequent_indent="  ",
                break_on_hyphens=False,
            )
        )
    if info["other_metadata_keys"]:
        lines.append("Other metadata: " + ", ".join(info["other_metadata_keys"]))
    if info["problems"]:
        lines.append("")
        lines.append("INCOMPLETE STORE:" if not info["complete"] else "Problems:")
        lines.extend(f"  - {msg}" for msg in info["problems"])
    return "\n".join(lines)
