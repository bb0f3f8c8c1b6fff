"""Secret env values: which ones are secret, where they come from, and how they are shown. Pure.

A value of ``env`` is secret when its name looks like one (``HF_TOKEN``, ``OPENAI_API_KEY``,
``DB_PASSWORD``: see ``looks_secret``), when the spec marks it (``{value: ..., secret: true}``),
or when it comes from the environment eascomfy runs in (``"${env:HF_TOKEN}"``, so it never sits in
git). ``{value: ..., secret: false}`` unmarks a name that only looks secret
(``TOKENIZERS_PARALLELISM`` does not: names are read word by word).

The rendered body (what CreateService/UpdateService get) carries the values; everything shown to
people -- plans, ``render`` without ``--show-secrets``, saved plans -- carries ``MASK`` instead
(``mask_config``, ``mask_change``). A saved plan still notices a changed secret: it stores a
salted, slow fingerprint of the config (``fingerprint``), never the value or a fast hash of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

MASK = "***"  # the same mask eascomfy.redact prints
# Name words that mark a secret, and fragments that mark one anywhere in the name.
SECRET_WORDS = frozenset(
    {"TOKEN", "TOKENS", "KEY", "KEYS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASS", "AUTH",
     "AUTHORIZATION", "CREDENTIAL", "CREDENTIALS", "PRIVATE", "COOKIE", "SIGNATURE", "DSN"}
)
SECRET_FRAGMENTS = ("SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY", "ACCESSKEY", "AUTHTOKEN")
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
# PBKDF2 iterations of a saved plan's fingerprint: each guess at a secret costs this many hashes.
FINGERPRINT_ROUNDS = 100_000


def looks_secret(name: str) -> bool:
    upper = name.upper()
    words = set(re.split(r"[^A-Z0-9]+", upper))
    return bool(words & SECRET_WORDS) or any(f in upper for f in SECRET_FRAGMENTS)


@dataclass(frozen=True)
class Secrets:
    """Which env names hold secrets, and the secret values themselves (to register for redaction
    and to scrub wherever else they appear). Callable: ``secrets(name)`` is True for a secret."""

    names: frozenset[str] = frozenset()  # marked secret, or set from the environment
    public: frozenset[str] = frozenset()  # marked `secret: false`
    values: tuple[str, ...] = ()

    def __call__(self, name: Any) -> bool:
        if not isinstance(name, str):
            return False
        return name in self.names or (looks_secret(name) and name not in self.public)


@dataclass
class ResolvedEnv:
    env: dict[str, Any]
    secrets: Secrets
    unresolved: dict[str, str] = field(default_factory=dict)  # env name -> the variable not set
    problems: list[tuple[str, str]] = field(default_factory=list)  # (env name, what is wrong)


def resolve_env(raw: Mapping[str, Any], environ: Mapping[str, str]) -> ResolvedEnv:
    """The spec's ``env`` with its mapping forms unwrapped and ``${env:NAME}`` references filled
    from ``environ``; which names are secret; what could not be resolved."""
    env: dict[str, Any] = {}
    names, public, values = set(), set(), []
    unresolved: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for name, item in raw.items():
        marked = None
        if isinstance(item, dict):
            marked, item = item.get("secret"), item.get("value")
        if isinstance(item, str) and "${env:" in item:
            if ENV_REF.sub("", item).count("${env:"):
                problems.append((name, "a reference must read ${env:NAME}, NAME being letters, digits and _"))
            missing = [ref for ref in ENV_REF.findall(item) if ref not in environ]
            if missing:
                unresolved[name] = missing[0]
            else:
                item = ENV_REF.sub(lambda m: environ[m.group(1)], item)
            if marked is None:
                marked = True  # what comes from the environment stays out of git and out of sight
        if marked is True:
            names.add(name)
        elif marked is False:
            public.add(name)
        env[name] = item
    secrets = Secrets(frozenset(names), frozenset(public))
    for name, item in env.items():
        if secrets(name) and name not in unresolved and item not in (None, ""):
            values.append(env_text(item))
    return ResolvedEnv(env, Secrets(secrets.names, secrets.public, tuple(dict.fromkeys(values))), unresolved, problems)


def env_text(value: Any) -> str:
    """An env value as the container gets it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- showing ---------------------------------------------------------------------------------------
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path(path: str) -> list[str | int]:
    return [int(i) if i else k for k, i in _TOKEN.findall(path)]


def _lookup(doc: Any, path: list[str | int]) -> Any:
    for part in path:
        if isinstance(part, int) and isinstance(doc, list) and part < len(doc):
            doc = doc[part]
        elif isinstance(part, str) and isinstance(doc, dict):
            doc = doc.get(part)
        else:
            return None
    return doc


class _Masker:
    def __init__(self, secrets: Secrets, replace: Any = MASK) -> None:
        self.secrets = secrets
        self.replace = replace  # MASK, or a function of the value (fingerprints)

    def _hide(self, value: Any) -> Any:
        return self.replace(env_text(value)) if callable(self.replace) else self.replace

    def scrub(self, text: str) -> str:
        for value in sorted(self.secrets.values, key=len, reverse=True):
            if text == value:
                return self._hide(value)
            if len(value) >= 6 and value in text:
                text = text.replace(value, self._hide(value))
        return text

    def entry(self, item: Any) -> Any:
        if isinstance(item, dict) and "value" in item and self.secrets(item.get("name")):
            return {**{k: self.walk(v, k) for k, v in item.items()}, "value": self._hide(item["value"])}
        return self.walk(item)

    def walk(self, node: Any, key: Any = None) -> Any:
        if isinstance(node, dict):
            return {k: self.walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [self.entry(v) if key == "env" else self.walk(v) for v in node]
        if isinstance(node, str):
            return self.scrub(node)
        return node

    def at(self, value: Any, path: list[str | int], doc: Any) -> Any:
        """``value`` found at ``path`` of ``doc``, hidden as it would be inside ``doc``."""
        if value is None:
            return None
        if len(path) >= 3 and path[-1] == "value" and isinstance(path[-2], int) and path[-3] == "env":
            return self._hide(value) if self.secrets(_lookup(doc, path[:-1] + ["name"])) else self.walk(value)
        if len(path) >= 2 and isinstance(path[-1], int) and path[-2] == "env":
            return self.entry(value)
        return self.walk(value, path[-1] if path else None)


def mask_config(doc: Any, secrets: Secrets) -> Any:
    """``doc`` (a service config) with every secret env value, and every secret value found
    elsewhere in it, replaced by ``MASK``."""
    return _Masker(secrets).walk(doc)


def mask_value(value: Any, path: str, doc: Any, secrets: Secrets) -> Any:
    """A value of a plan's change at ``path`` (``containers[0].env[1].value``), as shown: masked
    when it is, or holds, a secret of ``doc`` (the config the value belongs to)."""
    return _Masker(secrets).at(value, _path(path), doc)


def has_secrets(doc: Any, secrets: Secrets) -> bool:
    return mask_config(doc, secrets) != doc


def fingerprint(config: dict[str, Any], secrets: Secrets, salt: str) -> str:
    """sha256 of ``config`` with each secret replaced by its salted PBKDF2 digest: equal for equal
    configs (a saved plan compares them), slow to test guesses at a secret against."""

    def digest(value: str) -> str:
        raw = hashlib.pbkdf2_hmac("sha256", value.encode("utf-8"), salt.encode("utf-8"), FINGERPRINT_ROUNDS)
        return "pbkdf2-sha256:" + raw.hex()

    hidden = _Masker(secrets, digest).walk(config)
    text = json.dumps(hidden, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
