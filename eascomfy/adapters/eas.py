"""The EAS OpenAPI adapter: the only module that imports the EAS SDK, tea-openapi and credentials.

- Credentials come from the standard chain (``alibabacloud_credentials.client.Client()``:
  environment ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``SECRET``, profiles, ECS RAM role, OIDC/RRSA).
  The endpoint is the region's: ``EASCOMFY_EAS_ENDPOINTS`` (``region=url,...``, a region it
  lacks refused) or ``EASCOMFY_EAS_ENDPOINT`` (one URL) point the client elsewhere (the sandbox;
  see ``endpoints``); otherwise it is ``pai-eas.<region>.aliyuncs.com`` over HTTPS.
- Every SDK exception becomes a ``CloudError`` in ONE place (``map_error``): EAS code, message,
  request id, HTTP status and the service name, never credentials.
- Retries (exponential backoff with jitter, ``x-acs-retry-after`` honoured as the SDK reads it:
  milliseconds, at most two minutes): throttling always
  (the request was refused before it was processed); 5xx and connection errors only for calls
  that are safe to repeat: reads, idempotent writes, and writes that re-read the service first
  to see whether the failed attempt took effect (``settled``). What "took effect" means for a
  create or an update is the caller's to say (``applied``: is this live service the config I
  sent?); a 409 on a retried CreateService counts as success only if ``applied`` accepts the
  existing service.
- The service AccessToken and signed URLs are registered with ``redact`` as soon as they are read.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, TypeVar

from ..errors import CloudError
from ..redact import register_secret
from ..retry import Retry
from .endpoints import EAS_ENDPOINT_ENV, EAS_ENDPOINTS_ENV, endpoint_from_env

ENDPOINT_ENV = EAS_ENDPOINT_ENV  # one URL for every region
ENDPOINTS_ENV = EAS_ENDPOINTS_ENV  # region=url,...
READ_TIMEOUT_ENV = "EASCOMFY_EAS_READ_TIMEOUT"  # seconds
RETRIES_ENV = "EASCOMFY_EAS_MAX_RETRIES"
NOT_FOUND = "InvalidService.NotFound"
# x-acs-retry-after is in milliseconds: tea-openapi (utils.py get_throttling_time_left) puts the
# header's positive integer in ThrottlingException.retry_after, and darabonba's own retry
# (core.py get_backoff_time, policy/retry.py) sleeps min(retry_after, MAX_DELAY_TIME) ms with
# MAX_DELAY_TIME = 120 * 1000. eascomfy waits the same: never more than two minutes.
MAX_RETRY_AFTER_MS = 120_000
EVENT_PAGE_SIZE = 100
MAX_EVENT_PAGES = 20  # DescribeServiceEvent pages read at most for one answer
# A service name another account owns: EAS answers Forbidden.PrivilegeCheckFailed on every call
# naming it (agentscope-runtime's pai_deployer.py reads it as "Given service name is owned by
# another user"); not a missing RAM permission.
NAME_TAKEN = "Forbidden.PrivilegeCheckFailed"
AUTH_CODES = ("SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive", "IncompleteSignature")

T = TypeVar("T")
RetryKind = Literal["throttle", "transient"]
Log = Callable[[str], None]
Applied = Callable[["LiveService"], bool]  # does this live service already have what was sent?


def _quiet(message: str) -> None:
    return None


def retry_from_env() -> Retry:
    """The default policy, with ``EASCOMFY_EAS_MAX_RETRIES`` retries when set."""
    raw = os.environ.get(RETRIES_ENV)
    return Retry(attempts=int(raw)) if raw and raw.isascii() and raw.isdigit() else Retry()


# -- errors: the one mapping -----------------------------------------------------------------------
def _hint(code: str | None, status: int | None) -> str | None:
    if code in AUTH_CODES:
        return (
            "authentication failed: check the AccessKey pair (ALIBABA_CLOUD_ACCESS_KEY_ID / "
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or your credentials profile)"
        )
    if code == NAME_TAKEN:
        return "choose another service name: names are unique within a region, across all accounts"
    if code and (code.startswith("Forbidden") or status == 403):
        return "the RAM user or role lacks a PAI-EAS permission (e.g. AliyunPAIEASFullAccess)"
    if code and code.startswith("Throttling"):
        return "the API is throttling requests; try again later"
    return None


def _strip_sdk_message(message: str, request_id: str | None) -> str:
    """The SDK's ``code: 403, <Message> request id: <id>`` back to ``<Message>``."""
    text = message or ""
    if text.startswith("code: ") and ", " in text:
        text = text.split(", ", 1)[1]
    if request_id and text.endswith(f"request id: {request_id}"):
        text = text[: -len(f"request id: {request_id}")]
    return text.strip() or "no message"


