"""The lockfile's format (``eascomfy.lock``): what a deployed service runs and what its mount holds,
as deterministic, reviewable text. Pure: parse (refusing a corrupted file with one clear line),
canonical text, the digest of a section, and the differences between two sections.

One file beside the spec holds one section per deployed service, keyed ``service@region`` (an
environment that names another service or region gets its own section; the section records the
environment too). A section::

    {"env": "prod" | null, "image": "<full image URI>", "mount": "oss://bucket/prefix/",
     "models": [{"kind", "name", "source", "size", "sha256", "crc64", "etag"}],
     "nodes":  [{"name", "url", "commit", "tree"}],
     "wheels": [{"name", "size", "sha256", "crc64", "etag"}]}

``crc64`` is OSS's ``x-oss-hash-crc64ecma``, ``etag`` the object's ETag (a listing shows it, so a
plan compares the mount with the lock with one LIST per folder, no HEAD per file); ``sha256`` is
known when the source published it (Hugging Face's ``X-Linked-Etag``) or the file was hashed;
a node folder's ``tree`` is the SHA-256 of its listing (path, size and ETag of each file), its
``url``/``commit`` are known when it came from git (``local.lockfile.record_nodes``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..errors import UsageError

LOCK_FORMAT = "eascomfy-lock/1"
# The digest of the section a service was last deployed with. A label value of 64 hex digits: the
# documented PAI label rule is at most 128 bytes with no "=" or "," (AIWorkspace Label struct,
# https://www.alibabacloud.com/help/en/pai/developer-reference/api-aiworkspace-2021-02-04-struct-label);
# EAS's own limit is unverified (docs/unverified.md). Not a plan label: plans never remove it.
LOCKFILE_SHA_LABEL = "eascomfy/lockfile-sha"
LISTS = ("models", "nodes", "wheels")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REWRITE = "delete it (or restore it from git) and run `eascomfy storage sync` to write it again"
# field -> (accepted types, required, what was expected)
_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool, str]]] = {
    "models": {
        "kind": ((str,), True, "a models/ folder name"),
        "name": ((str,), True, "a file name"),
        "source": ((str, type(None)), False, "a source URI or null"),
        "size": ((int,), True, "a size in bytes"),
        "sha256": ((str, type(None)), False, "64 hex digits or null"),
        "crc64": ((int, type(None)), False, "an unsigned 64-bit integer or null"),
        "etag": ((str,), False, "an ETag"),
    },
    "nodes": {
        "name": ((str,), True, "a folder name"),
        "url": ((str, type(None)), False, "a git URL or null"),
        "commit": ((str, type(None)), False, "a commit or null"),
        "tree": ((str, type(None)), False, "64 hex digits or null"),
    },
    "wheels": {
        "name": ((str,), True, "a wheel file name"),
        "size": ((int,), True, "a size in bytes"),
        "sha256": ((str, type(None)), False, "64 hex digits or null"),
        "crc64": ((int, type(None)), False, "an unsigned 64-bit integer or null"),
        "etag": ((str,), False, "an ETag"),
    },
}


def section_key(service: str, region: str) -> str:
    """The key of a service's section: ``service@region``."""
    return f"{service}@{region}"


def empty_lock() -> dict[str, Any]:
    return {"format": LOCK_FORMAT, "services": {}}


def parse_lock(text: str, where: str) -> dict[str, Any]:
    """A lockfile's data; a corrupted one is refused with one line naming the file and the field."""

    def bad(path: str, expected: str) -> UsageError:
        return UsageError(f"{where}: {path}: expected {expected}; the lockfile is damaged", _REWRITE)

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: not a lockfile (not JSON: {exc.msg} at line {exc.lineno})", _REWRITE) from None
    if not isinstance(data, dict):
        raise bad("(top level)", "a JSON object")
    if data.get("format") != LOCK_FORMAT:
        raise bad("format", f"{LOCK_FORMAT!r}, got {data.get('format')!r}")
    services = data.get("services")
    if not isinstance(services, dict):
        raise bad("services", "an object of sections keyed service@region")
    for key, section in services.items():
        if not isinstance(section, dict):
            raise bad(f"services.{key}", "an object")
        for name in ("image", "mount", "env"):
            if name in section and not isinstance(section[name], (str, type(None))):
                raise bad(f"services.{key}.{name}", "a string or null")
        for what in LISTS:
            entries = section.get(what, [])
            if not isinstance(entries, list):
                raise bad(f"services.{key}.{what}", "a list")
            for i, entry in enumerate(entries):
                _check_entry(entry, f"services.{key}.{what}[{i}]", _FIELDS[what], bad)
    return data


