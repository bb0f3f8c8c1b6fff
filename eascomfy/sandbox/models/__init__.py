"""A model-source emulator: a Hugging Face-shaped hub, its CDN and a plain HTTPS file server on
loopback, for ``eascomfy models pull`` and ``storage sync`` in tests, the demo and the benchmark.

    with ModelSourceSandbox() as hub:
        hub.add_file("org/repo", "vae/model.safetensors", data)
        # EASCOMFY_HF_ENDPOINT=hub.url; hf://org/repo/vae/model.safetensors resolves through it

What it serves, each behaviour with its source (docs/unverified.md, "Model sources"):

- ``GET``/``HEAD /{org}/{repo}/resolve/{revision}/{path}``: 302 to the CDN site with
  ``X-Linked-Etag`` (the quoted SHA-256 of the file), ``X-Linked-Size`` and ``X-Repo-Commit``
  on the redirect itself (huggingface_hub ``file_download.py`` get_hf_file_metadata; these
  headers exist only on the 302). A missing file is 404 ``X-Error-Code: EntryNotFound`` (with
  ``X-Repo-Commit``), a missing repo 404 ``RepoNotFound``, a gated repo without a known
  ``Authorization: Bearer`` token 401 ``GatedRepo`` (huggingface_hub ``utils/_http.py``).
- The CDN (its own port: another origin, so a client drops the token, as huggingface_hub does)
  serves ``/cdn/{sha256}`` tokenless, with single ``Range: bytes=a-b`` answered 206 and
  ``Content-Range``, 416 ``bytes */total`` when unsatisfiable (RFC 9110 §14), and its own ETag,
  not the SHA-256.
- ``/files/{path}`` on the hub's port: a plain HTTPS-like file (200/206/416, ``ETag``, no hash).
- Throttling: the shared ``throttle`` fault answers 429 with ``Retry-After`` (seconds, integer;
  hub-docs rate-limits.md, huggingface_hub ``_parse_retry_after``).
- Switches for tests (``switches`` or ``POST /_sandbox/models``): ``lie_about_hash`` (a wrong
  ``X-Linked-Etag``), ``ignore_range`` (200 with the whole body, as a server may), and
  ``bytes_per_second`` (a per-connection bandwidth of the CDN and file bodies).
"""

from __future__ import annotations

from .sandbox import ModelSourceSandbox

__all__ = ["ModelSourceSandbox"]
