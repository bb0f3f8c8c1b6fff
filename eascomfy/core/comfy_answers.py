"""What ComfyUI answers, read into plain records: the output files of a history entry or a sink
result, ``node_errors`` and refused prompts as one line per node, ``execution_error`` events, and
an API-edition sink result (outputs, or the error). Pure: no network, no SDK.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .workflow import Workflow, title


@dataclass(frozen=True)
class OutputFile:
    """One file an output node wrote: ``/view?filename&subfolder&type``, or ``<type>/<subfolder>/<filename>``
    on the mount."""

    node: str
    filename: str
    subfolder: str
    type: str

    @property
    def relative(self) -> str:
        return f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_files(outputs: Mapping[str, Any]) -> list[OutputFile]:
    """Every file in a history entry's (or sink result's) outputs: ``images``, ``gifs`` (video
    nodes such as VHS_VideoCombine), and any other list of ``{filename, subfolder, type}``."""
    found = []
    for node_id, output in outputs.items():
        if not isinstance(output, Mapping):
            continue
        for items in output.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                    found.append(OutputFile(str(node_id), item["filename"], str(item.get("subfolder") or ""),
                                            str(item.get("type") or "output")))
    return found


def _node_name(workflow: Workflow | None, node_id: Any, class_type: Any = None) -> str:
    node = (workflow or {}).get(str(node_id))
    shown = title(node) if node else None
    cls = class_type or (node or {}).get("class_type")
    bits = ", ".join(str(b) for b in dict.fromkeys(x for x in (shown, cls) if x))
    return f"node {node_id}" + (f" ({bits})" if bits else "")


def node_error_lines(node_errors: Mapping[str, Any], workflow: Workflow | None = None) -> list[str]:
    """ComfyUI's ``node_errors`` (from ``/prompt``), one line per error, each naming its node."""
    lines = []
    for node_id, entry in (node_errors or {}).items():
        entry = entry if isinstance(entry, Mapping) else {}
        name = _node_name(workflow, node_id, entry.get("class_type"))
        for error in entry.get("errors") or [{}]:
            message = error.get("message") or "invalid"
            details = error.get("details")
            lines.append(f"{name}: {message}" + (f": {details}" if details else ""))
    return lines


def prompt_error_lines(body: Any, workflow: Workflow | None = None) -> list[str]:
    """ComfyUI's answer to a refused ``/prompt`` (``{"error", "node_errors"}``) as readable lines."""
    if not isinstance(body, Mapping):
        return [str(body)[:500]]
    error = body.get("error")
    lines = []
    if isinstance(error, Mapping):
        head = str(error.get("message") or error.get("type") or "refused")
        details = error.get("details")
        if details and not body.get("node_errors"):
            head += f": {details}"
        lines.append(head)
    elif error:
        lines.append(str(error))
    return lines + node_error_lines(body.get("node_errors") or {}, workflow)


def execution_error_line(data: Mapping[str, Any], workflow: Workflow | None = None) -> str:
    """An ``execution_error`` event's data as one line: node, exception type and message."""
    name = _node_name(workflow, data.get("node_id"), data.get("node_type"))
    kind = data.get("exception_type") or "error"
    message = str(data.get("exception_message") or "").strip() or "no message"
    return f"{name} failed: {kind}: {message}"


@dataclass
class SinkResult:
    """One API-edition result from the sink queue, read into outputs or an error."""

    task_id: str
    ok: bool
    code: str
    outputs: list[OutputFile]
    error: str | None
    data: Any

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "ok": self.ok, "code": self.code, "outputs": [o.to_dict() for o in self.outputs],
                "error": self.error, "data": self.data}


def parse_sink_result(tags: Mapping[str, str], raw: bytes, workflow: Workflow | None = None) -> SinkResult:
    """A sink message: tags ``task_id`` (and ``lastCode`` when it failed); data is the executed
    events then the outputs map, or ComfyUI's error (a refused prompt, an ``execution_error``)."""
    task_id = str(tags.get("task_id") or "")
    code = str(tags.get("lastCode") or "200")
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        data = raw.decode("utf-8", "replace")
    if code == "200" and isinstance(data, list) and data and isinstance(data[-1], Mapping) and "type" not in data[-1]:
        return SinkResult(task_id, True, code, output_files(data[-1]), None, data)
    if isinstance(data, list) and data and isinstance(data[-1], Mapping) and data[-1].get("type") in ("execution_error", "execution_interrupted"):
        last = data[-1]
        error = execution_error_line(last.get("data") or {}, workflow) if last["type"] == "execution_error" else "interrupted"
        done = {k: v for e in data[:-1] if isinstance(e, Mapping) and e.get("type") == "executed"
                for k, v in [(str((e.get("data") or {}).get("node")), (e.get("data") or {}).get("output") or {})]}
        return SinkResult(task_id, False, code if code != "200" else "500", output_files(done), error, data)
    if isinstance(data, Mapping) and ("error" in data or "node_errors" in data):
        return SinkResult(task_id, False, code, [], "; ".join(prompt_error_lines(data, workflow)), data)
    text = data if isinstance(data, str) else json.dumps(data)[:500]
    return SinkResult(task_id, False, code if code != "200" else "unknown", [], f"HTTP {code}: {text[:500]}", data)
