"""The waiter's polling loop (retry.poll with Poll's backoff): the timings deploy relies on."""

from __future__ import annotations

import itertools

from eascomfy.control.wait import Poll
from eascomfy.retry import poll


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_describe_backs_off_from_first_to_cap() -> None:
    delays = [round(d, 4) for d in itertools.islice(Poll().backoff.delays(), 9)]
    assert delays == [0.2, 0.3, 0.45, 0.675, 1.0125, 1.5188, 2.2781, 3.0, 3.0]


def test_poll_stops_when_done_and_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    reads = iter(range(100))
    value, done = poll(lambda: next(reads), lambda v: v == 3, Poll(first=1.0, factor=2.0, cap=3.0).backoff.delays(), 100,
                       sleep=clock.sleep, clock=clock)
    assert (value, done, clock.slept) == (3, True, [1.0, 2.0, 3.0])

    clock = FakeClock()
    value, done = poll(lambda: "waiting", lambda v: False, itertools.repeat(0.4), 1.0, sleep=clock.sleep, clock=clock)
    assert (value, done) == ("waiting", False)
    assert clock.slept == [0.4, 0.4, 0.2] and clock.now == 1.0  # the last pause is cut at the deadline
