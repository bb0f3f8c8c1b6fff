"""Civitai's model-version API and download route, as the model-source emulator serves them
(docs/unverified.md, "Model sources").

- ``GET /api/v1/model-versions/{id}``: ``id``, ``modelId``, ``name``, ``baseModel``, ``model{name,
  type}``, ``downloadUrl``, ``files[]`` with ``id``, ``name``, ``type``, ``sizeKB`` (bytes/1024,
  a float), ``metadata{format,size,fp}``, ``hashes{AutoV2,SHA256,CRC32,...}`` (uppercase hex),
  ``downloadUrl``, ``primary`` (civitai-developer-docs ``site/reference/model-versions.md``;
  civitai ``src/utils/number-helpers.ts``). A missing version: 404 ``{"error": ...}``.
  AutoV2 = the first 10 hex of the SHA-256 (the doc's example only).
- ``GET /api/download/models/{id}[?type=&format=]``: a redirect to a short-lived signed storage
  URL on another origin (the CDN site: ranges, 206/416), ``Cache-Control: no-store``; the version's
  primary file, or the one the selectors name. An early-access version needs a known
  ``Authorization: Bearer`` token: 401 ``{"error": "Unauthorized"}`` without one (civitai
  ``src/pages/api/download/models/[modelVersionId].ts``, ``get-server-auth-session.ts``).
- Switch ``lie_about_hash``: a wrong ``hashes.SHA256``, for the client's check.
- Throttling is a 429 with no ``Retry-After`` (same source).
- Fidelity ``civitai_redirect``: ``307`` (Next.js ``res.redirect``'s default, inferred) or
  ``302``. Fidelity ``civitai_head``: ``redirect`` answers HEAD on the download route as GET;
  ``refused`` answers 405 (the route's HEAD behaviour is not documented).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

if TYPE_CHECKING:
    from .sandbox import Blob, ModelSourceSandbox

PREFIXES = ("/api/v1/model-versions/", "/api/download/models/")


@dataclass
class CivitaiFile:
    id: int
    name: str
    blob: "Blob"
    type: str = "Model"
    format: str = "SafeTensor"
    primary: bool = False


@dataclass
class Version:
    id: int
    model_name: str
    model_type: str
    files: list[CivitaiFile]
    early_access: bool = False


@dataclass
class Civitai:
    versions: dict[int, Version] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)


def add_version(sandbox: "ModelSourceSandbox", version_id: int, files: list[dict[str, Any]], *,
                model_type: str = "LORA", model_name: str = "Sandbox model", early_access: bool = False) -> list[str]:
    """A model version with ``files`` (each ``name`` and ``data`` or ``size``/``seed``, optional
    ``type``, ``format``, ``primary``); the files' SHA-256s."""
    made = []
    for i, spec in enumerate(files):
        blob = sandbox.blob(spec.get("data"), size=spec.get("size", 0), seed=spec.get("seed"))
        made.append(CivitaiFile(version_id * 10 + i, spec["name"], blob, spec.get("type", "Model"),
                                spec.get("format", "SafeTensor"), bool(spec.get("primary", i == 0))))
    sandbox.civitai.versions[version_id] = Version(version_id, model_name, model_type, made, early_access)
    return [f.blob.sha256 for f in made]


def action_of(request: web.Request) -> str | None:
    if request.path.startswith(PREFIXES[0]):
        return "CivitaiVersion"
    if request.path.startswith(PREFIXES[1]):
        return "CivitaiDownload"
    return None


def error_response(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    """``{"error": ...}``; throttling is a 429 without ``Retry-After``."""
    if code.startswith("Throttling"):
        status, message = 429, "We've noticed an unusual amount of downloading from your account."
    return web.json_response({"error": message}, status=status)


def _version(sandbox: "ModelSourceSandbox", request: web.Request) -> Version | web.StreamResponse:
    text = request.match_info["id"]
    if not text.isdigit():
        return error_response(request, 400, "BadRequest", "Invalid id")
    version = sandbox.civitai.versions.get(int(text))
    if version is None:
        return error_response(request, 404, "NotFound", f"No model version with id {text}")
    return version


def _file_json(base: str, version: Version, f: CivitaiFile, sandbox_lies: bool) -> dict[str, Any]:
    sha = f.blob.sha256.upper()
    if sandbox_lies:
        sha = hashlib.sha256(sha.encode()).hexdigest().upper()
    query = "" if f.primary else "?" + urlencode({"type": f.type, "format": f.format})
    return {
        "id": f.id, "name": f.name, "type": f.type, "sizeKB": f.blob.size / 1024,
        "metadata": {"format": f.format, "size": "pruned", "fp": "fp16"},
        "pickleScanResult": "Success", "virusScanResult": "Success",
        "hashes": {"AutoV2": sha[:10], "SHA256": sha},
        "downloadUrl": f"{base}/api/download/models/{version.id}{query}", "primary": f.primary,
    }


async def model_version(sandbox: "ModelSourceSandbox", request: web.Request) -> web.StreamResponse:
    version = _version(sandbox, request)
    if isinstance(version, web.StreamResponse):
        return version
    base = sandbox.url
    return web.json_response({
        "id": version.id, "modelId": version.id // 10 or 1, "name": "v1.0", "baseModel": "SDXL 1.0",
        "air": f"urn:air:sdxl:{version.model_type.lower()}:civitai:{version.id // 10 or 1}@{version.id}",
        "status": "Published", "model": {"name": version.model_name, "type": version.model_type},
        "files": [_file_json(base, version, f, sandbox.switches.lie_about_hash) for f in version.files],
        "downloadUrl": f"{base}/api/download/models/{version.id}",
    })


def _authorized(sandbox: "ModelSourceSandbox", request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    return header.startswith("Bearer ") and header[7:] in sandbox.civitai.tokens


async def download(sandbox: "ModelSourceSandbox", request: web.Request) -> web.StreamResponse:
    if request.method == "HEAD" and sandbox.fidelity.civitai_head == "refused":
        raise web.HTTPMethodNotAllowed("HEAD", ["GET"])
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    version = _version(sandbox, request)
    if isinstance(version, web.StreamResponse):
        return version
    if version.early_access and not _authorized(sandbox, request):
        return error_response(request, 401, "Unauthorized", "Unauthorized")
    chosen = next((f for f in version.files if f.primary), version.files[0])
    if "type" in request.query or "format" in request.query:
        matching = [f for f in version.files if f.type == request.query.get("type", f.type)
                    and f.format == request.query.get("format", f.format)]
        if not matching:
            return error_response(request, 404, "NotFound", "File not found")
        chosen = matching[0]
    location = sandbox.cdn_link(chosen.blob) + "&response-content-disposition=" + \
        f"attachment%3B%20filename%3D%22{version.model_name.replace(' ', '')}_v10{_ext(chosen.name)}%22"
    status = 307 if sandbox.fidelity.civitai_redirect == "307" else 302
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def _ext(name: str) -> str:
    return "." + name.rsplit(".", 1)[1] if "." in name else ""


def add_routes(app: web.Application, sandbox: "ModelSourceSandbox") -> None:
    async def version(request: web.Request) -> web.StreamResponse:
        return await model_version(sandbox, request)

    async def get(request: web.Request) -> web.StreamResponse:
        return await download(sandbox, request)

    app.router.add_route("GET", PREFIXES[0] + "{id}", version)
    app.router.add_route("*", PREFIXES[1] + "{id}", get)


__all__ = ["Civitai", "add_version"]
