"""Compiling the border kernels once per install, overlapped with the scan.

On a fresh install numba has no cached code for the kernels and the first
border map compiles them, which takes seconds. :class:`KernelWarmup` checks
numba's cache when a build starts; when it is cold, it compiles the kernels in
a background thread (while the scan reads the dataset) and, before the first
pass that needs them, reports the wait as its own pass, :data:`COMPILE_STAGE`.
Local worker processes then load the cached code instead of each compiling.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from maskprep.pipeline.runner import Progress

__all__ = ["COMPILE_STAGE", "KernelWarmup"]

COMPILE_STAGE = "compiling kernels (first run only)"
"""The ``progress`` stage of the one-off compilation of the kernels."""


class KernelWarmup:
    """Compile the kernels in the background if numba's cache lacks them.

    ``kernels_cached`` and ``compile`` default to the border kernels'
    (:func:`~maskprep.targets.border.kernels_compiled`,
    :func:`~maskprep.targets.border.compile_kernels`); tests pass their own.

    Examples
    --------
    >>> seen = []
    >>> warm = KernelWarmup(lambda *a: seen.append(a), kernels_cached=lambda: False,
    ...                     compile=lambda: None)
    >>> warm.wait()
    >>> seen
    [('compiling kernels (first run only)', 0, 1), ('compiling kernels (first run only)', 1, 1)]
    >>> KernelWarmup(lambda *a: seen.append(a), kernels_cached=lambda: True).cold
    False
    """

    def __init__(
        self,
        progress: Progress | None,
        *,
        kernels_cached: Callable[[], bool] | None = None,
        compile: Callable[[], None] | None = None,
    ) -> None:
        from maskprep.targets import border

        cached = kernels_cached or border.kernels_compiled
        self._compile = compile or border.compile_kernels
        self._progress = progress
        self.cold = not cached()
        self._thread: threading.Thread | None = None
        if self.cold:
            self._thread = threading.Thread(
                target=self._run, name="maskprep-compile-kernels", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        # An error here is raised again, where it belongs, by the first real call.
        with contextlib.suppress(Exception):
            self._compile()

    def wait(self) -> None:
        """Block until the compilation is done, reporting it as a pass (once)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._progress is not None:
            self._progress(COMPILE_STAGE, 0, 1)
        thread.join()
        if self._progress is not None:
            self._progress(COMPILE_STAGE, 1, 1)
