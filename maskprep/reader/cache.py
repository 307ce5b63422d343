"""A bounded cache of decoded tiles, shared by the arrays of one reader."""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

__all__ = ["TileCache"]


class TileCache:
    """Decoded tiles of tiled stores (format 2), least recently used evicted first.

    Trainers that crop many patches out of one big sample decode the same
    tiles again and again; with a cache a tile is decoded once while it is
    in use (like tensorstore's ``cache_pool``). It holds at most ``nbytes``
    of decoded tiles (a tile bigger than that is not kept), read-only, and
    is safe to share between threads. A pickled or copied cache (a
    DataLoader worker's) keeps its size and starts empty. ``hits`` and
    ``misses`` count lookups.

    Examples
    --------
    >>> import numpy as np
    >>> cache = TileCache(100)
    >>> cache.put("a", np.zeros(60, np.uint8))
    >>> cache.put("b", np.zeros(60, np.uint8))  # evicts "a": 120 bytes > 100
    >>> cache.get("a") is None, cache.get("b").shape, cache.nbytes_used
    (True, (60,), 60)
    """

    def __init__(self, nbytes: int) -> None:
        try:
            size = operator.index(nbytes)
        except TypeError:
            raise TypeError(f"nbytes must be an integer, got {nbytes!r}") from None
        if size < 0:
            raise ValueError(f"nbytes must be at least 0, got {size}")
        #: The most bytes of decoded tiles held.
        self.nbytes = size
        self._init()

    def _init(self) -> None:
        self._tiles: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        #: Bytes of decoded tiles held now.
        self.nbytes_used = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> np.ndarray | None:
        """The tile stored under ``key`` (read-only), or None."""
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return tile

    def put(self, key: Hashable, tile: np.ndarray) -> None:
        """Keep ``tile`` (made read-only) under ``key``, evicting the least recently used."""
        size = int(tile.nbytes)
        if size > self.nbytes:
            return
        tile.flags.writeable = False
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self.nbytes_used -= int(old.nbytes)
            self._tiles[key] = tile
            self.nbytes_used += size
            while self.nbytes_used > self.nbytes:
                _, gone = self._tiles.popitem(last=False)
                self.nbytes_used -= int(gone.nbytes)

    def clear(self) -> None:
        """Drop every tile (the counters too)."""
        with self._lock:
            self._tiles.clear()
            self.nbytes_used = 0
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._tiles)

    def __repr__(self) -> str:
        return (
            f"TileCache(nbytes={self.nbytes}, used={self.nbytes_used}, tiles={len(self)}, "
            f"hits={self.hits}, misses={self.misses})"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"nbytes": self.nbytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.nbytes = state["nbytes"]
        self._init()
