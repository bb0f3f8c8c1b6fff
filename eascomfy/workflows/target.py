"""Which service a workflow goes to: its endpoint and token, given or read from DescribeService
for the spec's service, and its edition, checked against what the command needs before any call.

The token is registered with ``redact`` the moment it is known and never printed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CloudError, UsageError
from ..redact import register_secret

if TYPE_CHECKING:
    from ..adapters.comfy_http import ServiceClient
    from ..core.editions import Edition
    from ..core.spec import Spec
    from ..ports import Progress

URL_ENV, TOKEN_ENV = "EASCOMFY_SERVICE_URL", "EASCOMFY_SERVICE_TOKEN"


@dataclass
class Target:
    endpoint: str
    token: str = field(repr=False)
    service: str
    edition: "Edition | None" = None
    spec: "Spec | None" = None

    def client(self, progress: "Progress", **kwargs: Any) -> "ServiceClient":
        from ..adapters.comfy_http import ServiceClient

        return ServiceClient(self.endpoint, self.token, log=progress.debug, **kwargs)


def edition_of_image(image: str, project_dir: Path | None = None) -> "Edition | None":
    """The edition whose image suffix the tag ends with (``2.2-api`` -> api; no suffix -> standard)."""
    from ..core.editions import all_editions

    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag:
        return None
    editions = sorted((e for e in all_editions(project_dir) if e.image_suffix is not None),
                      key=lambda e: len(e.image_suffix or ""), reverse=True)
    return next((e for e in editions if tag.endswith(e.image_suffix or "")), None)


def require_edition(edition: "Edition | None", command: str) -> None:
    """Refuse what the edition cannot do: run on the API edition, submit on the others, any
    API call on the Serverless edition. Unknown edition (a bare service URL): allowed."""
    if edition is None:
        return
    if edition.image_suffix is None:
        raise UsageError(f"the {edition.title} takes no API calls at all: run workflows in its console",
                         "deploy a Standard or API edition service to call it from eascomfy")
    if command == "run" and edition.can("async_api"):
        raise UsageError(f"the {edition.title} is asynchronous only: run cannot wait on it",
                         "use `eascomfy submit WORKFLOW.json` then `eascomfy results --follow`")
    if command in ("submit", "results") and not edition.can("async_api"):
        raise UsageError(f"the {edition.title} has no queue: {command} needs the API edition",
                         "use `eascomfy run WORKFLOW.json` (synchronous)")


def resolve_target(
    progress: "Progress",
    *,
    spec: "Spec | None" = None,
    service: str | None = None,
    region: str | None = None,
    url: str | None = None,
    token: str | None = None,
    command: str | None = None,
) -> Target:
    """Endpoint and token: given (``url``/``token`` or the environment), else DescribeService for
    ``service``/``region`` or the spec's service. The edition is checked against ``command``
    before any call."""
    url = url or os.environ.get(URL_ENV) or None
    token = token or os.environ.get(TOKEN_ENV) or None
    register_secret(token)
    if url:
        if not token:
            raise UsageError("needs the service token", f"give the token too, or set {TOKEN_ENV}", param="url")
        if not re.match(r"^https?://", url):
            raise UsageError(f"{url!r}: expected http(s)://…/api/predict/<service>", param="url")
        target = Target(url.rstrip("/"), token, url.rstrip("/").rsplit("/", 1)[-1])
        progress.debug(f"service endpoint {target.endpoint} (given)")
        return target
    if token:
        raise UsageError("needs the service URL", f"give the URL too, or set {URL_ENV}", param="token")
    if service:
        if not region:
            raise UsageError("needs the service's region", "e.g. cn-hangzhou", param="service")
        name, region_id, edition = service, region, None
    elif spec is not None:
        name, region_id, edition = spec.name, region or spec.region, spec.edition
    else:
        raise UsageError("no service: give a spec, a service name and its region, or the service URL and token")
    if command:
        require_edition(edition, command)
    from ..adapters.eas import EasClient

    live = EasClient(region_id, log=progress.debug).require(name)
    if not live.internet_endpoint:
        raise CloudError(f"service {name} has no internet endpoint yet (status {live.status})", service=name,
                         hint="wait until it is running: eascomfy status")
    if edition is None:
        edition = edition_of_image(live.image)
        if command:
            require_edition(edition, command)
    progress.debug(f"service {name}: {live.status}, endpoint {live.internet_endpoint}")
    return Target(live.internet_endpoint, live.access_token, name, edition, spec)
