"""Running a batch on a Dask distributed cluster (``--scheduler ADDRESS``, ``CONVCLI_SCHEDULER``).

Each input is one task: a worker runs exactly what a local worker runs
(:func:`convcli.run.process.process`), so results are identical and failures are reported per input
in the same words; outputs are written by the workers with the same atomic renames, so the
files and directories must be visible to the workers under the same paths (a shared
filesystem). A worker that dies mid-task makes Dask run the task again elsewhere; an input
that kills workers repeatedly is reported as failed.

An input larger than the memory budget is split into chunks of output rows (a volume: slabs
of output slices), one task each:
every task reads the input rows its chunk needs, halo included (a chunked array with overlap),
and returns its rows; this process writes them in order, as they arrive, so no machine holds
more than a few chunks. Dask is the optional ``dask`` extra; nothing here is imported without
``--scheduler``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from convcli.compute.pixels import Filtered
from convcli.errors import BackendError, ConvcliError, UsageError
from convcli.io.atomic import forget_sweeps, sweep_stale_parts
from convcli.run.pool import Summary
from convcli.run.process import Outcome, StreamPlan, plan_stream, process, too_big, write_streamed
from convcli.run.request import Request
from convcli.run.sources import Source
from convcli.schedule import ordered

ENV = "CONVCLI_SCHEDULER"


def scheduler_address(option: str | None) -> str | None:
    """``--scheduler`` or, without it, ``CONVCLI_SCHEDULER``; None runs locally."""
    return option or os.environ.get(ENV) or None


def connect(address: str) -> Any:
    """A ``dask.distributed.Client`` connected to ``address``, or a usage error saying why."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise BackendError("--scheduler needs dask: pip install 'convcli[dask]'") from None
    try:
        return Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None


def run(
    client: Any,
    sources: list[Source],
    request: Request,
    *,
    fail_fast: bool = False,
    on_outcome: Callable[[Outcome], None] = lambda o: None,
) -> Summary:
    """Process every source on the cluster, reporting each outcome as it completes."""
    import time

    from dask.distributed import as_completed

    started = time.perf_counter()
    summary = Summary()
    directories = {str(request.output.out_dir)} if request.output.out_dir is not None else set()

    def seen(outcome: Outcome) -> None:
        directories.update(os.path.dirname(os.path.abspath(p)) for p in outcome.written)
        on_outcome(outcome)

    record = summary.recorder(seen, fail_fast)
    # workers outlive batches (and the workers killed in them): each sweeps afresh
    client.run(forget_sweeps)

    huge = [s for s in sources if s.path is not None and _too_big(s, request)]
    small = [s for s in sources if s not in huge]
    shared = client.scatter(request, broadcast=True)
    futures = {client.submit(process, s, shared, pure=False): s for s in small}
    try:
        for future in as_completed(futures, loop=client.loop):
            if record(_result(future, futures[future])):
                for other in futures:
                    other.cancel()
                break
        else:
            for source in huge:
                work = _huge_volume if request.volume else _huge
                if record(work(client, source, request, shared)):
                    break
    finally:
        for future in futures:
            future.cancel()
    # a task whose worker was killed mid-write ran again on a worker that had swept already
    client.run(sweep_again, sorted(directories))
    summary.seconds = time.perf_counter() - started
    return summary


def sweep_again(directories: list[str]) -> None:
    """Run on every worker after a batch: remove the part files of writers on its machine
    that were killed since it last swept these output directories."""
    forget_sweeps()
    for directory in directories:
        sweep_stale_parts(Path(directory))


def _too_big(source: Source, request: Request) -> bool:
    if request.volume:
        from convcli.run.volume import too_big_volume

        return too_big_volume(source, request)
    return too_big(source, request)


