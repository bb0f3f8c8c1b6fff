"""``OssSandbox``: the OSS emulator's lifecycle (a ``SandboxServer`` on 127.0.0.1 over an
``OssStore`` under ``state_dir/oss``) and direct access to what it stores, for tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from aiohttp import web

from ..fidelity import Fidelity, fidelity_control
from ..regions import DEFAULT_REGION, served
from ..server import RecordedRequest, SandboxServer, ServerBacked
from .service import OssService, fault_response
from .store import OssStore
from .tamper import DataFaults
from .target import action_of


class OssSandbox(ServerBacked):
    """OSS endpoints on 127.0.0.1 backed by files under ``state_dir/oss`` (a temp dir if None):
    ``region`` (the default, on ``port``) and any other ``regions`` asked for, each on its own port
    (``ports``), as OSS has one endpoint per region. Buckets share one namespace; each lives in the
    region whose endpoint created it.

    One instance runs once (``start`` then ``stop``); a new instance on the same ``state_dir``
    sees everything the previous one stored. Signature V1 is refused, as new OSS accounts and
    buckets refuse it, unless ``fidelity.signature_v1`` is ``accepted``.
    """

    def __init__(self, state_dir: Path | None = None, port: int = 0, region: str = DEFAULT_REGION,
                 fidelity: Fidelity | None = None, regions: Iterable[str] | None = None,
                 ports: Mapping[str, int] | None = None) -> None:
        self.region = region
        self.regions = served(region, regions)
        self.fidelity = fidelity or Fidelity()
        self.data_faults = DataFaults()  # corrupted bytes, wrong CRC headers, late answers (``tamper``)
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._store: OssStore | None = None
        sites = {r: (ports or {}).get(r, port if r == region else 0) for r in self.regions}
        self._server = SandboxServer(self._application, fault_response, action_of, name="oss", sites=sites,
                                     controls={"fidelity": fidelity_control(self.fidelity)})

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "OssSandbox":
        if self._state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="eascomfy-oss-")
            self._state_dir = Path(self._tmp.name)
        self._store = OssStore(self._state_dir / "oss")
        self._server.start()
        return self

    def __enter__(self) -> "OssSandbox":
        return self.start()

    def _application(self, server: SandboxServer) -> web.Application:
        return OssService(self.store, server, self.fidelity, self.data_faults).application()

    def endpoint_for(self, region: str) -> str:
        """``host:port`` of ``region``'s endpoint (KeyError when it is not served)."""
        return f"{self._server.host}:{self._server.ports[region]}"


    @property
    def state_dir(self) -> Path | None:
        return self._state_dir

    @property
    def store(self) -> OssStore:
        assert self._store is not None, "OssSandbox not started"
        return self._store

    # -- direct access for tests -------------------------------------------------------------
    def create_bucket(self, name: str, region: str | None = None) -> None:
        self.store.create_bucket(name, region or self.region)

    def put_object(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        writer = self.store.body_writer(bucket)
        self.store.put_object(bucket, key, writer.finish(data), content_type, {})

    def object_bytes(self, bucket: str, key: str) -> bytes:
        reader = self.store.open(bucket, key)
        if reader is None:
            raise KeyError(f"{bucket}/{key}")
        with reader:
            return reader.read()

    def object_info(self, bucket: str, key: str) -> dict[str, Any]:
        meta = self.store.head(bucket, key)
        if meta is None:
            raise KeyError(f"{bucket}/{key}")
        return {"size": meta.size, "crc64": meta.crc64, "etag": meta.etag, "last_modified": meta.last_modified,
                "content_type": meta.content_type, "object_type": meta.object_type, "user_meta": dict(meta.user_meta)}

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [m.key for m in self.store.objects(bucket) if m.key.startswith(prefix)]

    def multipart_uploads(self, bucket: str) -> list[dict[str, Any]]:
        return [{"key": u.key, "upload_id": u.upload_id, "initiated": u.initiated, "parts": sorted(u.parts)}
                for u in self.store.uploads(bucket)]

    def requests(self, action: str | None = None) -> list[RecordedRequest]:
        return [r for r in self._server.recorder.all() if action is None or r.action == action]