def _check_entry(entry: Any, path: str, fields: dict[str, tuple[tuple[type, ...], bool, str]], bad: Any) -> None:
    if not isinstance(entry, dict):
        raise bad(path, "an object")
    for name, (types, required, expected) in fields.items():
        if name not in entry:
            if required:
                raise bad(f"{path}.{name}", expected)
            continue
        value = entry[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise bad(f"{path}.{name}", expected)
        if isinstance(value, int) and value < 0:
            raise bad(f"{path}.{name}", expected)
        if name in ("sha256", "tree") and value is not None and not _HEX64.match(value):
            raise bad(f"{path}.{name}", expected)


def canonical(section: dict[str, Any]) -> dict[str, Any]:
    """A section with its lists sorted (models by kind and name, the others by name)."""
    out = dict(section)
    for what in LISTS:
        order = (lambda e: (e["kind"], e["name"])) if what == "models" else (lambda e: e["name"])
        out[what] = sorted((dict(e) for e in section.get(what) or []), key=order)
    return out


def dumps_lock(data: dict[str, Any]) -> str:
    """The lockfile's text: sorted keys, sorted lists, two-space indent, one trailing newline."""
    services = {k: canonical(v) for k, v in sorted((data.get("services") or {}).items())}
    return json.dumps({"format": LOCK_FORMAT, "services": services}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def digest(section: dict[str, Any]) -> str:
    """The SHA-256 of a section's canonical form (64 hex digits: a service label holds it)."""
    text = json.dumps(canonical(section), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tree_hash(files: list[tuple[str, int, str]]) -> str:
    """A node folder's content hash from its listing: (path under the folder, size, ETag)."""
    h = hashlib.sha256()
    for path, size, etag in sorted(files):
        h.update(f"{path}\t{size}\t{etag.strip(chr(34)).lower()}\n".encode("utf-8"))
    return h.hexdigest()


# -- differences -----------------------------------------------------------------------------------
_COMPARED = {"models": ("source", "size", "sha256", "crc64"), "nodes": ("url", "commit", "tree"),
             "wheels": ("size", "sha256", "crc64")}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between two sections: the image, and each model, node or wheel added,
    removed or changed (with the fields that changed). ``old`` is e.g. the version rolled back to."""
    found: list[dict[str, Any]] = []
    if old.get("image") != new.get("image"):
        found.append({"what": "image", "name": "image", "change": "changed", "old": old.get("image"), "new": new.get("image")})
    for what in LISTS:
        ident = (lambda e: f"{e['kind']}/{e['name']}") if what == "models" else (lambda e: e["name"])
        before = {ident(e): e for e in old.get(what) or []}
        after = {ident(e): e for e in new.get(what) or []}
        for name in sorted(set(before) | set(after)):
            a, b = before.get(name), after.get(name)
            if a is None:
                found.append({"what": what[:-1], "name": name, "change": "added"})
            elif b is None:
                found.append({"what": what[:-1], "name": name, "change": "removed"})
            else:
                fields = [f for f in _COMPARED[what] if a.get(f) != b.get(f)]
                if fields:
                    found.append({"what": what[:-1], "name": name, "change": "changed",
                                  "fields": {f: {"old": a.get(f), "new": b.get(f)} for f in fields}})
    return found


def difference_line(d: dict[str, Any]) -> str:
    """One difference as people read it."""
    if d["what"] == "image":
        return f"image: {d['old']} -> {d['new']}"
    if d["change"] != "changed":
        return f"{d['what']} {d['name']}: {d['change']}"
    parts = ", ".join(f"{f} {v['old']} -> {v['new']}" for f, v in d["fields"].items())
    return f"{d['what']} {d['name']}: {parts}"
