"""The HTTP model-source adapter: the only module that fetches model files from Hugging Face,
ModelScope, Civitai or a plain URL (httpx).

- ``probe`` asks where the bytes are and what they are: HEAD (``Accept-Encoding: identity``),
  following redirects by hand so the token goes only to the URL's own origin (huggingface_hub
  drops ``authorization`` off the Hub's origin; its CDN URLs are signed). The hash and size a
  Hugging Face 302 carries (``X-Linked-Etag`` = quoted SHA-256, ``X-Linked-Size``,
  ``X-Repo-Commit``) are read from the redirect itself: the CDN's own ETag is another value.
  A server that refuses HEAD is probed with ``GET`` + ``Range: bytes=0-0`` (RFC 9110 §14).
- ``read_into`` fetches one byte range (``Range: bytes=a-b``, 206 with ``Content-Range``
  checked) straight into the caller's buffer: no copy on disk, memory bounded by the buffer.
  A 200 to a range request (a server may ignore Range) is refused unless it is the whole file.
- ``get_json`` reads a source's metadata API (ModelScope's file listing, Civitai's model
  version) with the token, retried like the rest.
- The token goes as ``Authorization: Bearer`` (Hugging Face, Civitai); ModelScope's SDK also sends
  it as the cookie ``m_session_id`` (modelscope-hub ``_legacy_api.py`` _headers), so a
  ``cookie`` name adds that.
- 408/429/5xx and dropped connections are retried with the shared backoff, never sooner than an
  integer ``Retry-After`` says (huggingface_hub ``http_backoff``); other errors become
  ``CloudError`` with the Hub's ``X-Error-Code`` when there is one, never with the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from urllib.parse import urljoin, urlsplit

from ..errors import CloudError
from ..retry import Retry

T = TypeVar("T")
RETRY = Retry(attempts=5, base=0.5, cap=8.0)
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
MAX_REDIRECTS = 10


@dataclass(frozen=True)
class RemoteFile:
    """What a probe learnt: where the bytes are, how many, and the hashes the source publishes."""

    url: str  # after redirects: where ranged GETs go (a signed URL needs no token)
    size: int
    sha256: str | None = None  # published by the source (Hugging Face's X-Linked-Etag for LFS files)
    etag: str = ""
    commit: str | None = None
    tokened: bool = False  # whether ``url`` is on the origin the token was given for


class SourceError(CloudError):
    """A model source answered an error (or did not answer)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 hint: str | None = None, retry_after: float = 0.0) -> None:
        super().__init__(message, code=code, status=status, hint=hint, service="source")
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.code == "ConnectionError" or (self.status or 0) in TRANSIENT_STATUS


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _retry_after(value: str | None) -> float:
    try:
        return float(int(value)) if value else 0.0  # the HTTP-date form is ignored, as the Hub's client does
    except ValueError:
        return 0.0


