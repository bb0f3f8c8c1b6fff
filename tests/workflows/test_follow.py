"""The run's /history poll on the shared polling loop (retry.poll), without a service: its waits, a poll that
outlasts a thousand attempts, and the deadline that ends it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from eascomfy.errors import WaitTimeout
from eascomfy.workflows.run import wait_history


class SlowHistory:
    """A client whose prompt finishes after ``polls`` looks at /history."""

    def __init__(self, polls: int) -> None:
        self.polls, self.looked, self.cancelled = polls, 0, []

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        self.looked += 1
        return {"status": {"status_str": "success"}} if self.looked > self.polls else None

    def cancel(self, prompt_id: str) -> str:
        self.cancelled.append(prompt_id)
        return "interrupted"  # as ServiceClient.cancel says when the prompt was running


def test_history_is_polled_on_the_backoff_until_it_is_there() -> None:
    waits: list[float] = []
    client = SlowHistory(polls=2000)  # past 2**1024: the backoff must not overflow
    entry = wait_history(client, "p1", time.monotonic() + 3600, 3600, sleep=waits.append)  # type: ignore[arg-type]
    assert entry["status"]["status_str"] == "success" and client.looked == 2001 and not client.cancelled
    assert len(waits) == 2000 and waits[:5] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert set(waits[5:]) == {2.0}


def test_the_deadline_ends_the_poll_and_interrupts_the_prompt() -> None:
    client = SlowHistory(polls=10**9)
    with pytest.raises(WaitTimeout, match="did not finish within 0.3 s; interrupted it on the server"):
        wait_history(client, "p2", time.monotonic() + 0.3, 0.3)  # type: ignore[arg-type]
    assert client.cancelled == ["p2"] and client.looked >= 2
