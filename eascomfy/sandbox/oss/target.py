"""What a request addresses: the bucket and key from the path (path-style ``/<bucket>/<key>``),
the query's sub-resources, and the OSS operation they name (``classify``). Parsed once per
request and cached on it, with the request id every answer carries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from .errors import XmlField, quote_key

UNSUPPORTED = "Unsupported"

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
# Query parameters that set a header of the GetObject answer.
RESPONSE_OVERRIDES = {
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
     "continuation-token", "security-token", *RESPONSE_OVERRIDES}
)


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
        return quote_key if self.url_encoded else (lambda s: s)

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
