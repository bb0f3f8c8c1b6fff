"""eascomfy: ComfyUI on Alibaba Cloud PAI-EAS as reviewed files in git.

The public Python API, for people who script deployments (GitOps bots, notebooks): every name in
``__all__`` is documented in docs/python-api.md and stays importable from here across releases.
Names load on first use, so ``import eascomfy`` costs nothing (the CLI's ``--help`` relies on it)::

    import eascomfy

    spec = eascomfy.load_spec("eascomfy.yaml", env="prod")
    client = eascomfy.connect(spec.region, eascomfy.SILENT)
    plan, _ = eascomfy.plan_service(spec, client)
    if plan.has_changes:
        eascomfy.deploy(spec, client, eascomfy.SILENT)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name -> (module, attribute). The one table of the public API; tests/test_public_api.py checks
# that each resolves and is documented.
_API: dict[str, tuple[str, str]] = {
    # the spec, offline
    "Spec": ("eascomfy.core.spec", "Spec"),
    "load_spec": ("eascomfy.core.spec", "load_spec"),
    "render": ("eascomfy.core.render", "render"),
    "render_labels": ("eascomfy.core.render", "labels"),
    # the control plane
    "connect": ("eascomfy.control.deploy", "connect"),
    "Plan": ("eascomfy.core.plan", "Plan"),
    "plan_service": ("eascomfy.control.deploy", "plan_service"),
    "deploy": ("eascomfy.control.deploy", "deploy"),
    "DeployResult": ("eascomfy.control.deploy", "DeployResult"),
    "update_image": ("eascomfy.control.deploy", "update_image"),
    "rollback": ("eascomfy.control.rollback", "rollback"),
    "status": ("eascomfy.control.lifecycle", "status"),
    # storage: the mounted OSS folder
    "Mount": ("eascomfy.storage.mount", "Mount"),
    "Uploader": ("eascomfy.storage.upload", "Uploader"),
    "model_path": ("eascomfy.storage.mount", "model_path"),
    "plan_sync": ("eascomfy.storage.sync", "plan_sync"),
    "plan_storage": ("eascomfy.storage.lock", "plan_storage"),
    "record_nodes": ("eascomfy.local.lockfile", "record_nodes"),
    "pull_outputs": ("eascomfy.storage.pull", "pull_outputs"),
    # workflows
    "load_workflow": ("eascomfy.core.workflow", "load_workflow"),
    "check_workflow": ("eascomfy.workflows.check", "check_workflow"),
    "Target": ("eascomfy.workflows.target", "Target"),
    "resolve_target": ("eascomfy.workflows.target", "resolve_target"),
    "run_workflow": ("eascomfy.workflows.run", "run"),
    "Journal": ("eascomfy.workflows.journal", "Journal"),
    "submit": ("eascomfy.workflows.queue", "submit"),
    "results": ("eascomfy.workflows.queue", "results"),
    # ports and errors
    "Progress": ("eascomfy.ports", "Progress"),
    "SILENT": ("eascomfy.ports", "SILENT"),
    "EascomfyError": ("eascomfy.errors", "EascomfyError"),
    "UsageError": ("eascomfy.errors", "UsageError"),
    "SpecError": ("eascomfy.errors", "SpecError"),
    "CloudError": ("eascomfy.errors", "CloudError"),
    "WaitTimeout": ("eascomfy.errors", "WaitTimeout"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'eascomfy' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
