"""Progress of the library's passes, shown on stderr.

The library reports progress as ``progress(stage, done, total)`` calls: a new
``stage`` string starts a new pass, ``done`` counts its finished tasks out of
``total``. :class:`ProgressRenderer` is such a callable.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TextIO

__all__ = ["ProgressRenderer", "progress_for"]


class ProgressRenderer:
    """Draws one bar per pass on a terminal; elsewhere one line when a pass starts and ends.

    Parameters
    ----------
    stream : text stream, optional
        Where to write (default: ``sys.stderr`` at construction).
    tty : bool, optional
        Draw bars (``\\r`` redraws); default: whether ``stream`` is a terminal.
        Logs and pipes get plain lines instead, with no ``\\r``.
    clock : callable
        Seconds, for the pass times (tests pass a fake clock).
    width : int, optional
        Line width of a bar (default: the terminal's, at most 80).
    interval : float
        Least seconds between two redraws of a bar.

    Examples
    --------
    >>> import io
    >>> out, now = io.StringIO(), iter([0.0, 2.0]).__next__
    >>> show = ProgressRenderer(out, tty=False, clock=now)
    >>> show("scanning 24 sample(s)", 0, 2)
    >>> show("scanning 24 sample(s)", 1, 2)
    >>> show("scanning 24 sample(s)", 2, 2)
    >>> print(out.getvalue(), end="")
    scanning 24 sample(s) ...
    scanning 24 sample(s): 2/2 done in 2.0 s
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
        interval: float = 0.1,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self._stream, "isatty", None)
            tty = bool(isatty()) if isatty is not None else False
        self._tty = tty
        self._clock = clock
        self._width = width
        self._interval = interval
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._open = False  # a pass has started and not ended
        self._start = 0.0
        self._drawn = float("-inf")
        self._done = 0
        self._total = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            if stage != self._stage or (not self._open and done < total):
                self._end()
                self._begin(stage)
            elif not self._open:
                return  # a repeated report of a pass that has ended
            self._done, self._total = done, total
            if done >= total:
                self._end()
            elif self._tty:
                now = self._clock()
                if now - self._drawn >= self._interval:
                    self._draw(now)

    def close(self) -> None:
        """End the pass in progress, if any (a bar gets its final line)."""
        with self._lock:
            self._end()

    def __enter__(self) -> ProgressRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _begin(self, stage: str) -> None:
        self._stage, self._open = stage, True
        self._start = self._clock()
        self._drawn = float("-inf")
        self._done = self._total = 0
        if not self._tty:
            self._write(f"{stage} ...\n")

    def _end(self) -> None:
        if not self._open:
            return
        self._open = False
        now = self._clock()
        if self._tty:
            self._draw(now)
            self._write("\n")
        else:
            self._write(
                f"{self._stage}: {self._done}/{self._total} done in {now - self._start:.1f} s\n"
            )

    def _draw(self, now: float) -> None:
        self._drawn = now
        width = self._width or min(shutil.get_terminal_size((80, 24)).columns, 80)
        done, total = self._done, self._total
        counts = f" {done}/{total} {now - self._start:.1f} s"
        bar_width = max(10, width // 3)
        filled = bar_width if total <= 0 else min(bar_width, bar_width * done // total)
        bar = f" [{'#' * filled}{'-' * (bar_width - filled)}]"
        room = max(0, width - 1 - len(bar) - len(counts))
        stage = self._stage or ""
        if len(stage) > room:
            stage = stage[: max(0, room - 3)] + "..." if room > 3 else stage[:room]
        line = f"{stage}{bar}{counts}"
        self._write("\r" + line.ljust(width - 1))

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


def progress_for(quiet: bool) -> AbstractContextManager[ProgressRenderer | None]:
    """The ``progress`` argument of a command's library call: None when ``quiet``."""
    if quiet:
        return nullcontext(None)
    return ProgressRenderer()
