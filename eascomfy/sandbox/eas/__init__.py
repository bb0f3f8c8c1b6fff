"""An emulator of the PAI-EAS OpenAPI (version 2021-07-01) that the unmodified official SDK
(``alibabacloud_eas20210701.client.Client``) talks to over loopback HTTP.

Wire behaviour:

* Every ``/api/v2/...`` call must carry a valid ACS3-HMAC-SHA256 signature
  (``signing.verify_signature``) made with the sandbox AccessKey (``eascomfy.sandbox.credentials``). Errors use the EAS body
  ``{"RequestId","HostId","Code","HttpCode","Success":false,"Message"}``; a ``Throttling*`` code
  also sets ``x-acs-retry-after: 1``, which the SDK turns into a ``ThrottlingException``.
* Routes are the ROA paths of the SDK under ``/api/v2/services``; ``{ClusterId}`` is the region.
  An unknown route answers 404 ``InvalidApi.NotFound``; a missing service 404
  ``InvalidService.NotFound``.
* Each service gets endpoints on the same server. Internet: ``{url}/api/predict/<service>``;
  intranet (VPC): ``{url}/vpc/api/predict/<service>`` (the ``/vpc`` path prefix stands for the VPC
  host). Requests need ``Authorization: <AccessToken>`` (else 401) and get 503
  ``no healthy upstream`` until the service is Running *and* ``Timings.ready`` has passed. A ready
  service hands the request to ``route_to_backend`` (``backends[name]``, then
  ``default_backend``), which answers ``{"ok": true}`` when no backend is registered.
* DescribeServiceSignedUrl returns ``{url}[/vpc]/<webview|monitor>/<service>/?expire=<unix
  time>&signature=<hex HMAC>``; the link is served (through the backend) until it expires.

Lifecycle, versions, events and persistence live in ``state``.

Modules:

- ``sandbox``: ``EasSandbox``, the server (OpenAPI and service endpoints), its lifecycle and test
  access; ``PredictContext`` is what a service backend gets;
- ``openapi``: the OpenAPI actions (CreateService, DescribeService, ...) and their routes;
- ``signing``: ACS3-HMAC-SHA256, checked on every call;
- ``params``: query parameters, paging and the JSON body of a call;
- ``errors``: ``EasError`` and the error body;
- ``state``: services, versions, labels, events, lifecycle timings and persistence;
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
from .state import ImageCatalogue, Timings

__all__ = ["EasSandbox", "ImageCatalogue", "PredictContext", "Timings"]
