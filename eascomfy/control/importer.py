"""``eascomfy import``: adopt a live service (made in the console, with eascmd or Terraform).

One DescribeService, then ``core.importer`` maps its config to spec fields; the spec is loaded
and rendered through the same path ``plan`` takes (``load_spec`` + ``render``), and every key the
fields do not reproduce goes into ``overrides:``. A field the spec rules refuse is dropped (and
so lands in ``overrides:`` too). The file is written only when it renders to the live config.

Adopting (the default) then records what eascomfy keeps on the service, as Terraform writes its
state: its own ``eascomfy/*`` labels (managed-by, edition, applied-sha, user-labels). The service
config is not touched, so no new version is made; afterwards ``plan`` shows no change.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters.eas import EasClient
from ..core.editions import all_editions, load_edition, load_template
from ..core.importer import Imported, overrides_for, secret_paths, spec_fields, spec_text
from ..core.merge import merge_all
from ..core.plan import diff, make_plan, normalize
from ..core.render import SPEC_LABEL
from ..core.render import labels as spec_labels
from ..core.render import render
from ..core.spec import Spec, load_spec
from ..errors import SpecError, UsageError
from ..local.files import probe, write_atomic
from ..ports import Progress

MAX_PASSES = 12  # each pass drops at most one refused field


@dataclass
class ImportResult:
    service: str
    region: str
    file: Path
    edition: str
    notes: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)  # top-level keys kept in overrides
    residual: list[str] = field(default_factory=list)  # changes a plan would still show
    adopted: bool = False
    labels_set: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "region": self.region,
            "file": str(self.file),
            "edition": self.edition,
            "notes": self.notes,
            "secrets": self.secrets,
            "overrides": self.overrides,
            "residual_changes": self.residual,
            "adopted": self.adopted,
            "labels_set": self.labels_set,
        }


def _load(text: str, directory: Path) -> Spec:
    """Load ``text`` as a spec file in ``directory`` (the project's editions/templates apply)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".eascomfy-import-", suffix=".yaml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return load_spec(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _drop(data: dict[str, Any], dotted: str) -> bool:
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if isinstance(node, dict) and parts[-1] in node and parts[-1] not in ("name", "region", "edition"):
        del node[parts[-1]]
        return True
    return False


def _fields(imported: Imported, directory: Path) -> Spec:
    """Load the mapped fields, dropping (and noting) each one the spec's schema or rules refuse."""
    for _ in range(MAX_PASSES):
        try:
            return _load(spec_text(imported, {}, []), directory)
        except SpecError as exc:
            where = exc.path or ""
            if not where or not _drop(imported.data, where) and not _drop(imported.data, where.rsplit(".", 1)[0]):
                raise SpecError(f"the imported spec is refused: {exc.message}", hint=exc.hint, path=exc.path) from None
            imported.notes.append(f"{where}: {exc.message}; kept in overrides")
    raise SpecError("the imported spec is refused: too many fields could not be mapped")


def import_service(
    client: EasClient,
    name: str,
    out: Path,
    progress: Progress,
    *,
    force: bool = False,
    adopt: bool = True,
) -> ImportResult:
    """Read ``name``, write its spec to ``out``; with ``adopt``, set eascomfy's labels on it."""
    out = Path(out)
    if probe(out, "out") is not None and not force:
        raise UsageError(f"{out} exists; not overwritten", "choose another file, or allow overwriting it", param="out")
    live = client.require(name)
    directory = out.parent
    editions = all_editions(directory)
    template = load_template(directory)
    scripts = {e.name: _base_script(template, e.service) for e in editions}
    imported = spec_fields(name, client.region, live.config, live.labels, editions, scripts, live.safety_lock)
    edition = load_edition(imported.data["edition"], directory)
    if not edition.can("api_deploy"):
        raise UsageError(f"the {edition.title} cannot be managed through the EAS API, so it cannot be imported")

    target = normalize(live.config)
    spec = _fields(imported, directory)
    overrides, lost = overrides_for(render(spec), target)
    text = spec_text(imported, overrides, lost)
    spec = _load(text, directory)
    rendered = render(spec)
    residual = [c.line() for c in diff(rendered, target)]
    secrets = imported.secrets + secret_paths(overrides)
    imported.secrets = secrets
    text = spec_text(imported, overrides, lost)
    write_atomic(out, text)
    progress.info(f"wrote {out}: {imported.data['edition']} edition, {len(overrides)} top-level key(s) in overrides")
    for note in imported.notes:
        progress.warn(f"not mapped: {note}")
    for path in lost:
        progress.warn(f"not mapped: {path} is null on the live service")
    for secret in secrets:
        progress.warn(f"{secret} looks like a secret and is now in {out}: keep it out of git")

    result = ImportResult(
        name, client.region, out, imported.data["edition"], imported.notes + [f"{p}: null" for p in lost],
        secrets, sorted(overrides), residual,
    )
    if residual:
        for line in residual:
            progress.warn(f"the spec does not reproduce the live service: {line}")
        return result
    wanted = {**spec_labels(spec), SPEC_LABEL: out.name}  # the spec was loaded from a temporary file
    plan = make_plan(name, client.region, rendered, wanted, live.config, live.labels, live.current_version)
    if adopt and (plan.labels_set or plan.labels_remove):
        if plan.labels_set:
            client.set_labels(name, plan.labels_set)
        if plan.labels_remove:
            client.delete_labels(name, plan.labels_remove)
        result.adopted, result.labels_set = True, plan.labels_set
        progress.info(f"adopted {name}: eascomfy's labels set (the service config is unchanged)")
    return result


def _base_script(template: dict[str, Any], fragment: dict[str, Any]) -> str:
    """An edition's run command before eascomfy adds to it (as ``core.render`` builds it)."""
    container = merge_all((template.get("containers") or [{}])[0], (fragment.get("containers") or [{}])[0])
    return str(container.get("script") or "")
