"""The one backoff policy: exponential, capped, half of it jittered, never below what the server
asked for. Used by every client that retries (EAS OpenAPI, OSS uploads, the queue's submit)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

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
