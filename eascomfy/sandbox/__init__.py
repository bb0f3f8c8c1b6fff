"""Sandbox emulators that speak the real wire protocols of EAS, OSS, ComfyUI and the EAS queue.

They exist so that the unmodified official SDKs can be driven over loopback HTTP in tests, demos and
pipelines without touching the cloud. Nothing here is imported by offline commands, and nothing
here imports the rest of eascomfy (only ``eascomfy.crc64``): the sandbox emulates the cloud, not
the client.

Regions. On the cloud the endpoint is the region (CreateService carries none): the EAS and OSS
emulators serve every region they are given, each on its own loopback port, one state per region
(EAS services in ``eas/<region>/state.json``; OSS buckets share one namespace, each bucket living
in the region whose endpoint created it, and answering through another region's endpoint as OSS
does: 403 AccessDenied, EC 0003-00001403, ``<Endpoint>`` naming the right one). ``eascomfy
sandbox`` serves every region of ``regions.EAS_REGIONS`` (``--regions`` to choose), the stack
only its default region unless given ``regions``. A client finds the endpoints in:

- ``EASCOMFY_EAS_ENDPOINTS`` / ``EASCOMFY_OSS_ENDPOINTS``: ``region=url`` pairs joined by commas,
  e.g. ``cn-hangzhou=http://127.0.0.1:8001,cn-shanghai=http://127.0.0.1:8003``. Working in region
  R, a client uses R's URL; if the variable is set and lacks R, the sandbox does not serve R and the
  client must say so, never fall back to another region's endpoint;
- ``EASCOMFY_EAS_ENDPOINT`` / ``EASCOMFY_OSS_ENDPOINT``: the default region's URL, as before (the
  maps win where both are set).

``SandboxStack.env()`` returns both, ``eascomfy sandbox`` prints them as ``export`` lines.

Fidelity. Where the sources leave two readings, ``fidelity.Fidelity`` switches between them
(docs/unverified.md is the ledger: behaviour, source, verified or not, switch).

Layout:

- ``stack``: ``SandboxStack``, everything at once (EAS, OSS and ComfyUI behind every service);
- ``eas/``: the PAI-EAS OpenAPI emulator (``EasSandbox``, ``Timings``) and each service's endpoint;
- ``oss/``: the OSS emulator (``OssSandbox``) and its on-disk store;
- ``comfyui/``: ComfyUI behind the EAS service endpoints (``attach``), on the service's OSS mount;
- ``queue``: the EAS queue service (``EasQueue``) in front of an Async service;
- ``server``: what the emulators share: a threaded aiohttp server, request recorder, faults;
- ``fidelity``: ``Fidelity``, the switches between readings of the sources (docs/unverified.md);
- ``regions``: the region table and the endpoint-map contract (``format_endpoints``, ``parse_endpoints``);
- ``durable``: durable files (write-then-rename) and the EAS queue's on-disk form;
- ``credentials``: the sandbox's AccessKey pair.

Each emulator package re-exports its entry names (e.g. ``from eascomfy.sandbox.eas import
EasSandbox, Timings``); everything else is imported from the module that defines it.
"""
