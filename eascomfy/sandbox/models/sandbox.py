"""``ModelSourceSandbox``: the hub, its CDN and a plain file server (see the package docstring)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from aiohttp import web

from ..fidelity import Fidelity
from ..server import SandboxServer, ServerBacked
from . import civitai, modelscope

HUB, CDN = "hub", "cdn"
CHUNK = 256 * 1024
SWITCHES: web.AppKey["Switches"] = web.AppKey("switches")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Switches:
    """What a test turns on: see the package docstring."""

    lie_about_hash: bool = False
    ignore_range: bool = False
    bytes_per_second: int = 0  # 0: unlimited
    retry_after: int = 1  # seconds in a throttling answer's Retry-After


@dataclass
class Blob:
    """A file's bytes: on disk (``path``), or generated from ``seed`` (deterministic, never stored:
    a 2 GiB benchmark source costs no disk)."""

    sha256: str
    size: int
    path: Path | None
    seed: int | None = None


GEN_PERIOD = 1024 * 1024 + 13  # a generated file repeats a seeded block of this length: no two parts alike


@functools.lru_cache(maxsize=4)
def _generator_block(seed: int) -> bytes:
    block = random.Random(seed).randbytes(GEN_PERIOD)
    return block + block  # any window up to GEN_PERIOD long is one slice


def generated_chunks(seed: int, start: int, length: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """Bytes ``start .. start+length`` of the file generated from ``seed``."""
    block = _generator_block(seed)
    offset, left = start, length
    while left > 0:
        n = min(chunk, left, GEN_PERIOD)
        i = offset % GEN_PERIOD
        yield block[i:i + n]
        offset += n
        left -= n


def error_response(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    """A Hub error: ``X-Error-Code`` and ``X-Error-Message`` headers and a JSON ``error`` body
    (huggingface_hub ``hf_raise_for_status``); a throttling fault is a 429 with ``Retry-After``."""
    headers = {"X-Error-Code": code, "X-Error-Message": message}
    if request.path.startswith("/api/"):  # ModelScope's and Civitai's APIs have their own error shapes
        return (civitai.error_response if request.path.startswith(civitai.PREFIXES) else modelscope.error_response)(
            request, status, code, message)
    if code.startswith("Throttling"):
        status, message = 429, "rate limit reached"
        headers = {"Retry-After": str(request.app[SWITCHES].retry_after), "X-Error-Message": message,
                   "RateLimit": '"resolvers";r=0;t=' + str(request.app[SWITCHES].retry_after)}
    return web.json_response({"error": message}, status=status, headers=headers)


def _action_of(request: web.Request) -> str | None:
    action = modelscope.action_of(request) or civitai.action_of(request)
    if action:
        return action
    if "/resolve/" in request.path:
        return "Resolve"
    if request.path.startswith("/cdn/"):
        return "CdnGet"
    if request.path.startswith("/files/"):
        return "FileGet"
    return None


class ModelSourceSandbox(ServerBacked):
    """Hub and file server on one port (``url``), the CDN on another (``cdn_url``); blobs under
    ``state_dir/models`` (a temporary folder when None)."""

    def __init__(self, state_dir: Path | None = None, port: int = 0, cdn_port: int = 0,
                 fidelity: Fidelity | None = None) -> None:
        self.blob_dir = self._state_folder(state_dir, "eascomfy-models-") / "models"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.switches = Switches()
        self.fidelity = fidelity or Fidelity()
        self.tokens: set[str] = set()
        self.gated: set[str] = set()
        self.repos: dict[str, dict[str, dict[str, Blob]]] = {}  # repo -> revision -> path -> blob
        self.files: dict[str, Blob] = {}  # plain files: path -> blob
        self.generated: dict[str, Blob] = {}  # sha256 -> a generated blob
        self.modelscope = modelscope.ModelScope()
        self.civitai = civitai.Civitai()
        self._served_lock = threading.Lock()
        self._served: list[tuple[str, int, int]] = []  # (sha256, first, last byte) of each body sent
        self.cdn_with_credentials = 0  # CDN requests that carried Authorization or a cookie (never their values)
        self.bodies_in_flight = 0
        self.peak_bodies_in_flight = 0  # the most bodies sent at once: a client's parallel streams
        self._server = SandboxServer(self._application, error_response, _action_of, name="models",
                                     sites={HUB: port, CDN: cdn_port}, controls={"models": self._control})

    @property
    def cdn_url(self) -> str:
        return self._server.url_for(CDN)

    # -- content ---------------------------------------------------------------------------------
    def blob(self, data: bytes | None = None, *, size: int = 0, seed: int | None = None) -> Blob:
        """Store ``data``, or describe ``size`` generated bytes from ``seed`` (hashed once here)."""
        if data is None:
            seed = 0 if seed is None else seed
            digest = hashlib.sha256()
            for chunk in generated_chunks(seed, 0, size, chunk=GEN_PERIOD):
                digest.update(chunk)
            blob = Blob(digest.hexdigest(), size, None, seed)
            self.generated[blob.sha256] = blob
            return blob
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_dir / sha
        if not path.exists():
            path.write_bytes(data)
        return Blob(sha, len(data), path)

    def served(self, sha256: str | None = None) -> list[tuple[int, int]]:
        """The byte ranges (first, last) of the bodies sent so far (of one blob, or all)."""
        with self._served_lock:
            return [(a, b) for sha, a, b in self._served if sha256 is None or sha == sha256]

    def cdn_link(self, blob: Blob) -> str:
        """A signed, content-addressed URL on the CDN's origin."""
        return f"{self.cdn_url}/cdn/{blob.sha256}?X-Amz-Expires=3600&X-Amz-Signature=sandbox"

    def add_file(self, repo: str, path: str, data: bytes | None = None, *, revision: str = "main", gated: bool = False,
                 size: int = 0, seed: int | None = None) -> str:
        """Put a file (``data``, or ``size`` generated bytes) into a repo (``org/name``) at
        ``revision``; its SHA-256."""
        blob = self.blob(data, size=size, seed=seed)
        self.repos.setdefault(repo, {}).setdefault(revision, {})[path] = blob
        if gated:
            self.gated.add(repo)
        return blob.sha256

    def add_plain(self, path: str, data: bytes | None = None, *, size: int = 0, seed: int | None = None) -> str:
        """A plain file (``data``, or ``size`` generated bytes) at ``/files/<path>``; its URL."""
        self.files[path] = self.blob(data, size=size, seed=seed)
        return f"{self.url}/files/{path}"

    def add_ms_file(self, repo: str, path: str, data: bytes | None = None, **kw: Any) -> str:
        """A ModelScope file (``modelscope.add_file``: revision, private, lfs, size, seed)."""
        return modelscope.add_file(self, repo, path, data, **kw)

    def add_civitai_version(self, version_id: int, files: list[dict[str, Any]], **kw: Any) -> list[str]:
        """A Civitai model version (``civitai.add_version``: model_type, model_name, early_access)."""
        return civitai.add_version(self, version_id, files, **kw)

    @staticmethod
    def commit_of(repo: str, revision: str) -> str:
        """A stable 40-hex commit id for a repo's revision."""
        return hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()

    def requests(self, action: str | None = None) -> list[Any]:
        return [r for r in self._server.recorder.all() if action is None or r.action == action]

    # -- the application -------------------------------------------------------------------------
    def _application(self, server: SandboxServer) -> web.Application:
        app = web.Application()
        app[SWITCHES] = self.switches
        app.router.add_route("*", "/{org}/{repo}/resolve/{revision}/{path:.+}", self._resolve)
        app.router.add_route("*", "/cdn/{sha}", self._cdn)
        app.router.add_route("*", "/files/{path:.+}", self._plain)
        modelscope.add_routes(app, self)
        civitai.add_routes(app, self)
        return app

    async def _control(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            body = await request.json()
            for name, value in body.items():
                if not hasattr(self.switches, name):
                    return web.json_response({"error": f"unknown switch {name!r}"}, status=400)
                setattr(self.switches, name, value)
        return web.json_response(asdict(self.switches))

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        repo = f"{request.match_info['org']}/{request.match_info['repo']}"
        revision, path = request.match_info["revision"], request.match_info["path"]
        revisions = self.repos.get(repo)
        if revisions is None or (repo in self.gated and not self._authorized(request)):
            if repo in self.gated:
                return error_response(request, 401, "GatedRepo", f"Access to model {repo} is restricted.")
            return error_response(request, 404, "RepoNotFound", "Repository not found")
        files = revisions.get(revision)
        if files is None:
            return error_response(request, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        commit = self.commit_of(repo, revision)
        blob = files.get(path)
        if blob is None:
            resp = error_response(request, 404, "EntryNotFound", f"{path} does not exist on {revision}")
            resp.headers["X-Repo-Commit"] = commit
            return resp
        sha = blob.sha256
        if self.switches.lie_about_hash:
            sha = hashlib.sha256(sha.encode()).hexdigest()
        # A signed, content-addressed URL on another origin (the CDN site).
        location = self.cdn_link(blob)
        return web.Response(status=302, text=f"Found. Redirecting to {location}", headers={
            "Location": location, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(blob.size),
            "X-Repo-Commit": commit, "ETag": f'"{sha}"'})

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        if "Authorization" in request.headers or "Cookie" in request.headers:
            self.cdn_with_credentials += 1  # a client that leaks its token to the signed-URL origin
        blob = self.generated.get(sha)
        if blob is None:
            path = self.blob_dir / sha
            if not re.fullmatch(r"[0-9a-f]{64}", sha) or not path.is_file():
                return web.Response(status=404, text="NoSuchKey")
            blob = Blob(sha, path.stat().st_size, path)
        headers = modelscope.cdn_headers(self, blob)
        # The CDN's ETag is its own (an MD5-like value), not the SHA-256 the hub published.
        return await self.serve(request, blob, etag=sha[:32], headers=headers)

    async def _plain(self, request: web.Request) -> web.StreamResponse:
        blob = self.files.get(request.match_info["path"])
        if blob is None:
            return web.Response(status=404, text="Not Found")
        return await self.serve(request, blob, etag=blob.sha256[:32])

    async def serve(self, request: web.Request, blob: Blob, etag: str, *, headers: dict[str, str] | None = None,
                    ranges: bool = True) -> web.StreamResponse:
        """The body (or one range of it, unless ``ranges`` is off), chunk by chunk, at most
        ``bytes_per_second``."""
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        start, end, status = 0, blob.size - 1, 200
        headers = {"ETag": f'"{etag}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
                   **(headers or {})}
        spec = request.headers.get("Range")
        if spec and ranges and not self.switches.ignore_range:
            m = _RANGE.match(spec.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), blob.size - 1) if m.group(2) else blob.size - 1
            else:  # a suffix: the last N bytes
                start = max(0, blob.size - int(m.group(2)))
            if start >= blob.size or start > end:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        length = end - start + 1
        headers["Content-Length"] = str(length)
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        with self._served_lock:
            self._served.append((blob.sha256, start, end))
            self.bodies_in_flight += 1
            self.peak_bodies_in_flight = max(self.peak_bodies_in_flight, self.bodies_in_flight)
        try:
            rate = self.switches.bytes_per_second
            for chunk in self._chunks(blob, start, length):
                await resp.write(chunk)
                if rate:
                    await asyncio.sleep(len(chunk) / rate)
            await resp.write_eof()
        finally:
            with self._served_lock:
                self.bodies_in_flight -= 1
        return resp

    @staticmethod
    def _chunks(blob: Blob, start: int, length: int) -> Iterator[bytes]:
        if blob.seed is not None:
            yield from generated_chunks(blob.seed, start, length)
            return
        assert blob.path is not None
        with open(blob.path, "rb") as fh:
            fh.seek(start)
            left = length
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                yield chunk
                left -= len(chunk)

