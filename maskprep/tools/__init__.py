"""Tools: looking at and checking stores and datasets.

Owns ``inspect`` (:func:`~maskprep.tools.inspect.inspect_store` and its text,
:mod:`maskprep.tools.inspect_text`), ``verify``
(:func:`~maskprep.tools.verify.verify_store`), ``preview`` (PNG figures,
:mod:`maskprep.tools.preview`) and the synthetic sample data
(:func:`~maskprep.tools.sample_data.make_sample`).

May import every stage below it (ingest, targets, weighting, store, reader,
pipeline); never the CLI. Never prints: results are returned, the CLI shows
them. matplotlib is imported only inside the functions that draw.
"""
