"""Numba kernels behind maskprep's public functions (no argument checking here)."""

from __future__ import annotations

from maskprep._kernels._border import (
    exponents,
    merge_smallest,
    scan_boxes,
    windowed_2d,
    windowed_2d_weights,
    windowed_3d,
)
from maskprep._kernels._border_separable import sep_line_pass, sep_x_pass

__all__ = [
    "exponents",
    "merge_smallest",
    "scan_boxes",
    "sep_line_pass",
    "sep_x_pass",
    "windowed_2d",
    "windowed_2d_weights",
    "windowed_3d",
]
