"""The two-pass Dask build: scan and count, then write one shard per task.

Pass 1 (:mod:`~maskprep.pipeline.scan`) reads every sample once, checks it,
and returns its shape and exact integer class statistics; the train split's
statistics are merged by a Dask tree reduction. The class weights follow from
them. Pass 2 (:mod:`~maskprep.pipeline.write`) re-reads each shard's samples,
fills void, computes the targets and writes the shard. A task owns a whole
shard, so no two tasks ever write parts of the same shard (zarr would silently
lose samples); a task that is retried or re-run rewrites the same bytes.

A build is resumable: each finished shard leaves a marker with its checksums,
and re-running the same call on an incomplete store writes only the missing
shards. Changed inputs or parameters are detected and refused.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from maskprep.config import BuildConfig
from maskprep.errors import StoreError
from maskprep.ingest import Dataset, SampleSource, discover
from maskprep.pipeline.blocks import (
    block_works,
    load_block_infos,
    save_block_infos,
)
from maskprep.pipeline.first_pass import infos_from_metadata, scan_dataset
from maskprep.pipeline.kernels import KernelWarmup
from maskprep.pipeline.runner import Progress, Runner, check_scheduler
from maskprep.pipeline.scan import (
    plain,
)
from maskprep.pipeline.training import (
    finish_training_stats,
    parts_with_partials,
    shards_with_partials,
    wants_training_stats,
)
from maskprep.pipeline.write import write_sample_shard
from maskprep.store import (
    Location,
    StoreLayout,
    StoreMetadata,
    check_directory,
    create_store,
    delete_partials,
    done_parts,
    done_shards,
    make_directory,
    mark_complete,
    read_store_metadata,
    writer_lock,
)
from maskprep.targets.weights import weight_lookup

__all__ = ["ON_ERROR", "BuildSummary", "build_weights"]

ON_ERROR = ("fail", "skip")


@dataclass(frozen=True)
class BuildSummary:
    """Result of :func:`build_weights`."""

    out: str
    n_samples: int
    n_train: int
    n_valid: int
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    class_weights: tuple[float, ...]
    void_pixels: int
    bytes_on_disk: int
    seconds: float
    shards_written: int
    shards_skipped: int
    quarantined: tuple[dict[str, str], ...] = ()
    notes: tuple[dict[str, str], ...] = ()


def _input_files(dataset: Dataset) -> dict[Path, tuple[str, int, int]]:
    """Every input file once: path relative to the dataset, size, modification time."""
    root = dataset.root.resolve()
    table: dict[Path, tuple[str, int, int]] = {}
    for s in dataset.samples:
        for p in s.files():
            if p not in table:
                st = p.stat()
                table[p] = (str(p.resolve().relative_to(root)), st.st_size, st.st_mtime_ns)
    return table


def _inputs_digest(dataset: Dataset, files: dict[Path, tuple[str, int, int]]) -> str:
    """Digest of the input files' names, sizes and modification times, per sample."""
    h = hashlib.sha256()
    for s in dataset.samples:
        for p in s.files():
            rel, size, mtime = files[p]
            h.update(f"{s.sample_id}\0{s.split}\0{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def _summary(
    loc: Location, meta: StoreMetadata, t0: float, written: int, skipped: int
) -> BuildSummary:
    return BuildSummary(
        out=str(loc),
        n_samples=meta.n_samples,
        n_train=int((meta.records.split_codes == 0).sum()),
        n_valid=int((meta.records.split_codes == 1).sum()),
        class_names=meta.class_names,
        class_counts=meta.class_counts,
        class_weights=meta.class_weights,
        void_pixels=int(meta.void_pixels.sum()),
        bytes_on_disk=loc.size(),
        seconds=time.perf_counter() - t0,
        shards_written=written,
        shards_skipped=skipped,
        quarantined=meta.quarantine,
        notes=meta.notes,
    )


