"""Signature checks: every request must be signed with Signature V4 (``oss2.AuthV4``) or, where
allowed, V1 (``oss2.Auth``), in the Authorization header or as a presigned URL, with a key pair
known to ``credentials.secret_for``. A failure raises the ``OssError`` OSS would answer.

V1 is refused by default, as real OSS refuses it for accounts created since 2025-03-01 and for
buckets created since 2025-09-01 ("Guidelines for upgrading V1 signatures to V4 signatures",
alibabacloud.com/help/en/oss/developer-reference/guidelines-for-upgrading-v1-signatures-to-v4-signatures):
403 with EC 0002-00000080 (help.aliyun.com/en/oss/user-guide/0002-00000080). The documents give
the status and the EC, not the ``Code``/``Message``; ``AccessDenied`` and the message below are
this emulator's guess (docs/unverified.md). ``Fidelity.signature_v1 = "accepted"`` (the
service passes ``allow_v1``) emulates an old account's old bucket.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from urllib.parse import quote

from aiohttp import web

from ..credentials import secret_for
from .errors import OssError, b64, http_time, invalid_argument
from .target import SUBRESOURCES, Target

_V4_ALGORITHM = "OSS4-HMAC-SHA256"


def _canonical_resource_v1(target: Target) -> str:
    resource = f"/{target.bucket}/{target.key}" if target.bucket else "/"
    sub = sorted((k, v) for k, v in target.params.items() if k in SUBRESOURCES)
    if sub:
        resource += "?" + "&".join(k if v == "" else f"{k}={v}" for k, v in sub)
    return resource


def string_to_sign_v1(request: web.Request, target: Target, date: str) -> str:
    headers = request.headers
    oss_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-oss-"))
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    return "\n".join([request.method, headers.get("Content-MD5", ""), headers.get("Content-Type", ""), date,
                      canonical_headers + _canonical_resource_v1(target)])


def _v4_quote(value: str, safe: str = "-_.~") -> str:
    return quote(value, safe=safe)


def canonical_request_v4(request: web.Request, target: Target, params: dict[str, str],
                         additional: list[str]) -> str:
    uri = _v4_quote(f"/{target.bucket}/{target.key}" if target.bucket else "/", safe="/-_.~")
    encoded = sorted((_v4_quote(k), _v4_quote(v)) for k, v in params.items())
    query = "&".join(k if v == "" else f"{k}={v}" for k, v in encoded)
    signed = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower.startswith("x-oss-") or lower in ("content-type", "content-md5") or lower in additional:
            signed[lower] = value
    headers = "".join(f"{k}:{v}\n" for k, v in sorted(signed.items()))
    payload = request.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    return "\n".join([request.method, uri, query, headers, ";".join(sorted(additional)), payload])


def _hmac256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signature_v4(secret: str, scope: list[str], string_to_sign: str) -> str:
    date, region, product, terminator = scope
    key = ("aliyun_v4" + secret).encode("utf-8")
    for part in (date, region, product, terminator):
        key = _hmac256(key, part)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def signature_v1(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return b64(digest)


def _secret(access_key_id: str) -> str:
    secret = secret_for(access_key_id)
    if secret is None:
        raise OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.",
                       OSSAccessKeyId=access_key_id)
    return secret


def _mismatch(access_key_id: str, string_to_sign: str, canonical_request: str | None = None) -> OssError:
    details = {"OSSAccessKeyId": access_key_id, "StringToSign": string_to_sign}
    if canonical_request is not None:
        details["CanonicalRequest"] = canonical_request
    return OssError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                    "signature you provided. Check your key and signing method.", **details)


def _check_v1(request: web.Request, target: Target, access_key_id: str, signature: str, date: str) -> None:
    secret = _secret(access_key_id)
    string_to_sign = string_to_sign_v1(request, target, date)
    if not hmac.compare_digest(signature_v1(secret, string_to_sign), signature):
        raise _mismatch(access_key_id, string_to_sign)


def _check_v4(request: web.Request, target: Target, credential: str, signature: str, date_time: str,
              additional: list[str], params: dict[str, str]) -> None:
    access_key_id, _, scope_text = credential.partition("/")
    scope = scope_text.split("/")
    if len(scope) != 4 or scope[3] != "aliyun_v4_request":
        raise invalid_argument("Credential", credential, "Invalid credential in Authorization header.")
    secret = _secret(access_key_id)
    canonical = canonical_request_v4(request, target, params, additional)
    string_to_sign = "\n".join([_V4_ALGORITHM, date_time, scope_text,
                                hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    if not hmac.compare_digest(signature_v4(secret, scope, string_to_sign), signature):
        raise _mismatch(access_key_id, string_to_sign, canonical)


V1_REFUSED_EC = "0002-00000080"


def v1_refused() -> OssError:
    """What a bucket that no longer takes Signature V1 answers (status and EC documented)."""
    return OssError(403, "AccessDenied", "The V1 signature is no longer supported for this account or bucket; "
                    "sign requests with the V4 signature (OSS4-HMAC-SHA256).", EC=V1_REFUSED_EC,
                    RecommendDoc=f"https://api.aliyun.com/troubleshoot?q={V1_REFUSED_EC}")


def _expired(expires_at: float) -> OssError:
    return OssError(403, "AccessDenied", "Request has expired.", Expires=http_time(expires_at),
                    ServerTime=http_time(time.time()))


def authenticate(request: web.Request, target: Target, *, allow_v1: bool = False) -> None:
    """Verify the V4 (or, with ``allow_v1``, V1) header signature or presigned URL; raise the OSS
    error otherwise."""
    authorization = request.headers.get("Authorization", "")
    params = target.params
    v1_header = authorization.startswith("OSS ")
    if not allow_v1 and (v1_header or ("Signature" in params and "OSSAccessKeyId" in params)):
        raise v1_refused()
    if v1_header:
        access_key_id, _, signature = authorization[4:].partition(":")
        date = request.headers.get("x-oss-date", "") or request.headers.get("Date", "")
        _check_v1(request, target, access_key_id.strip(), signature.strip(), date)
    elif authorization.startswith(_V4_ALGORITHM + " "):
        fields = {}
        for field_text in authorization[len(_V4_ALGORITHM):].split(","):  # ", " from oss2, "," from v2
            name, _, value = field_text.strip().partition("=")
            fields[name] = value
        additional = [h for h in fields.get("AdditionalHeaders", "").lower().split(";") if h]
        _check_v4(request, target, fields.get("Credential", ""), fields.get("Signature", ""),
                  request.headers.get("x-oss-date", ""), additional, params)
    elif "Signature" in params and "OSSAccessKeyId" in params:
        expires = params.get("Expires", "")
        if not expires.isdigit():
            raise invalid_argument("Expires", expires, "Expires should be an integer.")
        if int(expires) < time.time():
            raise _expired(int(expires))
        _check_v1(request, target, params["OSSAccessKeyId"], params["Signature"], expires)
    elif params.get("x-oss-signature-version") == _V4_ALGORITHM:
        date_time, expires = params.get("x-oss-date", ""), params.get("x-oss-expires", "0")
        try:
            expires_at = calendar.timegm(time.strptime(date_time, "%Y%m%dT%H%M%SZ")) + int(expires)
        except ValueError as exc:
            raise invalid_argument("x-oss-date", date_time, "Invalid presigned URL date.") from exc
        if expires_at < time.time():
            raise _expired(expires_at)
        additional = [h for h in params.get("x-oss-additional-headers", "").lower().split(";") if h]
        signed_params = {k: v for k, v in params.items() if k != "x-oss-signature"}
        _check_v4(request, target, params.get("x-oss-credential", ""), params.get("x-oss-signature", ""),
                  date_time, additional, signed_params)
    elif authorization:
        raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
    else:
        raise OssError(403, "AccessDenied", "AccessDenied: Anonymous access is forbidden for this operation.")