def retry_after_seconds(exc: BaseException) -> float:
    """The wait a throttling answer asked for, in seconds: its ``x-acs-retry-after`` read as
    milliseconds (as the SDK reads it) and capped at ``MAX_RETRY_AFTER_MS``; 0 when absent."""
    raw = getattr(exc, "retry_after", None)
    try:
        millis = float(raw) if raw is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
    if not millis > 0:  # also NaN
        return 0.0
    return min(millis, MAX_RETRY_AFTER_MS) / 1000


def map_error(exc: BaseException, service: str | None = None) -> tuple[CloudError, RetryKind | None, float]:
    """SDK exception -> (CloudError, how it may be retried, seconds the server asked to wait)."""
    from alibabacloud_credentials.exceptions import CredentialException
    from alibabacloud_tea_openapi.exceptions import ThrottlingException
    from darabonba.exceptions import ResponseException
    from Tea.exceptions import TeaException, UnretryableException

    if isinstance(exc, CloudError):
        return exc, None, 0.0
    if isinstance(exc, ResponseException) or (isinstance(exc, TeaException) and not isinstance(exc, UnretryableException)):
        data = exc.data if isinstance(getattr(exc, "data", None), dict) else {}
        status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None) or data.get("statusCode")
        code = getattr(exc, "code", None) or data.get("Code")
        request_id = getattr(exc, "request_id", None) or data.get("RequestId")
        request_id = None if request_id in (None, "None") else str(request_id)
        message = data.get("Message") or _strip_sdk_message(str(getattr(exc, "message", "") or ""), request_id)
        if code == NAME_TAKEN:
            message = f"the service name is owned by another Alibaba Cloud account ({message})"
        error = CloudError(
            str(message), code=code, request_id=request_id, service=service, status=status, hint=_hint(code, status)
        )
        if isinstance(exc, ThrottlingException) or (code or "").startswith("Throttling"):
            return error, "throttle", retry_after_seconds(exc)
        if status is not None and int(status) >= 500:
            return error, "transient", 0.0
        return error, None, 0.0
    inner: BaseException = getattr(exc, "inner_exception", None) or exc
    if isinstance(inner, CredentialException):
        return (
            CloudError(
                "no Alibaba Cloud credentials found",
                code="NoCredentials",
                service=service,
                hint="set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, a profile "
                "(aliyun configure), an ECS RAM role, or OIDC (RRSA) in CI",
            ),
            None,
            0.0,
        )
    detail = getattr(inner, "message", None) or str(inner) or type(inner).__name__
    return (
        CloudError(f"could not reach the EAS endpoint: {detail}", code="ConnectionError", service=service),
        "transient",
        0.0,
    )


