"""Running lists of Dask tasks on the chosen scheduler, reporting progress to a callback."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from maskprep.errors import SchedulerError

__all__ = ["CONNECT_TIMEOUT", "SCHEDULERS", "Progress", "Runner", "check_scheduler"]

SCHEDULERS = ("threads", "processes", "sync", "local-cluster")

#: Seconds to wait for a dask-distributed scheduler to accept the connection
#: (distributed's own default, 30 s, turns a typo in an address into a long wait).
CONNECT_TIMEOUT = 5.0

#: ``progress(stage, done, total)``: a new ``stage`` string starts a pass;
#: ``done`` of ``total`` tasks of that pass have finished.
Progress = Callable[[str, int, int], None]


def check_scheduler(scheduler: str, workers: int | None) -> None:
    """ValueError naming the parameter for an unknown scheduler or worker count."""
    if scheduler not in SCHEDULERS and "://" not in scheduler:
        raise ValueError(
            f"scheduler must be one of {', '.join(SCHEDULERS)} or a tcp:// address, "
            f"got {scheduler!r}"
        )
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")


class Runner:
    """Runs lists of delayed tasks on one scheduler; one cluster per build.

    The library never prints: each :meth:`compute` reports to ``progress``
    (if given) once at its start, after every finished task, and at its end.
    """

    def __init__(
        self, scheduler: str, workers: int | None, progress: Progress | None, retries: int
    ) -> None:
        check_scheduler(scheduler, workers)
        self.scheduler = scheduler
        self.workers = workers
        self.progress = progress
        self.retries = retries
        self.client: Any = None
        self.cluster: Any = None

    @property
    def distributed(self) -> bool:
        return self.scheduler == "local-cluster" or "://" in self.scheduler

    def __enter__(self) -> Runner:
        if self.distributed:
            from distributed import Client, LocalCluster

            if self.scheduler == "local-cluster":
                self.cluster = LocalCluster(
                    n_workers=self.workers or 2,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                self.client = Client(self.cluster)
            else:
                try:
                    self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as exc:
                    raise SchedulerError(
                        f"{self.scheduler}: cannot connect to the dask scheduler ({exc}); "
                        "is the address right and the scheduler running?"
                    ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def compute(self, tasks: list[Any], stage: str = "") -> list[Any]:
        """Compute ``tasks`` (Dask delayed objects); results in order."""
        import dask

        if not tasks:
            return []
        report = self.progress
        if self.client is not None:
            from distributed import as_completed

            futures = self.client.compute(tasks, retries=self.retries)
            if report is not None:
                report(stage, 0, len(futures))
                for done, _ in enumerate(as_completed(futures), start=1):
                    report(stage, done, len(futures))
            return list(self.client.gather(futures))
        kwargs: dict[str, Any] = {"scheduler": self.scheduler}
        if self.workers is not None and self.scheduler != "sync":
            kwargs["num_workers"] = self.workers
        # Threads of one process may share the compression of a task's chunks
        # (a volume built whole is one task); other schedulers keep one thread
        # a task (maskprep.pipeline.write.COMPRESS_THREADS).
        threads = (self.workers or os.cpu_count() or 1) if self.scheduler == "threads" else 1
        with dask.config.set({"maskprep.compress-threads": threads}):
            if report is None:
                return list(dask.compute(*tasks, **kwargs))
            with _TaskCounter(stage, report):
                return list(dask.compute(*tasks, **kwargs))


class _TaskCounter:
    """A dask local-scheduler callback counting finished tasks of one graph."""

    def __init__(self, stage: str, report: Progress) -> None:
        from dask.callbacks import Callback

        self.stage = stage
        self.report = report
        self.total = 0
        self.done = 0
        self.callback = Callback(start_state=self._start, posttask=self._posttask)

    def _start(self, dsk: Any, state: Any) -> None:
        self.total = len(state["ready"]) + len(state["waiting"]) + len(state["finished"])
        self.report(self.stage, 0, self.total)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.done += 1
        self.report(self.stage, min(self.done, self.total), self.total)

    def __enter__(self) -> _TaskCounter:
        self.callback.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.callback.__exit__(*exc)
