"""ModelScope's file API, as the model-source emulator serves it (docs/unverified.md, "Model sources").

- ``GET /api/v1/models/{owner}/{name}/repo/files?Revision=&Recursive=&Root=``: the repo listing,
  ``{"Code": 200, "Data": {"Files": [{"Path", "Name", "Type", "Size", "Sha256"}]}, "Success":
  true}`` (modelscope-hub 0.5.1 ``_legacy_api.py`` list_repo_files, _json_data; ``constants.py``
  FILE_HASH_FIELD). ``Root`` limits it to one folder; with ``Recursive=False`` only its direct
  entries (the SDK's per-directory re-walk).
- ``GET /api/v1/models/{owner}/{name}/repo?Revision=&FilePath=``: an LFS file answers 302 to a
  signed URL on the CDN's origin (an OSS stand-in: ranges, 206/416); a git-stored file answers
  200 with the whole body and ignores ``Range`` (modelscope-hub ``_download.py``
  _probe_redirect_url and the download loop). Default revision ``master``.
- Auth: ``Authorization: Bearer <token>`` or the cookie ``m_session_id=<token>`` (the SDK sends
  both; modelscope-hub ``_legacy_api.py`` _headers). A private repo without a known token, and a
  missing repo, revision or file, answer the JSON envelope with ``Success: false``: the statuses
  and codes are not documented (unverified: 401 and 404 here).
- Switch ``lie_about_hash``: a wrong hash in the listing (or the header), for the client's check.
- Fidelity ``modelscope_sha256``: ``listing`` puts ``Sha256`` in the listing; ``linked_etag``
  leaves it out and sends ``X-Linked-ETag`` (the SHA-256) on the CDN's answer instead, which the
  SDK falls back to (``_download.py``; that header is known from an SDK comment only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .sandbox import Blob, ModelSourceSandbox

PREFIX = "/api/v1/models/"


@dataclass
class MsFile:
    blob: "Blob"
    lfs: bool = True


@dataclass
class ModelScope:
    """The repos (``owner/name`` -> revision -> path -> file), private repos and known tokens."""

    repos: dict[str, dict[str, dict[str, MsFile]]] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)


def add_file(sandbox: "ModelSourceSandbox", repo: str, path: str, data: bytes | None = None, *,
             revision: str = "master", private: bool = False, lfs: bool = True, size: int = 0,
             seed: int | None = None) -> str:
    """Put a file into a ModelScope repo; its SHA-256."""
    blob = sandbox.blob(data, size=size, seed=seed)
    sandbox.modelscope.repos.setdefault(repo, {}).setdefault(revision, {})[path] = MsFile(blob, lfs)
    if private:
        sandbox.modelscope.private.add(repo)
    return blob.sha256


def action_of(request: web.Request) -> str | None:
    if not request.path.startswith(PREFIX):
        return None
    return "MsListFiles" if request.path.endswith("/repo/files") else "MsDownload" if request.path.endswith("/repo") else None


def error_response(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    """The API's JSON envelope with ``Success: false``; throttling is a 429 (unverified)."""
    if code.startswith("Throttling"):
        status, message = 429, "too many requests"
    return web.json_response({"Code": status, "Message": message, "Success": False, "RequestId": "sandbox"},
                             status=status)


def cdn_headers(sandbox: "ModelSourceSandbox", blob: "Blob") -> dict[str, str]:
    """``X-Linked-ETag`` on the CDN's answer when the listing carries no hash (fidelity)."""
    if sandbox.fidelity.modelscope_sha256 != "linked_etag":
        return {}
    for revisions in sandbox.modelscope.repos.values():
        for files in revisions.values():
            if any(f.blob.sha256 == blob.sha256 for f in files.values()):
                return {"X-Linked-ETag": _published(sandbox, blob.sha256)}
    return {}


def _published(sandbox: "ModelSourceSandbox", sha256: str) -> str:
    """The hash the source publishes: a wrong one under the ``lie_about_hash`` switch."""
    return hashlib.sha256(sha256.encode()).hexdigest() if sandbox.switches.lie_about_hash else sha256


def _authorized(sandbox: "ModelSourceSandbox", request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and header[7:] in sandbox.modelscope.tokens:
        return True
    return request.cookies.get("m_session_id", "") in sandbox.modelscope.tokens


def _files(sandbox: "ModelSourceSandbox", request: web.Request) -> dict[str, MsFile] | web.StreamResponse:
    repo = f"{request.match_info['owner']}/{request.match_info['name']}"
    ms = sandbox.modelscope
    if repo not in ms.repos or (repo in ms.private and not _authorized(sandbox, request)):
        if repo in ms.private:
            return error_response(request, 401, "Unauthorized", f"no access to model {repo}")
        return error_response(request, 404, "NotFound", f"model {repo} not found")
    revision = request.query.get("Revision") or "master"
    files = ms.repos[repo].get(revision)
    if files is None:
        return error_response(request, 404, "NotFound", f"revision {revision} not found")
    return files


async def list_files(sandbox: "ModelSourceSandbox", request: web.Request) -> web.StreamResponse:
    files = _files(sandbox, request)
    if isinstance(files, web.StreamResponse):
        return files
    root = (request.query.get("Root") or "").strip("/")
    recursive = request.query.get("Recursive", "False").lower() == "true"
    entries: list[dict[str, Any]] = []
    dirs: set[str] = set()
    for path, f in sorted(files.items()):
        if root and not path.startswith(root + "/"):
            continue
        rest = path[len(root) + 1:] if root else path
        if not recursive and "/" in rest:
            dirs.add((root + "/" if root else "") + rest.split("/", 1)[0])
            continue
        entry: dict[str, Any] = {"Path": path, "Name": path.rsplit("/", 1)[-1], "Type": "blob", "Size": f.blob.size,
                                 "IsLFS": f.lfs}
        if sandbox.fidelity.modelscope_sha256 == "listing":
            entry["Sha256"] = _published(sandbox, f.blob.sha256)
        entries.append(entry)
    entries += [{"Path": d, "Name": d.rsplit("/", 1)[-1], "Type": "tree", "Size": 0} for d in sorted(dirs)]
    return web.json_response({"Code": 200, "Data": {"Files": entries}, "Message": "success", "Success": True})


async def download(sandbox: "ModelSourceSandbox", request: web.Request) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
    files = _files(sandbox, request)
    if isinstance(files, web.StreamResponse):
        return files
    f = files.get(request.query.get("FilePath", ""))
    if f is None:
        return error_response(request, 404, "NotFound", f"file {request.query.get('FilePath', '')} not found")
    if f.lfs:
        location = sandbox.cdn_link(f.blob)
        return web.Response(status=302, text=f"Found. Redirecting to {location}", headers={"Location": location})
    return await sandbox.serve(request, f.blob, etag=f.blob.sha256[:32], ranges=False)


def add_routes(app: web.Application, sandbox: "ModelSourceSandbox") -> None:
    async def files(request: web.Request) -> web.StreamResponse:
        return await list_files(sandbox, request)

    async def get(request: web.Request) -> web.StreamResponse:
        return await download(sandbox, request)

    app.router.add_route("GET", PREFIX + "{owner}/{name}/repo/files", files)
    app.router.add_route("*", PREFIX + "{owner}/{name}/repo", get)
