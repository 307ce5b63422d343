"""Reading a built store back as numpy arrays, fast.

zarr-python's per-call overhead dominates small random reads, so for the codec
chain maskprep writes (``sharding_indexed`` over one chunk per sample or
tiles, inner codecs ``bytes`` + ``zstd`` [+ ``crc32c`` in format 2], index
codecs ``bytes`` + ``crc32c``) the reader decodes the shards itself: each
shard's index is read once (its crc32c checked) and cached, and each chunk is
read with one ``pread``, its crc32c checked (format 2) and zstd-decompressed
straight into its output array. Any other codec chain is read
through zarr-python, with the same results. File descriptors are opened lazily
in the process that reads (a forked DataLoader worker opens its own), at most
:data:`MAX_OPEN_FILES` at a time.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from maskprep.errors import StoreError
from maskprep.intensity import IntensityStats
from maskprep.reader.arrays import DirectArray, SampleSource, open_array, zarr_open
from maskprep.reader.batches import BatchReads
from maskprep.reader.cache import TileCache
from maskprep.reader.files import MAX_OPEN_FILES, LocalFiles, RemoteFiles, ShardFiles
from maskprep.reader.training import FALLBACK_LOCATIONS, TrainingReads
from maskprep.reader.windows import WindowReads
from maskprep.store import (
    CLASS_LOCATIONS,
    SHAPES_KEY,
    SPLITS,
    Location,
    StoreMetadata,
    read_metadata,
    read_store_metadata,
    shapes_checksum,
)

__all__ = ["FALLBACK_LOCATIONS", "Shards", "open_shards"]

_BACKENDS = ("auto", "direct", "zarr")
_T = TypeVar("_T")


class Shards(WindowReads, BatchReads, TrainingReads):
    """A complete maskprep store, indexable by sample.

    ``shards[i]`` is a dict of numpy arrays (``image``, ``labels``,
    ``instances`` and ``weights``, or the ``arrays`` chosen at opening) cropped
    to the sample's true shape, in native byte order, freshly allocated and
    writable. :meth:`batches` iterates an epoch in stacked batches and
    :meth:`read_batch` reads given samples as one batch. Use :func:`open_shards`
    to create one.

    A Shards object reads the store as it was when opened. If the store is
    reweighted or rebuilt while it is open, every later read raises
    StoreError ("... after this reader opened it; open it again") rather
    than mixing old and new shards under the old class weights: a local
    store's ``zarr.json`` is ``stat``-ed after each read, an object store's
    metadata is read again when a read first touches a shard file or fails.
    """

    _tile_cache: TileCache | None = None  # cache_tiles() sets it

    def __init__(
        self,
        path: str | os.PathLike[str] | Location,
        split: str | None = None,
        arrays: Sequence[str] | None = None,
        *,
        backend: str = "auto",
        max_open_files: int = MAX_OPEN_FILES,
    ) -> None:
        loc = path if isinstance(path, Location) else Location.parse(path)
        #: The store: a ``Path`` for a local store, else its URL.
        self.path: Path | str = loc.url
        if loc.is_local:
            self.path = loc.path if isinstance(path, Location) else Path(path)
        self.location = loc
        # zarr.json's identity, taken before the metadata is read (a change in
        # between is seen at the first read); local stores only.
        self._zarr_json = os.path.join(loc.url, "zarr.json") if loc.is_local else None
        self._stamp = _stamp(self._zarr_json)
        #: The store's metadata, typed.
        self.store_metadata: StoreMetadata = read_metadata(loc)
        self._indexes_seen = 0
        self._metadata: dict[str, Any] | None = None
        stored = self.store_metadata.arrays
        if split is not None and split not in ("train", "valid"):
            raise ValueError(f"split must be 'train', 'valid' or None, got {split!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
        names = stored if arrays is None else tuple(arrays)
        if isinstance(arrays, str):
            names = (arrays,)
        unknown = [a for a in names if a not in stored]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"arrays must be distinct names among {', '.join(stored)}, got {list(names)}"
            )
        self.arrays: tuple[str, ...] = names
        self._files: ShardFiles = LocalFiles(max_open_files) if loc.is_local else RemoteFiles(loc)
        self._backend = backend
        self._more_sources: dict[str, SampleSource] = {}
        self._location_cache: dict[int, np.ndarray] = {}
        self._computed_stats: IntensityStats | None = None
        self._sources: dict[str, SampleSource] = {
            name: open_array(loc, name, self._files, backend) for name in names
        }
        want = self.store_metadata.shapes_checksum
        if want is not None and shapes_checksum(loc) != want:
            raise StoreError(
                f"{loc}/{SHAPES_KEY}: checksum mismatch (the sample shapes were modified "
                "after the build)"
            )
        try:
            self._shapes = np.asarray(zarr_open(loc, "shapes")[:], dtype=np.int64)
        except Exception as e:
            raise StoreError(f"{loc}/shapes: cannot read sample shapes ({e})") from None
        n = self.store_metadata.n_samples
        ndim = self._shapes.shape[1] if self._shapes.ndim == 2 else -1
        for src in self._sources.values():
            if src.n_samples != n or self._shapes.shape[0] != n:
                raise StoreError(
                    f"{loc}/{src.name}: has {src.n_samples} samples, metadata lists {n}"
                )
            spatial = src.sample_shape[:ndim]
            if ndim < 1 or (n and (self._shapes > np.asarray(spatial)).any()):
                raise StoreError(f"{loc}/shapes: sample shapes exceed {src.name}'s {spatial}")
        if split is None:
            self._index = np.arange(n, dtype=np.int64)
        else:
            codes = self.store_metadata.records.split_codes
            self._index = np.flatnonzero(codes == SPLITS.index(split)).astype(np.int64)
        self.split = split
        self.ndim = ndim

    @property
    def metadata(self) -> dict[str, Any]:
        """The store's metadata as one JSON dict, its records inline (as format 1
        stores them in ``zarr.json``; format 3 reads them from its arrays)."""
        if self._metadata is None:
            self._metadata = self.store_metadata.to_dict(inline=True)
        return self._metadata

    @property
    def class_names(self) -> list[str]:
        """Names of the semantic classes, index = label value."""
        return list(self.store_metadata.class_names)

    @property
    def void_label(self) -> int:
        """Label of unannotated pixels: pass it as the loss's ``ignore_index``."""
        return self.store_metadata.void_label

    @property
    def class_counts(self) -> np.ndarray:
        """Exact per-class pixel counts over the train split (void excluded)."""
        return np.asarray(self.store_metadata.class_counts, dtype=np.int64)

    @property
    def class_weights(self) -> np.ndarray:
        """Per-class weights of the store's scheme."""
        return np.asarray(self.store_metadata.class_weights, dtype=np.float64)

    @property
    def sample_ids(self) -> list[str]:
        """Sample ids (file stems) in this view's order."""
        ids = self.store_metadata.sample_ids
        if self.split is None:
            return list(ids)
        return [ids[i] for i in self._index]

    @property
    def splits(self) -> list[str]:
        """``"train"`` or ``"valid"`` for every sample of this view."""
        codes = self.store_metadata.records.split_codes[self._index]
        return [SPLITS[c] for c in codes.tolist()]

    @property
    def indices(self) -> list[int]:
        """Position in the whole store of every sample of this view."""
        return self._index.tolist()

    @property
    def shapes(self) -> np.ndarray:
        """True spatial shape of every sample of this view, shape ``(len, ndim)``."""
        return self._shapes[self._index].copy()

    @property
    def backend(self) -> dict[str, str]:
        """How each array is read: ``"direct"`` (own decoder) or ``"zarr"`` (zarr-python)."""
        return {name: src.backend for name, src in self._sources.items()}

    def __len__(self) -> int:
        return int(self._index.size)

    def __repr__(self) -> str:
        split = "" if self.split is None else f", split={self.split!r}"
        return f"Shards({str(self.path)!r}{split}, {len(self)} samples)"

    def pad_value(self, name: str) -> int | float:
        """Value that pads array ``name`` in batches: ``void_label`` for labels, a
        target's fill value, else 0."""
        return self.store_metadata.layout_info.fill_value(name)

    def _resolve(self, i: Any) -> int:
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return int(self._index[i % n])

    def _check_unchanged(self, failed: bool = False) -> None:
        """Raise StoreError if the store was rewritten since it was opened.

        A reweight or a rebuild replaces shard files under an open reader: its
        cached indexes and descriptors then mix old and new data, and its
        metadata (class weights) is the old one. Locally this costs one
        ``stat`` of ``zarr.json`` a read; an object store is checked when a
        read touched a shard file for the first time, or ``failed``. The
        metadata is read again only when that suggests a change; rewritten
        with the same content (the same reweight again) is no change.
        """
        local = self._zarr_json is not None
        if local:
            stamp = _stamp(self._zarr_json)
            if stamp == self._stamp and stamp is not None:
                return
        else:
            seen = sum(src.indexes_read for src in self._sources.values())
            if seen == self._indexes_seen and not failed:
                return
        try:
            now = read_store_metadata(self.location)
        except StoreError:
            now = None  # a torn or foreign zarr.json: changed
        if now is not None and now.complete and now.digest() == self.store_metadata.digest():
            if local:
                self._stamp = stamp
            else:
                self._indexes_seen = seen
            return
        loc = self.location
        if now is not None and now.stage == "reweighting":
            raise StoreError(
                f"{loc}: a reweight started after this reader opened the store; open it "
                "again (open_shards) when the reweight has finished"
            )
        raise StoreError(
            f"{loc}: the store was reweighted or rebuilt after this reader opened it (its "
            "metadata changed); open it again (open_shards) to read the new one"
        )

    def _watched(self, read: Callable[[], _T]) -> _T:
        """``read()``, unless the store changed under it (:meth:`_check_unchanged`)."""
        try:
            out = read()
        except StoreError:
            self._check_unchanged(failed=True)  # a clearer error if that is why
            raise
        self._check_unchanged()
        return out

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        j = self._resolve(i)
        return self._watched(lambda: self._sample(j))

    def _sample(self, j: int) -> dict[str, np.ndarray]:
        shape = tuple(int(s) for s in self._shapes[j])
        zeros = (0,) * len(shape)
        out = {}
        for name, src in self._sources.items():
            if src.tiled:  # only the tiles inside the true shape
                out[name] = src.read_window(j, zeros, shape)
                continue
            full = src.read(j)
            if shape != src.sample_shape[: len(shape)]:
                full = full[tuple(slice(0, s) for s in shape)].copy()
            out[name] = full
        return out

    def cache_tiles(self, nbytes: int) -> TileCache | None:
        """Keep up to ``nbytes`` of decoded tiles between reads (0: none, the default).

        For a tiled store (format 2) read in many patches of the same big
        samples: a tile is then decoded once while it is kept, least recently
        used tiles go first. One cache serves every array of this reader;
        each DataLoader worker (a pickled copy) starts with an empty one of
        the same size. Returns the cache (its ``hits`` and ``misses``), or
        None when switched off.

        Examples
        --------
        >>> from maskprep import example_store
        >>> shards = open_shards(example_store(n_images=1, size=(16, 16), tile=8))
        >>> cache = shards.cache_tiles(2**20)
        >>> _ = shards.patch(0, (2, 2), (8, 8)); _ = shards.patch(0, (3, 3), (8, 8))
        >>> cache.hits == cache.misses > 0  # the second patch decodes nothing
        True
        """
        cache = TileCache(nbytes) if nbytes else None
        self._tile_cache = cache
        for src in (*self._sources.values(), *self._more_sources.values()):
            if isinstance(src, DirectArray):
                src.tile_cache = cache
        return cache

    def _source(self, name: str) -> SampleSource:
        """The reader of array ``name``: one opened with the view, else opened now
        (any stored array, and ``class_locations``)."""
        src = self._sources.get(name) or self._more_sources.get(name)
        if src is None:
            known = (*self.store_metadata.arrays, CLASS_LOCATIONS)
            if name not in known:
                raise ValueError(f"the store has no array {name!r}")
            src = open_array(self.location, name, self._files, self._backend)
            if isinstance(src, DirectArray):
                src.tile_cache = self._tile_cache
            self._more_sources[name] = src
        return src

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        """Close open shard files (reading again reopens them)."""
        self._files.close()

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stamp(zarr_json: str | None) -> tuple[int, ...] | None:
    """Identity of a local store's ``zarr.json`` (None if absent or not local): every
    metadata write (a reweight marks the store first) changes it."""
    if zarr_json is None:
        return None
    try:
        st = os.stat(zarr_json)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_shards(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    arrays: Sequence[str] | None = None,
    backend: str = "auto",
    storage_options: dict[str, Any] | None = None,
    max_open_files: int = MAX_OPEN_FILES,
) -> Shards:
    """Open a complete maskprep store for reading.

    Parameters
    ----------
    path : path or URL
        The ``.zarr`` store written by ``maskprep build-weights``: a local
        directory, or an fsspec URL such as ``s3://bucket/train.zarr`` (decoded
        the same way: per shard one size and one index request, then one
        ranged request per chunk).
    split : {"train", "valid"}, optional
        Restrict the view to one split.
    arrays : sequence of str, optional
        Arrays to read, among ``image``, ``labels``, ``instances``, ``weights``
        (default all); the others are never decoded.
    backend : {"auto", "direct", "zarr"}
        ``auto`` decodes maskprep's own codec chain directly (local files or
        byte ranges of objects) and reads anything else through zarr-python; ``direct`` refuses
        anything else; ``zarr`` always uses zarr-python (slow, for comparison).
    storage_options : dict, optional
        fsspec options for a URL (credentials otherwise come from the
        environment).
    max_open_files : int
        Shard files kept open at once per process.

    Raises
    ------
    StoreError
        If the path is not a maskprep store or its build did not finish.

    Examples
    --------
    >>> from maskprep import example_store
    >>> store = example_store(n_images=2)
    >>> shards = open_shards(store)
    >>> len(shards), shards.void_label, sorted(shards[0])
    (2, 255, ['image', 'instances', 'labels', 'weights'])
    """
    loc = Location.parse(path, storage_options)
    if loc.is_local and not loc.path.exists():
        raise StoreError(f"{path}: no such store")
    shards = Shards(loc, split, arrays, backend=backend, max_open_files=max_open_files)
    if loc.is_local:
        shards.path = Path(path)  # as given
    return shards
