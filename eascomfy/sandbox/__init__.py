"""Sandbox emulators that speak the real wire protocols of EAS, OSS, ComfyUI and the EAS queue.

They exist so that the unmodified official SDKs can be driven over loopback HTTP in tests, demos and
pipelines without touching the cloud. Nothing here is imported by offline commands, and nothing
here imports the rest of eascomfy (only ``eascomfy.crc64``): the sandbox emulates the cloud, not
the client.

Layout:

- ``stack``: ``SandboxStack``, everything at once (EAS, OSS and ComfyUI behind every service);
- ``eas/``: the PAI-EAS OpenAPI emulator (``EasSandbox``, ``Timings``) and each service's endpoint;
- ``oss/``: the OSS emulator (``OssSandbox``) and its on-disk store;
- ``comfyui/``: ComfyUI behind the EAS service endpoints (``attach``), on the service's OSS mount;
- ``queue``: the EAS queue service (``EasQueue``) in front of an API-edition service;
- ``server``: what the emulators share: a threaded aiohttp server, request recorder, faults;
- ``fidelity``: ``Fidelity``, the switches between readings of the sources (docs/unverified.md);
- ``credentials``: the sandbox's AccessKey pair.

Each emulator package re-exports its entry names (e.g. ``from eascomfy.sandbox.eas import
EasSandbox, Timings``); everything else is imported from the module that defines it.
"""
