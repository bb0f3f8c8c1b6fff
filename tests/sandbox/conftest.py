"""Each emulator test starts from clean emulator state, whatever ran before and in what order.

Most fixtures here make a fresh emulator per test. The ``comfy`` stack (three services deployed
through the EAS SDK) is shared by a module, so it is put back as it was made before every test that
uses it: no faults, ComfyUI failures or recorded requests, jobs at its speed, the API queues empty.
"""

from __future__ import annotations

import pytest

from tests.conftest import clean_emulators

COMFY_JOB_SECONDS = 0.02  # what the ``comfy`` fixture attaches its ComfyUIs with


@pytest.fixture(autouse=True)
def _clean_comfy(request: pytest.FixtureRequest) -> None:
    if "comfy" not in request.fixturenames:
        return
    comfy = request.getfixturevalue("comfy")
    clean_emulators((comfy.eas, comfy.oss), comfy.attachment, job_seconds=COMFY_JOB_SECONDS,
                    services=(comfy.std.name, comfy.api.name, comfy.bare.name), queues=(comfy.api.name,))
