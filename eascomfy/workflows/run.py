"""A synchronous run (Standard and Cluster editions): send the workflow to ``/prompt``, follow it
on ComfyUI's websocket (or by polling ``/history``), download its outputs through ``/view``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..core.comfy_answers import execution_error_line, node_error_lines, output_files, prompt_error_lines
from ..core.workflow import Workflow, title
from ..errors import CloudError, UsageError, WaitTimeout
from ..local.files import folder_problem, safe_local_path
from ..retry import Backoff, poll
from .check import JobError, check_workflow, errors_only

if TYPE_CHECKING:
    from ..adapters.comfy_http import EventSocket, ServiceClient
    from ..ports import Progress


@dataclass
class RunReport:
    prompt_id: str
    status: str
    seconds: float
    files: list[dict[str, Any]]
    refused: list[str]
    node_errors: list[str]
    unwritable: list[dict[str, Any]] = field(default_factory=list)  # outputs that could not be written locally

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "status": self.status, "seconds": round(self.seconds, 3),
                "files": self.files, "refused": self.refused, "unwritable": self.unwritable,
                "node_errors": self.node_errors}


class _Follower:
    """Progress of one prompt from ComfyUI's events, as lines for people."""

    def __init__(self, prompt_id: str, workflow: Workflow, progress: "Progress") -> None:
        self.prompt_id, self.workflow, self.progress = prompt_id, workflow, progress
        self._quarter: dict[str, int] = {}

    def name(self, node: Any) -> str:
        item = self.workflow.get(str(node))
        return f"node {node} ({title(item)})" if item else f"node {node}"

    def event(self, event: Mapping[str, Any]) -> bool:
        """Report one event; True when it ends the prompt."""
        kind, data = event.get("type"), event.get("data") or {}
        if not isinstance(data, Mapping) or (data.get("prompt_id") not in (None, self.prompt_id)):
            return False
        if kind == "executing":
            if data.get("node") is None:
                return data.get("prompt_id") == self.prompt_id
            self.progress.info(f"  running {self.name(data['node'])}")
        elif kind == "progress" and data.get("max"):
            quarter = int(4 * int(data.get("value", 0)) / int(data["max"]))
            if quarter > self._quarter.get(str(data.get("node")), 0):
                self._quarter[str(data.get("node"))] = quarter
                self.progress.info(f"  {self.name(data.get('node'))}: step {data.get('value')}/{data['max']}")
        elif kind == "executed":
            count = len(output_files({str(data.get("node")): data.get("output") or {}}))
            self.progress.info(f"  {self.name(data.get('node'))} wrote {count} file{'s' if count != 1 else ''}")
        elif kind == "execution_cached" and data.get("nodes"):
            self.progress.info(f"  cached: {', '.join(map(str, data['nodes']))}")
        return kind in ("execution_success", "execution_error", "execution_interrupted") and data.get("prompt_id") == self.prompt_id


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


# What ServiceClient.cancel did, as the end of a sentence about the prompt.
CANCELLED = {
    "removed": "removed it from the server's queue (it had not started)",
    "interrupted": "interrupted it on the server",
    "gone": "it was no longer waiting or running on the server",
}


def _timeout_error(prompt_id: str, timeout: float, client: "ServiceClient") -> WaitTimeout:
    try:
        what = CANCELLED[client.cancel(prompt_id)]
    except CloudError:
        what = "could not stop it on the server"
    return WaitTimeout(f"prompt {prompt_id} did not finish within {timeout:g} s; {what}", "allow it more time",
                       param="timeout")


# /history is polled from 0.1 s up to 2 s apart; the deadline ends the wait, never a count.
HISTORY_POLL = Backoff(first=0.1, factor=2.0, cap=2.0)