def _huge_volume(client: Any, source: Source, request: Request, shared: Any) -> Outcome:
    """A volume over the memory budget, in slabs of z across the cluster: each task reads
    its slices and their halo and returns its samples; they are written here in order."""
    from convcli.io.volume import write_volume
    from convcli.run.process import make_dirs
    from convcli.run.volume import (
        memory_route,
        open_volume,
        slab_samples,
        slab_span,
        volume_job,
        volume_targets,
    )

    outcome = Outcome(source)
    try:
        with open_volume(source) as reader:
            fmt, targets = volume_targets(source, request, reader)
            if request.output.skip_existing and all(t.exists() for t in targets):
                outcome.skipped = True
                return outcome
            memory_route(reader, request, fmt, len(targets))
            to_array = fmt == "NPY"
            job = volume_job(reader, request, to_array)
        outcome.plan = job.plan
        depth = job.engine.out_shape[0]
        chunks = [(z0, min(z0 + job.slab, depth)) for z0 in range(0, depth, job.slab)]
        span = None
        if job.layout.options.range == "rescale":
            spans = client.gather(
                [client.submit(slab_span, source, shared, to_array, c, pure=False) for c in chunks]
            )
            span = (min(s[0] for s in spans), max(s[1] for s in spans))
        stats = Filtered(np.empty(0), job.stacked)
        ahead = max(2, 2 * len(client.scheduler_info().get("workers", {})))

        def submit(chunk: tuple[int, int]) -> Any:
            return client.submit(slab_samples, source, shared, to_array, chunk, span, pure=False)

        def slabs() -> Iterator[tuple[int, int, np.ndarray]]:
            for z0, z1, samples, clipped, total in ordered(submit, chunks, ahead):
                stats.clipped += clipped
                stats.total += total
                yield z0, z1, samples

        if request.output.out_dir is not None:
            make_dirs(targets[0].parent)
        write_volume(
            targets[0],
            fmt,
            job.out_shape,
            job.layout.out_dtype,
            slabs(),
            stacked=bool(job.stacked),
            compress=request.output.compress,
        )
        outcome.written.append(str(targets[0]))
    except Exception as exc:
        _failed(outcome, source, exc)
    return outcome


def _result(future: Any, source: Source) -> Outcome:
    """The outcome of a task, or the failure of the worker that ran it, in local words."""
    try:
        outcome: Outcome = future.result()
        return outcome
    except Exception as exc:  # KilledWorker, CommClosedError, ...
        return Outcome(
            source,
            error=f"{source.label}: the worker processing it died or was "
            f"lost ({type(exc).__name__})",
            exit_code=1,
        )


def _huge(client: Any, source: Source, request: Request, shared: Any) -> Outcome:
    """An input over the memory budget, in chunks of rows across the cluster."""
    outcome = Outcome(source)
    try:
        plan = plan_stream(source, request)
        with plan.job(request) as job:
            height = job.out_shape[1] if job.stacked else job.out_shape[0]
            rows = job.band_rows
            chunks = [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]
            span = None
            if job.layout.options.range == "rescale":
                spans = client.gather(
                    [client.submit(_chunk_span, plan, shared, c, pure=False) for c in chunks]
                )
                span = (min(s[0] for s in spans), max(s[1] for s in spans))
            stats = Filtered(np.empty(0), job.stacked)
            bands = _ordered(client, plan, shared, chunks, span, stats)
            write_streamed(plan, job, request, outcome, bands, stats)
    except Exception as exc:
        _failed(outcome, source, exc)
    return outcome


def _ordered(
    client: Any,
    plan: StreamPlan,
    shared: Any,
    chunks: list[tuple[int, int]],
    span: tuple[float, float] | None,
    stats: Filtered,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The chunks' rows in order, with a few more in flight on the workers."""
    ahead = max(2, 2 * len(client.scheduler_info().get("workers", {})))

    def submit(chunk: tuple[int, int]) -> Any:
        return client.submit(_chunk_rows, plan, shared, chunk, span, pure=False)

    for r0, r1, samples, counts in ordered(submit, chunks, ahead):
        stats.add(counts)
        yield r0, r1, samples


def _chunk_rows(
    plan: StreamPlan, request: Request, rows: tuple[int, int], span: tuple[float, float] | None
) -> tuple[int, int, np.ndarray, Filtered]:
    """On a worker: the output samples of rows ``r0:r1`` (reading their halo itself), and
    how clipping cut them."""
    with plan.job(request) as job:
        stats = Filtered(np.empty(0), job.stacked)
        parts = [samples for _, _, samples in job.bands(stats, rows, span)]
        axis = 1 if job.stacked else 0
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)
        return rows[0], rows[1], samples, stats


def _chunk_span(plan: StreamPlan, request: Request, rows: tuple[int, int]) -> tuple[float, float]:
    with plan.job(request) as job:
        return job.span(rows)


def _failed(outcome: Outcome, source: Source, exc: Exception) -> None:
    """Record an input's failure on the cluster: convcli's own errors as they are, any other
    (a worker lost, a task's exception) named as a cluster failure."""
    if isinstance(exc, ConvcliError):
        outcome.error = str(exc) if exc.subject else f"{source.label}: {exc.message}"
        outcome.exit_code = exc.exit_code
    else:
        outcome.error = f"{source.label}: failed on the cluster: {type(exc).__name__}: {exc}"
        outcome.exit_code = 1
