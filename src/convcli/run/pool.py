"""Many inputs on local worker processes: a short queue, signals in the workers, inputs whose
worker died tried again alone, and the :class:`Summary` of a batch.

Workers are separate processes that receive the request once, when they start.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convcli.errors import Stopped
from convcli.run.naming import clashing_outputs
from convcli.run.process import Outcome, process
from convcli.run.request import Request
from convcli.run.sources import Source
from convcli.schedule import Window

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

# multiprocessing and the process pool are imported where workers start, not in every
# command's start (about 3 ms there; 13 ms in an interpreter that has imported only numpy)


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def recorder(
        self, on_outcome: Callable[[Outcome], None], fail_fast: bool
    ) -> Callable[[Outcome], bool]:
        """What takes each outcome: counts it, passes it on, and says whether to stop."""

        def record(outcome: Outcome) -> bool:
            if outcome.error:
                self.failed += 1
            elif outcome.skipped:
                self.skipped += 1
            else:
                self.done += 1
            on_outcome(outcome)
            return bool(outcome.error) and fail_fast

        return record


#: what a worker runs as it starts (a module-level function: it is pickled for spawned workers)
Setup = Callable[[], object]
#: what is done to each input (apply's :func:`process` unless a command brings its own; a
#: module-level function too)
Work = Callable[[Source, Any], Outcome]

_worker_request: Request | None = None
_worker_work: Work = process
_worker_busy = False
_worker_stopping = False
_worker_parent = 0


def _orphaned() -> bool:
    return os.getppid() != _worker_parent


def _init_worker(request: Request, threads: int, setup: Setup | None, work: Work) -> None:
    """Runs once in each worker: keep the request, share the cores, and leave when orphaned."""
    global _worker_request, _worker_work
    _worker_request = request
    _worker_work = work
    from convcli.compute.backends import limit_threads

    limit_threads(threads)
    from convcli.io.atomic import forget_sweeps

    forget_sweeps()  # a new process: part files left by workers that died since are stale
    if setup is not None:
        setup()  # the command line's allocator settings: a spawned worker sets its own
    global _worker_parent
    _worker_parent = parent = os.getppid()

    def watchdog() -> None:
        # A worker whose parent was killed (kill -9) would otherwise wait for work forever.
        # It leaves between inputs, so every file it started is finished (renamed) first.
        while True:
            time.sleep(0.5)
            if os.getppid() != parent and not _worker_busy:
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_stop_signal)


def _on_stop_signal(signum: int, frame: Any) -> None:
    # Ctrl-C reaches every worker; when one exits, the pool terminates the others (SIGTERM).
    # An idle worker just leaves; a busy one unwinds first, so that the output it was
    # writing is removed, then leaves. Either way, quietly: the parent reports the stop.
    global _worker_stopping
    if not _worker_busy:
        os._exit(128 + signum)
    if not _worker_stopping:  # a second signal must not cut the clean-up short
        _worker_stopping = True
        raise Stopped(signum)


def _work(source: Source) -> Outcome:
    global _worker_busy
    assert _worker_request is not None
    if _orphaned():
        os._exit(0)  # the parent is gone: do not start inputs queued for it
    _worker_busy = True
    try:
        return _worker_work(source, _worker_request)
    except Stopped as stop:
        os._exit(128 + stop.signum)
    finally:
        _worker_busy = False


def run(
    sources: Iterable[Source],
    request: Request,
    *,
    jobs: int = 1,
    fail_fast: bool = False,
    on_outcome: Callable[[Outcome], None] = lambda o: None,
    worker_setup: Setup | None = None,
    work: Work = process,
) -> Summary:
    """Process every source, ``jobs`` at a time, reporting each outcome as it completes;
    ``worker_setup`` runs in each worker process as it starts (it must pickle), ``work`` is
    what is done to each source (apply's :func:`process` by default; it must pickle)."""
    started = time.perf_counter()
    summary = Summary()
    items = list(sources)
    clashes = clashing_outputs(items, request)
    record = summary.recorder(on_outcome, fail_fast)

    for index, message in clashes.items():
        if record(Outcome(items[index], error=message, exit_code=1)):
            return summary
    items = [source for i, source in enumerate(items) if i not in clashes]
    jobs = worker_count(jobs, len(items))
    if jobs <= 1 or len(items) <= 1:
        for source in items:
            if record(work(source, request)):
                break
    else:
        _run_pool(items, request, jobs, record, worker_setup, work)
    summary.seconds = time.perf_counter() - started
    return summary


#: workers per core at most: more only fight over the cores and memory (-j 10000 would fork
#: ten thousand interpreters)
WORKERS_PER_CORE = 4


def worker_count(jobs: int, inputs: int) -> int:
    """The workers a batch runs: as asked, but no more than its inputs, nor than
    :data:`WORKERS_PER_CORE` per core."""
    return max(1, min(jobs, inputs, WORKERS_PER_CORE * (os.cpu_count() or 1)))


def _run_pool(
    items: list[Source],
    request: Request,
    jobs: int,
    record: Callable[[Outcome], bool],
    setup: Setup | None = None,
    work: Work = process,
) -> None:
    """Feed the workers a short queue (so --fail-fast stops soon) and record as they finish.

    A worker that dies (killed, out of memory) takes the pool down with it, and which of the
    inputs in flight it held is unknown. Each of them is tried again alone in a fresh worker
    (with the memory of the machine to itself): one whose worker dies again is reported
    failed. Then the rest of the batch goes on.
    """
    queue = iter(items)
    while True:
        stopped, lost = _pool_round(queue, request, jobs, record, setup, work)
        if stopped or not lost:
            return
        for source in lost:
            stopped, died = _pool_round(iter([source]), request, 1, record, setup, work)
            if stopped:
                return
            if died:
                failed = Outcome(
                    source,
                    error=f"{source.label}: the worker processing it died (killed, or out "
                    "of memory)",
                    exit_code=1,
                )
                if record(failed):
                    return


def _worker_context() -> Any:
    """How workers start. Forking is fast (the workers inherit the imported modules and the
    resolved kernels) and safe as long as this process has not filtered anything itself,
    which the command line never has: once a library's native thread pool (OpenCV's) has
    run, a forked child can inherit it mid-use and hang, so such a process spawns fresh
    interpreters instead. (A fork server is no way out: killed with kill -9, its parent
    would leave it and its workers running.)"""
    import multiprocessing

    from convcli.compute.backends import has_computed

    if sys.platform.startswith("linux") and not has_computed():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _pool_round(
    queue: Iterator[Source],
    request: Request,
    jobs: int,
    record: Callable[[Outcome], bool],
    setup: Setup | None = None,
    work: Work = process,
) -> tuple[bool, list[Source]]:
    """One pool's run over the queue: whether --fail-fast stopped it, and the inputs in
    flight when a worker died (the pool is then gone)."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=_worker_context(),
        initializer=_init_worker,
        initargs=(request, threads, setup, work),
    ) as pool:
        try:
            with Window(_submitter(pool), queue, 2 * jobs, in_order=False) as window:
                for source, future in window:
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        return _after_death(source, window, record)
                    if record(outcome):
                        _finish_running(window, record)
                        return True, []
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return False, []


def _submitter(pool: ProcessPoolExecutor) -> Callable[[Source], Future[Outcome]]:
    from concurrent.futures.process import BrokenProcessPool

    def submit(source: Source) -> Future[Outcome]:
        try:
            return pool.submit(_work, source)
        except BrokenProcessPool as exc:  # a worker died since: this input is in flight too
            failed: Future[Outcome] = Future()
            failed.set_exception(exc)
            return failed

    return submit


def _after_death(
    source: Source, window: Window[Source, Future[Outcome]], record: Callable[[Outcome], bool]
) -> tuple[bool, list[Source]]:
    """A worker died: record what finished before, and return the inputs it may have held."""
    lost, stop = [source], False
    for other_source, other in window.pending:
        if other.done() and other.exception() is None:  # finished before the death
            stop = record(other.result()) or stop
        else:
            lost.append(other_source)
    window.cancel()
    return (True, []) if stop else (False, lost)


def _finish_running(
    window: Window[Source, Future[Outcome]], record: Callable[[Outcome], bool]
) -> None:
    """--fail-fast stopped the batch: start nothing more; record what was already running."""
    in_flight = window.pending
    window.cancel()
    for _, future in in_flight:
        if not future.cancelled():
            record(future.result())
