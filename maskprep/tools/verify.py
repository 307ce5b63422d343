"""``maskprep verify``: is a store complete, intact and self-consistent?"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskprep.errors import StoreError
from maskprep.store import (
    SHAPES_KEY,
    Location,
    StoreLayout,
    StoreMetadata,
    class_locations_key,
    corrupt_chunks,
    done_shards,
    read_store_metadata,
    shapes_checksum,
    shard_checksums,
)
from maskprep.weighting import ClassStats, class_weights, count_classes

__all__ = ["VerifyReport", "verify_store"]


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_store`: ``ok`` when ``problems`` is empty."""

    store: str
    problems: tuple[str, ...]
    shards_checked: int
    samples_recounted: int

    @property
    def ok(self) -> bool:
        return not self.problems


#: ``progress(stage, done, total)``, as the pipeline's passes report it.
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    """The progress callback of a caller that passed none."""


def _check_shards(
    loc: Location, meta: StoreMetadata, layout: StoreLayout, report: Progress
) -> list[str]:
    problems = []
    recorded = meta.shard_checksums or ()
    n_shards = len(layout.shard_bounds())
    if len(recorded) != n_shards:
        return [f"metadata lists {len(recorded)} shard checksums for {n_shards} shards"]
    stage = f"checking the checksums of {n_shards} shard(s)"
    report(stage, 0, n_shards)
    for k in range(n_shards):
        actual = shard_checksums(loc, layout, k)
        report(stage, k + 1, n_shards)
        for name in layout.array_names:
            want, got = recorded[k].get(name), actual[name]
            key = layout.shard_key(name, k)
            if len(layout.spatial_shards()) > 1:  # the shard is a set of files
                key = f"{name}/c/{k}/* ({len(layout.spatial_shards())} spatial shard(s))"
            if want is not None and got is None:
                problems.append(f"{loc}/{key}: shard file is missing")
            elif want != got:
                problems.append(f"{loc}/{key}: checksum mismatch (the shard was modified)")
                if layout.chunk_checksum:
                    problems += _corrupt_chunk_problems(loc, meta, name, k)
    return problems


