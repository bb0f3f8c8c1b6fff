"""Safe YAML loading that remembers where every value came from.

``load_yaml`` returns plain Python data plus a ``Positions`` map from field paths to lines, so a
validation error can say ``eascomfy.yaml:12: resources.instances: expected an integer``. It refuses,
with one clear ``SpecError`` each: files that are not text, too large, empty, several documents,
duplicate keys, non-string keys, merge keys, alias expansion beyond a node budget (YAML
bombs), explicit tags other than YAML's own (``!!python/name:``, ``!custom``), and values JSON
cannot carry (``.nan``, ``.inf``, dates), since everything a spec holds may end up in the service
JSON. Plain scalars keep their source text so a quoted-string hint can be given (``1.10``).
"""

from __future__ import annotations

import datetime
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError

MAX_BYTES = 1024 * 1024
MAX_NODES = 20_000

PathT = tuple[str | int, ...]

_YAML_TAG = "tag:yaml.org,2002:"
# The tags a spec may use (written out, or as YAML resolves plain values): JSON's value types, and
# timestamps, which are refused with a quoting hint below rather than as an unknown tag.
_SCALAR_TAGS = {_YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}


@dataclass
class Positions:
    """Field path -> (file, line), plus the source text of plain (unquoted) scalars."""

    lines: dict[PathT, tuple[str, int]] = field(default_factory=dict)
    plain: dict[PathT, str] = field(default_factory=dict)

    def location(self, path: PathT) -> Location:
        """The closest known location for ``path``, walking up to its parents."""
        probe = tuple(path)
        while True:
            if probe in self.lines:
                file, line = self.lines[probe]
                return Location(file, line)
            if not probe:
                return Location()
            probe = probe[:-1]

    def under(self, prefix: PathT) -> "Positions":
        """The positions below ``prefix``, re-rooted (for an overlay nested in a spec)."""
        n = len(prefix)
        sub = Positions()
        sub.lines = {p[n:]: v for p, v in self.lines.items() if p[:n] == prefix}
        sub.plain = {p[n:]: v for p, v in self.plain.items() if p[:n] == prefix}
        return sub

    def overlay(self, other: "Positions") -> "Positions":
        """Positions of a merge: ``other``'s win where it set something."""
        merged = Positions(dict(self.lines), dict(self.plain))
        for p in other.lines:
            # A value replaced by the overlay no longer has the base's plain text.
            merged.plain.pop(p, None)
        merged.lines.update(other.lines)
        merged.plain.update(other.plain)
        return merged


def format_path(path: PathT) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file ("a FIFO"), else None: decided
    without opening it, since opening a FIFO blocks until a writer comes and a device never ends."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None  # the read that follows says what is wrong
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
            stat.S_IFSOCK: "a socket"}.get(stat.S_IFMT(mode), "not a regular file")


def read_text(path: Path, display: str | None = None) -> str:
    """Read a spec-like file as UTF-8 text, refusing binaries and oversized files."""
    name = display or str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError(
            "file not found", location=Location(name), hint="create one with `eascomfy init` or pass -f FILE"
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", location=Location(name)) from None
    if path.is_dir():
        raise SpecError("is a directory, expected a YAML file", location=Location(name))
    if (kind := not_regular(path)) is not None:
        raise SpecError(f"is {kind}, expected a YAML file", location=Location(name))
    if size > MAX_BYTES:
        raise SpecError(f"file is {size} bytes; a spec is at most {MAX_BYTES} bytes", location=Location(name))
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise SpecError("is a binary file, expected YAML text", location=Location(name))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"is not UTF-8 text (byte {exc.start})", location=Location(name)) from None


def load_yaml(text: str, file: str) -> tuple[Any, Positions]:
    """Parse one YAML document into data and positions, or raise ``SpecError``."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader_cls)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        if "but found another document" in str(exc):
            problem = "holds several YAML documents; a spec is one document"
        raise SpecError(f"not valid YAML: {problem}", location=Location(file, line)) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", location=Location(file)) from None
    positions = Positions()
    if node is None:
        return None, positions
    builder = _Builder(file, positions, yaml)
    return builder.build(node, ()), positions


class _Builder:
    def __init__(self, file: str, positions: Positions, yaml: Any) -> None:
        self.file = file
        self.positions = positions
        self.yaml = yaml
        self.constructor = yaml.SafeLoader("")  # only its scalar constructors are used
        self.budget = MAX_NODES

    def _where(self, node: Any) -> Location:
        return Location(self.file, node.start_mark.line + 1)

    def build(self, node: Any, path: PathT) -> Any:
        yaml = self.yaml
        self.budget -= 1
        if self.budget < 0:
            raise SpecError(
                f"expands to more than {MAX_NODES} values (anchors and aliases nested too deep?)",
                location=self._where(node),
                hint="a spec this large is refused to protect against YAML bombs",
            )
        self.positions.lines.setdefault(path, (self.file, node.start_mark.line + 1))
        expected = {yaml.MappingNode: {_YAML_TAG + "map"}, yaml.SequenceNode: {_YAML_TAG + "seq"}}
        if node.tag not in expected.get(type(node), _SCALAR_TAGS):
            shown = "!!" + node.tag[len(_YAML_TAG) :] if node.tag.startswith(_YAML_TAG) else node.tag
            raise SpecError(
                f"the YAML tag {shown} is not supported",
                location=self._where(node),
                path=_fmt(path),
                hint="a spec holds plain mappings, lists, text, numbers, true/false and null",
            )
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise SpecError(
                        "YAML merge keys (<<) are not supported",
                        location=self._where(key_node),
                        path=_fmt(path),
                        hint="use `environments:` overlays to share settings",
                    )
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                    raise SpecError(
                        "keys must be plain strings",
                        location=self._where(key_node),
                        path=_fmt(path),
                    )
                key = key_node.value
                if key in out:
                    first = self.positions.lines.get(path + (key,), (self.file, 0))[1]
                    raise SpecError(
                        f"duplicate key {key!r} (first set at line {first})",
                        location=self._where(key_node),
                        path=_fmt(path + (key,)),
                    )
                self.positions.lines[path + (key,)] = (self.file, key_node.start_mark.line + 1)
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        try:
            value = self.constructor.construct_object(node, deep=True)
        except ValueError:  # an integer past Python's 4300-digit conversion limit
            raise SpecError(
                f"a number of {len(node.value)} characters is not a value a spec can hold",
                location=self._where(node),
                path=_fmt(path),
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(
                f"{node.value} is not a finite number",
                location=self._where(node),
                path=_fmt(path),
                hint="JSON has no NaN or infinity; give a number",
            )
        if isinstance(value, (datetime.date, datetime.datetime)):
            raise SpecError(
                "a date is not a JSON value",
                location=self._where(node),
                path=_fmt(path),
                hint=f'quote it to keep it text: "{node.value}"',
            )
        if not node.style and not isinstance(value, str):
            self.positions.plain[path] = node.value
        return value


def _fmt(path: PathT) -> str:
    return format_path(path)
