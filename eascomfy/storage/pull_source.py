"""Models from where they live (``models pull``, ``storage sync``): a source URL streamed into an
OSS multipart upload through the upload engine, with no copy on the local disk.

Sources: ``hf://org/repo/path/file[@revision]`` (Hugging Face, ``{endpoint}/{repo}/resolve/
{revision}/{path}``, revision percent-encoded, default ``main``; huggingface_hub ``hf_hub_url``) and
``https://...`` (any server that answers ranges). ``ms://`` and ``civitai://`` are refused for now.
The Hugging Face endpoint is ``EASCOMFY_HF_ENDPOINT`` (the sandbox), else ``HF_ENDPOINT`` (as
huggingface_hub reads it), else https://huggingface.co; its token is ``HF_TOKEN`` (else
``HUGGING_FACE_HUB_TOKEN``), registered with ``redact`` so that it is never printed, and never
read from the spec.

Each part is one ranged GET into a worker's part buffer, then one UploadPart: ``workers`` GETs in
flight, memory ``workers * part_size``, CRC64 per part and for the object as for local files, and
the interrupted upload resumes from its checkpoint (the source's URL, hash and size name it). Where
the source publishes a SHA-256 (Hugging Face's ``X-Linked-Etag`` for LFS files), the parts are
hashed in order as they pass and compared before the upload is completed: a wrong hash aborts it
and leaves no object behind. An object already on the mount with the source's size is skipped.
"""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager
from urllib.parse import quote, unquote, urlsplit

from ..errors import UsageError
from ..ports import SILENT, Progress
from ..redact import register_secret
from .mount import MODEL_KINDS, Mount, check_kind, model_path
from .upload import OrderedDigest, PushResult, Uploader

if TYPE_CHECKING:
    from ..adapters.http_source import HttpSource, RemoteFile

HF_ENDPOINT_ENV = "EASCOMFY_HF_ENDPOINT"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
NOT_YET = {"ms": "ModelScope (ms://)", "civitai": "Civitai (civitai://)"}
_HF = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<path>[^@\s]+?)(?:@(?P<rev>[^@\s]+))?$")

# Words in a file's path or name -> the models/ folder ComfyUI loads it from; the first match wins.
KIND_WORDS: tuple[tuple[str, str], ...] = (
    ("clip_vision", "clip_vision"), ("ipadapter", "ipadapter"), ("ip-adapter", "ipadapter"),
    ("controlnet", "controlnet"), ("control_", "controlnet"), ("lora", "loras"), ("vae", "vae"),
    ("esrgan", "upscale_models"), ("upscale", "upscale_models"), ("text_encoder", "text_encoders"),
    ("t5xxl", "text_encoders"), ("clip_l", "text_encoders"), ("clip_g", "text_encoders"),
    ("unet", "diffusion_models"), ("diffusion_model", "diffusion_models"), ("transformer", "diffusion_models"),
    ("embedding", "embeddings"), ("textual_inversion", "embeddings"), ("checkpoint", "checkpoints"),
)


@dataclass(frozen=True)
class SourceRef:
    """A parsed source: what was given, where to GET it, the file's name and which token goes."""

    text: str
    url: str
    name: str
    path: str  # the path inside the repository or URL, for guessing the kind
    token: str | None = None


