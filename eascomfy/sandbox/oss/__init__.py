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

One endpoint (port) per region served: a bucket lives in the region whose endpoint created it,
and any bucket operation through another region's endpoint answers 403 AccessDenied, EC
0003-00001403, with the right ``<Endpoint>`` (GetBucketLocation answers anywhere unless
``Fidelity.bucket_location`` says otherwise; ListBuckets lists every region's buckets).

Every request must be signed with Signature V1 (``oss2.Auth``) or V4 (``oss2.AuthV4``), in the
Authorization header or as a presigned URL, with a key pair known to ``credentials.secret_for``.
Object responses carry ``ETag``, ``x-oss-hash-crc64ecma`` (CRC of the whole object), ``Last-Modified``
and ``Content-Length``, so oss2's CRC checks run for real. Bodies stream to disk in 1 MiB chunks
while CRC64 and MD5 are computed; nothing holds a whole object in memory.

Modules, in the order a request meets them:

- ``sandbox``: ``OssSandbox``, the server's lifecycle and direct access for tests;
- ``target``: what a request addresses (bucket, key, sub-resources) and which operation it is;
- ``signing``: the V1/V4 signature and presigned-URL checks;
- ``service``: the aiohttp handlers (service and buckets, objects, multipart) and error answers;
- ``listing``: paging and common prefixes for the list operations;
- ``streaming``: bodies to disk and objects (or a byte range) back, chunk by chunk;
- ``errors``: ``OssError`` and the XML, time and digest forms of answers;
- ``store``: the on-disk store (buckets, objects, multipart uploads) behind it all.

``OssSandbox`` is re-exported here: ``from eascomfy.sandbox.oss import OssSandbox``.
"""

from __future__ import annotations

from .sandbox import OssSandbox

__all__ = ["OssSandbox"]
