"""The fallback reader: an array of any codec chain, at any fsspec location, read
through zarr-python (with the direct decoder's results and errors)."""

from __future__ import annotations

from typing import Any

import numpy as np

from maskprep.errors import StoreError
from maskprep.store import Location

__all__ = ["ZarrArray", "zarr_open"]


class ZarrArray:
    """Reads one array through zarr-python (any codec chain, any fsspec location)."""

    backend = "zarr"
    tiled = False
    indexes_read = 0  # zarr-python reads shard indexes itself

    def __init__(self, loc: Location, name: str) -> None:
        self.name = name
        self.loc = loc
        self._array: Any = None
        arr = self._open()
        shape = tuple(int(n) for n in arr.shape)
        self.n_samples = shape[0]
        self.sample_shape: tuple[int, ...] = shape[1:]
        self.dtype: np.dtype[Any] = np.dtype(np.dtype(arr.dtype).newbyteorder("=").str)

    def _open(self) -> Any:
        if self._array is None:
            self._array = zarr_open(self.loc, self.name)
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def _get(self, key: Any, j: int) -> np.ndarray:
        """``array[key]`` of sample ``j``; zarr's decode errors (a failed crc32c
        among them) become a StoreError naming the array and sample."""
        try:
            return np.asarray(self._open()[key])
        except StoreError:
            raise
        except Exception as e:
            where = f"{self.loc}/{self.name}"
            raise StoreError(f"{where}: sample {j} cannot be decoded ({e})") from None

    def read(self, j: int, out: np.ndarray | None = None) -> np.ndarray:
        a = self._get(j, j)
        if out is None:
            if not a.dtype.isnative or not a.flags.writeable:
                return a.astype(self.dtype)
            return a.view(self.dtype)  # zarr says '<f4': give the canonical 'float32'
        out[...] = a
        return out

    def read_window(
        self,
        j: int,
        start: tuple[int, ...],
        stop: tuple[int, ...],
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        window = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        a = self._get((j, *window), j)
        if out is None:
            return np.array(a, dtype=self.dtype)
        out[...] = a
        return out


def zarr_open(loc: Location, name: str) -> Any:
    import zarr

    try:
        if loc.is_local:
            return zarr.open_array(str(loc.path / name), mode="r")
        return zarr.open_array(loc.zarr_store(read_only=True), path=name, mode="r")
    except Exception as e:
        raise StoreError(f"{loc}/{name}: cannot open array ({e})") from None