def hf_endpoint() -> str:
    return (os.environ.get(HF_ENDPOINT_ENV) or os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")


def hf_token() -> str | None:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    register_secret(token)
    return token


def parse_source(text: str, hf: str | None = None) -> SourceRef:
    """``hf://org/repo/path[@rev]`` or ``http(s)://...``; other schemes are refused clearly.
    ``hf``: the Hugging Face endpoint (default: from the environment, ``hf_endpoint``)."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in NOT_YET:
        raise UsageError(f"{text}: {NOT_YET[scheme]} sources are not supported yet",
                         "use hf:// or the file's https:// download URL", param="source")
    if scheme == "hf":
        m = _HF.match(text)
        if not m:
            raise UsageError(f"{text}: not a Hugging Face file", "expected hf://org/repo/path/file.safetensors[@revision]",
                             param="source")
        path, revision = m.group("path"), m.group("rev") or "main"
        url = f"{(hf or hf_endpoint()).rstrip('/')}/{m.group('repo')}/resolve/{quote(revision, safe='')}/{quote(path)}"
        return SourceRef(text, url, path.rsplit("/", 1)[-1], path, hf_token())
    if scheme in ("https", "http"):
        parts = urlsplit(text)
        name = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
        if not parts.netloc or not name:
            raise UsageError(f"{text}: the URL names no file", "give the file's download URL", param="source")
        return SourceRef(text, text, name, unquote(parts.path))
    raise UsageError(f"{text}: unknown source", "expected hf://org/repo/path/file, https://... (ms:// and civitai:// later)",
                     param="source")


def guess_kind(path: str) -> str | None:
    """The models/ folder a file's path or name suggests (``vae/...``, ``*lora*``...), or None."""
    low = path.lower()
    for folder in low.split("/")[:-1]:
        if folder in MODEL_KINDS:
            return folder
    for word, kind in KIND_WORDS:
        if word in low:
            return kind
    return "checkpoints" if low.endswith(".ckpt") else None


class RemoteSource:
    """A remote file as the upload engine's ``Source``: each part one ranged GET."""

    def __init__(self, ref: SourceRef, remote: "RemoteFile", http: "HttpSource") -> None:
        self.ref, self.remote, self.http = ref, remote, http
        self.name, self.size = ref.text, remote.size
        self.ident = f"{ref.url}\0{remote.sha256 or remote.etag}\0{remote.size}"

    def opened(self) -> ContextManager[Any]:
        return nullcontext(self)

    def read_into(self, offset: int, view: memoryview) -> None:
        if len(view):
            self.http.read_into(self.remote, offset, view, self.ref.text)


@dataclass
class Pull:
    """One source, probed, with where it goes on the mount."""

    source: RemoteSource
    kind: str
    key: str

    @property
    def size(self) -> int:
        return self.source.size

    def to_dict(self) -> dict[str, Any]:
        remote = self.source.remote
        return {"source": self.source.ref.text, "kind": self.kind, "key": self.key, "size": remote.size,
                "sha256": remote.sha256, "commit": remote.commit}


def kind_of(ref: SourceRef, kind: str | None) -> str:
    if kind is not None:
        return check_kind(kind)
    guessed = guess_kind(ref.path)
    if guessed is None:
        raise UsageError(f"cannot tell which models/ folder {ref.name} goes to",
                         f"name the kind ({', '.join(MODEL_KINDS[:4])}, ...)", param="kind")
    return guessed


def plan_pulls(mount: Mount, sources: list[str], kind: str | None = None, *, names: list[str | None] | None = None,
               kinds: list[str | None] | None = None, hf: str | None = None) -> list[Pull]:
    """Parse and probe every source before anything is sent (a typo fails fast); ``names`` and
    ``kinds`` (per source, from the spec) override the file's name and the kind."""
    from ..adapters.http_source import HttpSource

    refs = [parse_source(s, hf) for s in sources]
    pulls = []
    for i, ref in enumerate(refs):
        k = kind_of(ref, (kinds[i] if kinds and kinds[i] else None) or kind)
        http = HttpSource(ref.token)
        remote = http.probe(ref.url, ref.text)
        name = (names[i] if names and names[i] else None) or ref.name
        pulls.append(Pull(RemoteSource(ref, remote, http), k, mount.key(model_path(k, name))))
    return pulls


def run_pulls(uploader: Uploader, mount: Mount, pulls: list[Pull], progress: Progress = SILENT) -> list[PushResult]:
    """Stream each source into its key; one already there with the same size is skipped."""
    results = []
    try:
        for pull in pulls:
            source = pull.source
            uploader.on_file(Path(source.ref.name), source.size)
            there = mount.bucket.head(pull.key)
            if there is not None and there.size == source.size:
                uploader.progress(source.size)
                results.append(PushResult(source.name, pull.key, source.size, there.crc64 or 0, skipped=True))
                continue
            digest = None
            if source.remote.sha256:
                digest = OrderedDigest(source.remote.sha256, source.ref.text)
            else:
                progress.warn(f"{source.ref.text}: the source publishes no SHA-256; checked by size and CRC64 only")
            results.append(uploader.push_source(source, pull.key, digest))
    finally:
        for pull in pulls:
            pull.source.http.close()
    return results
