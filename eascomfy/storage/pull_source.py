"""Models from where they live (``models pull``, ``storage sync``): a source URL streamed into an
OSS multipart upload through the upload engine, with no copy on the local disk.

Sources:

- ``hf://org/repo/path/file[@revision]``: Hugging Face, ``{endpoint}/{repo}/resolve/{revision}/
  {path}``, revision percent-encoded, default ``main`` (huggingface_hub ``hf_hub_url``). Endpoint
  ``EASCOMFY_HF_ENDPOINT`` (the sandbox), else ``HF_ENDPOINT``, else https://huggingface.co; token
  ``HF_TOKEN`` (else ``HUGGING_FACE_HUB_TOKEN``). The SHA-256 is the 302's ``X-Linked-Etag``.
- ``ms://owner/name/path[@revision]``: ModelScope. The file's SHA-256 and size come from the repo
  listing ``GET /api/v1/models/{owner}/{name}/repo/files?Revision=&Recursive=True&Root=<dir>``
  (``Data.Files[]``: ``Path``, ``Type``, ``Size``, ``Sha256``); the bytes from ``GET /api/v1/models/
  {owner}/{name}/repo?Revision=&FilePath=`` (values ``quote_plus``-encoded, default revision
  ``master``; modelscope ``hub/file_download.py`` get_file_download_url, modelscope-hub
  ``_legacy_api.py`` list_repo_files). Without a ``Sha256`` in the listing, the ``X-Linked-ETag``
  of the download's answers is used (modelscope-hub ``_download.py``). Endpoint
  ``EASCOMFY_MODELSCOPE_ENDPOINT``, else ``MODELSCOPE_ENDPOINT``, else https://modelscope.cn;
  token ``MODELSCOPE_API_TOKEN`` (sent as Bearer and as the ``m_session_id`` cookie).
- ``civitai://VERSION_ID``: Civitai. ``GET /api/v1/model-versions/{id}`` lists the version's
  files (``name``, ``hashes.SHA256`` in uppercase hex, ``downloadUrl``, ``primary``) and the
  model's ``type``; the primary file (else the first ``Model`` file) is pulled from its
  ``downloadUrl``, a redirect to signed storage (civitai-developer-docs
  ``reference/model-versions.md``; civitai ``pages/api/download/models/[modelVersionId].ts``). The
  object is named after ``files[].name`` (the signed URL's attachment name may differ). Endpoint
  ``EASCOMFY_CIVITAI_ENDPOINT``, else https://civitai.com; token ``CIVITAI_API_TOKEN`` (Bearer).
- ``https://...``: any server that answers ranges.

Every token is registered with ``redact`` so that it is never printed, sent only to its source's
own origin (never to the signed storage a redirect leads to), and never read from the spec.

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager
from urllib.parse import quote, quote_plus, unquote, urljoin, urlsplit

from ..errors import CloudError, UsageError
from ..ports import SILENT, Progress
from ..redact import register_secret
from .mount import MODEL_KINDS, Mount, check_kind, model_path
from .upload import OrderedDigest, PushResult, Uploader

if TYPE_CHECKING:
    from ..adapters.http_source import HttpSource, RemoteFile

HF_ENDPOINT_ENV = "EASCOMFY_HF_ENDPOINT"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
MS_ENDPOINT_ENV = "EASCOMFY_MODELSCOPE_ENDPOINT"
DEFAULT_MS_ENDPOINT = "https://modelscope.cn"
CIVITAI_ENDPOINT_ENV = "EASCOMFY_CIVITAI_ENDPOINT"
DEFAULT_CIVITAI_ENDPOINT = "https://civitai.com"
SCHEMES = "hf://org/repo/path/file[@revision], ms://owner/name/path[@revision], civitai://VERSION_ID or https://..."
_HF = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<path>[^@\s]+?)(?:@(?P<rev>[^@\s]+))?$")
_MS = re.compile(r"^ms://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<path>[^@\s]+?)(?:@(?P<rev>[^@\s]+))?$")
_CIVITAI = re.compile(r"^civitai://(?P<id>[0-9]+)/?$")
# Civitai's model types (civitai-developer-docs reference/models.md) -> the models/ folder; ours.
CIVITAI_KINDS = {"checkpoint": "checkpoints", "lora": "loras", "locon": "loras", "dora": "loras",
                 "textualinversion": "embeddings", "vae": "vae", "controlnet": "controlnet",
                 "upscaler": "upscale_models"}

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
    scheme: str = "https"
    api: str | None = None  # the metadata URL read before the download (ms, civitai)
    sha256: str | None = None  # published by the source's API (ModelScope listing, Civitai hashes)
    size: int | None = None  # from the API, where it is exact (ModelScope)
    kind: str | None = None  # suggested by the source (Civitai's model type)


def hf_endpoint() -> str:
    return (os.environ.get(HF_ENDPOINT_ENV) or os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")


def ms_endpoint() -> str:
    return (os.environ.get(MS_ENDPOINT_ENV) or os.environ.get("MODELSCOPE_ENDPOINT") or DEFAULT_MS_ENDPOINT).rstrip("/")


def civitai_endpoint() -> str:
    return (os.environ.get(CIVITAI_ENDPOINT_ENV) or DEFAULT_CIVITAI_ENDPOINT).rstrip("/")


def _token(*names: str) -> str | None:
    token = next((os.environ[n] for n in names if os.environ.get(n)), None)
    register_secret(token)
    return token


def hf_token() -> str | None:
    return _token("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


TOKEN_ENV = {"hf": "HF_TOKEN", "ms": "MODELSCOPE_API_TOKEN", "civitai": "CIVITAI_API_TOKEN"}


def parse_source(text: str, hf: str | None = None) -> SourceRef:
    """Offline: which source, where its bytes (or its metadata) are. ``hf``: the Hugging Face
    endpoint (default: from the environment, ``hf_endpoint``). A Civitai source learns its URL
    and name from ``describe``."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "hf":
        m = _HF.match(text)
        if not m:
            raise UsageError(f"{text}: not a Hugging Face file", "expected hf://org/repo/path/file.safetensors[@revision]",
                             param="source")
        path, revision = m.group("path"), m.group("rev") or "main"
        url = f"{(hf or hf_endpoint()).rstrip('/')}/{m.group('repo')}/resolve/{quote(revision, safe='')}/{quote(path)}"
        return SourceRef(text, url, path.rsplit("/", 1)[-1], path, hf_token(), scheme="hf")
    if scheme == "ms":
        m = _MS.match(text)
        if not m:
            raise UsageError(f"{text}: not a ModelScope file", "expected ms://owner/name/path/file.safetensors[@revision]",
                             param="source")
        repo, path, revision = m.group("repo"), m.group("path"), m.group("rev") or "master"
        base = f"{ms_endpoint()}/api/v1/models/{repo}/repo"
        root = path.rsplit("/", 1)[0] if "/" in path else ""
        api = f"{base}/files?Revision={quote_plus(revision)}&Recursive=True" + (f"&Root={quote_plus(root)}" if root else "")
        url = f"{base}?Revision={quote_plus(revision)}&FilePath={quote_plus(path)}"
        return SourceRef(text, url, path.rsplit("/", 1)[-1], path, _token("MODELSCOPE_API_TOKEN"), scheme="ms", api=api)
    if scheme == "civitai":
        m = _CIVITAI.match(text)
        if not m:
            raise UsageError(f"{text}: not a Civitai model version", "expected civitai://VERSION_ID (the number in ?modelVersionId=)",
                             param="source")
        api = f"{civitai_endpoint()}/api/v1/model-versions/{m.group('id')}"
        return SourceRef(text, "", "", "", _token("CIVITAI_API_TOKEN"), scheme="civitai", api=api)
    if scheme in ("https", "http"):
        parts = urlsplit(text)
        name = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
        if not parts.netloc or not name:
            raise UsageError(f"{text}: the URL names no file", "give the file's download URL", param="source")
        return SourceRef(text, text, name, unquote(parts.path))
    raise UsageError(f"{text}: unknown source", f"expected {SCHEMES}", param="source")


