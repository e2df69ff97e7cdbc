"""Bounded retries with exponential back-off, for calls to services outside the process.

Where it sits: shared by the trail update's feed client (core/update/feeds.py, each download) and the
server's alert webhook (core/server/alerts.py, each POST). `call` raises `Retryable` for a failure
worth another attempt (connection refused, timeout, HTTP 429 or 5xx); any other exception ends the
attempts at once. The last `Retryable` is re-raised when every attempt failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Retryable(Exception):
    """A failure another attempt may cure; `cause` is what the caller reports."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def with_retries(call: Callable[[], T], attempts: int, backoff: float,
                 wait: Callable[[float], object]) -> T:
    """`call()` up to `attempts` times, waiting backoff, 2*backoff, 4*backoff... between them.
    `wait(seconds)` returning True (a set threading.Event's wait) stops early."""
    last: Retryable | None = None
    for attempt in range(max(1, attempts)):
        if attempt and wait(backoff * (2 ** (attempt - 1))) is True:
            break
        try:
            return call()
        except Retryable as ex:
            last = ex
    assert last is not None  # at least one attempt ran, and it failed retryably
    raise last
