"""A queued prompt (``Job``) and what running it produced (``Run``: outputs, history entry, sink
data), with the two ways a run stops early: a node failing and an interrupt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


class NodeFailure(Exception):
    """A node raising at run time (becomes ``execution_error``)."""

    def __init__(self, message: str, exception_type: str = "RuntimeError") -> None:
        super().__init__(message)
        self.exception_type = exception_type


class Interrupted(Exception):
    pass


@dataclass
class Job:
    number: float
    prompt_id: str
    prompt: Json
    extra_data: Json
    outputs: list[str]
    interrupted: bool = False
    node: str | None = None  # executing now

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")

    def item(self) -> list[Any]:
        """The job as ``/queue`` and ``/history`` show it."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class Run:
    """What executing a job produced."""

    job: Job
    success: bool = True
    outputs: Json = field(default_factory=dict)
    meta: Json = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)  # the history's status messages
    executed: list[str] = field(default_factory=list)
    executed_events: list[Json] = field(default_factory=list)  # as in the sink data
    failure: Json | None = None  # {"type": "execution_error" | "execution_interrupted", "data": {...}}

    def history(self) -> Json:
        status = {"status_str": "success" if self.success else "error", "completed": self.success,
                  "messages": self.messages}
        return {"prompt": self.job.item(), "outputs": self.outputs, "status": status, "meta": self.meta}

    def sink_data(self) -> bytes:
        tail = self.outputs if self.success else self.failure
        return json.dumps([*self.executed_events, tail]).encode()