def http_for(ref: SourceRef) -> "HttpSource":
    """The HTTP client for one source, with its token and the way that source takes it."""
    from ..adapters.http_source import HttpSource

    return HttpSource(ref.token, token_env=TOKEN_ENV.get(ref.scheme, "a token"),
                      cookie="m_session_id" if ref.scheme == "ms" else None)


def describe(ref: SourceRef, http: "HttpSource") -> SourceRef:
    """Read a ModelScope or Civitai source's metadata: the file's URL, name, SHA-256 (and size or
    kind where the API gives them). Other sources are returned as they are."""
    if ref.api is None:
        return ref
    answer = http.get_json(ref.api, ref.text)
    if ref.scheme == "ms":
        return _describe_ms(ref, answer)
    return _describe_civitai(ref, answer)


def _describe_ms(ref: SourceRef, answer: Any) -> SourceRef:
    data = answer.get("Data") if isinstance(answer, dict) else None
    files = data.get("Files") if isinstance(data, dict) else None
    if not isinstance(files, list) or (isinstance(answer, dict) and answer.get("Success") is False):
        message = answer.get("Message") if isinstance(answer, dict) else None
        raise CloudError(f"{ref.text}: ModelScope did not list the repository" + (f": {message}" if message else ""),
                         code="BadListing", service="source")
    for entry in files:
        if isinstance(entry, dict) and (entry.get("Path") or entry.get("Name")) == ref.path and entry.get("Type", "blob") == "blob":
            sha = str(entry.get("Sha256") or "").lower() or None
            size = entry.get("Size")
            return replace(ref, sha256=sha if sha and len(sha) == 64 else None,
                           size=size if isinstance(size, int) else None)
    raise CloudError(f"{ref.text}: no file {ref.path} in the repository's listing", code="EntryNotFound",
                     hint="check the repository, revision and file path", service="source")