# -- what DescribeService and friends return -------------------------------------------------------
@dataclass
class LiveService:
    name: str
    status: str
    reason: str
    message: str
    config: dict[str, Any]
    labels: dict[str, str]
    current_version: int
    latest_version: int
    running: int
    total: int
    internet_endpoint: str
    intranet_endpoint: str
    image: str
    update_time: str
    access_token: str = field(default="", repr=False)
    safety_lock: str = ""  # DescribeService SafetyLock: all | dangerous | none ("" when not reported)
    group: str = ""  # DescribeService ServiceGroup: the service group it is in ("" none)
    traffic_state: str = ""  # TrafficState: standalone | grouping ("" when not reported)
    weight: int | None = None  # Weight: its share of the group's traffic, relative to the others'

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> "LiveService":
        token = str(body.get("AccessToken") or "")
        register_secret(token)
        raw = body.get("ServiceConfig") or "{}"
        return cls(
            name=str(body.get("ServiceName") or ""),
            status=str(body.get("Status") or ""),
            reason=str(body.get("Reason") or ""),
            message=str(body.get("Message") or ""),
            config=json.loads(raw) if isinstance(raw, str) else dict(raw),
            labels={str(l.get("LabelKey")): str(l.get("LabelValue")) for l in body.get("Labels") or []},
            current_version=int(body.get("CurrentVersion") or 0),
            latest_version=int(body.get("LatestVersion") or 0),
            running=int(body.get("RunningInstance") or 0),
            total=int(body.get("TotalInstance") or 0),
            internet_endpoint=str(body.get("InternetEndpoint") or ""),
            intranet_endpoint=str(body.get("IntranetEndpoint") or ""),
            image=str(body.get("Image") or ""),
            update_time=str(body.get("UpdateTime") or ""),
            access_token=token,
            safety_lock=str(body.get("SafetyLock") or ""),
            group=str(body.get("ServiceGroup") or ""),
            traffic_state=str(body.get("TrafficState") or ""),
            weight=int(body["Weight"]) if isinstance(body.get("Weight"), int) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "running": self.running,
            "total": self.total,
            "image": self.image,
            "current_version": self.current_version,
            "latest_version": self.latest_version,
            "internet_endpoint": self.internet_endpoint,
            "intranet_endpoint": self.intranet_endpoint,
            "labels": self.labels,
            "update_time": self.update_time,
            "safety_lock": self.safety_lock,
        }


@dataclass(frozen=True)
class Event:
    """One DescribeServiceEvent entry; ``version`` is the service version it belongs to, when the
    message came in EAS's JSON form."""

    time: str
    type: str
    reason: str
    message: str
    version: int | None = None

    def line(self) -> str:
        return f"{self.time} {self.type} {self.reason}: {self.message}"

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> "Event":
        """``Message`` "is formatted and returned in the JSON format" (SDK
        ``DescribeServiceEventResponseBodyEvents.message``): ``{"versionId": 1, "message": "..."}``;
        plain text is taken as it is."""
        message, version = str(body.get("Message") or ""), None
        if message.startswith("{"):
            try:
                parsed = json.loads(message)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and "message" in parsed:
                message = str(parsed.get("message") or "")
                raw = parsed.get("versionId")
                version = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        return cls(str(body.get("Time") or ""), str(body.get("Type") or ""), str(body.get("Reason") or ""),
                   message, version)


def time_key(text: str) -> tuple[int, ...]:
    """An event time as numbers, whatever the separators (``2024-05-01T08:00:00Z``,
    ``2024-05-01 08:00:00``): what the events are sorted by."""
    return tuple(int(n) for n in re.findall(r"\d+", text))


def _page_order(page: list[Event]) -> Literal["oldest_first", "newest_first"] | None:
    """How a page of events is ordered (undocumented), from its times; None when they cannot tell."""
    keys = [time_key(e.time) for e in page]
    up = sum(a < b for a, b in zip(keys, keys[1:]))
    down = sum(a > b for a, b in zip(keys, keys[1:]))
    if up == down:
        return None
    return "oldest_first" if up > down else "newest_first"


@dataclass(frozen=True)
class Version:
    """One entry of ListServiceVersions. ``config`` (and so ``image``) is None/"" when EAS did not
    return ``ServiceConfig``: it does "only if the service is deployed by using a custom image"
    (SDK ``ListServiceVersionsResponseBodyVersions.service_config``), not for official images."""

    version: int
    build_time: str
    image: str
    runnable: bool
    message: str
    config: dict[str, Any] | None


# -- the client ------------------------------------------------------------------------------------
def endpoint_for(region: str, override: str | None = None) -> tuple[str, str]:
    """(host[:port], protocol) for the SDK Config."""
    if override:
        parts = urllib.parse.urlsplit(override if "://" in override else f"https://{override}")
        return parts.netloc, parts.scheme or "https"
    return f"pai-eas.{region}.aliyuncs.com", "https"


