"""How the OSS emulator answers: ``OssError`` (rendered as OSS's ``<Error>`` document by
``service.error_response``), XML documents built from ``(tag, value)`` pairs, and the text forms
OSS uses for times, digests and keys.
"""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ElementTree
from email.utils import formatdate
from typing import Iterable, Union
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web


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


def wrong_endpoint(bucket: str, endpoint: str) -> OssError:
    """A bucket addressed through another region's endpoint: 403 AccessDenied, EC 0003-00001403,
    with the right ``<Endpoint>`` (OSS's "HTTP status code 403" page; help.aliyun.com
    /zh/oss/user-guide/0003-00001403; aliyun-oss-go-sdk issue #81 shows the message)."""
    return OssError(403, "AccessDenied", "The bucket you are attempting to access must be addressed using the "
                    "specified endpoint. Please send all future requests to this endpoint.",
                    Bucket=bucket, Endpoint=endpoint, EC="0003-00001403")


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


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def quote_key(value: str) -> str:
    return quote(value, safe="")


def parse_xml(body: bytes) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise malformed_xml() from exc
