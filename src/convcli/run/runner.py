"""Running a request over many inputs, on local workers or a Dask cluster, as the command line
does: ``execute(sources, request, Settings(jobs=4))``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from convcli.errors import UsageError
from convcli.run.pool import Setup, Summary, Work
from convcli.run.pool import run as run_locally
from convcli.run.process import Outcome, process
from convcli.run.request import Request
from convcli.run.sources import Source


@dataclass(frozen=True)
class Settings:
    """How a batch runs (not what is done to each input: that is the request)."""

    jobs: int | None = None  # local worker processes; None: one per CPU
    fail_fast: bool = False  # stop at the first failed input
    scheduler: str | None = None  # a Dask scheduler's address; None runs locally
    worker_setup: Setup | None = None  # run in each local worker process as it starts


def check_sources(sources: list[Source], request: Request) -> None:
    """Refuse a batch whose inputs the request cannot take (many inputs for one -o file)."""
    if request.output.path is not None and len(sources) > 1:
        raise UsageError(f"-o takes one input, got {len(sources)}; use -d for many")


def distinct_files(sources: list[Source]) -> list[Source]:
    """Each file once (the first time it is named; through a link or a hard link, it is the
    same file): ``--in-place`` must not filter a file twice, nor let two workers replace it
    at once."""
    seen: set[object] = set()
    kept = []
    for source in sources:
        key: object = source
        if source.path is not None:
            try:
                st = os.stat(source.path)
                key = (st.st_dev, st.st_ino)
            except OSError:
                key = os.path.realpath(source.path)  # its own error comes when processed
        if key not in seen:
            seen.add(key)
            kept.append(source)
    return kept


def execute(
    sources: list[Source],
    request: Request,
    settings: Settings | None = None,
    *,
    on_outcome: Callable[[Outcome], None] = lambda o: None,
    work: Work | None = None,
) -> Summary:
    """Process every source, reporting each :class:`Outcome` as it completes; ``work`` is
    what is done to each (apply's filtering unless given; local workers only)."""
    settings = settings or Settings()
    check_sources(sources, request)
    if request.output.in_place:
        sources = distinct_files(sources)
    if settings.scheduler and work is not None:
        raise UsageError("only apply runs on a Dask cluster; run this command locally")
    if settings.scheduler:
        from convcli.run import cluster

        client = cluster.connect(settings.scheduler)
        try:
            return cluster.run(
                client, sources, request, fail_fast=settings.fail_fast, on_outcome=on_outcome
            )
        finally:
            client.close()
    return run_locally(
        sources,
        request,
        jobs=settings.jobs or os.cpu_count() or 1,
        fail_fast=settings.fail_fast,
        on_outcome=on_outcome,
        worker_setup=settings.worker_setup,
        work=work or process,
    )
