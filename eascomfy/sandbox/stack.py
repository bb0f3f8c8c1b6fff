"""The whole sandbox at once: the EAS OpenAPI and OSS emulators side by side, sharing one state
directory, one ``Fidelity`` and the sandbox's AccessKey pair, with a ComfyUI (or, for an Async
service, the EAS queue in front of one) behind every service endpoint, its data directory on the
OSS emulator; and a model-source emulator (a Hugging Face-shaped hub and CDN, ``models``).
Used by `eascomfy sandbox`, `eascomfy demo` and tests.

Both emulators serve ``region`` and any other ``regions``, each region on its own port; ``env()``
is what points a client at them (the contract is in ``regions``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from .comfyui.attach import Attachment, attach
from .credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from .eas.sandbox import EasSandbox
from .eas.state import Timings
from .fidelity import Fidelity
from .models import ModelSourceSandbox
from .oss.sandbox import OssSandbox
from .regions import DEFAULT_REGION, EAS_ENDPOINTS_ENV, OSS_ENDPOINTS_ENV, format_endpoints

HF_ENDPOINT_ENV = "EASCOMFY_HF_ENDPOINT"  # the Hugging Face endpoint eascomfy.storage.pull_source reads
MS_ENDPOINT_ENV = "EASCOMFY_MODELSCOPE_ENDPOINT"  # ModelScope's, the same emulator
CIVITAI_ENDPOINT_ENV = "EASCOMFY_CIVITAI_ENDPOINT"  # Civitai's, the same emulator


class SandboxStack:
    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        eas_port: int = 0,
        oss_port: int = 0,
        timings: Timings | None = None,
        region: str = DEFAULT_REGION,
        job_seconds: float = 0.2,
        fidelity: Fidelity | None = None,
        regions: Iterable[str] | None = None,
    ) -> None:
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="eascomfy-sandbox-"))
        self.region = region
        self.fidelity = fidelity or Fidelity()
        self.eas = EasSandbox(state_dir=self.state_dir, port=eas_port, timings=timings, region=region,
                              fidelity=self.fidelity, regions=regions)
        self.oss = OssSandbox(state_dir=self.state_dir, port=oss_port, region=region, fidelity=self.fidelity,
                              regions=regions)
        self.models = ModelSourceSandbox(self.state_dir, fidelity=self.fidelity)
        self.regions = self.eas.regions
        self.job_seconds = job_seconds
        self.comfyui: Attachment | None = None

    def start(self) -> "SandboxStack":
        self.eas.start()
        try:
            self.oss.start()
            self.models.start()
            self.comfyui = attach(self.eas, self.oss, job_seconds=self.job_seconds)
        except BaseException:
            self.models.stop()
            self.oss.stop()
            self.eas.stop()
            raise
        return self

    def stop(self) -> None:
        if self.comfyui is not None:
            self.comfyui.close()
        self.models.stop()
        self.oss.stop()
        self.eas.stop()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> "SandboxStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment that points eascomfy (and the SDKs) at this sandbox: every region's
        endpoints (``EASCOMFY_EAS_ENDPOINTS``, ``EASCOMFY_OSS_ENDPOINTS``) and, for clients that
        know one region only, the default region's (``EASCOMFY_EAS_ENDPOINT``, ``..._OSS_...``); and
        the model-source emulator as the Hugging Face, ModelScope and Civitai endpoints."""
        return {  # the four single-region names first, in their old order, then the maps
            "EASCOMFY_EAS_ENDPOINT": self.eas.url,
            "EASCOMFY_OSS_ENDPOINT": self.oss.url,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SANDBOX_ACCESS_KEY_SECRET,
            EAS_ENDPOINTS_ENV: format_endpoints(self.eas.urls),
            OSS_ENDPOINTS_ENV: format_endpoints(self.oss.urls),
            HF_ENDPOINT_ENV: self.models.url,
            MS_ENDPOINT_ENV: self.models.url,
            CIVITAI_ENDPOINT_ENV: self.models.url,
        }