def wait_history(client: "ServiceClient", prompt_id: str, deadline: float, timeout: float,
                 delays: Backoff = HISTORY_POLL, sleep: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Poll ``/history/<id>`` on ``delays`` until the entry is there; past ``deadline`` (a
    ``time.monotonic()`` time) the prompt is interrupted on the server and the wait ends in
    ``WaitTimeout``."""
    entry, done = poll(lambda: client.history(prompt_id), lambda found: found is not None, delays.delays(), deadline,
                       sleep=sleep)
    if not done:
        raise _timeout_error(prompt_id, timeout, client)
    return entry


def _follow(client: "ServiceClient", events: "EventSocket | None", follower: _Follower, deadline: float,
            timeout: float) -> dict[str, Any]:
    """Follow the websocket until the prompt ends (or the socket drops), then read its history."""
    if events is not None:
        try:
            while _left(deadline) > 0:
                event = events.next(min(1.0, max(_left(deadline), 0.01)))
                if event is not None and follower.event(event):
                    break
        except ConnectionError as exc:
            follower.progress.debug(f"{exc}; polling /history instead")
        finally:
            events.close()
    return wait_history(client, follower.prompt_id, deadline, timeout)


def _history_error(entry: Mapping[str, Any], workflow: Workflow) -> str | None:
    status = entry.get("status") or {}
    if status.get("status_str") != "error":
        return None
    for kind, data in status.get("messages") or []:
        if kind == "execution_error":
            return execution_error_line(data or {}, workflow)
        if kind == "execution_interrupted":
            return "interrupted"
    return "ComfyUI reported an error"


@dataclass
class Downloads:
    files: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # names that would escape the folder
    unwritable: list[dict[str, Any]] = field(default_factory=list)  # could not be written here


def download_outputs(client: "ServiceClient", outputs: Mapping[str, Any], dest: Path, progress: "Progress",
                     deadline: float | None = None) -> Downloads:
    """Every output file through ``/view`` into ``dest``: names that would escape it are refused,
    long ones shortened (``safe_local_path``), one that cannot be written does not stop the others.
    ``deadline`` (``time.monotonic()``) bounds them all: past it, ``CloudError`` code ``Deadline``."""
    done = Downloads()
    for item in output_files(outputs):
        target = safe_local_path(dest, item.relative)
        if target is None:
            progress.warn(f"refused output name {item.relative!r} of node {item.node}: it would be written outside {dest}")
            done.refused.append(item.relative)
            continue
        try:
            size = client.download({"filename": item.filename, "subfolder": item.subfolder, "type": item.type}, target,
                                   deadline=deadline)
        except OSError as exc:
            error = f"cannot write {target}: {exc.strerror or exc}"
            progress.warn(f"output {item.relative} of node {item.node}: {error}")
            done.unwritable.append({**item.to_dict(), "error": error})
            continue
        done.files.append({**item.to_dict(), "path": str(target), "size": size})
        progress.info(f"  saved {target} ({size} bytes)")
    return done


def run(client: "ServiceClient", workflow: Workflow, progress: "Progress", *, out_dir: Path, timeout: float,
        allow_partial: bool = False, check: bool = True, confirm: Callable[[str], bool] = lambda q: True) -> RunReport:
    """Send the workflow to ``/prompt``, follow it, download its outputs; ``timeout`` seconds
    bound all of it, the downloads too."""
    if not timeout > 0:  # also refuses NaN
        raise UsageError(f"must be more than 0 (got {timeout})", param="timeout")
    problem = folder_problem(out_dir)  # before any GPU time is spent on outputs that could not be saved
    if problem:
        raise UsageError(problem, "give a folder for the outputs", param="out_dir")
    started = time.monotonic()
    deadline = started + timeout
    if check:
        info = client.object_info()
        if info is None:
            raise UsageError(f"{client.endpoint} serves no /object_info: it is not a Standard/Cluster-edition ComfyUI; "
                             "nothing was sent", "an API-edition service queues work: use eascomfy submit")
        problems = errors_only(check_workflow(workflow, info=info))
        if problems:
            raise JobError(f"the workflow cannot run on this service ({len(problems)} problem{'s' if len(problems) != 1 else ''}); "
                           "nothing was sent", [p.line() for p in problems])
    client_id = uuid.uuid4().hex
    events = client.events(client_id, timeout=min(10.0, timeout))
    try:
        status, body = client.post_prompt(workflow, client_id)
    except BaseException:
        if events is not None:
            events.close()
        raise
    if status == 400 or not isinstance(body, Mapping) or "prompt_id" not in body:
        if events is not None:
            events.close()
        raise JobError("ComfyUI refused the workflow", prompt_error_lines(body, workflow),
                       "fix the nodes above (eascomfy check WORKFLOW.json lists every problem)")
    prompt_id = str(body["prompt_id"])
    partial = node_error_lines(body.get("node_errors") or {}, workflow)
    progress.info(f"queued as {prompt_id}" + (f" (number {body.get('number')})" if body.get("number") is not None else ""))
    if partial:
        for line in partial:
            progress.warn(line)
        if not allow_partial:
            if events is not None:
                events.close()
            client.cancel(prompt_id)
            raise JobError("ComfyUI accepted only some of the outputs; the job was cancelled", partial,
                           "fix the nodes above, or allow a partial run to get the outputs that passed",
                           param="allow_partial")
    try:
        entry = _follow(client, events, _Follower(prompt_id, workflow, progress), deadline, timeout)
    except KeyboardInterrupt:
        if confirm(f"stop prompt {prompt_id} on the server?"):
            progress.info(f"prompt {prompt_id}: {CANCELLED[client.cancel(prompt_id)]}")
        else:
            progress.info(f"left {prompt_id} on the server")
        raise
    failure = _history_error(entry, workflow)
    outputs = entry.get("outputs") or {}
    try:
        got = download_outputs(client, outputs, out_dir, progress, deadline)
    except CloudError as exc:
        if exc.code != "Deadline":
            raise
        raise WaitTimeout(f"prompt {prompt_id} finished, but its outputs were not all downloaded within {timeout:g} s "
                          f"({exc.message}); they stay on the service", "allow it more time", param="timeout") from None
    report = RunReport(prompt_id, "error" if failure else "success", time.monotonic() - started, got.files, got.refused,
                       partial, got.unwritable)
    if failure:
        raise JobError(f"prompt {prompt_id} failed", [failure], "see the node above; fix its inputs or the model")
    return report