class HttpSource:
    """One pooled httpx client for one source URL's probe and its ranged reads."""

    def __init__(self, token: str | None = None, *, retry: Retry = RETRY, timeout: float = 60.0,
                 connections: int = 16, token_env: str = "HF_TOKEN", cookie: str | None = None) -> None:
        import httpx

        self._token = token
        self._token_env = token_env  # named in the hint of a 401/403
        self._cookie = cookie
        self._retry = retry
        self._client = httpx.Client(follow_redirects=False, timeout=httpx.Timeout(timeout, connect=15.0),
                                    limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))

    def __repr__(self) -> str:  # never the token
        return "HttpSource()"

    def close(self) -> None:
        self._client.close()

    # -- requests --------------------------------------------------------------------------------
    def _headers(self, url: str, token_origin: tuple[str, str] | None, extra: dict[str, str]) -> dict[str, str]:
        headers = {"Accept-Encoding": "identity", "User-Agent": "eascomfy", **extra}
        if self._token and token_origin is not None and _origin(url) == token_origin:
            headers["Authorization"] = f"Bearer {self._token}"
            if self._cookie:
                headers["Cookie"] = f"{self._cookie}={self._token}"
        return headers

    def _send(self, method: str, url: str, what: str, headers: dict[str, str], stream: bool = False) -> Any:
        import httpx

        try:
            request = self._client.build_request(method, url, headers=headers)
            return self._client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise SourceError(f"{what}: cannot reach {urlsplit(url).netloc} ({type(exc).__name__})",
                              code="ConnectionError") from None

    def _retrying(self, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except SourceError as exc:
                if not exc.transient or attempt >= self._retry.attempts:
                    raise
                self._retry.sleep(self._retry.delay(attempt, exc.retry_after))
                attempt += 1

    def _error(self, response: Any, what: str) -> SourceError:
        status = response.status_code
        code = response.headers.get("X-Error-Code")
        message = response.headers.get("X-Error-Message") or ""
        if not message:
            try:
                body = response.json()
                # Hugging Face and Civitai: {"error": ...}; ModelScope: {"Code", "Message", "Success"}
                message = str(body.get("error") or body.get("Message") or "") if isinstance(body, dict) else ""
            except (ValueError, UnicodeDecodeError):
                message = ""
        hint = None
        if status in (401, 403) or code in ("GatedRepo", "RepoNotFound"):
            hint = f"a private or gated model needs a token with access: set {self._token_env}"
        elif status == 404:
            hint = "check the repository, revision and file path"
        text = f"{what}: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        return SourceError(text, status=status, code=code or f"HTTP{status}", hint=hint,
                           retry_after=_retry_after(response.headers.get("Retry-After")))

    # -- metadata --------------------------------------------------------------------------------
    def get_json(self, url: str, what: str) -> Any:
        """The JSON a source's API answers at ``url`` (the token goes to that origin only)."""
        return self._retrying(lambda: self._get_json(url, what))

    def _get_json(self, url: str, what: str) -> Any:
        response = self._send("GET", url, what, self._headers(url, _origin(url), {"Accept": "application/json"}))
        if response.status_code >= 400 or response.is_redirect:
            raise self._error(response, what)
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise SourceError(f"{what}: the source's API did not answer JSON (HTTP {response.status_code})",
                              code="BadAnswer") from None

    # -- probe -----------------------------------------------------------------------------------
    def probe(self, url: str, what: str) -> RemoteFile:
        """Follow redirects from ``url`` to the bytes, reading size and published hash on the way."""
        return self._retrying(lambda: self._probe(url, what))

    def _probe(self, url: str, what: str) -> RemoteFile:
        token_origin = _origin(url)
        sha256: str | None = None
        size: int | None = None
        commit: str | None = None
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send("HEAD", current, what, self._headers(current, token_origin, {}))
            if response.status_code in (405, 501):  # HEAD refused: ask for one byte instead
                response = self._send("GET", current, what, self._headers(current, token_origin, {"Range": "bytes=0-0"}))
            linked = response.headers.get("X-Linked-Etag")
            if linked and sha256 is None:
                sha256 = linked.strip().removeprefix("W/").strip('"').lower()
            if response.headers.get("X-Linked-Size") and size is None:
                size = int(response.headers["X-Linked-Size"])
            commit = commit or response.headers.get("X-Repo-Commit")
            if response.is_redirect:
                current = urljoin(current, response.headers["Location"])
                continue
            if response.status_code >= 400:
                raise self._error(response, what)
            if size is None:
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                size = int(total) if total.isdigit() else int(response.headers.get("Content-Length", "-1"))
            if size < 0:
                raise SourceError(f"{what}: the source does not tell the file's size", code="NoSize")
            if sha256 is not None and len(sha256) != 64:
                sha256 = None  # a git blob SHA-1 (non-LFS file), not the file's SHA-256
            return RemoteFile(current, size, sha256, response.headers.get("ETag", "").strip('"'), commit,
                              tokened=_origin(current) == token_origin)
        raise SourceError(f"{what}: more than {MAX_REDIRECTS} redirects", code="TooManyRedirects")

    # -- ranged reads ----------------------------------------------------------------------------
    def read_into(self, remote: RemoteFile, offset: int, view: memoryview, what: str) -> None:
        """Bytes ``offset .. offset+len(view)`` of the file into ``view``, retried as a whole."""
        self._retrying(lambda: self._read(remote, offset, view, what))

    def _read(self, remote: RemoteFile, offset: int, view: memoryview, what: str) -> None:
        import httpx

        end = offset + len(view) - 1
        origin = _origin(remote.url) if remote.tokened else None
        response = self._send("GET", remote.url, what, self._headers(remote.url, origin, {"Range": f"bytes={offset}-{end}"}),
                              stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise self._error(response, what)
            if response.status_code == 206:
                got_range = response.headers.get("Content-Range", "")
                if not got_range.startswith(f"bytes {offset}-"):
                    raise SourceError(f"{what}: asked for bytes {offset}-{end}, got {got_range or 'no Content-Range'}",
                                      code="BadRange")
            elif response.status_code == 200:
                if offset != 0 or len(view) != remote.size:
                    raise SourceError(f"{what}: the server ignores Range requests; parallel pulls need them",
                                      code="RangeIgnored", hint="download the file and push it instead")
            else:
                raise SourceError(f"{what}: unexpected HTTP {response.status_code}", status=response.status_code)
            got = 0
            try:
                for chunk in response.iter_bytes():  # as they come: a chunk_size would copy each byte 3 more times
                    n = min(len(chunk), len(view) - got)
                    view[got:got + n] = chunk[:n]
                    got += n
                    if got >= len(view):
                        break
            except httpx.HTTPError as exc:
                raise SourceError(f"{what}: the transfer broke ({type(exc).__name__})", code="ConnectionError") from None
            if got != len(view):
                raise SourceError(f"{what}: got {got} of {len(view)} bytes at offset {offset}", code="ConnectionError")
        finally:
            response.close()
