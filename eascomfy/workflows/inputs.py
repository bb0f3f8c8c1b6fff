"""Local files as workflow inputs (``--input 10.image=photo.png``, ``--set 10.inputs.image=@photo.png``):
checked before any call, uploaded where ComfyUI reads its inputs, and referenced in the workflow by
the name ComfyUI sees.

The name is the content's: the first 16 hex digits of its SHA-256 plus the file's extension
(``3f2a…9c.png``), so the same bytes always have the same name and are never uploaded twice: before
an upload, eascomfy asks whether that name is already there (Standard/Cluster: ``HEAD /view``; API
edition: the object's HEAD on the mount), and skips it when it is.

- Standard/Cluster editions: ComfyUI's ``POST /upload/image`` (``type=input``), which writes into
  ``input/`` of its data dir (ComfyUI ``server.py`` ``image_upload``).
- API edition: the service has no ComfyUI HTTP API, only the queue; ComfyUI's data dir is the OSS
  mount, so the file goes to ``input/`` on the mount through the storage upload engine.
"""

from __future__ import annotations

import copy
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..core.workflow import InputRef, Workflow, resolve_input
from ..errors import EascomfyError, UsageError
from ..local.files import file_sha256, regular_file

if TYPE_CHECKING:
    from ..adapters.comfy_http import ServiceClient
    from ..ports import Progress
    from ..storage.mount import Mount

NAME_HEX = 16  # 64 bits of the SHA-256: a collision between two inputs of one service is not a concern
INPUT_FOLDER = "input/"


@dataclass(frozen=True)
class InputFile:
    """One local file bound to one node input, with its content's digest."""

    node: str  # the node id
    field: str
    path: Path
    sha256: str
    size: int
    text: str  # as the user gave it

    @property
    def name(self) -> str:
        """The name ComfyUI sees (before the upload says otherwise): content digest + extension."""
        return self.sha256[:NAME_HEX] + self.path.suffix.lower()

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.path.name)[0] or "application/octet-stream"


def prepare(workflow: Workflow, refs: Iterable[InputRef]) -> list[InputFile]:
    """Check every reference against ``workflow`` and the disk (before any call): the node and its
    input exist, the file is a regular file. Returns them with their digests."""
    found = []
    for ref in refs:
        node_id = resolve_input(workflow, ref)
        path = Path(ref.path).expanduser()
        try:
            st = regular_file(path)
        except UsageError as exc:
            hint = "give a file, not a folder" if path.is_dir() else exc.hint
            raise UsageError(f"{ref.text}: {exc.message}", hint, param=ref.param) from None
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise UsageError(f"{ref.text}: cannot read {path} ({exc.strerror or exc})", param=ref.param) from None
        found.append(InputFile(node_id, ref.field, path, digest, st.st_size, ref.text))
    return found


def bind(workflow: Workflow, files: Iterable[InputFile], names: dict[str, str] | None = None) -> Workflow:
    """A copy of ``workflow`` whose file inputs name the uploaded files (``names``: digest -> the
    name ComfyUI stored it under; the content name where absent)."""
    result = copy.deepcopy(workflow)
    for f in files:
        result[f.node]["inputs"][f.field] = (names or {}).get(f.sha256, f.name)
    return result


def _unique(files: Iterable[InputFile]) -> list[InputFile]:
    seen: dict[str, InputFile] = {}
    for f in files:
        seen.setdefault(f.sha256, f)
    return list(seen.values())


def _read_same(f: InputFile) -> bytes:
    """The file's bytes, refused when they are no longer the ones checked (changed meanwhile)."""
    data = f.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != f.sha256:
        raise EascomfyError(f"{f.path} changed while eascomfy was sending it", "run the command again")
    return data


@dataclass
class Sent:
    """What happened to one input file: its name on the service and whether it travelled."""

    file: InputFile
    name: str
    uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.file.node, "input": self.file.field, "file": str(self.file.path), "name": self.name,
                "sha256": self.file.sha256, "size": self.file.size, "uploaded": self.uploaded}


def _said(progress: "Progress", sent: Sent, where: str) -> None:
    what = f"uploaded ({sent.file.size} bytes)" if sent.uploaded else "already there, not sent again"
    progress.info(f"input {sent.file.path} -> {where}{sent.name}: {what}")


def send_to_comfy(client: "ServiceClient", files: Iterable[InputFile], progress: "Progress") -> list[Sent]:
    """Upload each distinct file through ``POST /upload/image`` unless ``HEAD /view`` finds its
    name already in ``input/``. When HEAD says neither (a gateway that does not pass it on), the
    file is sent: ComfyUI keeps one file for the same bytes under the same name."""
    sent = []
    for f in _unique(files):
        if client.has_input(f.name):
            sent.append(Sent(f, f.name, False))
        else:
            sent.append(Sent(f, client.upload_input(f.name, _read_same(f), f.content_type), True))
        _said(progress, sent[-1], INPUT_FOLDER)
    return sent


def send_to_mount(mount: "Mount", files: Iterable[InputFile], progress: "Progress") -> list[Sent]:
    """Put each distinct file into ``input/`` on the service's mount (the API edition's ComfyUI
    reads its data dir there); the upload engine HEADs the object first and skips one already
    there with the same size and CRC-64."""
    from ..storage.upload import Uploader

    uploader = Uploader(mount.bucket)
    sent = []
    for f in _unique(files):
        result = uploader.push(f.path, mount.key(INPUT_FOLDER + f.name))
        sent.append(Sent(f, f.name, not result.skipped))
        _said(progress, sent[-1], mount.url(mount.key(INPUT_FOLDER)))
    return sent


def names_of(sent: Iterable[Sent]) -> dict[str, str]:
    return {s.file.sha256: s.name for s in sent}
