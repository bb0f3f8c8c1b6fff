"""Edits of the user's spec file that keep its comments and layout (``update-image``,
``wheels push``): each is a text edit of the lines concerned, located with ruamel.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .files import write_atomic

if TYPE_CHECKING:
    from ..core.spec import Spec


def rewrite_image_version(path: Path, version: str) -> bool:
    """Set ``image.version`` in the spec file as a text edit of that one value (or one added line),
    so comments and layout stay exactly as they were; True if the file changed."""
    from ruamel.yaml import YAML

    text = path.read_text(encoding="utf-8")
    doc = YAML().load(text)
    image = doc.get("image") if doc is not None else None
    lines = text.splitlines(keepends=True)
    value = f'"{version}"'
    if image is not None and "version" in image:
        if str(image["version"]) == version:
            return False
        line, col = image.lc.value("version")
        match = re.compile(r"\"[^\"]*\"|'[^']*'|[^\s,#}]+").match(lines[line], col)
        if match is None:
            raise UsageError(f"{path}:{line + 1}: cannot find the value of image.version to rewrite")
        lines[line] = lines[line][: match.start()] + value + lines[line][match.end() :]
    elif image is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"image:\n  version: {value}\n")
    elif image and not image.fa.flow_style():
        first_line, indent = image.lc.key(next(iter(image)))
        lines.insert(first_line, " " * indent + f"version: {value}\n")
    else:
        raise UsageError(f"{path}: cannot add image.version to this image mapping", f'add `version: {value}` under image')
    write_atomic(path, "".join(lines))
    return True


def add_wheels(path: Path, wheels: list[str]) -> list[str]:
    """Append wheel file names to the spec's ``wheels:`` list (created if absent); returns those
    added. Block lists get one ``- name`` line each under the last item; flow lists are rewritten
    on their line; other lines are untouched. A name the spec would refuse is refused first."""
    from ruamel.yaml import YAML

    from ..core.validate import field_problem

    for wheel in wheels:
        problem = field_problem(wheel, "wheels", "items")
        if problem is not None:
            raise UsageError(f"{wheel!r} cannot go into the spec's wheels: {problem}", "rename the wheel file")

    text = path.read_text(encoding="utf-8")
    doc = YAML().load(text)
    current = doc.get("wheels") if doc is not None else None
    new = [w for w in dict.fromkeys(wheels) if w not in (current or [])]
    if not new:
        return []
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if current is None:
        lines.append("wheels:\n" + "".join(f"  - {w}\n" for w in new))
    elif current.fa.flow_style() or not current:
        line, col = doc.lc.value("wheels")
        end = lines[line].index("]", col) + 1
        items = ", ".join([*map(str, current), *new])
        lines[line] = lines[line][:col] + f"[{items}]" + lines[line][end:]
    else:
        last_line, indent = current.lc.item(len(current) - 1)
        lines[last_line + 1 : last_line + 1] = [" " * (indent - 2) + f"- {w}\n" for w in new]
    write_atomic(path, "".join(lines))
    return new


_VERSION_VALUE = re.compile(r"(\bversion\s*:\s*)(\"[^\"]*\"|'[^']*'|[^\s,#}]+)")


def write_image_version(spec: "Spec", version: str) -> Path | None:
    """Record ``version`` where the spec's ``image.version`` came from: the base file, an
    ``environments.<env>`` block in it, or an ``eascomfy.<env>.yaml`` overlay, so that the next
    deploy with the same ``--env`` keeps it. Returns the file written, or None if nothing changed."""
    where = spec.positions.lines.get(("image", "version"))
    if where is None:  # no file sets it: add it to the base spec
        return Path(spec.file) if rewrite_image_version(Path(spec.file), version) else None
    file, line_no = Path(where[0]), where[1]
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    line = lines[line_no - 1]
    match = _VERSION_VALUE.search(line)
    if match is None:
        raise UsageError(f"{file}:{line_no}: cannot find the value of image.version to rewrite", "edit it by hand")
    new = f'"{version}"'
    if match.group(2).strip("\"'") == version:
        return None
    lines[line_no - 1] = line[: match.start(2)] + new + line[match.end(2) :]
    write_atomic(file, "".join(lines))
    return file
