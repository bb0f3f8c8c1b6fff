"""EAS OpenAPI errors: ``EasError`` (HTTP status, EAS code, message) and the JSON body the
gateway answers with, ``{"RequestId","HostId","Code","HttpCode","Success":false,"Message"}``.
"""

from __future__ import annotations

import uuid

from aiohttp import web

HOST_ID = "eas-sandbox-apiserver"
NOT_FOUND_MESSAGE = "The specified service does not exist"


class EasError(Exception):
    """An OpenAPI error: HTTP status, EAS error code, human message (never holding a secret)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str, status: int = 400) -> EasError:
    return EasError(status, "InvalidParameter", message)


def not_found() -> EasError:
    return EasError(404, "InvalidService.NotFound", NOT_FOUND_MESSAGE)


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def eas_error_response(request: web.Request, status: int, code: str, message: str,
                       retry_after: str = "1") -> web.Response:
    """The error body; a ``Throttling*`` code also carries ``x-acs-retry-after: <retry_after>``
    (alibabacloud_tea_openapi ``utils.py`` ``get_throttling_time_left`` turns a positive integer
    there into ``ThrottlingException.retry_after``; darabonba ``core.py`` ``get_backoff_time``
    sleeps that many milliseconds, capped at ``MAX_DELAY_TIME`` = 120000)."""
    request_id = new_request_id()
    body = {
        "RequestId": request_id,
        "HostId": HOST_ID,
        "Code": code,
        "HttpCode": status,
        "Success": False,
        "Message": message,
    }
    headers = {"x-acs-request-id": request_id}
    if code.startswith("Throttling"):
        headers["x-acs-retry-after"] = retry_after
    return web.json_response(body, status=status, headers=headers)


def api_not_found() -> EasError:
    return EasError(404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method.")