def _describe_civitai(ref: SourceRef, answer: Any) -> SourceRef:
    files = answer.get("files") if isinstance(answer, dict) else None
    files = [f for f in files if isinstance(f, dict) and f.get("downloadUrl")] if isinstance(files, list) else []
    chosen = next((f for f in files if f.get("primary")), None) or next((f for f in files if f.get("type") == "Model"), None)
    if chosen is None:
        raise CloudError(f"{ref.text}: the model version lists no downloadable file", code="NoFile", service="source")
    name = str(chosen.get("name") or "")
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise CloudError(f"{ref.text}: the file's name {name!r} cannot be an object name", code="BadName", service="source")
    hashes = chosen.get("hashes") if isinstance(chosen.get("hashes"), dict) else {}
    sha = str(hashes.get("SHA256") or "").lower() or None
    model = answer.get("model") if isinstance(answer.get("model"), dict) else {}
    kind = CIVITAI_KINDS.get(str(model.get("type", "")).lower())
    url = urljoin(ref.api or "", str(chosen["downloadUrl"]))
    return replace(ref, url=url, name=name, path=name, sha256=sha if sha and len(sha) == 64 else None, kind=kind)


def source_name(ref: SourceRef) -> str:
    """The file's name, asking the source when only it knows (Civitai)."""
    if ref.name:
        return ref.name
    http = http_for(ref)
    try:
        return describe(ref, http).name
    finally:
        http.close()


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
    """A remote file as the upload engine's ``Source``: each part one ranged GET, pipelined with
    the uploads (half the workers download while the other half upload)."""

    pipelined = True

    def __init__(self, ref: SourceRef, remote: "RemoteFile", http: "HttpSource") -> None:
        self.ref, self.remote, self.http = ref, remote, http
        self.name, self.size = ref.text, remote.size
        self.sha256 = ref.sha256 or remote.sha256  # the API's listing first, else the probe's header
        self.ident = f"{ref.url}\0{self.sha256 or remote.etag}\0{remote.size}"

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
                "sha256": self.source.sha256, "commit": remote.commit}


def kind_of(ref: SourceRef, kind: str | None) -> str:
    if kind is not None:
        return check_kind(kind)
    guessed = ref.kind or guess_kind(ref.path)
    if guessed is None:
        raise UsageError(f"cannot tell which models/ folder {ref.name} goes to",
                         f"name the kind ({', '.join(MODEL_KINDS[:4])}, ...)", param="kind")
    return guessed


def plan_pulls(mount: Mount, sources: list[str], kind: str | None = None, *, names: list[str | None] | None = None,
               kinds: list[str | None] | None = None, hf: str | None = None) -> list[Pull]:
    """Parse and probe every source before anything is sent (a typo fails fast); ``names`` and
    ``kinds`` (per source, from the spec) override the file's name and the kind."""
    refs = [parse_source(s, hf) for s in sources]
    pulls: list[Pull] = []
    try:
        for i, ref in enumerate(refs):
            wanted = (kinds[i] if kinds and kinds[i] else None) or kind
            if ref.api is None:
                kind_of(ref, wanted)  # before any request: a file we cannot place fails fast
            http = http_for(ref)
            try:
                ref = describe(ref, http)
                k = kind_of(ref, wanted)
                remote = http.probe(ref.url, ref.text)
            except BaseException:
                http.close()
                raise
            if ref.size is not None and ref.size != remote.size:
                http.close()
                raise CloudError(f"{ref.text}: the listing says {ref.size} bytes, the download {remote.size}",
                                 code="SizeMismatch", service="source")
            name = (names[i] if names and names[i] else None) or ref.name
            pulls.append(Pull(RemoteSource(ref, remote, http), k, mount.key(model_path(k, name))))
    except BaseException:
        for pull in pulls:
            pull.source.http.close()
        raise
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
            if source.sha256:
                digest = OrderedDigest(source.sha256, source.ref.text)
            else:
                progress.warn(f"{source.ref.text}: the source publishes no SHA-256; checked by size and CRC64 only")
            results.append(uploader.push_source(source, pull.key, digest))
    finally:
        for pull in pulls:
            pull.source.http.close()
    return results
