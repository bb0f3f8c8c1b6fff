"""An OSS emulator that the unmodified ``oss2`` SDK talks to over loopback HTTP.

    with OssSandbox() as oss:
        bucket = oss2.Bucket(oss2.Auth(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET), oss.url, "models")
        bucket.create_bucket()
        bucket.put_object("a.txt", b"hello")

What it serves (path-style addressing, ``/<bucket>/<key>``): PutBucket, DeleteBucket, GetBucketInfo,
GetBucketLocation, ListBuckets, ListObjects (v1 and v2), PutObject, CopyObject, GetObject (with
Range), HeadObject, GetObjectMeta, DeleteObject, DeleteMultipleObjects, and the multipart set
(InitiateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListParts,
ListMultipartUploads). Any other sub-resource (``?acl``, ``?tagging``...) answers 501
NotImplemented rather than being mistaken for a plain object request.

Every request must be signed with Signature V1 (``oss2.Auth``) or V4 (``oss2.AuthV4``), in the
Authorization header or as a presigned URL, with a key pair known to ``credentials.secret_for``.
Object responses carry ``ETag``, ``x-oss-hash-crc64ecma`` (CRC of the whole object), ``Last-Modified``
and ``Content-Length``, so oss2's CRC checks run for real. Bodies stream to disk in 1 MiB chunks
while CRC64 and MD5 are computed; nothing holds a whole object in memory. Storage: ``oss_store``.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import hashlib
import hmac
import logging
import re
import secrets
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, Awaitable, Callable, Generic, Iterable, TypeVar, Union
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

from .credentials import secret_for
from .oss_store import BodyWriter, ObjectMeta, ObjectReader, OssStore, ReceivedBody, Upload
from .server import RecordedRequest, SandboxServer, ServerBacked

__all__ = ["OssSandbox", "OssError", "action_of"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10000
OWNER_ID = "eascomfy-sandbox"
UNSUPPORTED = "Unsupported"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

# oss2's Signature V1 sub-resource set (oss2/auth.py ProviderAuth._subresource_key_set).
SUBRESOURCES = frozenset("""
    response-content-type response-content-language response-cache-control logging response-content-encoding
    acl uploadId uploads partNumber group link delete website location objectInfo objectMeta response-expires
    response-content-disposition cors lifecycle restore qos referer stat bucketInfo append position
    security-token live comp status vod startTime endTime x-oss-process symlink callback callback-var tagging
    encryption versions versioning versionId policy requestPayment x-oss-traffic-limit qosInfo asyncFetch
    x-oss-request-payer sequential inventory inventoryId continuation-token worm wormId wormExtend replication
    replicationLocation replicationProgress transferAcceleration cname metaQuery x-oss-ac-source-ip
    x-oss-ac-subnet-mask x-oss-ac-vpc-id x-oss-ac-forward-allow resourceGroup style styleName
    x-oss-async-process regionList x-oss-write-get-object-response bucketArchiveDirectRead httpsConfig
    redundancyTransition x-oss-target-redundancy-type x-oss-redundancy-transition-taskid accessPoint
    accessPointPolicy publicAccessBlock x-oss-access-point-name requesterQosInfo qosRequester
    resourcePoolInfo resourcePool resourcePoolBuckets
