"""Cancel tokens and the driver that runs a core generator to its result."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
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
