"""Switches between the readings of the sources the emulators follow.

Where the sources (the API documentation, the SDKs in site-packages, ComfyUI's code and PRs) leave
two readings open, or where a behaviour differs between versions of the real thing, the emulators
implement both and a ``Fidelity`` switch picks one. The default is the strict or realistic reading,
except where a note says the default keeps today's client working until the client is fixed.
docs/unverified.md (the fidelity ledger) lists every switch with its source.

One ``Fidelity`` object is shared by the emulators of a ``SandboxStack``; a test changes it in
process (``stack.fidelity.interrupt = "prompt_id"``) or, from another process, through the control
endpoint ``POST /_sandbox/fidelity`` (a JSON object of switch -> value) on the EAS or OSS server;
``GET /_sandbox/fidelity`` shows the switches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Awaitable, Callable

from aiohttp import web

# switch -> its values; the first value listed is not necessarily the default (see the fields)
CHOICES: dict[str, tuple[str, ...]] = {
    # ComfyUI (comfyui/)
    "output_names": ("pai", "comfyui"),
    "interrupt": ("any", "prompt_id"),
    "gateway_head": ("forwarded", "refused"),
    # EAS control plane (eas/)
    "async_from": ("metadata_type", "image_tag"),
    "version_switch": ("below_current", "up_to_latest"),
    "retry_after_unit": ("ms", "s"),
    "versions_service_config": ("custom_images", "always"),
    "event_message": ("json", "text"),
    "event_order": ("oldest_first", "newest_first"),
    "intranet_endpoint": ("host", "path"),
    "autoscaler_update_min": ("positive", "zero_ok"),
    "group_join": ("standalone", "grouping"),
    "warmup_failure": ("fail", "proceed"),
    "warmup_repeat": ("once", "five_times"),
    # OSS (oss/)
    "bucket_location": ("any_endpoint", "bucket_endpoint"),
    "signature_v1": ("refused", "accepted"),
    # model sources (models/)
    "modelscope_sha256": ("listing", "linked_etag"),
    "civitai_redirect": ("307", "302"),
    "civitai_head": ("redirect", "refused"),
}


@dataclass
class Fidelity:
    """Which reading each emulator follows; see ``CHOICES`` for the values of each switch.

    - ``output_names``: ``pai`` names SaveImage outputs ``<prefix>_<unix-ts>_<uuid>_.png`` and
      SaveAnimatedWEBP outputs ``<prefix>_<unix-ts>_.webp``, as the PAI images do (the vendor
      guide's sample history and sink messages); ``comfyui`` uses upstream ComfyUI's counter
      (``<prefix>_00001_.png``).
    - ``interrupt``: ``any`` is ComfyUI before PR #9607 (2025-08-28): ``POST /interrupt`` ignores
      its body and interrupts whatever runs; ``prompt_id`` is ComfyUI after it: a body
      ``{"prompt_id": X}`` interrupts only X, and only while X runs.
    - ``gateway_head``: whether the EAS gateway in front of a service passes a ``HEAD`` request on
      (``forwarded``: ComfyUI answers it, aiohttp serving every ``GET`` route for ``HEAD`` too,
      ``RouteTableDef.get(..., allow_head=True)``) or answers 405 itself (``refused``). No EAS
      document says which; eascomfy's input upload works either way.
    - ``async_from``: ``metadata_type`` gives a service the EAS queue (and a sink) when its config
      has ``metadata.type: "Async"`` (alipai ``pai/model/_model.py``, ``pai/predictor.py``);
      ``image_tag`` when the image tag ends in ``-api`` (the emulator's old guess).
    - ``version_switch``: ``below_current`` takes UpdateServiceVersion's docstring literally
      ("greater than 0 and smaller than the current version of the service"); ``up_to_latest``
      accepts any version from 1 to LatestVersion.
    - ``retry_after_unit``: the unit of ``x-acs-retry-after`` on a throttling answer; the SDK's
      retry (darabonba ``core.py`` ``get_backoff_time``) reads milliseconds, and so does the
      client (``adapters/eas.py``, capped at 120 s): ``ms`` sends 1000, ``s`` sends 1.
    - ``versions_service_config``: ``custom_images`` returns ListServiceVersions' ``ServiceConfig``
      only for versions deployed from a custom image (SDK docstring), none for the official
      ``pai-eas/...`` images; ``always`` returns it for every version. The client's ``versions``
      and ``rollback`` work without it (the applied-sha label comes from DescribeService).
    - ``event_message``: DescribeServiceEvent ``Message`` is JSON (SDK docstring: "formatted and
      returned in the JSON format"), ``{"versionId": N, "message": "..."}``; ``text`` is plain.
    - ``event_order``: the page order of DescribeServiceEvent (undocumented).
    - ``intranet_endpoint``: ``host`` answers IntranetEndpoint as the API doc example does,
      ``http://<uid>.vpc.<region>.pai-eas.aliyuncs.com/api/predict/<svc>`` (reachable from inside
      the VPC only; the sandbox also serves requests whose Host header is that name);
      ``path`` answers a reachable loopback form, ``<sandbox url>/vpc/api/predict/<svc>``.
    - ``autoscaler_update_min``: ``positive`` refuses UpdateServiceAutoScaler with ``min: 0``, as
      its docstring and API page say ("must be greater than 0"); ``zero_ok`` accepts it, as
      Create, the console's HPA doc and the async scaling doc (``-Dmin=0``) do.
    - ``group_join``: the traffic state of a service created in a group (``metadata.group``).
      ``standalone``: it takes no group traffic until ReleaseService ``TrafficState=grouping``
      (the manage-service-groups doc: a new member gets no traffic until traffic is enabled;
      that ReleaseService is the switch is an inference); ``grouping``: it joins the group's
      traffic at once, with its default Weight (100, the Go SDK's DescribeService example).
    - ``warmup_failure``: a warm-up whose request file is missing or whose request the container
      refuses makes the service Failed (``fail``, reason ``WarmUpFailed``), or is logged as a
      Warning event and the instances go ready anyway (``proceed``); the EAS warm-up doc does not
      say (``sandbox/eas/warmup.py``).
    - ``warmup_repeat``: each warm-up request is sent once (``once``), or the whole file five times
      in a row (``five_times``), as an older version of the EAS warm-up doc says.
    - ``bucket_location``: whether GetBucketLocation answers through any region's endpoint
      (``any_endpoint``, unverified) or only through the bucket's own (``bucket_endpoint``).
    - ``signature_v1``: ``refused`` answers a Signature V1 request 403 with EC 0002-00000080, as
      accounts created since 2025-03-01 and buckets created since 2025-09-01 do (OSS "Guidelines
      for upgrading V1 signatures to V4 signatures"); ``accepted`` is an older account's older
      bucket.
    - ``modelscope_sha256``: ``listing`` gives each file's ``Sha256`` in ModelScope's repo listing
      (modelscope-hub ``constants.py`` FILE_HASH_FIELD); ``linked_etag`` leaves it out and sends
      ``X-Linked-ETag`` on the LFS storage answer, which the SDK falls back to (an SDK comment only).
    - ``civitai_redirect``: the status of Civitai's download redirect, ``307`` (Next.js
      ``res.redirect``'s default, inferred) or ``302``.
    - ``civitai_head``: whether HEAD on Civitai's download route redirects as GET does
      (``redirect``) or is refused (``refused``, 405); undocumented.
    """

    output_names: str = "pai"
    interrupt: str = "any"
    gateway_head: str = "forwarded"
    async_from: str = "metadata_type"
    version_switch: str = "below_current"
    retry_after_unit: str = "ms"
    versions_service_config: str = "custom_images"
    event_message: str = "json"
    event_order: str = "oldest_first"
    intranet_endpoint: str = "host"
    autoscaler_update_min: str = "positive"
    group_join: str = "standalone"
    warmup_failure: str = "fail"
    warmup_repeat: str = "once"
    bucket_location: str = "any_endpoint"
    signature_v1: str = "refused"
    modelscope_sha256: str = "listing"
    civitai_redirect: str = "307"
    civitai_head: str = "redirect"

    def update(self, **values: Any) -> "Fidelity":
        """Set switches by name; an unknown switch or value raises ``ValueError``."""
        known = {f.name for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fidelity switch {name!r} (known: {', '.join(sorted(known))})")
            if value not in CHOICES[name]:
                raise ValueError(f"fidelity switch {name} takes {' or '.join(CHOICES[name])}, not {value!r}")
        for name, value in values.items():
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        self.update(**{name: value})

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def fidelity_control(fidelity: Fidelity) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The ``/_sandbox/fidelity`` control endpoint: GET shows the switches, POST sets some."""

    async def control(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            try:
                body = await request.json()
                fidelity.update(**body)
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(fidelity.to_dict())

    return control
