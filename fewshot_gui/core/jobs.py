"""Cancel tokens, the driver that runs a core generator to its result, and the collector
pause for passes that build many long-lived objects."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

Event = TypeVar("Event")
Result = TypeVar("Result")


class CancelToken:
    """A flag that long jobs check between steps; thread-safe, set once."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


def drive(
    job: Generator[Event, Any, Result], on_event: Callable[[Event], None] | None = None
) -> Result:
    """Run a core generator to its end, handing each event to `on_event`; return its result."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


@contextmanager
def long_lived_objects() -> Iterator[None]:
    """Build many objects that live on (a folder's 100,000 paths, their stat keys) without
    Python's cyclic collector passing over the whole heap while they are made.

    Each such pass holds the GIL for the whole heap: two of 115 and 153 ms froze the window
    while a worker walked 100,000 files. The collector is off for the block; what it built
    is then frozen (`gc.freeze`), so later passes skip it too. Objects freed by reference
    count are freed as ever; only reference cycles left unreachable inside the block stay.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
