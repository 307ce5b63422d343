"""Command line interface: parses arguments and delegates to the library.

Exit codes: 0 success, 1 bad data or store (the message names the file),
2 usage errors (bad options).

:mod:`~maskprep.cli.app` holds the ``maskprep`` group and the error
translation, :mod:`~maskprep.cli.options` the shared option groups, and
:mod:`~maskprep.cli.build`, :mod:`~maskprep.cli.preview` and
:mod:`~maskprep.cli.tools` the commands (importing them registers them).
"""

from __future__ import annotations

from maskprep.cli import build, preview, tools  # noqa: F401  (registers the commands)
from maskprep.cli.app import main

__all__ = ["main"]