""".split())
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-cache-control": "Cache-Control",
    "response-content-encoding": "Content-Encoding",
    "response-expires": "Expires",
    "response-content-disposition": "Content-Disposition",
}
# Sub-resources the emulator understands; "sequential" only changes how real OSS stores parts.
_SERVED_SUBRESOURCES = frozenset(
    {"uploads", "uploadId", "partNumber", "bucketInfo", "location", "objectMeta", "delete", "sequential",
     "continuation-token", "security-token", *_RESPONSE_OVERRIDES}
)


# -- errors and XML ---------------------------------------------------------------------------------


class OssError(Exception):
    """An OSS error answer; ``details`` become extra elements of the ``<Error>`` body."""

    def __init__(self, status: int, code: str, message: str, **details: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def no_such_bucket(bucket: str) -> OssError:
    return OssError(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)


def no_such_key(key: str) -> OssError:
    return OssError(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def no_such_upload(upload_id: str) -> OssError:
    return OssError(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                    "or the upload may have been aborted or completed.", UploadId=upload_id)


def invalid_argument(name: str, value: str, message: str) -> OssError:
    return OssError(400, "InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def malformed_xml() -> OssError:
    return OssError(400, "MalformedXML", "The XML you provided was not well-formed or did not validate "
                    "against our published schema.")


XmlValue = Union[str, int, bool, None, list["XmlField"]]
XmlField = tuple[str, XmlValue]


def _xml_nodes(fields: Iterable[XmlField]) -> str:
    """Render ``(tag, value)`` pairs; a list nests, None omits the element, "" leaves it empty."""
    out = []
    for tag, value in fields:
        if value is None:
            continue
        if isinstance(value, list):
            inner = _xml_nodes(value)
        elif isinstance(value, bool):
            inner = "true" if value else "false"
        else:
            inner = escape(str(value))
        out.append(f"<{tag}>{inner}</{tag}>")
    return "".join(out)


def xml_body(root: str, fields: Iterable[XmlField]) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{_xml_nodes(fields)}</{root}>'.encode("utf-8")


def xml_response(root: str, fields: Iterable[XmlField], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=xml_body(root, fields), content_type="application/xml", headers=headers)


def iso_time(ts: float) -> str:
    """XML timestamps: oss2 insists on exactly ``.000Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def http_time(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _quote_key(value: str) -> str:
    return quote(value, safe="")


# -- request target -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a request addresses: bucket ("" for the service), key ("" for the bucket) and query."""

    bucket: str
    key: str
    params: dict[str, str]
    action: str

    @property
    def url_encoded(self) -> bool:
        return self.params.get("encoding-type") == "url"

    def encoder(self) -> Callable[[str], str]:
        """How key-like fields go into the answer: url-encoded when the client asked for it."""
        return _quote_key if self.url_encoded else (lambda s: s)

    def encoding_field(self) -> XmlField:
        return ("EncodingType", "url" if self.url_encoded else None)


def classify(method: str, bucket: str, key: str, params: dict[str, str], headers: Any) -> str:
    """Name the OSS operation, from the method, the address and the sub-resources."""
    if any(p in SUBRESOURCES and p not in _SERVED_SUBRESOURCES for p in params):
        return UNSUPPORTED
    if not bucket:
        return "ListBuckets" if method == "GET" else UNSUPPORTED
    if not key:
        if method == "GET":
            for param, action in (("bucketInfo", "GetBucketInfo"), ("location", "GetBucketLocation"),
                                  ("uploads", "ListMultipartUploads")):
                if param in params:
                    return action
            return "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"
        if method == "POST":
            return "DeleteMultipleObjects" if "delete" in params else UNSUPPORTED
        return {"PUT": "PutBucket", "DELETE": "DeleteBucket"}.get(method, UNSUPPORTED)
    multipart = "uploadId" in params
    copy = "x-oss-copy-source" in headers
    if method == "PUT":
        if multipart:
            return UNSUPPORTED if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "GET":
        return "ListParts" if multipart else "GetObject"
    if method == "HEAD":
        return "GetObjectMeta" if "objectMeta" in params else "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if multipart else "DeleteObject"
    if method == "POST" and "uploads" in params:
        return "InitiateMultipartUpload"
    if method == "POST" and multipart:
        return "CompleteMultipartUpload"
    return UNSUPPORTED


_TARGET_KEY = web.RequestKey("oss_target", Target)
_REQUEST_ID_KEY = web.RequestKey("oss_request_id", str)


def target_of(request: web.Request) -> Target:
    """Parse (once per request) the raw path: ``/bucket/<percent-encoded key>?query``."""
    cached = request.get(_TARGET_KEY)
    if cached is not None:
        return cached
    raw_path, _, raw_query = request.raw_path.partition("?")
    bucket, _, raw_key = raw_path.lstrip("/").partition("/")
    key = unquote(raw_key)
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    target = Target(bucket, key, params, classify(request.method, bucket, key, params, request.headers))
    request[_TARGET_KEY] = target
    return target


def action_of(request: web.Request) -> str | None:
    return target_of(request).action


def request_id(request: web.Request) -> str:
    rid = request.get(_REQUEST_ID_KEY)
    if rid is None:
        rid = request[_REQUEST_ID_KEY] = secrets.token_hex(12).upper()
    return rid


# -- signatures ----------------------------------------------------------------------------------------

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
    return _b64(digest)


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


def _expired(expires_at: float) -> OssError:
    return OssError(403, "AccessDenied", "Request has expired.", Expires=http_time(expires_at),
                    ServerTime=http_time(time.time()))


def authenticate(request: web.Request, target: Target) -> None:
    """Verify the V1/V4 header signature or presigned URL; raise the OSS error otherwise."""
    authorization = request.headers.get("Authorization", "")
    params = target.params
    if authorization.startswith("OSS "):
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


# -- listing ---------------------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    prefixes: list[str]
    truncated: bool
    last_name: str  # the last item key or common prefix returned: the next marker
    last_item: T | None


def collapse(entries: Iterable[tuple[str, T]], prefix: str, delimiter: str, limit: int, resume: str) -> Page[T]:
    """One page of ``entries`` (sorted, already filtered by prefix and marker), rolling names that
    contain ``delimiter`` after ``prefix`` up into common prefixes. ``limit`` counts items and
    prefixes together; a prefix equal to ``resume`` (the previous page's last entry) is skipped."""
    page: Page[T] = Page([], [], False, "", None)
    for name, item in entries:
        group = None
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                group = name[: cut + len(delimiter)]
                if group == resume or (page.prefixes and page.prefixes[-1] == group):
                    continue
        if len(page.items) + len(page.prefixes) >= limit:
            page.truncated = True
            return page
        if group is None:
            page.items.append(item)
            page.last_name, page.last_item = name, item
        else:
            page.prefixes.append(group)
            page.last_name, page.last_item = group, None
    return page


def int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise invalid_argument(name, value, f"Argument {name} must be an integer between {low} and {high}.")
    return int(value)


def parse_range(value: str, size: int, strict: bool) -> tuple[int, int] | None:
    """(first, last) byte of a ``Range: bytes=a-b`` request; None serves the whole object.

    Like OSS by default, an invalid or unsatisfiable range is ignored (200, whole object); with
    ``x-oss-range-behavior: standard`` an unsatisfiable one is 416 InvalidRange. An end past the
    object is clamped to its last byte.
    """
    match = _RANGE.fullmatch(value.strip())
    if match is None or match[1] == match[2] == "":
        return None
    if match[1] == "":
        first, last = max(size - int(match[2]), 0), size - 1
        satisfiable = int(match[2]) > 0 and size > 0
    else:
        first = int(match[1])
        last = min(int(match[2]), size - 1) if match[2] else size - 1
        if match[2] and int(match[2]) < first:
            return None
        satisfiable = first < size
    if not satisfiable:
        if strict:
            raise OssError(416, "InvalidRange", "The requested range is not satisfiable.")
        return None
    return first, last


# -- streaming ------------------------------------------------------------------------------------------


async def receive_body(request: web.Request, writer: BodyWriter) -> ReceivedBody:
    """Stream the request body into ``writer`` in ~1 MiB chunks.

    Disk writes and hashing run on a private worker thread, so the loop reads the next chunk from
    the socket while the previous one is written (at most one chunk in flight). On any failure,
    including the client going away, the partial file is removed.
    """
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oss-body")
    pending: Awaitable[None] | None = None
    buffered: list[bytes] = []
    size = 0
    try:
        async for data in request.content.iter_any():
            buffered.append(data)
            size += len(data)
            if size >= CHUNK:
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(executor, writer.write, b"".join(buffered))
                buffered, size = [], 0
        if pending is not None:
            await pending
        return await loop.run_in_executor(executor, writer.finish, b"".join(buffered))
    except BaseException:
        executor.submit(writer.discard)  # queued after any write still running
        raise
    finally:
        executor.shutdown(wait=False)


async def send_object(response: web.StreamResponse, reader: ObjectReader, first: int, length: int) -> None:
    """Write ``length`` bytes from ``first`` to the response; disk reads run in the default executor."""
    loop = asyncio.get_running_loop()
    chunks = reader.chunks(first, length, CHUNK)
    while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
        await response.write(chunk)


def object_headers(meta: ObjectMeta) -> dict[str, str]:
    headers = {
        "Content-Type": meta.content_type,
        "ETag": f'"{meta.etag}"',
        "Last-Modified": http_time(meta.last_modified),
        "x-oss-hash-crc64ecma": str(meta.crc64),
        "x-oss-object-type": meta.object_type,
        "x-oss-storage-class": "Standard",
        "Accept-Ranges": "bytes",
        **meta.user_meta,
    }
    if meta.content_md5:
        headers["Content-MD5"] = meta.content_md5
    return headers


def user_meta_of(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-oss-meta-")}


def parse_xml(body: bytes) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise malformed_xml() from exc


def _check_md5(request: web.Request, md5: bytes) -> None:
    expected = request.headers.get("Content-MD5")
    if expected is not None and expected != _b64(md5):
        raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")


# -- the service ---------------------------------------------------------------------------------------

Handler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]


class OssService:
    """The HTTP operations over an ``OssStore``."""

    def __init__(self, store: OssStore, region: str) -> None:
        self.store = store
        self.region = region
        self.handlers: dict[str, Handler] = {
            "ListBuckets": self.list_buckets,
            "PutBucket": self.put_bucket,
            "DeleteBucket": self.delete_bucket,
            "GetBucketInfo": self.get_bucket_info,
            "GetBucketLocation": self.get_bucket_location,
            "ListObjects": self.list_objects,
            "ListObjectsV2": self.list_objects,
            "DeleteMultipleObjects": self.delete_multiple_objects,
            "PutObject": self.put_object,
            "CopyObject": self.copy_object,
            "GetObject": self.get_object,
            "HeadObject": self.head_object,
            "GetObjectMeta": self.head_object,
            "DeleteObject": self.delete_object,
            "InitiateMultipartUpload": self.initiate_multipart_upload,
            "UploadPart": self.upload_part,
            "CompleteMultipartUpload": self.complete_multipart_upload,
            "AbortMultipartUpload": self.abort_multipart_upload,
            "ListParts": self.list_parts,
            "ListMultipartUploads": self.list_multipart_uploads,
        }

    def application(self) -> web.Application:
        # A bigger read buffer keeps multi-GB uploads from pausing the socket every 256 KiB.
        app = web.Application(handler_args={"read_bufsize": 4 * CHUNK}, client_max_size=16 * CHUNK)
        app.router.add_route("*", r"/{path:(?!_sandbox/).*}", self.handle)
        app.on_response_prepare.append(self._common_headers)
        return app

    @staticmethod
    async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-oss-request-id"] = request_id(request)
        response.headers["Server"] = "AliyunOSS"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = target_of(request)
        try:
            authenticate(request, target)
            handler = self.handlers.get(target.action)
            if handler is None:
                raise OssError(501, "NotImplemented", "This operation is not implemented by the OSS sandbox.")
            if target.action != "PutBucket" and target.bucket and self.store.bucket(target.bucket) is None:
                raise no_such_bucket(target.bucket)
            return await handler(request, target)
        except OssError as error:
            return error_response(request, error)
        except Exception:  # a bug in the emulator: answer like a server would, keep the trace in the log
            log.exception("OSS sandbox failed on %s %s", request.method, request.path)
            return error_response(request, OssError(500, "InternalError", "We encountered an internal error."))

    # -- service and buckets ------------------------------------------------------------------
    async def list_buckets(self, request: web.Request, t: Target) -> web.StreamResponse:
        prefix, marker = t.params.get("prefix", ""), t.params.get("marker", "")
        limit = int_param(t.params, "max-keys", 100, 1, 1000)
        buckets = [b for b in self.store.buckets() if b.name.startswith(prefix) and b.name > marker]
        shown, truncated = buckets[:limit], len(buckets) > limit
        return xml_response("ListAllMyBucketsResult", [
            ("Prefix", prefix), ("Marker", marker), ("MaxKeys", limit), ("IsTruncated", truncated),
            ("NextMarker", shown[-1].name if truncated else None),
            ("Owner", [("ID", OWNER_ID), ("DisplayName", OWNER_ID)]),
            ("Buckets", [("Bucket", [
                ("CreationDate", iso_time(b.created)), ("ExtranetEndpoint", request.host),
                ("IntranetEndpoint", request.host), ("Location", f"oss-{b.region}"), ("Name", b.name),
                ("Region", b.region), ("StorageClass", b.storage_class)]) for b in shown]),
        ])

    async def put_bucket(self, request: web.Request, t: Target) -> web.StreamResponse:
        if not _BUCKET_NAME.fullmatch(t.bucket):
            raise OssError(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=t.bucket)
        body = await request.read()
        storage_class = "Standard"
        if body:
            storage_class = parse_xml(body).findtext("StorageClass") or storage_class
        # Same owner re-creating its bucket: 200 and nothing changes, as on real OSS.
        self.store.create_bucket(t.bucket, self.region, request.headers.get("x-oss-acl", "private"), storage_class)
        return web.Response(headers={"Location": f"/{t.bucket}"})

    async def delete_bucket(self, request: web.Request, t: Target) -> web.StreamResponse:
        if not self.store.is_empty(t.bucket):
            raise OssError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.", BucketName=t.bucket)
        await asyncio.to_thread(self.store.delete_bucket, t.bucket)
        return web.Response(status=204)

    async def get_bucket_info(self, request: web.Request, t: Target) -> web.StreamResponse:
        bucket = self.store.bucket(t.bucket)
        assert bucket is not None
        return xml_response("BucketInfo", [("Bucket", [
            ("AccessMonitor", "Disabled"), ("CreationDate", iso_time(bucket.created)),
            ("ExtranetEndpoint", request.host), ("IntranetEndpoint", request.host),
            ("Location", f"oss-{bucket.region}"), ("StorageClass", bucket.storage_class),
            ("TransferAcceleration", "Disabled"), ("CrossRegionReplication", "Disabled"),
            ("Name", bucket.name), ("ResourceGroupId", "rg-default"),
            ("Owner", [("DisplayName", OWNER_ID), ("ID", OWNER_ID)]),
            ("AccessControlList", [("Grant", bucket.acl)]), ("DataRedundancyType", "LRS"),
            ("Comment", ""), ("Versioning", "Disabled"),
            ("ServerSideEncryptionRule", [("SSEAlgorithm", "None")]),
        ])])

    async def get_bucket_location(self, request: web.Request, t: Target) -> web.StreamResponse:
        bucket = self.store.bucket(t.bucket)
        assert bucket is not None
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint>oss-{bucket.region}</LocationConstraint>'
        return web.Response(body=body.encode(), content_type="application/xml")

    async def list_objects(self, request: web.Request, t: Target) -> web.StreamResponse:
        v2 = t.action == "ListObjectsV2"
        p = t.params
        prefix, delimiter = p.get("prefix", ""), p.get("delimiter", "")
        limit = int_param(p, "max-keys", 100, 0, 1000)
        token, start_after = p.get("continuation-token", ""), p.get("start-after", "")
        marker = (token or start_after) if v2 else p.get("marker", "")
        entries = ((m.key, m) for m in self.store.objects(t.bucket) if m.key > marker and m.key.startswith(prefix))
        page = collapse(entries, prefix, delimiter, limit, resume=marker)
        enc = t.encoder()
        with_owner = not v2 or p.get("fetch-owner") == "true"
        owner: XmlValue = [("ID", OWNER_ID), ("DisplayName", OWNER_ID)] if with_owner else None
        next_marker = enc(page.last_name) if page.truncated else None
        head: list[XmlField] = [("Name", t.bucket), ("Prefix", enc(prefix))]
        if v2:
            head += [("MaxKeys", limit), ("Delimiter", enc(delimiter)), ("StartAfter", enc(start_after)),
                     ("ContinuationToken", enc(token))]
        else:
            head += [("Marker", enc(marker)), ("MaxKeys", limit), ("Delimiter", enc(delimiter))]
        head += [t.encoding_field(), ("IsTruncated", page.truncated)]
        head += [("NextContinuationToken", next_marker), ("KeyCount", len(page.items) + len(page.prefixes))] if v2 \
            else [("NextMarker", next_marker)]
        contents: list[XmlField] = [("Contents", [
            ("Key", enc(m.key)), ("LastModified", iso_time(m.last_modified)), ("ETag", f'"{m.etag}"'),
            ("Type", m.object_type), ("Size", m.size), ("StorageClass", "Standard"), ("Owner", owner),
        ]) for m in page.items]
        prefixes: list[XmlField] = [("CommonPrefixes", [("Prefix", enc(cp))]) for cp in page.prefixes]
        return xml_response("ListBucketResult", head + contents + prefixes)

    async def delete_multiple_objects(self, request: web.Request, t: Target) -> web.StreamResponse:
        body = await request.read()
        _check_md5(request, hashlib.md5(body).digest())
        root = parse_xml(body)
        keys = [node.text or "" for node in root.findall("Object/Key")]
        if root.tag != "Delete" or not keys:
            raise malformed_xml()
        for key in keys:
            self.store.delete_object(t.bucket, key)
        enc = t.encoder()
        quiet = (root.findtext("Quiet") or "").lower() == "true"
        deleted: list[XmlField] = [] if quiet else [("Deleted", [("Key", enc(k))]) for k in keys]
        return xml_response("DeleteResult", [t.encoding_field(), *deleted])

    # -- objects -------------------------------------------------------------------------------
    async def _receive(self, request: web.Request, bucket: str) -> ReceivedBody:
        body = await receive_body(request, self.store.body_writer(bucket))
        try:
            _check_md5(request, body.md5)
        except OssError:
            body.path.unlink(missing_ok=True)
            raise
        return body

    async def put_object(self, request: web.Request, t: Target) -> web.StreamResponse:
        body = await self._receive(request, t.bucket)
        content_type = request.headers.get("Content-Type") or "application/octet-stream"
        meta = self.store.put_object(t.bucket, t.key, body, content_type, user_meta_of(request))
        return web.Response(headers={"ETag": f'"{meta.etag}"', "x-oss-hash-crc64ecma": str(meta.crc64),
                                     "Content-MD5": meta.content_md5})

    def _open(self, bucket: str, key: str) -> ObjectReader:
        if self.store.bucket(bucket) is None:
            raise no_such_bucket(bucket)
        reader = self.store.open(bucket, key)
        if reader is None:
            raise no_such_key(key)
        return reader

    async def copy_object(self, request: web.Request, t: Target) -> web.StreamResponse:
        source = unquote(request.headers["x-oss-copy-source"].partition("?")[0]).lstrip("/")
        source_bucket, _, source_key = source.partition("/")
        with self._open(source_bucket, source_key) as reader:
            if request.headers.get("x-oss-metadata-directive", "COPY").upper() == "REPLACE":
                content_type = request.headers.get("Content-Type") or "application/octet-stream"
                user_meta = user_meta_of(request)
            else:
                content_type, user_meta = reader.meta.content_type, reader.meta.user_meta
            copy = await asyncio.to_thread(self.store.copy_object, reader, t.bucket, t.key, content_type, user_meta)
        return xml_response(
            "CopyObjectResult", [("ETag", f'"{copy.etag}"'), ("LastModified", iso_time(copy.last_modified))],
            headers={"ETag": f'"{copy.etag}"', "x-oss-hash-crc64ecma": str(copy.crc64)})

    async def get_object(self, request: web.Request, t: Target) -> web.StreamResponse:
        with self._open(t.bucket, t.key) as reader:
            meta = reader.meta
            headers = object_headers(meta)
            for param, header in _RESPONSE_OVERRIDES.items():
                if param in t.params:
                    headers[header] = t.params[param]
            strict = request.headers.get("x-oss-range-behavior", "").lower() == "standard"
            byte_range = parse_range(request.headers.get("Range", ""), meta.size, strict)
            first, last = byte_range or (0, meta.size - 1)
            if byte_range is not None:
                headers["Content-Range"] = f"bytes {first}-{last}/{meta.size}"
            response = web.StreamResponse(status=200 if byte_range is None else 206, headers=headers)
            response.content_length = last - first + 1
            await response.prepare(request)
            await send_object(response, reader, first, last - first + 1)
            await response.write_eof()
            return response

    async def head_object(self, request: web.Request, t: Target) -> web.StreamResponse:
        meta = self.store.head(t.bucket, t.key)
        if meta is None:
            raise no_such_key(t.key)
        return web.Response(headers={**object_headers(meta), "Content-Length": str(meta.size)})

    async def delete_object(self, request: web.Request, t: Target) -> web.StreamResponse:
        self.store.delete_object(t.bucket, t.key)
        return web.Response(status=204)

    # -- multipart -----------------------------------------------------------------------------
    def _upload(self, t: Target) -> Upload:
        upload_id = t.params.get("uploadId", "")
        upload = self.store.upload(t.bucket, upload_id)
        if upload is None or upload.key != t.key:
            raise no_such_upload(upload_id)
        return upload

    async def initiate_multipart_upload(self, request: web.Request, t: Target) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type") or "application/octet-stream"
        upload = self.store.initiate(t.bucket, t.key, content_type, user_meta_of(request))
        return xml_response("InitiateMultipartUploadResult", [
            t.encoding_field(), ("Bucket", t.bucket),
            ("Key", t.encoder()(t.key)), ("UploadId", upload.upload_id)])

    async def upload_part(self, request: web.Request, t: Target) -> web.StreamResponse:
        number_text = t.params.get("partNumber", "")
        if not number_text.isdigit() or not 1 <= int(number_text) <= MAX_PART_NUMBER:
            raise invalid_argument("PartNumber", number_text,
                                   "Part number must be an integer between 1 and 10000, inclusive.")
        upload = self._upload(t)
        body = await self._receive(request, t.bucket)
        try:
            part = self.store.put_part(upload, int(number_text), body)
        except KeyError:
            raise no_such_upload(upload.upload_id) from None
        return web.Response(headers={"ETag": f'"{part.etag}"', "x-oss-hash-crc64ecma": str(part.crc64),
                                     "Content-MD5": _b64(body.md5)})

    def _parts_to_complete(self, request: web.Request, upload: Upload, body: bytes) -> list[int]:
        """Validate the Complete request's part list, as OSS does, and return the part numbers."""
        if request.headers.get("x-oss-complete-all", "").lower() == "yes":
            listed = [(n, upload.parts[n].etag) for n in sorted(upload.parts)]
        else:
            root = parse_xml(body)
            try:
                listed = [(int(node.findtext("PartNumber") or ""), (node.findtext("ETag") or "").strip('"').upper())
                          for node in root.findall("Part")]
            except ValueError:
                listed = []
            if root.tag != "CompleteMultipartUpload" or not listed:
                raise malformed_xml()
        numbers = [n for n, _ in listed]
        if any(a >= b for a, b in zip(numbers, numbers[1:])):
            raise OssError(400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts list "
                           "must specified in order by part number.", UploadId=upload.upload_id)
        for number, etag in listed:
            part = upload.parts.get(number)
            if part is None or part.etag != etag:
                raise OssError(400, "InvalidPart", "One or more of the specified parts could not be found or "
                               "the specified entity tag might not have matched the part's entity tag.",
                               UploadId=upload.upload_id, PartNumber=str(number), ETag=etag)
        for number in numbers[:-1]:
            if upload.parts[number].size < MIN_PART_SIZE:
                raise OssError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
                               "size.", MinSizeAllowed=str(MIN_PART_SIZE),
                               ProposedSize=str(upload.parts[number].size), PartNumber=str(number))
        return numbers

    async def complete_multipart_upload(self, request: web.Request, t: Target) -> web.StreamResponse:
        upload = self._upload(t)
        numbers = self._parts_to_complete(request, upload, await request.read())
        try:
            meta = await asyncio.to_thread(self.store.complete, upload, numbers)
        except KeyError:
            raise no_such_upload(upload.upload_id) from None
        enc = t.encoder()
        return xml_response("CompleteMultipartUploadResult", [
            t.encoding_field(),
            ("Location", f"http://{request.host}/{t.bucket}/{_quote_key(t.key)}"),
            ("Bucket", t.bucket), ("Key", enc(t.key)), ("ETag", f'"{meta.etag}"'),
        ], headers={"ETag": f'"{meta.etag}"', "x-oss-hash-crc64ecma": str(meta.crc64)})

    async def abort_multipart_upload(self, request: web.Request, t: Target) -> web.StreamResponse:
        await asyncio.to_thread(self.store.abort, self._upload(t))
        return web.Response(status=204)

    async def list_parts(self, request: web.Request, t: Target) -> web.StreamResponse:
        upload = self._upload(t)
        marker = int_param(t.params, "part-number-marker", 0, 0, MAX_PART_NUMBER)
        limit = int_param(t.params, "max-parts", 1000, 1, 1000)
        remaining = [upload.parts[n] for n in sorted(upload.parts) if n > marker]
        shown = remaining[:limit]
        return xml_response("ListPartsResult", [
            ("Bucket", t.bucket), ("Key", t.key), ("UploadId", upload.upload_id), ("StorageClass", "Standard"),
            ("PartNumberMarker", marker), ("NextPartNumberMarker", shown[-1].number if shown else marker),
            ("MaxParts", limit), ("IsTruncated", len(remaining) > limit),
            *[("Part", [("PartNumber", p.number), ("LastModified", iso_time(p.last_modified)),
                        ("ETag", f'"{p.etag}"'), ("HashCrc64ecma", p.crc64), ("Size", p.size)]) for p in shown],
        ])

    async def list_multipart_uploads(self, request: web.Request, t: Target) -> web.StreamResponse:
        p = t.params
        prefix, delimiter = p.get("prefix", ""), p.get("delimiter", "")
        key_marker, id_marker = p.get("key-marker", ""), p.get("upload-id-marker", "")
        limit = int_param(p, "max-uploads", 1000, 1, 1000)

        def after_marker(u: Upload) -> bool:
            return u.key > key_marker or (bool(id_marker) and u.key == key_marker and u.upload_id > id_marker)

        entries = ((u.key, u) for u in self.store.uploads(t.bucket) if u.key.startswith(prefix) and after_marker(u))
        page = collapse(entries, prefix, delimiter, limit, resume=key_marker)
        enc = t.encoder()
        return xml_response("ListMultipartUploadsResult", [
            t.encoding_field(), ("Bucket", t.bucket),
            ("KeyMarker", enc(key_marker)), ("UploadIdMarker", id_marker),
            ("NextKeyMarker", enc(page.last_name) if page.truncated else ""),
            ("NextUploadIdMarker", page.last_item.upload_id if page.truncated and page.last_item else ""),
            ("Delimiter", enc(delimiter)), ("Prefix", enc(prefix)), ("MaxUploads", limit),
            ("IsTruncated", page.truncated),
            *[("Upload", [("Key", enc(u.key)), ("UploadId", u.upload_id), ("StorageClass", "Standard"),
                          ("Initiated", iso_time(u.initiated))]) for u in page.items],
            *[("CommonPrefixes", [("Prefix", enc(cp))]) for cp in page.prefixes],
        ])


