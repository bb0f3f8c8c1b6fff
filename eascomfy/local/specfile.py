"""Edits of the user's spec file that keep its comments and layout (``update-image``,
``wheels push``): each is a text edit of the lines concerned, located with ruamel.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

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
    added. A name the spec would refuse is refused first."""
    from ..core.validate import field_problem

    for wheel in wheels:
        problem = field_problem(wheel, "wheels", "items")
        if problem is not None:
            raise UsageError(f"{wheel!r} cannot go into the spec's wheels: {problem}", "rename the wheel file")
    return [item for item, _ in edit_list(path, "wheels", [(w, None) for w in wheels])]


def yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when that reads back as the same string, else quoted
    (a JSON string is a YAML double-quoted scalar)."""
    import json

    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+!<>=~ -]*", value) and not value.endswith(" "):
        return value
    return json.dumps(value)


def edit_list(path: Path, key: str, add: list[tuple[str, str | None]], remove: Iterable[str] = ()) -> list[tuple[str, str | None]]:
    """Edit the top-level list ``key`` of the spec file as text, keeping every other line: drop the
    items equal to one of ``remove`` (plain strings), append ``add`` ((item, note) pairs: a string
    or a one-line flow mapping such as ``{git: URL, rev: SHA}``, and a ``# note`` written after it
    in a block list). The list is created when absent. Returns the pairs added (items already
    there are not repeated)."""
    from ruamel.yaml import YAML

    text = path.read_text(encoding="utf-8")
    doc = YAML().load(text)
    current = doc.get(key) if doc is not None else None
    remove = set(remove)
    kept = [item for item in (current or []) if not (isinstance(item, str) and item in remove)]
    seen = {str(item) for item in kept}
    new = [(item, note) for item, note in dict(add).items() if item not in seen]
    if not new and len(kept) == len(current or []):
        return []
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if current is None:
        lines.append(f"{key}:\n" + "".join(_block_item("  ", item, note) for item, note in new))
    elif (current.fa.flow_style() or not current) and any(note for _, note in new) and _alone(lines, doc, key):
        # notes cannot follow items of a flow list: it becomes a block list, items in order
        line, col = doc.lc.value(key)
        rest = lines[line][lines[line].index("]", col) + 1:].strip()
        indent = " " * (doc.lc.key(key)[1] + 2)
        old = [(i if isinstance(i, str) else _flow_mapping(i), None) for i in kept]
        lines[line] = lines[line][:col].rstrip() + (f"  {rest}" if rest else "") + "\n" + "".join(
            _block_item(indent, item, note) for item, note in old + new)
    elif current.fa.flow_style() or not current:
        line, col = doc.lc.value(key)
        end = lines[line].index("]", col) + 1
        items = ", ".join([*(yaml_scalar(i) if isinstance(i, str) else _flow_mapping(i) for i in kept),
                           *(item if item.startswith("{") else yaml_scalar(item) for item, _ in new)])
        lines[line] = lines[line][:col] + f"[{items}]" + lines[line][end:]
    else:
        last_line, indent = current.lc.item(len(current) - 1)
        dash = " " * (indent - 2)
        lines[last_line + 1 : last_line + 1] = [_block_item(dash, item, note) for item, note in new]
        for i in reversed(range(len(current))):
            item = current[i]
            if isinstance(item, str) and item in remove:
                line, _ = current.lc.item(i)
                if not lines[line].rstrip().endswith(("|", ">")):  # a one-line item: drop its line
                    del lines[line]
        if not kept and not new:
            line, _ = doc.lc.key(key)
            lines[line] = f"{key}: []\n"
    write_atomic(path, "".join(lines))
    return new


def _alone(lines: list[str], doc: Any, key: str) -> bool:
    """Whether the flow list ``key`` sits on its own line with at most a comment after it."""
    line, col = doc.lc.value(key)
    close = lines[line].find("]", col)
    return close >= 0 and (not lines[line][close + 1:].strip() or lines[line][close + 1:].strip().startswith("#"))


def _block_item(dash: str, item: str, note: str | None) -> str:
    value = item if item.startswith("{") else yaml_scalar(item)
    return f"{dash}- {value}" + (f"  # {note}" if note else "") + "\n"


def _flow_mapping(item: object) -> str:
    return "{" + ", ".join(f"{k}: {yaml_scalar(str(v))}" for k, v in dict(item).items()) + "}"  # type: ignore[call-overload]


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


def item_lines(path: Path, key: str) -> list[tuple[str, str]]:
    """(item, the text of its line) for each string item of the top-level list ``key``, e.g. to
    read the note after an item (a flow list's items have no line of their own: "")."""
    from ruamel.yaml import YAML

    text = path.read_text(encoding="utf-8")
    doc = YAML().load(text)
    current = doc.get(key) if doc is not None else None
    if not current:
        return []
    lines = text.splitlines()
    if current.fa.flow_style():  # one line for all: a note there belongs to no one item
        return [(item, "") for item in current if isinstance(item, str)]
    return [(item, lines[current.lc.item(i)[0]]) for i, item in enumerate(current) if isinstance(item, str)]


def set_list_item_value(path: Path, key: str, index: int, field: str, value: str) -> None:
    """Set ``<key>[index].<field>`` (a mapping item of a top-level list) as a text edit of its one
    value, or one key added to a flow mapping's line."""
    from ruamel.yaml import YAML

    text = path.read_text(encoding="utf-8")
    item = YAML().load(text)[key][index]
    lines = text.splitlines(keepends=True)
    if field in item:
        line, col = item.lc.value(field)
        match = re.compile(r"\"[^\"]*\"|'[^']*'|[^\s,#}]+").match(lines[line], col)
        if match is None:
            raise UsageError(f"{path}:{line + 1}: cannot find the value of {key}[{index}].{field} to rewrite")
        lines[line] = lines[line][: match.start()] + yaml_scalar(value) + lines[line][match.end():]
    elif item.fa.flow_style():
        line, col = item.lc.line, item.lc.col
        end = lines[line].index("}", col)
        lines[line] = lines[line][:end] + f", {field}: {yaml_scalar(value)}" + lines[line][end:]
    else:
        first_line, indent = item.lc.key(next(iter(item)))
        lines.insert(first_line + 1, " " * indent + f"{field}: {yaml_scalar(value)}\n")
    write_atomic(path, "".join(lines))
