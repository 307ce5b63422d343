"""What a store gives training beyond its arrays: class locations, intensity
statistics and class-aware random patches (mixed into :class:`~maskprep.reader.Shards`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from maskprep.intensity import REGIONS, IntensityPartial, IntensityStats, intensity_partial
from maskprep.store import CLASS_LOCATIONS
from maskprep.weighting.locations import class_location_partial, location_key

if TYPE_CHECKING:
    from collections.abc import Iterator

    from maskprep.reader.arrays import SampleSource
    from maskprep.reader.shards import Shards
    from maskprep.store import StoreMetadata

__all__ = ["FALLBACK_LOCATIONS", "TrainingReads"]

#: Locations per class that :meth:`Shards.class_locations` computes for a store
#: built without them.
FALLBACK_LOCATIONS = 1000
# Samples whose class locations a Shards keeps in memory.
_LOCATION_CACHE = 1024


class TrainingReads:
    """The training reads of :class:`~maskprep.reader.Shards` (a mixin: it uses
    the view's samples, sources and metadata)."""

    if TYPE_CHECKING:  # provided by Shards
        store_metadata: StoreMetadata
        _location_cache: dict[int, np.ndarray]
        _computed_stats: IntensityStats | None
        _shapes: np.ndarray

        def _resolve(self, i: Any) -> int: ...
        def _source(self, name: str) -> SampleSource: ...

    def class_locations(self, i: int) -> np.ndarray:
        """Recorded pixel coordinates of each class in sample ``i``.

        Returns
        -------
        numpy.ndarray of int32, shape ``(n_classes, K, ndim)``
            Row ``[c, k]`` is a pixel of class ``c`` (never void); unused
            rows are -1. A store built with ``class_locations=K`` has them
            recorded; for any other store they are computed here from the
            sample's labels (K = :data:`FALLBACK_LOCATIONS`, the same pixels
            a build with that K records) and kept in a small cache.

        Examples
        --------
        >>> from maskprep import example_store, open_shards
        >>> shards = open_shards(example_store(n_images=2, class_locations=8))
        >>> locs = shards.class_locations(0)
        >>> locs.shape, bool((shards[0]["labels"][tuple(locs[1, :1].T)] == 1).all())
        ((2, 8, 2), True)
        """
        j = self._resolve(i)
        got = self._location_cache.get(j)
        if got is not None:
            return got.copy()
        if self.store_metadata.class_locations is not None:
            got = self._source(CLASS_LOCATIONS).read(j)
        else:
            shape = tuple(int(s) for s in self._shapes[j])
            labels = self._source("labels").read_window(j, (0,) * len(shape), shape)
            meta = self.store_metadata
            got = class_location_partial(
                labels,
                per_class=FALLBACK_LOCATIONS,
                num_classes=len(meta.class_names),
                void_label=meta.void_label,
                key=location_key(meta.sample_ids[j], 0),
                sample=j,
            ).array(j, len(meta.class_names))
        if len(self._location_cache) >= _LOCATION_CACHE:
            self._location_cache.pop(next(iter(self._location_cache)))
        self._location_cache[j] = got
        return got.copy()

    @property
    def intensity_stats(self) -> dict[str, dict[str, list[Any]]]:
        """Per-channel intensity statistics of the store's train split.

        ``{"all": {...}, "foreground": {...}}``, each with ``count``, ``mean``,
        ``std``, ``min``, ``max``, ``median``, ``percentile_00_5`` and
        ``percentile_99_5``, one value per channel (see
        :mod:`maskprep.intensity`; pass it to :func:`maskprep.normalize`).
        Recorded by a build with ``intensity_stats=True``; for any other store
        computed here once, by reading the train split's images and labels.

        Examples
        --------
        >>> from maskprep import example_store, open_shards
        >>> stats = open_shards(example_store(n_images=2, intensity_stats=True)).intensity_stats
        >>> sorted(stats), stats["all"]["count"]
        (['all', 'foreground'], [512])
        """
        stats = self.store_metadata.intensity_stats
        if stats is None:
            if self._computed_stats is None:
                self._computed_stats = self._compute_intensity_stats()
            stats = self._computed_stats
        d = stats.to_dict()
        return {region: d[region] for region in REGIONS}

    def _compute_intensity_stats(self) -> IntensityStats:
        meta = self.store_metadata
        layout = meta.layout_info
        channels = layout.channels or 1
        total = IntensityPartial.empty(np.dtype(layout.image_dtype).kind in "iub", channels)
        image, labels = self._source("image"), self._source("labels")
        for j, split in enumerate(meta.split):
            if split != "train":
                continue
            shape = tuple(int(s) for s in self._shapes[j])
            zeros = (0,) * len(shape)
            total = total + intensity_partial(
                image.read_window(j, zeros, shape),
                labels.read_window(j, zeros, shape),
                void_label=meta.void_label,
                channels=channels,
            )
        return total.summary()

    def patches(
        self,
        size: Sequence[int],
        batch_size: int,
        n: int,
        *,
        seed: int = 0,
        epoch: int = 0,
        foreground_prob: float = 0.33,
        class_probs: Sequence[float] | Mapping[Any, float] | None = None,
        rank: int = 0,
        world_size: int = 1,
        arrays: Sequence[str] | None = None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """``n`` random patches of this view, in stacked batches, class-aware.

        With probability ``foreground_prob`` a patch is placed so that it
        contains a recorded location (:meth:`class_locations`) of a class
        drawn from ``class_probs``; otherwise uniformly inside a uniformly
        drawn sample, and drawn again if it is all void. Each patch equals
        ``shards.patch(index, start, size)``.

        Parameters
        ----------
        size : sequence of int
            Patch extent per spatial axis. A sample smaller than that along
            an axis is covered whole, with padding.
        batch_size : int
            Patches per batch (the last batch may be short).
        n : int
            Patches this rank draws in the epoch.
        seed, epoch : int
            The patches are a function of ``(seed, epoch, rank)`` and the
            batch number only (see :class:`~maskprep.reader.patches.PatchSampler`).
        foreground_prob : float
            Probability that a patch targets a class (nnU-Net uses 0.33).
        class_probs : sequence of float or dict, optional
            Weight of each class for those patches: one value per class, or
            ``{class name or index: weight}``; classes absent from the view
            are left out. Default: uniform over the present classes other
            than class 0 (the background).
        rank, world_size : int
            Distributed rank and size: every rank draws different patches.
        arrays : sequence of str, optional
            Arrays to read, among those opened (default all).

        Yields
        ------
        dict of str to numpy.ndarray
            The arrays stacked ``(B, *size[, C])``, plus ``index`` ``(B,)``
            (view position of each patch's sample) and ``start`` ``(B, ndim)``
            (its origin; may be negative where a sample is smaller than ``size``).

        Examples
        --------
        >>> from maskprep import example_store, open_shards
        >>> shards = open_shards(example_store(n_images=4, size=(32, 32), class_locations=64))
        >>> batches = list(shards.patches((8, 8), 4, 6, seed=0, foreground_prob=1.0))
        >>> [b["labels"].shape for b in batches]
        [(4, 8, 8), (2, 8, 8)]
        >>> all(((b["labels"] == 1).any(axis=(1, 2))).all() for b in batches)
        True
        >>> first = batches[0]
        >>> i, start = int(first["index"][0]), first["start"][0]
        >>> bool((shards.patch(i, start, (8, 8))["image"] == first["image"][0]).all())
        True
        """
        from maskprep.reader.patches import PatchSampler

        sampler = PatchSampler(
            cast("Shards", self),
            size,
            batch_size,
            n,
            seed=seed,
            foreground_prob=foreground_prob,
            class_probs=class_probs,
            rank=rank,
            world_size=world_size,
            arrays=arrays,
        )
        return sampler.epoch(epoch)