def _corrupt_chunk_problems(loc: Location, meta: StoreMetadata, name: str, k: int) -> list[str]:
    """Which chunks of a modified shard of a format-2 array fail their crc32c, and the
    samples they belong to (one line each)."""
    layout = meta.layout_info
    per = tuple(e // t for e, t in zip(layout.shard_spatial_shape, layout.tile_shape, strict=True))
    grid = (layout.shard_size, *per)
    n_chunks = int(np.prod(grid))
    problems = []
    for pos, _ in layout.spatial_shards():
        key = layout.shard_key(name, k, pos)
        data = loc.read_bytes(key)
        if data is None:
            continue
        try:
            bad = corrupt_chunks(data, n_chunks, f"{loc}/{key}")
        except StoreError as exc:
            problems.append(str(exc))
            continue
        for flat in bad:
            within = [int(v) for v in np.unravel_index(flat, grid)]
            j = k * layout.shard_size + within[0]
            chunk = (j, *(p * g + w for p, g, w in zip(pos, per, within[1:], strict=True)))
            sample = meta.sample_ids[j] if j < meta.n_samples else "?"
            problems.append(
                f"{loc}/{key}: chunk {chunk} (sample {sample}) fails its crc32c checksum"
            )
    return problems


def _check_class_locations(loc: Location, meta: StoreMetadata) -> list[str]:
    """The class_locations shard files against their recorded checksums."""
    info = meta.class_locations
    if info is None:
        return []
    problems = []
    for k, want in enumerate(info.shard_checksums):
        key = class_locations_key(k)
        data = loc.read_bytes(key)
        got = None if data is None else hashlib.sha256(data).hexdigest()
        if want is not None and got is None:
            problems.append(f"{loc}/{key}: shard file is missing")
        elif want != got:
            problems.append(f"{loc}/{key}: checksum mismatch (the shard was modified)")
    return problems


def _recount(
    loc: Location, meta: StoreMetadata, layout: StoreLayout, report: Progress
) -> tuple[list[str], int]:
    import zarr

    problems: list[str] = []
    group = zarr.open_group(loc.zarr_store(read_only=True), mode="r")
    try:
        labels = group["labels"]
        shapes = np.asarray(group["shapes"][:], dtype=np.int64)  # type: ignore[index]
    except Exception as exc:  # a deleted array or array metadata file
        return [f"{loc}: cannot open the labels and shapes arrays ({exc!r})"], 0
    if shapes.shape != (meta.n_samples, len(layout.spatial_shape)) or (
        shapes.size and ((shapes < 1) | (shapes > np.asarray(layout.spatial_shape))).any()
    ):
        return [f"{loc}/shapes: sample shapes do not fit the stored arrays"], 0
    c = len(meta.class_names)
    train: list[np.ndarray] = []
    n = 0
    bounds = layout.shard_bounds()
    stage = f"recounting the labels of {len(bounds)} shard(s)"
    report(stage, 0, len(bounds))
    for k, (a, b) in enumerate(bounds):
        if k:
            report(stage, k, len(bounds))
        try:
            pieces = _label_pieces(labels, a, b, shapes, layout)
        except Exception as exc:  # a damaged shard is reported by the checksums
            problems.append(f"{loc}/labels: samples {a}-{b - 1} cannot be decoded ({exc})")
            continue
        for i, parts in pieces:
            counts = np.zeros(c, dtype=np.int64)
            top = 0
            for lab in parts:
                top = max(top, int(lab[lab != meta.void_label].max(initial=0)))
                if top < c:
                    counts += count_classes(lab, meta.void_label, c)
            if top >= c:
                problems.append(f"sample {meta.sample_ids[i]}: label {top} >= {c}")
                continue
            n += 1
            if counts.tolist() != list(meta.sample_class_counts[i]):
                problems.append(
                    f"sample {meta.sample_ids[i]}: stored labels count {counts.tolist()} "
                    f"but the metadata says {list(meta.sample_class_counts[i])}"
                )
            if meta.split[i] == "train":
                train.append(counts)
    report(stage, len(bounds), len(bounds))
    recount = ClassStats.from_sample_counts(train, c)
    if not problems and list(recount.class_counts) != list(meta.class_counts):
        problems.append(
            f"class_counts in the metadata {list(meta.class_counts)} differ from the "
            f"labels' train-split counts {list(recount.class_counts)}"
        )
    return problems, n


def _label_pieces(
    labels: Any, a: int, b: int, shapes: np.ndarray, layout: StoreLayout
) -> Iterator[tuple[int, Iterator[np.ndarray]]]:
    """Per sample of shard ``a:b``: its labels, whole or (when the store has several
    spatial shards, as for samples built block by block) one spatial shard at a time,
    so memory stays bounded by a shard's block rather than by the sample."""
    if math.prod(layout.spatial_shard_grid) == 1:
        block = np.asarray(labels[a:b])
        for j in range(b - a):
            window = tuple(slice(0, int(n)) for n in shapes[a + j])
            yield a + j, iter([block[j][window]])
        return
    for i in range(a, b):
        yield i, _sample_regions(labels, i, shapes[i], layout)


def _sample_regions(
    labels: Any, i: int, shape: np.ndarray, layout: StoreLayout
) -> Iterator[np.ndarray]:
    for _, region in layout.spatial_shards():
        mine = layout.in_sample(region, tuple(int(n) for n in shape))
        if mine is not None:
            yield np.asarray(labels[(i, *mine)])


def verify_store(
    target: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check a store's completeness, shard checksums and metadata consistency.

    Checks that the build finished, that every shard file (``class_locations``
    too) matches the sha256 recorded when it was written, that the metadata matches its digest, that
    the per-sample and train-split class counts match the stored labels, and
    that the class weights follow from the counts and the recorded scheme.
    ``progress(stage, done, total)``, if given, is called as shards are
    checked (one pass for the checksums, one for the recount).

    Examples
    --------
    >>> from maskprep import example_store
    >>> store = example_store(n_images=2)
    >>> verify_store(store).ok
    True
    """
    loc = Location.parse(target, storage_options)
    try:
        meta = read_store_metadata(loc)
    except StoreError as exc:
        return VerifyReport(str(loc), (str(exc),), 0, 0)
    if meta is None:
        if not loc.exists():
            problem = "no such store"
        elif loc.is_empty():
            problem = "no such store: the directory is empty (not a maskprep store yet)"
        else:
            problem = "not a maskprep store"
        return VerifyReport(str(loc), (f"{loc}: {problem}",), 0, 0)
    layout = meta.layout_info
    if not meta.complete and meta.stage == "reweighting":
        scheme = (meta.reweight_target or {}).get("scheme", "?")
        msg = (
            f"{loc}: incomplete: a reweight to the {scheme!r} scheme did not finish; run the "
            "same reweight again to complete it (a new build would drop the reweight)"
        )
        return VerifyReport(str(loc), (msg,), 0, 0)
    if not meta.complete:
        n_shards = len(layout.shard_bounds())
        done = len(done_shards(loc))
        msg = (
            f"{loc}: incomplete: the build did not finish ({done} of {n_shards} shards "
            "written); re-run the same build-weights command to complete it"
        )
        return VerifyReport(str(loc), (msg,), 0, 0)
    problems: list[str] = []
    if meta.metadata_digest != meta.digest():
        problems.append(f"{loc}/zarr.json: metadata was edited after the build (digest mismatch)")
    try:
        meta.records.load_all()  # format 3: each record array against its sha256
    except StoreError as exc:
        return VerifyReport(str(loc), (*problems, str(exc)), 0, 0)
    report = progress or _no_progress
    problems += _check_shards(loc, meta, layout, report)
    if meta.shapes_checksum is not None and shapes_checksum(loc) != meta.shapes_checksum:
        problems.append(f"{loc}/{SHAPES_KEY}: checksum mismatch (the sample shapes were modified)")
    problems += _check_class_locations(loc, meta)
    recount_problems, n = _recount(loc, meta, layout, report)
    problems += recount_problems
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = class_weights(meta.class_stats, meta.class_weight_config)
    if not np.allclose(expected, meta.class_weights, rtol=1e-12, atol=0):
        problems.append(
            f"{loc}: class_weights {list(meta.class_weights)} do not follow from the counts "
            f"under {meta.class_weight_scheme!r} (expected {expected.tolist()})"
        )
    return VerifyReport(str(loc), tuple(problems), len(layout.shard_bounds()), n)
