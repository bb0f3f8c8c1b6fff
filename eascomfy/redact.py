"""Keep secrets out of everything eascomfy prints or logs.

Two layers: values registered at run time (the AccessKey secret, service tokens, signed URLs
that a command obtained) are replaced wherever they appear, and well-known secret shapes (URL
query signatures, Authorization headers, OSS/ACS signatures) are masked by pattern. Every line
that leaves ``eascomfy.cli.output`` passes through ``redact``.
"""

from __future__ import annotations

import functools
import re
import threading

MASK = "***"
# A secret this long is masked wherever it appears; a shorter one only where it stands alone (not
# inside a longer run of letters and digits), so that masking it cannot mangle unrelated words.
ANYWHERE = 6
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
    """Remember a secret so that any later output containing it is masked. A value with no letter
    or digit is no credential (``--token ' '``), and masking every space or dash would garble
    everything printed after it."""
    if value and any(c.isalnum() for c in value):
        with _lock:
            _secrets.add(value)


@functools.lru_cache(maxsize=256)
def _standalone(secret: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(secret) + r"(?![A-Za-z0-9])")


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK) if len(secret) >= ANYWHERE else _standalone(secret).sub(MASK, text)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text
