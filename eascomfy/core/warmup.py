"""The spec's ``warmup:``: a small workflow each new instance runs before it takes traffic, as
EAS's model warm-up has it (https://www.alibabacloud.com/help/en/pai/user-guide/warm-up-model-services):
the service JSON's top-level ``warm_up_data_path`` names an ``oss://`` request file; a text file
holds one request per line; EAS sends the requests to the service during startup and counts the
service as started only after they were sent.

The request file: ``count`` lines, each one request body on one line (``request_file``). Its name is its content's hash, under ``.eascomfy/warmup/`` on the
mount, so rendering stays a pure function of the spec and its files, and a changed workflow is a
new path (``plan`` shows it). Deploy writes it there (``storage.warmup``) before the service is
created or updated.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import SpecError, UsageError
from .spec import Spec
from .validate import Violation
from .workflow import load_workflow

WARMUP_DIR = ".eascomfy/warmup/"


def workflow_path(spec: Spec) -> Path:
    path = Path(spec.data["warmup"]["workflow"])
    return path if path.is_absolute() else spec.project_dir / path


def request_file(spec: Spec) -> bytes:
    """The warm-up request file's bytes: ``count`` lines, each the body the container takes: the
    workflow itself for the API image (its ``/api_prompt``, as the queue hands it over), else
    ComfyUI's ``POST /prompt`` body ``{"prompt": workflow}``."""
    workflow = load_workflow(workflow_path(spec))
    body = workflow if spec.edition.can("async_api") else {"prompt": workflow}
    line = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ("\n".join([line] * spec.data["warmup"]["count"]) + "\n").encode("utf-8")


def object_key(spec: Spec) -> str:
    """The request file's key under the mount's prefix (its content's hash: same file, same key)."""
    return WARMUP_DIR + hashlib.sha256(request_file(spec)).hexdigest()[:16] + ".txt"


def oss_path(spec: Spec) -> str:
    """``warm_up_data_path``: the request file on the mounted bucket."""
    return spec.data["storage"]["oss"] + object_key(spec)


def problems(spec: Spec) -> list[Violation]:
    """A warm-up needs the OSS mount (EAS reads the request file from OSS) and a readable
    API-format workflow."""
    storage = spec.data.get("storage") or {}
    if "oss" not in storage:
        what = "a NAS mount" if "nas" in storage else "no storage"
        return [Violation(("warmup",), f"EAS reads the warm-up request file from OSS, and this spec has {what}",
                          "set storage.oss (the request file is written under .eascomfy/warmup/ there)")]
    try:
        load_workflow(workflow_path(spec))
    except (SpecError, UsageError) as exc:
        return [Violation(("warmup", "workflow"), exc.message.replace(str(workflow_path(spec)), spec.data["warmup"]["workflow"]),
                          exc.hint)]
    return []