def build_weights(
    dataset_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: BuildConfig | None = None,
    *,
    scheduler: str = "threads",
    workers: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    on_error: str = "fail",
    retries: int = 2,
    storage_options: dict[str, Any] | None = None,
) -> BuildSummary:
    """Build a zarr v3 store of training-ready shards from a dataset directory.

    Re-running the same call on a store whose build was interrupted writes only
    the shards still missing; on a complete store it does nothing.

    Parameters
    ----------
    dataset_dir : path
        Dataset in the ``instances`` or ``dsb2018`` layout (see :func:`discover`).
    out : path or URL
        Output ``.zarr`` location (``s3://bucket/x.zarr`` and other fsspec URLs
        work with the matching fsspec backend installed).
    config : BuildConfig, optional
        Void label, class weight scheme, border term parameters, shard size.
    scheduler : {"threads", "processes", "sync", "local-cluster"} or str
        Dask scheduler; an address such as ``tcp://host:8786`` uses that
        dask-distributed cluster.
    workers : int, optional
        Number of local workers (threads, processes or LocalCluster workers).
    overwrite : bool
        Replace an existing maskprep store at ``out``.
    progress : callable, optional
        Called as ``progress(stage, done, total)`` as tasks finish (see
        :data:`~maskprep.pipeline.runner.Progress`); the library never prints.
    on_error : {"fail", "skip"}
        With ``skip``, samples with bad input are left out and listed in the
        store's ``quarantine`` metadata instead of failing the build.
    retries : int
        Task retries on a dask-distributed cluster.
    storage_options : dict, optional
        fsspec options for URL outputs (credentials otherwise come from the
        environment as usual).

    Returns
    -------
    BuildSummary

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import make_sample, open_shards
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> data = make_sample(tmp / "nuclei", n_images=3, size=(32, 32))
    >>> summary = build_weights(data, tmp / "out.zarr", scheduler="sync")
    >>> summary.n_samples, summary.class_names
    (3, ('background', 'object'))
    >>> open_shards(tmp / "out.zarr")[0]["weights"].dtype
    dtype('float32')
    """
    t0 = time.perf_counter()
    config = config or BuildConfig()
    check_scheduler(scheduler, workers)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    dataset = discover(
        dataset_dir, config.layout, source=config.source, skip_bad=on_error == "skip"
    )
    loc = _output_location(out, storage_options)
    files = _input_files(dataset)
    inputs_digest = _inputs_digest(dataset, files)
    wanted = {"config": config.to_dict(), "on_error": on_error, "inputs_digest": inputs_digest}
    try:
        with writer_lock(loc, "build_weights"):
            return _build_locked(
                dataset,
                files,
                loc,
                config,
                runner_args=(scheduler, workers, progress, retries),
                overwrite=overwrite,
                on_error=on_error,
                wanted=wanted,
                t0=t0,
            )
    except OSError as exc:
        # A full disk, a read-only directory, a vanished file: one line naming the path.
        where = exc.filename or loc
        raise StoreError(
            f"{where}: {exc.strerror or exc}; the build of {loc} stopped (a store it was "
            "replacing is unchanged; re-run to finish)"
        ) from None


def _output_location(
    out: str | os.PathLike[str], storage_options: dict[str, Any] | None
) -> Location:
    """The output location; a local symlink is followed to the store it names."""
    if not os.fspath(out):
        raise ValueError("out must name a store (got an empty path)")
    loc = Location.parse(out, storage_options)
    if loc.is_local:
        if loc.path.is_symlink():
            loc = Location(str(loc.path.resolve()), {})
        # Before any lock is taken: name the file in the way or the parent
        # that is not writable, rather than the lock file.
        check_directory(loc.path, "the output store")
    return loc


