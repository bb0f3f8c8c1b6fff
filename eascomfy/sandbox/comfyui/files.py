"""ComfyUI's routes over the files of its data dir (the service's mount), as third-party clients
use them: ``POST /upload/image``, ``POST /upload/mask``, ``GET /embeddings``, ``GET /extensions``
and ``GET /view_metadata/{folder}``.

Each follows ComfyUI's ``server.py`` (comfyanonymous/ComfyUI, ``PromptServer.__init__``: routes
``upload_image``/``upload_mask`` and their ``image_upload`` helper, ``get_embeddings``,
``get_extensions``, ``view_metadata``; ``comfy/utils.py`` ``safetensors_header``), including the
answers its code gives by accident: an unknown upload ``type`` or a missing ``original_ref`` raises
inside the handler, which aiohttp answers 500.

Not emulated: ``/upload/mask`` stores the uploaded mask's bytes instead of compositing its alpha
channel onto the original image (ComfyUI uses PIL for that); ``/extensions`` lists only the ``.js``
files under ``custom_nodes/<pack>/web/`` on the mount (packs declare ``WEB_DIRECTORY``; ``./web``
is the common choice, e.g. VideoHelperSuite), not the frontend's own extension files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import posixpath
import re
import struct
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from .mount import KNOWN_MODEL_FOLDERS, MODEL_EXTENSIONS, ServiceMount

Handler = Callable[[web.Request, "re.Match[str]"], Awaitable[web.StreamResponse]]
UPLOAD_TYPES = ("input", "temp", "output")
METADATA_MAX = 1024 * 1024  # server.py view_metadata: safetensors_header(path, max_size=1024*1024)
INTERNAL_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"


def internal_error() -> web.Response:
    """What aiohttp answers when a ComfyUI handler raises."""
    return web.Response(status=500, text=INTERNAL_ERROR)


def inside(root: str, path: str) -> bool:
    """``os.path.commonpath((root, path)) == root`` for mount-relative paths (an absolute one is out)."""
    return not path.startswith("/") and posixpath.commonpath([root, path]) == root


def annotated(name: str) -> tuple[str, str | None]:
    """``folder_paths.annotated_filepath``: ``"a.png [output]"`` -> ("a.png", "output")."""
    for kind in UPLOAD_TYPES:
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


class FileRoutes:
    """The mount-file routes of one service's ComfyUI."""

    def __init__(self, mount: ServiceMount) -> None:
        self.mount = mount

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", r"/upload/image", self.upload_image),
            ("POST", r"/upload/mask", self.upload_mask),
            ("GET", r"/embeddings", self.embeddings),
            ("GET", r"/extensions", self.extensions),
            ("GET", r"/view_metadata/(?P<folder>[^/]+)", self.view_metadata),
        ]

    # -- uploads -----------------------------------------------------------------------------------
    async def upload_image(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        return await self._upload(await request.post(), None)

    async def upload_mask(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        post = await request.post()
        try:  # server.py: json.loads(post.get("original_ref")) raises on a missing or bad field
            original_ref = json.loads(str(post["original_ref"]))
            original_ref["filename"]
        except (KeyError, TypeError, ValueError):
            return internal_error()
        return await self._upload(post, original_ref)

    async def _upload(self, post: Any, original_ref: dict[str, Any] | None) -> web.StreamResponse:
        """server.py ``image_upload``: answers ``{"name", "subfolder", "type"}``; a name already
        taken gets `` (1)``, `` (2)``... unless ``overwrite`` is ``true``/``1`` or the file holds
        the same bytes (then nothing is written)."""
        image = post.get("image")
        kind = post.get("type") or "input"
        if kind not in UPLOAD_TYPES:
            return internal_error()  # get_dir_by_type leaves type_dir unbound: UnboundLocalError
        if not image:
            return web.Response(status=400)
        if not isinstance(image, web.FileField):
            return internal_error()  # a plain field has no .file
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        folder = posixpath.normpath(posixpath.join(kind, subfolder))
        path = posixpath.normpath(posixpath.join(folder, filename))
        if not inside(kind, path):
            return web.Response(status=400)
        data = image.file.read()
        overwrite = str(post.get("overwrite", "")) in ("true", "1")
        stem, ext = posixpath.splitext(filename)
        duplicate = False
        if not overwrite:
            number = 1
            while (existing := await asyncio.to_thread(self._read, path)) is not None:
                if hashlib.sha256(existing).digest() == hashlib.sha256(data).digest():
                    duplicate = True  # the same image again (ComfyUI #3465): keep the name, write nothing
                    break
                filename = f"{stem} ({number}){ext}"
                path = posixpath.join(folder, filename)
                number += 1
        if not duplicate and (original_ref is None or await asyncio.to_thread(self._mask_target_ok, original_ref)):
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            await asyncio.to_thread(self.mount.write, path, data, content_type)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})

    def _mask_target_ok(self, original_ref: dict[str, Any]) -> bool:
        """upload_mask's ``image_save_function`` writes only when the original image exists; its
        early ``return web.Response(400/403)`` values are discarded, so the answer is still 200."""
        filename, kind = annotated(str(original_ref["filename"]))
        if not filename or filename.startswith("/") or ".." in filename:
            return False
        kind = kind or str(original_ref.get("type", "output"))
        if kind not in UPLOAD_TYPES:
            return False
        folder = posixpath.normpath(posixpath.join(kind, str(original_ref.get("subfolder", ""))))
        if not inside(kind, folder):
            return False
        return self._read(posixpath.join(folder, filename)) is not None

    def _read(self, relative: str) -> bytes | None:
        reader = self.mount.open(relative)
        if reader is None:
            return None
        with reader:
            return reader.read()

    # -- listings ----------------------------------------------------------------------------------
    async def embeddings(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        """``folder_paths.get_filename_list("embeddings")`` without the extensions."""
        names = await asyncio.to_thread(self.mount.models, ["embeddings"])
        return web.json_response([posixpath.splitext(name)[0] for name in names])

    async def extensions(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        """``/extensions/<pack>/<path>`` for every ``.js`` file in a pack's web directory."""
        def listing() -> list[str]:
            found = []
            for pack in sorted(set(self.mount.custom_node_packs().values())):
                for key in self.mount.keys(f"custom_nodes/{pack}/web/"):
                    if key.endswith(".js"):
                        found.append(f"/extensions/{quote(pack)}/{key}")
            return found

        return web.json_response(await asyncio.to_thread(listing))

    async def view_metadata(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        """The ``__metadata__`` of a ``.safetensors`` model's header; 404 when there is none."""
        folder, filename = match["folder"], request.query.get("filename")
        if filename is None or not filename.endswith(".safetensors") or folder not in KNOWN_MODEL_FOLDERS:
            return web.Response(status=404)
        # folder_paths.get_full_path: the name is made relative to the folder ("/" anchored), so
        # it cannot leave it
        relative = posixpath.relpath(posixpath.normpath(posixpath.join("/", filename)), "/")
        if not relative.lower().endswith(MODEL_EXTENSIONS):
            return web.Response(status=404)
        try:  # neither a short file (struct.error) nor bad JSON is caught in server.py
            header = await asyncio.to_thread(self._safetensors_header, f"models/{folder}/{relative}")
            if header is None:
                return web.Response(status=404)
            document = json.loads(header)
        except (ValueError, struct.error):
            return internal_error()
        if not isinstance(document, dict) or "__metadata__" not in document:
            return web.Response(status=404)
        return web.json_response(document["__metadata__"])

    def _safetensors_header(self, relative: str) -> bytes | None:
        reader = self.mount.open(relative)
        if reader is None:
            return None
        with reader:
            (length,) = struct.unpack("<Q", b"".join(reader.chunks(0, min(8, reader.meta.size))))
            if length > METADATA_MAX:
                return None
            return b"".join(reader.chunks(8, min(length, reader.meta.size - 8)))
