"""The whole sandbox at once: the EAS OpenAPI and OSS emulators side by side, sharing one state
directory and the sandbox's AccessKey pair, with a ComfyUI (or, for the API edition, the EAS queue
in front of one) behind every service endpoint, its data directory on the OSS emulator. Used by
`eascomfy sandbox`, `eascomfy demo` and tests.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .comfyui.attach import Attachment, attach
from .credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from .eas.sandbox import EasSandbox
from .eas.state import Timings
from .fidelity import Fidelity
from .oss.sandbox import OssSandbox


class SandboxStack:
    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        eas_port: int = 0,
        oss_port: int = 0,
        timings: Timings | None = None,
        region: str = "cn-hangzhou",
        job_seconds: float = 0.2,
        fidelity: Fidelity | None = None,
    ) -> None:
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="eascomfy-sandbox-"))
        self.region = region
        self.fidelity = fidelity or Fidelity()
        self.eas = EasSandbox(state_dir=self.state_dir, port=eas_port, timings=timings, region=region,
                              fidelity=self.fidelity)
        self.oss = OssSandbox(state_dir=self.state_dir, port=oss_port, region=region)
        self.job_seconds = job_seconds
        self.comfyui: Attachment | None = None

    def start(self) -> "SandboxStack":
        self.eas.start()
        try:
            self.oss.start()
            self.comfyui = attach(self.eas, self.oss, job_seconds=self.job_seconds)
        except BaseException:
            self.eas.stop()
            raise
        return self

    def stop(self) -> None:
        if self.comfyui is not None:
            self.comfyui.close()
        self.oss.stop()
        self.eas.stop()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> "SandboxStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment that points eascomfy (and the SDKs) at this sandbox."""
        return {
            "EASCOMFY_EAS_ENDPOINT": self.eas.url,
            "EASCOMFY_OSS_ENDPOINT": self.oss.url,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SANDBOX_ACCESS_KEY_SECRET,
        }