def error_response(request: web.Request, error: OssError) -> web.Response:
    """The ``<Error>`` document; HEAD answers carry it base64-encoded in ``x-oss-err`` instead."""
    target = target_of(request)
    host = request.host.split(":")[0]
    body = xml_body("Error", [
        ("Code", error.code), ("Message", error.message), ("RequestId", request_id(request)),
        ("HostId", f"{target.bucket}.{host}" if target.bucket else host), *error.details.items(),
    ])
    if request.method == "HEAD":
        return web.Response(status=error.status, headers={"x-oss-err": base64.b64encode(body).decode("ascii")})
    return web.Response(status=error.status, body=body, content_type="application/xml")


def fault_response(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    """Render an injected fault. OSS signals throttling as 503 SlowDown, so a ``throttle`` fault
    (code ``Throttling.User``) becomes that."""
    if code.startswith("Throttling"):
        status, code, message = 503, "SlowDown", "Please reduce your request rate."
    return error_response(request, OssError(status, code, message))


# -- the sandbox ------------------------------------------------------------------------------------


class OssSandbox(ServerBacked):
    """An OSS endpoint on 127.0.0.1 backed by files under ``state_dir/oss`` (a temp dir if None).

    One instance runs once (``start`` then ``stop``); a new instance on the same ``state_dir``
    sees everything the previous one stored.
    """

    def __init__(self, state_dir: Path | None = None, port: int = 0, region: str = "cn-hangzhou") -> None:
        self.region = region
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._store: OssStore | None = None
        self._server = SandboxServer(self._application, fault_response, action_of, port=port, name="oss")

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "OssSandbox":
        if self._state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="eascomfy-oss-")
            self._state_dir = Path(self._tmp.name)
        self._store = OssStore(self._state_dir / "oss")
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "OssSandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _application(self, _server: SandboxServer) -> web.Application:
        return OssService(self.store, self.region).application()


    @property
    def state_dir(self) -> Path | None:
        return self._state_dir

    @property
    def store(self) -> OssStore:
        assert self._store is not None, "OssSandbox not started"
        return self._store

    # -- direct access for tests -------------------------------------------------------------
    def create_bucket(self, name: str, region: str | None = None) -> None:
        self.store.create_bucket(name, region or self.region)

    def put_object(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        writer = self.store.body_writer(bucket)
        self.store.put_object(bucket, key, writer.finish(data), content_type, {})

    def object_bytes(self, bucket: str, key: str) -> bytes:
        reader = self.store.open(bucket, key)
        if reader is None:
            raise KeyError(f"{bucket}/{key}")
        with reader:
            return reader.read()

    def object_info(self, bucket: str, key: str) -> dict[str, Any]:
        meta = self.store.head(bucket, key)
        if meta is None:
            raise KeyError(f"{bucket}/{key}")
        return {"size": meta.size, "crc64": meta.crc64, "etag": meta.etag, "last_modified": meta.last_modified,
                "content_type": meta.content_type, "object_type": meta.object_type, "user_meta": dict(meta.user_meta)}

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [m.key for m in self.store.objects(bucket) if m.key.startswith(prefix)]

    def multipart_uploads(self, bucket: str) -> list[dict[str, Any]]:
        return [{"key": u.key, "upload_id": u.upload_id, "initiated": u.initiated, "parts": sorted(u.parts)}
                for u in self.store.uploads(bucket)]

    def requests(self, action: str | None = None) -> list[RecordedRequest]:
        return [r for r in self._server.recorder.all() if action is None or r.action == action]
