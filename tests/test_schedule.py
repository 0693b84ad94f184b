"""convcli.schedule: a few items ahead, in order or as they finish, cancelled on the way out."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from convcli.schedule import Window, ordered


class Lazy:
    """A future computed when its result is asked for (no executor): counts what is alive."""

    def __init__(self, log: Tracker, fn, item) -> None:
        self.log, self.fn, self.item = log, fn, item
        self.cancelled = False
        self._callbacks: list = []
        log.in_flight += 1
        log.most = max(log.most, log.in_flight)

    def result(self):
        self.log.in_flight -= 1
        self.log.ran.append(self.item)
        return self.fn(self.item)

    def cancel(self) -> bool:
        self.log.in_flight -= 1
        self.cancelled = True
        self.log.cancelled.append(self.item)
        return True

    def done(self) -> bool:
        return False

    def add_done_callback(self, fn) -> None:
        self._callbacks.append(fn)


class Tracker:
    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.ran: list = []
        self.cancelled: list = []
        self.taken: list = []

    def submit(self, fn):
        return lambda item: Lazy(self, fn, item)

    def items(self, n: int):
        for i in range(n):
            self.taken.append(i)
            yield i


def test_results_keep_the_order_of_the_items():
    def slow_first(x):
        time.sleep(0.05 if x % 3 == 0 else 0.0)
        return x * 10

    with ThreadPoolExecutor(4) as pool:
        got = list(ordered(lambda x: pool.submit(slow_first, x), range(20), ahead=5))
    assert got == [x * 10 for x in range(20)]


def test_at_most_ahead_in_flight_and_items_taken_only_when_there_is_room():
    log = Tracker()
    results = ordered(log.submit(lambda x: x + 1), log.items(50), ahead=3)
    assert next(results) == 1
    assert log.taken == [0, 1, 2]  # nothing is taken before there is room for it
    assert list(results) == list(range(2, 51))
    assert log.most == 3
    assert log.in_flight == 0


def test_bound_with_real_threads():
    running = 0
    most = 0
    lock = threading.Lock()

    def work(x):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return x

    with ThreadPoolExecutor(8) as pool:
        assert list(ordered(lambda x: pool.submit(work, x), range(30), ahead=2)) == list(range(30))
    assert most <= 2


def test_stopping_early_cancels_the_rest_and_leaves_the_items_not_taken():
    log = Tracker()
    items = log.items(10)
    for result in ordered(log.submit(lambda x: x), items, ahead=4):
        if result == 1:
            break
    assert log.ran == [0, 1]
    assert sorted(log.cancelled) == [2, 3, 4]  # in flight when the caller left
    assert log.in_flight == 0
    assert next(items) == 5  # never taken: still there for whoever comes next


def test_an_exception_propagates_and_cancels_the_rest():
    log = Tracker()

    def work(x):
        if x == 2:
            raise ValueError("no 2")
        return x

    got = []
    with pytest.raises(ValueError, match="no 2"):
        for result in ordered(log.submit(work), log.items(10), ahead=3):
            got.append(result)
    assert got == [0, 1]
    assert sorted(log.cancelled) == [3, 4]
    assert log.in_flight == 0


def test_an_exception_from_submit_propagates():
    def submit(x):
        if x == 3:
            raise RuntimeError("pool is gone")
        log = Tracker()
        return Lazy(log, lambda v: v, x)

    with pytest.raises(RuntimeError, match="pool is gone"):
        list(ordered(submit, range(10), ahead=2))


def test_cancelled_futures_of_a_thread_pool_never_run():
    gate = threading.Event()
    started = []

    def work(x):
        started.append(x)
        gate.wait(5)
        return x

    with ThreadPoolExecutor(1) as pool:
        window = Window(lambda x: pool.submit(work, x), range(10), ahead=4)
        with window:
            pairs = iter(window)
            item, future = next(pairs)
            assert item == 0
            in_flight = [f for _, f in window.pending]
            assert len(in_flight) == 3  # items 1..3; 0 is handed back
        gate.set()
        assert future.result() == 0
    assert all(f.cancelled() for f in in_flight)
    assert started == [0]


def test_as_they_finish():
    gates = {x: threading.Event() for x in range(3)}

    def work(x):
        gates[x].wait(5)
        return x

    with (
        ThreadPoolExecutor(3) as pool,
        Window(lambda x: pool.submit(work, x), range(3), ahead=3, in_order=False) as window,
    ):
        pairs = iter(window)
        gates[2].set()
        assert next(pairs)[0] == 2
        gates[0].set()
        assert next(pairs)[0] == 0
        gates[1].set()
        item, future = next(pairs)
        assert (item, future.result()) == (1, 1)
        assert next(pairs, None) is None


def test_ahead_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Window(lambda x: x, [1], 0)
