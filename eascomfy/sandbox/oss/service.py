"""The OSS operations over HTTP: one aiohttp handler per operation (service and buckets, objects,
multipart), dispatched on the operation ``target.classify`` names, after ``signing.authenticate``.
Errors are answered as OSS's ``<Error>`` document (``error_response``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from typing import Awaitable, Callable
from urllib.parse import unquote, urlsplit

from aiohttp import web

from .errors import (
    OssError,
    XmlField,
    XmlValue,
    b64,
    http_time,
    invalid_argument,
    iso_time,
    malformed_xml,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    parse_xml,
    wrong_endpoint,
    quote_key,
    xml_body,
    xml_response,
)
from ..fidelity import Fidelity
from ..server import SandboxServer
from .listing import collapse, int_param
from .signing import authenticate
from .store import ObjectMeta, ObjectReader, OssStore, ReceivedBody, Upload
from .streaming import CHUNK, parse_range, receive_body, send_object
from .target import RESPONSE_OVERRIDES, Target, request_id, target_of

log = logging.getLogger(__name__)

MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10000
OWNER_ID = "eascomfy-sandbox"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


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


def check_md5(request: web.Request, md5: bytes) -> None:
    expected = request.headers.get("Content-MD5")
    if expected is not None and expected != b64(md5):
        raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")


Handler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]


class OssService:
    """The HTTP operations over an ``OssStore``, for every region ``server`` serves: the region of a
    request is the endpoint (port) it came in on. A bucket lives in the region whose endpoint
    created it; every bucket-addressed operation through another region's endpoint answers as OSS
    does for a wrong endpoint (``wrong_endpoint``), except GetBucketLocation when
    ``Fidelity.bucket_location`` is ``any_endpoint``; ListBuckets lists every region's buckets."""

    def __init__(self, store: OssStore, server: SandboxServer, fidelity: Fidelity) -> None:
        self.store = store
        self.server = server
        self.fidelity = fidelity
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

    def endpoint_host(self, region: str, internal: bool = False, public: bool = True) -> str:
        """The endpoint of ``region``: the sandbox's ``host:port`` when it serves the region, else
        (or when ``public`` is False) OSS's own name, ``oss-<region>[-internal].aliyuncs.com``."""
        if public and region in self.server.ports:
            return urlsplit(self.server.url_for(region)).netloc
        return f"oss-{region}{'-internal' if internal else ''}.aliyuncs.com"

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
            bucket = self.store.bucket(target.bucket) if target.bucket else None
            if target.action != "PutBucket" and target.bucket and bucket is None:
                raise no_such_bucket(target.bucket)
            if bucket is not None and bucket.region != self.server.site_of(request):
                if not (target.action == "GetBucketLocation" and self.fidelity.bucket_location == "any_endpoint"):
                    raise wrong_endpoint(bucket.name, self.endpoint_host(bucket.region, public=False))
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
                ("CreationDate", iso_time(b.created)), ("ExtranetEndpoint", self.endpoint_host(b.region)),
                ("IntranetEndpoint", self.endpoint_host(b.region, internal=True)), ("Location", f"oss-{b.region}"),
                ("Name", b.name),
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
        region = self.server.site_of(request)  # the endpoint is the region
        self.store.create_bucket(t.bucket, region, request.headers.get("x-oss-acl", "private"), storage_class)
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
            ("ExtranetEndpoint", self.endpoint_host(bucket.region)),
            ("IntranetEndpoint", self.endpoint_host(bucket.region, internal=True)),
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
        check_md5(request, hashlib.md5(body).digest())
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
            check_md5(request, body.md5)
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
            for param, header in RESPONSE_OVERRIDES.items():
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
                                     "Content-MD5": b64(body.md5)})

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
            ("Location", f"http://{request.host}/{t.bucket}/{quote_key(t.key)}"),
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
    headers = {"x-oss-ec": error.details["EC"]} if "EC" in error.details else {}
    if request.method == "HEAD":
        headers["x-oss-err"] = base64.b64encode(body).decode("ascii")
        return web.Response(status=error.status, headers=headers)
    return web.Response(status=error.status, body=body, content_type="application/xml", headers=headers)


def fault_response(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    """Render an injected fault. OSS signals throttling as 503 SlowDown, so a ``throttle`` fault
    (code ``Throttling.User``) becomes that."""
    if code.startswith("Throttling"):
        status, code, message = 503, "SlowDown", "Please reduce your request rate."
    return error_response(request, OssError(status, code, message))
