"""ACS3-HMAC-SHA256, the signature every EAS OpenAPI call carries: the canonical request as the
SDK builds it, the server-side check (``verify_signature``, with clock skew and nonce replay), and
a client-side ``authorization_header`` for tests that hand-craft calls.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections import OrderedDict
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

from ..credentials import secret_for
from .errors import EasError

ALGORITHM = "ACS3-HMAC-SHA256"
MAX_CLOCK_SKEW = 15 * 60
REQUIRED_SIGNED_HEADERS = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Decoded query pairs, sorted by key, values re-encoded RFC 3986 (keys are not encoded)."""
    return "&".join(f"{k}={quote(v, safe='~')}" for k, v in sorted(query, key=lambda kv: kv[0]))


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The canonical request as the SDK builds it. ``path`` is the raw path as sent (not
    re-encoded); ``headers`` maps lowercased names to all their values."""
    lines = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in headers.get(name, ())))}\n" for name in signed_headers
    )
    parts = [method.upper(), path or "/", canonical_query(query), lines, ";".join(signed_headers), payload_hash]
    return "\n".join(parts)


def signature(secret: str, canonical: str) -> str:
    string_to_sign = f"{ALGORITHM}\n{_sha256_hex(canonical.encode('utf-8'))}"
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(
    access_key_id: str,
    secret: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
) -> str:
    """Client side: sign every header given (as the SDK does), for tests that hand-craft calls."""
    lowered = {k.lower(): [v] for k, v in headers.items()}
    signed = sorted(lowered)
    canonical = canonical_request(method, path, query, lowered, signed, lowered["x-acs-content-sha256"][0])
    return (
        f"{ALGORITHM} Credential={access_key_id},SignedHeaders={';'.join(signed)},"
        f"Signature={signature(secret, canonical)}"
    )


def _parse_authorization(value: str) -> tuple[str, str, list[str], str]:
    algorithm, _, rest = value.strip().partition(" ")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(",") if "=" in part)
    if not all(fields.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        raise EasError(400, "IncompleteSignature", "The Authorization header is malformed")
    signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip()]
    return algorithm, fields["Credential"], signed, fields["Signature"]


class NonceCache:
    """Remembers recent x-acs-signature-nonce values so a replayed request is refused."""

    def __init__(self, size: int = 10000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, nonce: str) -> bool:
        if nonce in self._seen:
            return False
        self._seen[nonce] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def verify_signature(
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    body: bytes,
    nonces: NonceCache | None = None,
    now: float | None = None,
) -> str:
    """Check an OpenAPI call the way the gateway does and return its AccessKey id, or raise
    ``EasError``. Messages never contain the secret or the expected signature."""
    auth = (headers.get("authorization") or [""])[0]
    if not auth:
        raise EasError(400, "MissingAuthorization", "The Authorization header is required")
    algorithm, access_key_id, signed, given = _parse_authorization(auth)
    if algorithm != ALGORITHM:
        raise EasError(400, "IncompleteSignature", f"Unsupported signature algorithm {algorithm!r}")
    secret = secret_for(access_key_id)
    if secret is None:
        raise EasError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    missing = [h for h in REQUIRED_SIGNED_HEADERS if h not in signed]
    if missing:
        raise EasError(400, "IncompleteSignature", f"SignedHeaders must include: {', '.join(missing)}")
    payload_hash = (headers.get("x-acs-content-sha256") or [""])[0]
    if payload_hash != _sha256_hex(body):
        raise EasError(403, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the body.")
    _check_date((headers.get("x-acs-date") or [""])[0], time.time() if now is None else now)
    expected = signature(secret, canonical_request(method, raw_path, query, headers, signed, payload_hash))
    if not hmac.compare_digest(expected, given):
        raise EasError(403, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
    if nonces is not None and not nonces.add((headers.get("x-acs-signature-nonce") or [""])[0]):
        raise EasError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    return access_key_id


def _check_date(value: str, now: float) -> None:
    try:
        ts = calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise EasError(400, "InvalidTimeStamp.Format", "x-acs-date must be yyyy-MM-ddTHH:mm:ssZ (UTC)") from None
    if abs(now - ts) > MAX_CLOCK_SKEW:
        raise EasError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
