"""The ``maskprep`` command group: help layout, and library errors as CLI errors."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from maskprep._version import __version__
from maskprep.errors import MaskprepError

__all__ = ["HELP_WIDTH", "main", "user_errors"]

HELP_WIDTH = 80
"""Help wraps at this many columns at most, also on wider terminals."""


class HelpContext(click.Context):
    """A context whose help is at most :data:`HELP_WIDTH` columns wide."""

    def make_formatter(self) -> click.HelpFormatter:
        width = None if self.terminal_width is None else min(self.terminal_width, HELP_WIDTH)
        return self.formatter_class(width=width, max_width=HELP_WIDTH)


class Command(click.Command):
    context_class = HelpContext


class Group(click.Group):
    context_class = HelpContext
    command_class = Command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; usage lines say ``maskprep`` also under ``python -m maskprep``."""
        return super().main(args, prog_name or self.name, complete_var, standalone_mode, **extra)


@click.group(
    name="maskprep",
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": HELP_WIDTH},
)
@click.version_option(__version__, prog_name="maskprep")
def main() -> None:
    """Training-ready segmentation data: void fill, class weights, border weight maps.

    \b
    Example:
        maskprep make-sample sample_data
        maskprep build-weights sample_data -o sample.zarr
    """


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one clear line and the documented exit code.

    MaskprepError (bad data or store): exit 1. ValueError (bad options): a
    usage error, exit 2. Warnings are shown as one line each.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except MaskprepError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        finally:
            for w in caught:
                click.echo(f"Warning: {w.message}", err=True)
