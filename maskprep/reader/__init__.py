"""Reader: a complete store read back as numpy arrays, fast.

:func:`open_shards` opens a store (local or an fsspec URL) as :class:`Shards`:
samples by index, stacked batches, epochs split across ranks
(:func:`epoch_order`), patches and class-aware random patches
(:class:`PatchSampler`), class locations and intensity statistics.
maskprep's own codec chain is decoded directly (one ``pread`` or ranged
request per chunk, zstd straight into the output); any other is read through
zarr-python with the same results.

Modules: ``shards`` (:class:`Shards`, :func:`open_shards`), ``arrays`` (one
array read a sample at a time), ``files`` (shard file access), ``cache``
(decoded tiles kept between reads, :class:`TileCache`), ``order`` (epoch
order), ``patches`` (where random patches go).

Owns reading complete stores as numpy, the fast direct decode, batches,
patch sampling and rank sharding. May import :mod:`maskprep.store` and the
numpy-only :mod:`maskprep.intensity` and :mod:`maskprep.weighting`; must never import dask, numba
or matplotlib, nor the pipeline, ingest, targets or tools stages.
"""

from maskprep.reader.cache import TileCache
from maskprep.reader.files import MAX_OPEN_FILES
from maskprep.reader.order import epoch_order
from maskprep.reader.patches import PatchSampler
from maskprep.reader.shards import Shards, open_shards

__all__ = ["MAX_OPEN_FILES", "PatchSampler", "Shards", "TileCache", "epoch_order", "open_shards"]
