"""The OSS adapter: the only module that imports ``oss2``.

Credentials come from the same chain as the control plane (``adapters.credentials``);
``EASCOMFY_OSS_ENDPOINTS`` (``region=url,...``, a region it lacks refused) or
``EASCOMFY_OSS_ENDPOINT`` (one URL) point at another endpoint (the sandbox; see ``endpoints``),
otherwise the region's public endpoint is used. A bucket answers only through its own region's
endpoint (403 AccessDenied, EC 0003-00001403, ``<Endpoint>`` naming the right one): that answer
is read as the bucket's region. Requests are signed with Signature V4 (``oss2.ProviderAuthV4``,
scoped to the bucket's region): OSS refuses V1 for accounts created since 2025-03-01 and for
buckets created since 2025-09-01 (403, EC 0002-00000080; OSS doc "Guidelines for upgrading V1
signatures to V4 signatures"); oss2 signs V4 from 2.18.4 on. oss2's own client-side CRC check is
off: eascomfy computes every CRC64 itself while reading the file once, and compares it with the
server's ``x-oss-hash-crc64ecma``. Errors become ``CloudError`` here, in one place, without
credentials or signatures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import CloudError, EascomfyError
from .endpoints import OSS_ENDPOINT_ENV, OSS_ENDPOINTS_ENV, endpoint_from_env

if TYPE_CHECKING:
    from .credentials import AccessKey


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    crc64: int | None
    last_modified: float | None = None
    etag: str = ""


# A bucket addressed through another region's endpoint: OSS answers 403 AccessDenied with
# EC 0003-00001403 and <Endpoint> naming the bucket's own (OSS "HTTP status code 403" page;
# help.aliyun.com/zh/oss/user-guide/0003-00001403).
WRONG_ENDPOINT_EC = "0003-00001403"
_ENDPOINT_REGION = re.compile(r"^(?:https?://)?oss-(?P<region>[a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com/?$")


def endpoint_for(region: str) -> str:
    """The environment's endpoint for ``region`` (``adapters.endpoints``), else its public one."""
    return endpoint_from_env(region, OSS_ENDPOINTS_ENV, OSS_ENDPOINT_ENV) or f"https://oss-{region}.aliyuncs.com"


def region_of_wrong_endpoint(exc: BaseException) -> str | None:
    """The bucket's region when OSS refused a request for coming through another region's
    endpoint (its ``<Endpoint>``), else None."""
    details = getattr(exc, "details", None)
    if not isinstance(details, dict) or getattr(exc, "status", None) != 403:
        return None
    endpoint = str(details.get("Endpoint") or "")
    if details.get("EC") != WRONG_ENDPOINT_EC and not endpoint:
        return None
    m = _ENDPOINT_REGION.match(endpoint)
    return m.group("region") if m else None


def map_error(exc: BaseException, what: str) -> CloudError:
    import oss2

    if isinstance(exc, oss2.exceptions.OssError):
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None) or None
        message = getattr(exc, "message", "") or str(code or "OSS error")
        if status == -2 or code is None and status and status < 0:  # oss2's RequestError: no answer
            return CloudError(f"{what}: cannot reach OSS ({type(exc).__name__})", code="ConnectionError", status=status)
        region = region_of_wrong_endpoint(exc)
        if region is not None:
            endpoint = (getattr(exc, "details", None) or {}).get("Endpoint")
            return CloudError(
                f"{what}: the bucket is in {region}; OSS serves it only through that region's endpoint ({endpoint})",
                code=code, request_id=getattr(exc, "request_id", None), status=status,
                hint="use a bucket in the service's region: EAS mounts buckets of its own region only",
            )
        hint = {
            "SignatureDoesNotMatch": "check ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "InvalidAccessKeyId": "check ALIBABA_CLOUD_ACCESS_KEY_ID",
            "NoSuchBucket": "create it in the service's region first",
            "AccessDenied": "the RAM user needs oss:PutObject/GetObject/ListObjects on the bucket",
        }.get(code or "")
        return CloudError(f"{what}: {message}", code=code, request_id=getattr(exc, "request_id", None), status=status, hint=hint)
    return CloudError(f"{what}: {type(exc).__name__}", code="ConnectionError")


class LocalWriteError(EascomfyError):
    """A download arrived but could not be written here (a name too long, a folder in the way, a
    full disk): a local problem, not OSS's and not the network's."""


