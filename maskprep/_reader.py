"""Reading a built store back as numpy arrays."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from maskprep._errors import StoreError
from maskprep._store import ARRAY_NAMES, read_metadata

__all__ = ["Shards", "open_shards"]


class Shards:
    """A complete maskprep store, indexable by sample.

    ``shards[i]`` is a dict of numpy arrays ``image``, ``labels``, ``instances``
    and ``weights`` cropped to the sample's true shape. Use :func:`open_shards`
    to create one.
    """

    def __init__(self, path: Path, split: str | None = None) -> None:
        import zarr

        self.path = path
        self.metadata: dict[str, Any] = read_metadata(path)
        group = zarr.open_group(str(path), mode="r")
        self._arrays: dict[str, zarr.Array[Any]] = {}
        for name in ARRAY_NAMES:
            arr = group[name]
            if not isinstance(arr, zarr.Array):
                raise StoreError(f"{path}: {name} is not an array")
            self._arrays[name] = arr
        self._shapes = np.asarray(group["shapes"][:])  # type: ignore[index]
        splits = self.metadata["split"]
        if split is not None and split not in ("train", "valid"):
            raise ValueError(f"split must be 'train', 'valid' or None, got {split!r}")
        self._index = np.asarray(
            [i for i, s in enumerate(splits) if split is None or s == split], dtype=np.int64
        )
        self.split = split

    @property
    def class_names(self) -> list[str]:
        """Names of the semantic classes, index = label value."""
        return list(self.metadata["class_names"])

    @property
    def void_label(self) -> int:
        """Label of unannotated pixels: pass it as the loss's ``ignore_index``."""
        return int(self.metadata["void_label"])

    @property
    def class_counts(self) -> np.ndarray:
        """Exact per-class pixel counts over the train split (void excluded)."""
        return np.asarray(self.metadata["class_counts"], dtype=np.int64)

    @property
    def class_weights(self) -> np.ndarray:
        """Per-class weights of the store's scheme."""
        return np.asarray(self.metadata["class_weights"], dtype=np.float64)

    @property
    def sample_ids(self) -> list[str]:
        """Sample ids (file stems) in this view's order."""
        ids = self.metadata["sample_ids"]
        return [ids[i] for i in self._index]

    @property
    def splits(self) -> list[str]:
        """``"train"`` or ``"valid"`` for every sample of this view."""
        s = self.metadata["split"]
        return [s[i] for i in self._index]

    def __len__(self) -> int:
        return int(self._index.size)

    def __repr__(self) -> str:
        split = "" if self.split is None else f", split={self.split!r}"
        return f"Shards({str(self.path)!r}{split}, {len(self)} samples)"

    def _resolve(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return int(self._index[i % n])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        j = self._resolve(int(i))
        shape = tuple(int(s) for s in self._shapes[j])
        window: tuple[int | slice, ...] = (j, *(slice(0, s) for s in shape))
        # zarr hands back explicit little-endian dtypes ('<f4'); give native ones.
        out = {}
        for name, arr in self._arrays.items():
            a = np.asarray(arr[window])
            native = a.dtype.newbyteorder("=")
            out[name] = a.view(native) if a.dtype.isnative else a.astype(native)
        return out

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]


def open_shards(path: str | os.PathLike[str], *, split: str | None = None) -> Shards:
    """Open a complete maskprep store for reading.

    Parameters
    ----------
    path : path
        The ``.zarr`` directory written by ``maskprep build-weights``.
    split : {"train", "valid"}, optional
        Restrict the view to one split.

    Raises
    ------
    StoreError
        If the path is not a maskprep store or its build did not finish.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from maskprep import build_weights, make_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = build_weights(make_sample(tmp / "d", n_images=2, size=(16, 16)), tmp / "o.zarr",
    ...                   scheduler="sync")
    >>> shards = open_shards(tmp / "o.zarr")
    >>> len(shards), shards.void_label, sorted(shards[0])
    (2, 255, ['image', 'instances', 'labels', 'weights'])
    """
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no such store")
    return Shards(p, split)
