"""Pipeline: the Dask passes that turn a dataset into a store, and reweighting.

Owns the runner (local schedulers or dask-distributed, progress reported to a
callback), pass 1 (:mod:`~maskprep.pipeline.scan`: check and count a sample;
:mod:`~maskprep.pipeline.first_pass`: the tasks, the tree reduction of exact
statistics and the new store's metadata), pass 2 (:mod:`~maskprep.pipeline.write`: void fill,
targets, whole shards), :func:`build_weights` and :func:`reweight`.

May import every earlier stage (ingest, voidfill, weighting, targets, store);
must never import the reader, tools, torch or CLI, never print, and never
name a CLI flag in a message (errors name the parameter).
"""

from maskprep.pipeline.build import ON_ERROR, BuildSummary, build_weights
from maskprep.pipeline.reweighting import ReweightSummary, reweight
from maskprep.pipeline.runner import SCHEDULERS, Progress
from maskprep.pipeline.scan import load_sample
from maskprep.pipeline.write import sample_arrays

__all__ = [
    "ON_ERROR",
    "SCHEDULERS",
    "BuildSummary",
    "Progress",
    "ReweightSummary",
    "build_weights",
    "load_sample",
    "reweight",
    "sample_arrays",
]
