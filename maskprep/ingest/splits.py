"""Train/valid splits of recipe layouts: ``{split}`` directories or a split file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from maskprep.errors import DataError
from maskprep.ingest.model import RECIPE_IMAGE_SUFFIXES, SPLIT_RULES, SampleSource
from maskprep.ingest.paths import read_valid
from maskprep.ingest.source import SourceSpec

__all__ = ["all_left_out", "finish_recipe_samples", "split_of"]


def split_of(values: Mapping[str, str], spec: SourceSpec) -> str | None:
    """train/valid from the {split} field, None if that split is left out."""
    if spec.split != "directory":
        return "train"
    return dict(spec.splits).get(values["split"])


def all_left_out(root: Path, values: Sequence[str], spec: SourceSpec) -> None:
    """Raise: every sample is in a split the recipe leaves out."""
    raise DataError(
        f"{root}: every sample is in a split the recipe leaves out "
        f"({', '.join(sorted(set(values)))}); its splits table names "
        f"{', '.join(k for k, _ in spec.splits)}"
    )


def finish_recipe_samples(
    root: Path, spec: SourceSpec, samples: list[SampleSource]
) -> list[SampleSource]:
    """Check sample ids are unique, apply a split file, sort by id."""
    if not samples:
        return []
    by_id: dict[str, SampleSource] = {}
    for s in samples:
        if s.sample_id in by_id:
            raise DataError(
                f"{s.image}: sample id {s.sample_id!r} is also that of {by_id[s.sample_id].image}"
            )
        by_id[s.sample_id] = s
    if spec.split not in SPLIT_RULES:
        valid = read_valid(root, list(by_id), spec.split, RECIPE_IMAGE_SUFFIXES)
        samples = [replace(s, split="valid" if s.sample_id in valid else "train") for s in samples]
    return sorted(samples, key=lambda s: s.sample_id)
