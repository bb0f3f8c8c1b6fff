"""An emulator of the PAI-EAS OpenAPI (version 2021-07-01) that the unmodified official SDK
(``alibabacloud_eas20210701.client.Client``) talks to over loopback HTTP.

Wire behaviour:

* Every ``/api/v2/...`` call must carry a valid ACS3-HMAC-SHA256 signature
  (``signing.verify_signature``) made with the sandbox AccessKey (``eascomfy.sandbox.credentials``). Errors use the EAS body
  ``{"RequestId","HostId","Code","HttpCode","Success":false,"Message"}``; a ``Throttling*`` code
  also sets ``x-acs-retry-after`` (one second, in ``Fidelity.retry_after_unit``), which the SDK
  turns into a ``ThrottlingException``.
* Every region served has its own port (the endpoint is the region: CreateService lands in the
  region of the endpoint it was sent to) and its own services. Routes are the ROA paths of the SDK
  under ``/api/v2/services``; ``{ClusterId}`` is the region and must be the endpoint's. An unknown
  route answers 404 ``InvalidApi.NotFound``; a missing service 404 ``InvalidService.NotFound``; a
  name another account owns (``mark_foreign``) 403 ``Forbidden.PrivilegeCheckFailed``.
* Each service gets endpoints on its region's port. Internet: ``{region url}/api/predict/<service>``;
  intranet (VPC): ``http://<uid>.vpc.<region>.pai-eas.aliyuncs.com/api/predict/<service>`` as the
  API doc shows it (unreachable from outside the VPC; a request carrying that Host header, or the
  ``{region url}/vpc/api/predict/<service>`` path form, is served as internal). Requests need
  ``Authorization: <AccessToken>`` (else 401) and get 503
  ``no healthy upstream`` until the service is Running *and* ``Timings.ready`` has passed. A ready
  service hands the request to ``route_to_backend`` (``backends[name]``, then
  ``default_backend``), which answers ``{"ok": true}`` when no backend is registered.
* DescribeServiceSignedUrl returns ``{url}[/vpc]/<webview|monitor>/<service>/?expire=<unix
  time>&signature=<hex HMAC>``; the link is served (through the backend) until it expires.

Lifecycle, versions, events and persistence live in ``state``; the readings of the sources that
stay open (UpdateServiceVersion's range, ServiceConfig in versions, event messages and order, the
intranet endpoint form, the retry-after unit) are ``Fidelity`` switches (docs/unverified.md).

Modules:

- ``sandbox``: ``EasSandbox``, the server (OpenAPI and service endpoints), its lifecycle and test
  access; ``PredictContext`` is what a service backend gets;
- ``openapi``: the OpenAPI actions (CreateService, DescribeService, ...) and their routes;
- ``signing``: ACS3-HMAC-SHA256, checked on every call;
- ``params``: query parameters, paging and the JSON body of a call;
- ``errors``: ``EasError`` and the error body;
- ``state``: services, versions, labels, events, lifecycle timings and persistence;
- ``images``: ``ImageCatalogue``, the official images the emulated registry can pull.
- ``instances``: a service's instances, their logs (current and previous container) and diagnosis;
  ``ops_api``: ListServiceInstances, ListServiceContainers, DescribeServiceLog,
  DescribeServiceDiagnosis and DescribeServiceInstanceDiagnosis over them. Test hooks on
  ``EasSandbox``: ``fail_deploy`` (the next version crash-loops with given log lines),
  ``add_logs``, ``restart_instance``.

Re-exported here: ``EasSandbox``, ``PredictContext``, ``Timings`` and ``ImageCatalogue``, e.g.
``from eascomfy.sandbox.eas import EasSandbox, Timings``.
"""

from __future__ import annotations

from .sandbox import EasSandbox, PredictContext
from .images import ImageCatalogue
from .state import Timings

__all__ = ["EasSandbox", "ImageCatalogue", "PredictContext", "Timings"]
