"""Model warm-up in the EAS emulator, as the EAS doc describes it
(https://www.alibabacloud.com/help/en/pai/user-guide/warm-up-model-services): a service whose
config names ``warm_up_data_path`` (an ``oss://`` request file) gets those requests sent to it
during startup, and "the model service is considered fully started only after these warm-up
requests are successfully sent". A text file holds one request per line.

Here: a version that came up Running and names a request file is not ready (its instances are
Running but not ready, its endpoint answers 503) until ``EasSandbox.warmer`` (the ComfyUI
attachment: it reads the file from the OSS emulator and runs each line in the service's
ComfyUI) has sent every line. Done: the ready delay starts, with a ``WarmUpCompleted`` event. A
missing file or a request the container refuses: the service becomes Failed (``WarmUpFailed``).
UNVERIFIED (docs/unverified.md): which container path EAS sends a line to for an image service
(here ``/prompt``, or ``/api_prompt`` for the API image); whether a failed warm-up fails the
service or only logs (``Fidelity.warmup_failure``); whether each file is repeated (an older doc
says five times: ``Fidelity.warmup_repeat``). Nothing here speaks HTTP; state lives in
``ServiceRecord.ops["warmup"]``.
"""

from __future__ import annotations

from typing import Any

KEY = "warm_up_data_path"


def path_of(config: dict[str, Any]) -> str | None:
    value = config.get(KEY)
    return value if isinstance(value, str) and value else None


def generation(rec: Any) -> list[Any]:
    """The instances that came up last (``instances.came_up``): each new set warms up once."""
    g = (rec.ops or {}).get("generation") or {}
    return [g.get("version"), g.get("started")]


def pending(rec: Any) -> bool:
    """Running, naming a request file, and its current instances not yet warmed up."""
    if rec.status != "Running" or path_of(rec.config) is None:
        return False
    done = (rec.ops or {}).get("warmup") or {}
    return done.get("generation") != generation(rec)


def record(rec: Any, ok: bool, message: str, sent: int, at: float) -> None:
    rec.ops["warmup"] = {"generation": generation(rec), "ok": ok, "message": message, "sent": sent, "at": at}
