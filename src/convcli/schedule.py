"""Work a few items ahead: submit a bounded number at a time, take them back in order (or as
they finish), and cancel what is left when the caller stops.

Anything whose ``submit(item)`` returns a future with ``result()``, ``cancel()``, ``done()`` and
``add_done_callback()`` will do: a :mod:`concurrent.futures` executor
(``lambda x: pool.submit(work, x)``) or a Dask client
(``lambda x: client.submit(work, x, pure=False)``).

>>> from concurrent.futures import ThreadPoolExecutor
>>> with ThreadPoolExecutor(2) as pool:
...     list(ordered(lambda x: pool.submit(pow, x, 2), range(6), ahead=3))
[0, 1, 4, 9, 16, 25]
"""

from __future__ import annotations

import functools
import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class FutureLike(Protocol):
    """What a submit function returns (a concurrent.futures or Dask future)."""

    def result(self) -> Any: ...

    def cancel(self) -> Any: ...

    def done(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None: ...


F = TypeVar("F", bound=FutureLike)


class Window(Generic[T, F]):
    """``submit(item)`` for each of ``items``, with at most ``ahead`` of them in flight
    (submitted and not yet handed back).

    Iterating gives ``(item, future)`` pairs: in the order the items came (the future may still
    be running: its ``result()`` waits), or with ``in_order=False`` as the futures finish.
    The next item is submitted when the caller comes back for another, so an item is taken
    from ``items`` only when there is room for it; items never taken stay in the iterator.
    Leaving the ``with`` block, or abandoning the iteration, cancels whatever is in flight.
    """

    def __init__(
        self,
        submit: Callable[[T], F],
        items: Iterable[T],
        ahead: int,
        *,
        in_order: bool = True,
    ) -> None:
        if ahead < 1:
            raise ValueError(f"ahead must be at least 1, got {ahead}")
        self._submit = submit
        self._items = iter(items)
        self._ahead = ahead
        self._in_order = in_order
        self._pending: dict[int, tuple[T, F]] = {}  # in the order submitted
        self._finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._count = 0
        self._feeding = True

    @property
    def pending(self) -> list[tuple[T, F]]:
        """The items in flight and their futures, in the order they were submitted."""
        return list(self._pending.values())

    def cancel(self) -> None:
        """Submit nothing more and cancel every future in flight (a running one may finish)."""
        self._feeding = False
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            future.cancel()

    def __enter__(self) -> Window[T, F]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def __iter__(self) -> Iterator[tuple[T, F]]:
        try:
            self._fill()
            while self._pending:
                key = next(iter(self._pending)) if self._in_order else self._next_finished()
                yield self._pending.pop(key)
                self._fill()
        finally:
            self.cancel()

    def _fill(self) -> None:
        while self._feeding and len(self._pending) < self._ahead:
            try:
                item = next(self._items)
            except StopIteration:
                self._feeding = False
                return
            future = self._submit(item)
            key, self._count = self._count, self._count + 1
            self._pending[key] = (item, future)
            if not self._in_order:
                future.add_done_callback(functools.partial(self._on_done, key))

    def _on_done(self, key: int, future: Any) -> None:
        self._finished.put(key)  # on the thread that finished the future

    def _next_finished(self) -> int:
        while True:
            key = self._finished.get()
            if key in self._pending:  # not one cancelled since
                return key


def ordered(submit: Callable[[T], FutureLike], items: Iterable[T], ahead: int) -> Iterator[Any]:
    """The results of ``submit(item)`` for each item, in order, at most ``ahead`` in flight.

    An exception of a result is raised here; stopping early (``break``, an exception, closing
    the generator) cancels the work still in flight.
    """
    with Window(submit, items, ahead) as window:
        for _, future in window:
            yield future.result()