class OssClient:
    """One bucket, through oss2, with errors mapped and CRC checking done by the caller."""

    def __init__(self, bucket: str, region: str, key: "AccessKey | None" = None, endpoint: str | None = None) -> None:
        import oss2

        from .credentials import access_key

        key = key or access_key()
        # V4 for every request (oss2/auth.py ProviderAuthV4; the STS token, when there is one, goes
        # into x-oss-security-token). V4 puts the region into the signing scope, so the Bucket must
        # know it (oss2/api.py Bucket(region=...); without it oss2 raises ClientError).
        provider = oss2.credentials.StaticCredentialsProvider(key.id, key.secret, key.token or "")
        auth: Any = oss2.ProviderAuthV4(provider)
        self.name = bucket
        self.region = region
        self._bucket = oss2.Bucket(
            auth, endpoint or endpoint_for(region), bucket, enable_crc=False, connect_timeout=30, region=region
        )

    def __repr__(self) -> str:  # never the auth object
        return f"OssClient(bucket={self.name!r}, region={self.region!r})"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import oss2

        try:
            return fn(*args, **kwargs)
        except (oss2.exceptions.OssError, OSError) as exc:
            raise map_error(exc, what) from None

    # -- bucket -------------------------------------------------------------------------------
    def bucket_region(self) -> str | None:
        """The bucket's region, or None when it does not exist."""
        import oss2

        try:
            location = self._bucket.get_bucket_location().location
        except oss2.exceptions.NoSuchBucket:
            return None
        except (oss2.exceptions.OssError, OSError) as exc:
            elsewhere = region_of_wrong_endpoint(exc)  # asked through another region's endpoint
            if elsewhere is not None:
                return elsewhere
            raise map_error(exc, f"bucket {self.name}") from None
        return location[4:] if location.startswith("oss-") else location

    def create_bucket(self) -> None:
        self._call(f"create bucket {self.name}", self._bucket.create_bucket)

    # -- objects ------------------------------------------------------------------------------
    def head(self, key: str) -> RemoteObject | None:
        import oss2

        try:
            meta = self._bucket.head_object(key)
        except oss2.exceptions.NotFound:
            return None
        except (oss2.exceptions.OssError, OSError) as exc:
            raise map_error(exc, f"oss://{self.name}/{key}") from None
        crc = meta.headers.get("x-oss-hash-crc64ecma")
        return RemoteObject(key, meta.content_length, int(crc) if crc else None, meta.last_modified, meta.etag or "")

    def put(self, key: str, data: bytes) -> tuple[int | None, str]:
        """Upload ``data``; (the server's CRC64, the ETag)."""
        result = self._call(f"upload oss://{self.name}/{key}", self._bucket.put_object, key, data)
        return (int(result.crc) if result.crc is not None else None), result.etag or ""

    def delete(self, key: str) -> None:
        """Delete an object (OSS answers 204 whether or not it existed)."""
        self._call(f"delete oss://{self.name}/{key}", self._bucket.delete_object, key)

    def list(self, prefix: str, delimiter: str = "") -> Iterator[tuple[str, int, bool, str]]:
        """(key, size, is_folder, etag) under ``prefix``, paging through ListObjectsV2."""
        token = ""
        while True:
            page = self._call(
                f"list oss://{self.name}/{prefix}",
                self._bucket.list_objects_v2,
                prefix=prefix,
                delimiter=delimiter,
                continuation_token=token,
                max_keys=1000,
            )
            for p in page.prefix_list:
                yield p, 0, True, ""
            for obj in page.object_list:
                yield obj.key, obj.size, False, obj.etag
            if not page.is_truncated:
                return
            token = page.next_continuation_token

    def download(self, key: str, dest: str) -> None:
        import oss2
        import requests

        try:
            self._bucket.get_object_to_file(key, dest)
        except oss2.exceptions.OssError as exc:
            raise map_error(exc, f"download oss://{self.name}/{key}") from None
        except requests.RequestException as exc:  # the body stream broke (an OSError too)
            raise map_error(exc, f"download oss://{self.name}/{key}") from None
        except OSError as exc:  # opening or writing the local file
            raise LocalWriteError(f"cannot write {dest}: {exc.strerror or exc}") from None

    # -- multipart ----------------------------------------------------------------------------
    def init_multipart(self, key: str) -> str:
        return self._call(f"start upload of oss://{self.name}/{key}", self._bucket.init_multipart_upload, key).upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes | memoryview) -> tuple[str, int | None]:
        result = self._call(
            f"upload part {number} of oss://{self.name}/{key}", self._bucket.upload_part, key, upload_id, number, data
        )
        return result.etag, int(result.crc) if result.crc is not None else None

    def list_parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]] | None:
        """Parts already stored for an upload (number -> (etag, size)), or None if it is gone."""
        import oss2

        parts: dict[int, tuple[str, int]] = {}
        marker = "0"
        while True:
            try:
                page = self._bucket.list_parts(key, upload_id, marker=marker)
            except oss2.exceptions.NoSuchUpload:
                return None
            except (oss2.exceptions.OssError, OSError) as exc:
                raise map_error(exc, f"resume oss://{self.name}/{key}") from None
            for p in page.parts:
                parts[p.part_number] = (p.etag, p.size)
            if not page.is_truncated:
                return parts
            marker = page.next_marker

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> tuple[int | None, str]:
        import oss2

        infos = [oss2.models.PartInfo(n, etag) for n, etag in parts]
        result = self._call(
            f"finish upload of oss://{self.name}/{key}", self._bucket.complete_multipart_upload, key, upload_id, infos
        )
        return (int(result.crc) if result.crc is not None else None), result.etag or ""

    def list_uploads(self, key: str) -> list[str]:
        """The ids of the multipart uploads of exactly ``key`` still in progress."""
        import oss2

        try:
            return [u.upload_id for u in oss2.ObjectUploadIterator(self._bucket, key) if u.key == key]
        except (oss2.exceptions.OssError, OSError) as exc:
            raise map_error(exc, f"list uploads of oss://{self.name}/{key}") from None

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._call(f"abort upload of oss://{self.name}/{key}", self._bucket.abort_multipart_upload, key, upload_id)
