"""The one backoff policy: exponential, capped, half of it jittered, never below what the server
asked for. Used by every client that retries (EAS OpenAPI, OSS uploads, the queue's submit).

And the one polling loop (``poll``): read until done or a deadline, sleeping a ``Backoff``'s delays
(no jitter: one client watching one thing). Used by the control plane's waiter."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


@dataclass
class Retry:
    """``attempts`` retries after the first try; delay ``base * 2**attempt`` capped at ``cap``."""

    attempts: int = 4
    base: float = 0.25
    cap: float = 8.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float = 0.0) -> float:
        # The exponent is bounded: a poll that runs for hours must not overflow the float.
        span = min(self.cap, self.base * 2 ** min(attempt, 64))
        return max(retry_after, span / 2 + random.uniform(0, span / 2))

    def call(self, fn: Callable[[], T], retryable: Callable[[Exception], bool]) -> T:
        """``fn()``, tried again after a delay while it raises what ``retryable`` accepts."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                if not retryable(exc) or attempt >= self.attempts:
                    raise
            self.sleep(self.delay(attempt))
            attempt += 1


@dataclass(frozen=True)
class Backoff:
    """Delays between polls: ``first``, then ``factor`` times the last, at most ``cap``."""

    first: float
    factor: float = 1.0
    cap: float = float("inf")

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.factor, self.cap)


def poll(
    read: Callable[[], T],
    done: Callable[[T], bool],
    delays: Iterable[float],
    deadline: float,
    *,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[T, bool]:
    """``read()`` until ``done(value)``, sleeping the next of ``delays`` in between but never past
    ``deadline`` (a ``clock()`` time). Returns the last value and whether it was done; ``done`` may
    raise to stop early."""
    pause = sleep or time.sleep
    for delay in delays:
        value = read()
        if done(value):
            return value, True
        left = deadline - clock()
        if left <= 0:
            return value, False
        pause(min(delay, left))
    raise ValueError("poll: delays ran out before the deadline")
