"""The ``maskprep`` command group: help layout, and library errors as CLI errors.

The library's messages name Python parameters (``w0 must be ...``); only the
CLI knows the flags, so :func:`user_errors` rewrites the leading parameter
name of a ValueError into its flag before showing it as a usage error.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click

from maskprep._version import __version__
from maskprep.errors import MaskprepError

__all__ = ["HELP_WIDTH", "flag_table", "main", "translate", "user_errors"]

HELP_WIDTH = 80
"""Help wraps at this many columns at most, also on wider terminals."""

# Library parameter names that name a group of options rather than one option
# of the command: they translate to the flag of the named option.
_ALIASES = {
    "class_weights": "scheme",
    "class_weight_config": "scheme",
    "region": "border_region",
    "target": "store",
}

_LEADING_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?=\s|$)")


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


def flag_table(command: click.Command) -> dict[str, str]:
    """Library parameter name -> flag, for the options of ``command``.

    An option's destination is the library's name for it (``max_weight`` for
    ``--class-weights-max``), so the table follows from the declarations;
    arguments keep their metavar (``STORE``).

    Examples
    --------
    >>> from maskprep.cli import main
    >>> table = flag_table(main.commands["build-weights"])
    >>> table["w0"], table["shard_size"], table["class_weights"], table["max_weight"]
    ('--w0', '--shard-size', '--class-weights', '--class-weights-max')
    """
    table: dict[str, str] = {}
    for param in command.params:
        if param.name is None:
            continue
        if isinstance(param, click.Option):
            longs = [o for o in param.opts if o.startswith("--")]
            table[param.name] = max(longs or param.opts, key=len)
        else:
            table[param.name] = param.human_readable_name
    for alias, name in _ALIASES.items():
        if name in table and alias not in table:
            table[alias] = table[name]
    return table


def translate(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with its leading parameter name replaced by the flag.

    Examples
    --------
    >>> translate("w0 must be a finite number >= 0, got -1.0", {"w0": "--w0"})
    '--w0 must be a finite number >= 0, got -1.0'
    >>> translate("unknown recipe 'x'", {"w0": "--w0"})
    "unknown recipe 'x'"
    """
    match = _LEADING_NAME.match(message)
    if match is None or match.group(1) not in flags:
        return message
    return flags[match.group(1)] + message[match.end() :]


# Advice in library messages names keyword arguments; on the command line it
# names the flags.
_ADVICE = (
    ("on_error='skip'", "--on-error skip"),
    ("overwrite=True", "--overwrite"),
    ("raise max_pixels", "raise --max-pixels"),
    ("(BuildConfig.from_recipe)", "(--recipe)"),
)


def translate_advice(message: str) -> str:
    """``message`` with the keyword arguments it advises replaced by their flags.

    Examples
    --------
    >>> translate_advice("a store is there; pass overwrite=True to replace it")
    'a store is there; pass --overwrite to replace it'
    """
    for library, flag in _ADVICE:
        message = message.replace(library, flag)
    return message


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one clear line and the documented exit code.

    MaskprepError (bad data or store): exit 1. ValueError (bad options): a
    usage error naming the flag, exit 2. Warnings are shown as one line each.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except MaskprepError as exc:
            click.echo(f"Error: {translate_advice(str(exc))}", err=True)
            sys.exit(1)
        except OSError as exc:  # not ours, but still one line, not a traceback
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"Error: {where}{exc.strerror or exc}", err=True)
            sys.exit(1)
        except ValueError as exc:
            ctx = click.get_current_context(silent=True)
            flags = flag_table(ctx.command) if ctx is not None else {}
            raise click.UsageError(translate(str(exc), flags), ctx=ctx) from None
        finally:
            for w in caught:
                click.echo(f"Warning: {w.message}", err=True)