def _build_locked(
    dataset: Dataset,
    files: dict[Path, tuple[str, int, int]],
    loc: Location,
    config: BuildConfig,
    *,
    runner_args: tuple[str, int | None, Progress | None, int],
    overwrite: bool,
    on_error: str,
    wanted: dict[str, Any],
    t0: float,
) -> BuildSummary:
    existing = read_store_metadata(loc)
    # A store whose zarr.json is torn is still ours if it has our marker folder.
    torn = existing is None and not loc.is_empty() and loc.exists("_maskprep")
    if existing is None and not loc.is_empty() and not (torn and overwrite):
        raise StoreError(
            f"{loc}: exists and is not a maskprep store; refusing to write into it "
            "(choose another output path)"
        )
    resume: StoreMetadata | None = None
    replacing = torn and overwrite
    if existing is not None:
        same = (
            existing.config == wanted["config"]
            and existing.on_error == on_error
            and existing.inputs_digest == wanted["inputs_digest"]
        )
        if overwrite:
            replacing = True
        elif not same:
            raise StoreError(
                f"{loc}: a maskprep store built from other inputs or parameters is already "
                "there; pass overwrite=True to replace it"
            )
        elif existing.complete:
            n_shards = len(existing.layout_info.shard_bounds())
            return _summary(loc, existing, t0, 0, n_shards)
        elif existing.stage == "writing":
            resume = existing
        else:
            loc.remove()  # creation was interrupted: nothing in it is worth keeping

    # The store being replaced stays whole until the new one is complete: local
    # builds go to a hidden sibling that is renamed into place at the end; on
    # object stores (no rename) the old store is deleted only after pass 1
    # has checked every new input.
    target = loc.sibling("build") if replacing and loc.is_local else loc
    if target != loc:
        target.remove()  # a build aside left by an earlier interrupted --overwrite
    try:
        final, layout, n_written = _write_store(
            dataset, files, loc, target, config, runner_args, on_error, wanted, resume, replacing
        )
    except BaseException:
        if target != loc:
            target.remove()  # a failed build aside is of no use; the old store stays
        raise
    if target != loc:
        loc.replace_with(target)
    n_shards = len(layout.shard_bounds())
    return _summary(loc, final, t0, n_written, n_shards - n_written)


def _write_store(
    dataset: Dataset,
    files: dict[Path, tuple[str, int, int]],
    loc: Location,
    target: Location,
    config: BuildConfig,
    runner_args: tuple[str, int | None, Progress | None, int],
    on_error: str,
    wanted: dict[str, Any],
    resume: StoreMetadata | None,
    replacing: bool,
) -> tuple[StoreMetadata, StoreLayout, int]:
    """Pass 1 (unless resuming), create the store at ``target``, pass 2, mark it complete."""
    import dask

    warmup = KernelWarmup(runner_args[2])  # compiles during the scan on a fresh install
    with Runner(*runner_args) as runner:
        if resume is None:
            metadata, infos, good, shapes = scan_dataset(
                dataset, files, config, runner, on_error, wanted
            )
            # Before anything is written: a block that cannot be built fails here.
            works = block_works(infos, good, config, metadata.layout_info)
            if replacing and target == loc:
                loc.remove()
            if target.is_local:
                make_directory(target.path, "the output store")
            meta = create_store(target, metadata, config.zstd_level, shapes=shapes)
            save_block_infos(target, infos)
        else:
            meta = resume
            by_id = {s.sample_id: s for s in dataset.samples}
            good = [by_id[i] for i in meta.sample_ids]
            infos = load_block_infos(target, infos_from_metadata(meta, loc), meta.layout_info)
            works = block_works(infos, good, config, meta.layout_info)
        layout = meta.layout_info
        lut = weight_lookup(config.void_label, config.num_classes, meta.class_weights)
        done = set(done_shards(target))
        parts_done = set(done_parts(target))
        if wants_training_stats(config):  # a shard is done when its partial results are too
            done &= shards_with_partials(target)
            parts_done &= parts_with_partials(target)
        writes = []
        for k, (a, b) in enumerate(layout.shard_bounds()):
            if k in done:
                continue
            args = (
                target,
                k,
                a,
                plain(good[a:b]),
                # The instance tables went into the block works' crops; tasks need no more.
                plain([replace(i, instance_table=None) for i in infos[a:b]]),
                config,
                layout,
                lut,
                plain(_fingerprints(good[a:b], files)),
            )
            if k not in works:
                writes.append(dask.delayed(write_sample_shard)(*args))
                continue
            for part, part_works in enumerate(works[k]):
                if (k, part) not in parts_done:
                    writes.append(
                        dask.delayed(write_sample_shard)(*args, part=part, blocks=plain(part_works))
                    )
        warmup.wait()
        runner.compute(writes, f"writing {len(writes)} shard(s)")
    meta = finish_training_stats(target, meta, config)
    final = mark_complete(target, meta)
    if wants_training_stats(config):
        delete_partials(target)  # merged into the store: no longer needed
    return final, layout, len(writes)


def _fingerprints(
    sources: Sequence[SampleSource], files: dict[Path, tuple[str, int, int]]
) -> list[tuple[tuple[str, int, int], ...]]:
    """Per sample: (path, size, mtime_ns) of each of its files, as stat-ed before pass 1."""
    return [tuple((str(p), files[p][1], files[p][2]) for p in s.files()) for s in sources]
