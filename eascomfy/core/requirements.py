"""Custom node packs' ``requirements.txt`` merged into the spec's ``pip:`` list, with conflicts
between packs named. Pure (``packaging`` parses; nothing is installed or fetched).

What ComfyUI-Manager does with a pack's requirements (``glob/manager_core.py``
``execute_install_script``, ``is_blacklisted``): every line is installed, except ``torch``,
``torchaudio``, ``torchsde`` and ``torchvision``, which the image's own build must keep. eascomfy
does the same, but into the spec's ``pip:`` (EAS installs it before ComfyUI starts), so that two
packs that want incompatible versions are found before a deploy, not on a GPU at start-up.

Who wants what: a line a pack brought is written with a ``# nodes: <pack>`` note after it; a line
without one is the user's own, and the user's word wins (a pack wanting something else is reported,
not refused: that is how a conflict is resolved). Two packs wanting incompatible versions (e.g.
``numpy<2`` and ``numpy>=2``, or two different pins) are refused, naming both packs.

"Incompatible" is decided without an index: the two specifier sets together must accept some
version near one of their bounds (the bound itself, just above it, just below it). That finds
every empty intersection of the usual forms (``==``, ``<``, ``<=``, ``>``, ``>=``, ``~=``, ``!=``,
``==X.*``); a pair it calls compatible may still have no release on PyPI in between, which pip
then reports at install time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

SKIPPED = frozenset({"torch", "torchaudio", "torchsde", "torchvision"})  # ComfyUI-Manager's is_blacklisted
NOTE = re.compile(r"#\s*nodes:\s*(?P<pack>[^\s#]+)\s*$")


@dataclass(frozen=True)
class Wanted:
    """One requirement line and who wants it (a pack's folder name; None: the spec's own)."""

    line: str
    owner: str | None = None

    @property
    def who(self) -> str:
        return self.owner or "the spec's pip"

    def to_dict(self) -> dict[str, str | None]:
        return {"requirement": self.line, "pack": self.owner}


@dataclass(frozen=True)
class Conflict:
    name: str
    wants: tuple[Wanted, ...]

    def line(self) -> str:
        return f"{self.name}: " + ", ".join(f"{w.who} wants {w.line}" for w in self.wants)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "wants": [w.to_dict() for w in self.wants]}


@dataclass
class Merge:
    """The spec's pip list after merging: lines to add (with their pack), lines a pack no longer
    brings (to drop), what was already there, what was left out and why, and the conflicts."""

    add: list[Wanted] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    kept: list[Wanted] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # pack, line, reason
    overruled: list[Conflict] = field(default_factory=list)  # the spec's own line won
    conflicts: list[Conflict] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"added": [w.to_dict() for w in self.add], "dropped": self.drop, "kept": [w.to_dict() for w in self.kept],
                "skipped": self.skipped, "overruled": [c.to_dict() for c in self.overruled],
                "conflicts": [c.to_dict() for c in self.conflicts]}


def read_requirements(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The requirement lines of a ``requirements.txt`` (comments and blank lines dropped) and the
    lines left out with the reason: pip options (``-r``, ``--index-url``...), URLs and paths
    (``git+https://...``, ``./pkg``), lines ``packaging`` cannot read."""
    from packaging.requirements import InvalidRequirement, Requirement

    found, left = [], []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            left.append((line, "a pip option, not a requirement"))
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            left.append((line, "not a requirement pip names by package (a URL or a path?)"))
            continue
        if req.url:
            left.append((line, "a direct URL requirement"))
            continue
        found.append(line)
    return found, left


def owners(lines: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Requirement -> pack, from (item, its line in the spec file) pairs: the ``# nodes: <pack>``
    note written after a line a pack brought."""
    found = {}
    for item, text in lines:
        m = NOTE.search(text)
        if m:
            found[item] = m.group("pack")
    return found


def merge(existing: Iterable[Wanted], packs: dict[str, list[str]],
          allowed: Callable[[str], str | None] | None = None) -> Merge:
    """Merge each pack's requirements (pack -> lines, in order) into ``existing`` (the spec's pip
    list). Lines the same packs brought earlier are replaced (a new version of a pack may want
    other things). ``allowed`` says what is wrong with a line for the spec (None: fine)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    result = Merge()
    current = []
    for w in existing:
        if w.owner in packs:
            result.drop.append(w.line)
        else:
            current.append(w)
    parsed: dict[str, Requirement | None] = {}

    def req(line: str) -> "Requirement | None":
        if line not in parsed:
            try:
                parsed[line] = Requirement(line)
            except Exception:  # the user's own line, unreadable: compared by nothing
                parsed[line] = None
        return parsed[line]

    for pack, lines in packs.items():
        for line in lines:
            new = req(line)
            assert new is not None
            name = canonicalize_name(new.name)
            if name in SKIPPED:
                result.skipped.append({"pack": pack, "line": line, "reason": "the image's own torch stays (as ComfyUI-Manager does)"})
                continue
            problem = allowed(line) if allowed else None
            if problem:
                result.skipped.append({"pack": pack, "line": line, "reason": f"the spec's pip would refuse it: {problem}"})
                continue
            same = [w for w in current if (r := req(w.line)) is not None and canonicalize_name(r.name) == name
                    and str(r.marker or "") == str(new.marker or "")]
            if any(w.line == line for w in same):
                result.kept.append(Wanted(line, pack))
                if line in result.drop:  # the pack still wants it: it stays
                    result.drop.remove(line)
                continue
            clash = [w for w in same if not compatible(str(req(w.line).specifier), str(new.specifier))]  # type: ignore[union-attr]
            mine = Wanted(line, pack)
            users = [w for w in clash if w.owner is None]
            if users:
                result.overruled.append(Conflict(name, (*users, mine)))
                continue
            if clash:
                result.conflicts.append(Conflict(name, (*clash, mine)))
                continue
            if line in result.drop:
                result.drop.remove(line)
                result.kept.append(mine)
            else:
                result.add.append(mine)
            current.append(mine)
    return result


def compatible(a: str, b: str) -> bool:
    """Whether the specifier sets ``a`` and ``b`` (``>=1.2,<2``) accept a common version, judged
    at versions near their bounds (see the module docstring)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    both = SpecifierSet(a) & SpecifierSet(b)
    if not len(both):
        return True
    candidates: set[Version] = {Version("0"), Version("99999")}
    for spec in both:
        try:
            v = Version(spec.version.removesuffix(".*"))
        except InvalidVersion:  # an arbitrary-equality (===) string: compared as text
            return all(s.version == spec.version for s in both if s.operator == "===")
        r = v.release
        near = [r, r + (1,), r[:-1] + (r[-1] + 1,)]
        near += [r[:i] + (r[i] - 1, 99999) for i in range(len(r)) if r[i] > 0]
        candidates.add(v)
        candidates.update(Version(".".join(map(str, n))) for n in near)
    return any(both.contains(c, prereleases=True) for c in candidates)