def default_credential() -> Any:
    """The standard credential chain (see adapters/credentials.py)."""
    from .credentials import credential_client

    try:
        return credential_client()
    except CloudError:
        raise
    except Exception as exc:
        raise map_error(exc)[0] from None


def static_credential(access_key_id: str, access_key_secret: str) -> Any:
    """An AccessKey pair given explicitly (the demo's sandbox pair)."""
    from .credentials import AccessKey, credential_client

    return credential_client(AccessKey(access_key_id, access_key_secret))


class EasClient:
    """The EAS operations eascomfy needs, on one region, with retries and mapped errors."""

    def __init__(
        self,
        region: str,
        *,
        endpoint: str | None = None,
        credential: Any = None,
        retry: Retry | None = None,
        read_timeout: float | None = None,
        log: Log = _quiet,
    ) -> None:
        from alibabacloud_eas20210701.client import Client
        from alibabacloud_tea_openapi.models import Config

        self.region = region
        self.retry = retry or retry_from_env()
        self.log = log
        if endpoint is None:
            endpoint = endpoint_from_env(region, ENDPOINTS_ENV, ENDPOINT_ENV)
        host, protocol = endpoint_for(region, endpoint)
        self.endpoint = f"{protocol}://{host}"
        timeout = read_timeout if read_timeout is not None else float(os.environ.get(READ_TIMEOUT_ENV) or 30)
        config = Config(
            credential=credential if credential is not None else default_credential(),
            endpoint=host,
            protocol=protocol,
            region_id=region,
            read_timeout=int(timeout * 1000),
            connect_timeout=5000,
        )
        self._sdk = Client(config)

    # -- the retry loop ------------------------------------------------------------------------
    def _call(
        self,
        action: str,
        fn: Callable[[], T],
        service: str | None = None,
        *,
        idempotent: bool = False,
        settled: Callable[[], bool] | None = None,
    ) -> T | None:
        """Run one SDK call. Returns None when a retried write turned out to be done already."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                result = fn()
                self.log(f"{action} {service or ''} ok in {1000 * (time.monotonic() - started):.0f} ms")
                return result
            except Exception as exc:  # mapped right here, nowhere else
                error, kind, retry_after = map_error(exc, service)
            self.log(f"{action} {service or ''} failed: {error.code or 'error'} (status {error.status})")
            if attempt > 0 and error.status == 409 and settled is not None and settled():
                return None  # our earlier attempt did it
            retryable = kind == "throttle" or (kind == "transient" and (idempotent or settled is not None))
            if not retryable or attempt >= self.retry.attempts:
                raise error
            if kind == "transient" and settled is not None and settled():
                return None
            wait = self.retry.delay(attempt, retry_after)
            self.log(f"retrying {action} in {wait:.2f} s (attempt {attempt + 2})")
            self.retry.sleep(wait)
            attempt += 1

    def _body(self, response: Any) -> dict[str, Any]:
        return response.body.to_map() if response is not None and response.body is not None else {}

    # -- reads ---------------------------------------------------------------------------------
    def describe(self, name: str) -> LiveService | None:
        """The live service, or None when EAS answers InvalidService.NotFound."""
        try:
            response = self._call("DescribeService", lambda: self._sdk.describe_service(self.region, name), name, idempotent=True)
        except CloudError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise
        return LiveService.from_body(self._body(response))

    def require(self, name: str) -> LiveService:
        live = self.describe(name)
        if live is None:
            raise CloudError(
                f"service {name} does not exist in {self.region}",
                code=NOT_FOUND,
                service=name,
                hint="check the service name and region, or create it with `eascomfy deploy`",
            )
        return live

    def events(self, name: str, since: float | None = None, last: int | None = None) -> list[Event]:
        """The service's events (from ``since``), oldest first, sorted by time: the page order
        of DescribeServiceEvent is undocumented, so it is told from the times of the first page.
        With ``last``, only the pages that hold the newest ``last`` events are read (all of them,
        up to ``MAX_EVENT_PAGES``, when the order cannot be told)."""
        from alibabacloud_eas20210701 import models

        start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since)) if since is not None else None

        def page(number: int) -> tuple[list[Event], int]:
            request = models.DescribeServiceEventRequest(start_time=start, page_num=str(number),
                                                         page_size=str(EVENT_PAGE_SIZE))
            call = lambda: self._sdk.describe_service_event(self.region, name, request)  # noqa: E731
            body = self._body(self._call("DescribeServiceEvent", call, name, idempotent=True))
            return [Event.from_body(e) for e in body.get("Events") or []], int(body.get("TotalPageNum") or 1)

        first, total = page(1)
        pages = {1: first}
        order = _page_order(first)
        numbers = range(total, 1, -1) if order == "oldest_first" else range(2, total + 1)
        have = len(first) if order == "newest_first" else 0
        for number in list(numbers)[: MAX_EVENT_PAGES - 1]:
            if last is not None and order is not None and have >= last:
                break
            pages[number], _ = page(number)
            have += len(pages[number])
        served = [e for number in sorted(pages) for e in pages[number]]
        if order == "newest_first":
            served.reverse()  # so that events of the same second keep their order
        return sorted(served, key=lambda e: time_key(e.time))

    def versions(self, name: str) -> list[Version]:
        from alibabacloud_eas20210701 import models

        request = models.ListServiceVersionsRequest(page_number=1, page_size=100)
        call = lambda: self._sdk.list_service_versions(self.region, name, request)  # noqa: E731
        body = self._body(self._call("ListServiceVersions", call, name, idempotent=True))
        out = []
        for v in body.get("Versions") or []:
            raw = v.get("ServiceConfig")
            config = (json.loads(raw) if isinstance(raw, str) else dict(raw)) if raw else None
            containers = (config or {}).get("containers") or [{}]
            image = (containers[0] or {}).get("image", "") if isinstance(containers, list) else ""
            out.append(
                Version(
                    version=int(v.get("ImageId") or v.get("Version") or 0),
                    build_time=str(v.get("BuildTime") or ""),
                    image=str(image),
                    runnable=str(v.get("ServiceRunnable", "true")).lower() == "true",
                    message=str(v.get("Message") or ""),
                    config=config,
                )
            )
        return sorted(out, key=lambda v: v.version, reverse=True)

    def regions(self) -> dict[str, str]:
        """DescribeRegions: region id -> name of the regions EAS offers (names are localised)."""
        body = self._body(self._call("DescribeRegions", self._sdk.describe_regions, idempotent=True))
        return {str(r.get("RegionId")): str(r.get("RegionName") or "") for r in body.get("Regions") or [] if r.get("RegionId")}

    def signed_url(self, name: str, expire: int, internal: bool = False, kind: str = "webview") -> str:
        from alibabacloud_eas20210701 import models

        request = models.DescribeServiceSignedUrlRequest(type=kind, expire=expire, internal=internal)
        call = lambda: self._sdk.describe_service_signed_url(self.region, name, request)  # noqa: E731
        url = str(self._body(self._call("DescribeServiceSignedUrl", call, name, idempotent=True)).get("SignedUrl") or "")
        register_secret(url)
        if "?" in url:
            register_secret(url.split("?", 1)[1])
        return url

    # -- writes --------------------------------------------------------------------------------
    def create(self, config: dict[str, Any], labels: dict[str, str], *, applied: Applied | None = None) -> None:
        """CreateService. After a 5xx or a lost connection it is retried only with ``applied``: the
        service is read again and, if it exists, ``applied(live)`` tells whether the failed attempt
        created it after all (done) or another config holds the name (ServiceAlreadyExists)."""
        from alibabacloud_eas20210701 import models

        name = str(config.get("metadata", {}).get("name") or config.get("name"))
        request = models.CreateServiceRequest(body=json.dumps(config, ensure_ascii=False), labels=labels)

        def settled() -> bool:
            live = self.describe(name)
            if live is None:
                return False
            if applied is not None and applied(live):
                self.log(f"CreateService {name}: the service exists with the config sent; an earlier attempt created it")
                return True
            raise CloudError(
                f"a service named {name} already exists with another config",
                code="ServiceAlreadyExists",
                service=name,
                hint="run `eascomfy plan` to see the difference",
            )

        self._call("CreateService", lambda: self._sdk.create_service(request), name, settled=settled if applied else None)

    def update(self, name: str, config: dict[str, Any], update_type: str = "replace", *, applied: Applied | None = None) -> None:
        """UpdateService. After a 5xx or a lost connection it is retried only with ``applied``: the
        service is read again and ``applied(live)`` tells whether the failed attempt took effect."""
        from alibabacloud_eas20210701 import models

        request = models.UpdateServiceRequest(update_type=update_type, body=json.dumps(config, ensure_ascii=False))
        call = lambda: self._sdk.update_service(self.region, name, request)  # noqa: E731

        def settled() -> bool:
            live = self.describe(name)
            return live is not None and applied is not None and applied(live)

        self._call("UpdateService", call, name, settled=settled if applied else None)

    def set_labels(self, name: str, labels: dict[str, str]) -> None:
        from alibabacloud_eas20210701 import models

        request = models.UpdateServiceLabelRequest(labels=labels)
        call = lambda: self._sdk.update_service_label(self.region, name, request)  # noqa: E731
        self._call("UpdateServiceLabel", call, name, idempotent=True)

    def delete_labels(self, name: str, keys: list[str]) -> None:
        from alibabacloud_eas20210701 import models

        request = models.DeleteServiceLabelRequest(keys=keys)
        call = lambda: self._sdk.delete_service_label(self.region, name, request)  # noqa: E731
        self._call("DeleteServiceLabel", call, name, idempotent=True)

    def set_safety_lock(self, name: str, level: str) -> None:
        """UpdateServiceSafetyLock (PUT .../lock, body {"Lock": level}); idempotent."""
        from alibabacloud_eas20210701 import models

        request = models.UpdateServiceSafetyLockRequest(lock=level)
        call = lambda: self._sdk.update_service_safety_lock(self.region, name, request)  # noqa: E731
        self._call("UpdateServiceSafetyLock", call, name, idempotent=True)

    def switch_version(self, name: str, version: int) -> None:
        """UpdateServiceVersion (a rollback); a retry first checks whether it already switched."""
        from alibabacloud_eas20210701 import models

        request = models.UpdateServiceVersionRequest(version=version)
        call = lambda: self._sdk.update_service_version(self.region, name, request)  # noqa: E731

        def settled() -> bool:
            live = self.describe(name)
            return live is not None and live.current_version == version

        self._call("UpdateServiceVersion", call, name, settled=settled)

    def lifecycle(self, name: str, action: Literal["start", "stop", "restart", "delete"]) -> None:
        """Start/Stop/Restart/DeleteService. Retried after a 5xx or a lost connection only where
        the service shows the action took effect (restart is never repeated blindly)."""
        sdk_call = {
            "start": lambda: self._sdk.start_service(self.region, name),
            "stop": lambda: self._sdk.stop_service(self.region, name),
            "restart": lambda: self._sdk.restart_service(self.region, name),
            "delete": lambda: self._sdk.delete_service(self.region, name),
        }[action]
        done_statuses = {"start": ("Starting", "Running"), "stop": ("Stopping", "Stopped"), "delete": ("Deleting",)}
        settled = None
        if action in done_statuses:
            def settled() -> bool:
                live = self.describe(name)
                return (live is None and action == "delete") or (live is not None and live.status in done_statuses[action])
        self._call(f"{action.capitalize()}Service", sdk_call, name, settled=settled)


def probe(endpoint: str, token: str, timeout: float = 2.0) -> int | None:
    """GET <endpoint>/ with the service token: the HTTP status, or None when nothing answered."""
    url = endpoint.rstrip("/") + "/"
    request = urllib.request.Request(url, headers={"Authorization": token} if token else {})
    host = urllib.parse.urlsplit(url).hostname or ""
    handlers = [urllib.request.ProxyHandler({})] if host in ("127.0.0.1", "localhost", "::1") else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None
