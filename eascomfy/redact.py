"""Keep secrets out of everything eascomfy prints or logs.

Two layers: values registered at run time (the AccessKey secret, service tokens, signed URLs
that a command obtained) are replaced wherever they appear, and well-known secret shapes (URL
query signatures, Authorization headers, OSS/ACS signatures) are masked by pattern. Every line
that leaves ``eascomfy.cli.output`` passes through ``redact``.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()

_PATTERNS = [
    # query-string credentials: signature=, Signature=, OSSAccessKeyId=, security-token=, token=, expire signature
    re.compile(r"(?i)([?&](?:signature|x-oss-signature|x-oss-credential|ossaccesskeyid|security-?token|x-oss-security-token|token|auth_key|accesskeysecret)=)[^&\s\"']+"),
    # Authorization headers: ACS3/OSS/OSS4 signatures, bearer tokens, raw tokens.
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\n,}]+"),
    re.compile(r"(?i)(Signature=)[0-9a-f]{16,}"),
    re.compile(r"(?i)(access_?key_?secret[\"']?\s*[:=]\s*[\"']?)[^\"'\s,}]+"),
]


def register_secret(value: str | None) -> None:
    """Remember a secret so that any later output containing it is masked."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text
