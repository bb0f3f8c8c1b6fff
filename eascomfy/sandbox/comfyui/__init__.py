"""A ComfyUI emulator behind the EAS sandbox's service endpoints, reading models and custom nodes
from, and writing outputs into, the service's mount on the OSS sandbox.

    eas, oss = EasSandbox().start(), OssSandbox().start()
    attachment = attach(eas, oss, job_seconds=0.05)     # every service now runs "ComfyUI"
    attachment.comfyui("my_svc").fail("19", "CUDA out of memory")

What the container runs comes from the tag of ``containers[0].image``: ``-api`` is the API-edition
image (its container serves ``POST /api_prompt`` only), anything else (standard, ``-cluster``)
serves ComfyUI's HTTP API on ``/api/predict/<svc>/...`` (and under ``/api/...`` like ComfyUI): ``POST /prompt``, ``GET /prompt``, ``GET|POST /history[/{id}]``,
``GET /view``, ``GET|POST /queue``, ``POST /interrupt``, ``POST /free``, ``GET /object_info[/{class}]``,
``GET /models[/{folder}]``, ``GET /embeddings``, ``GET /extensions``, ``GET /view_metadata/{folder}``,
``POST /upload/image``, ``POST /upload/mask``, ``GET /system_stats``, ``GET /`` and the websocket
``/ws?clientId=``.
Unknown routes answer 404 ``404 page not found``. Signed WebUI links (``/webview/<svc>/``) reach the
same app on every edition.

Whether EAS puts its queue in front comes from ``metadata.type: "Async"`` (``attach.is_async``;
``Fidelity.async_from = "image_tag"`` restores the old ``-api`` guess); a service that is not Async
is synchronous, has no sink, and its requests reach the container directly. An Async service is an
``EasQueue`` (see ``eascomfy.sandbox.queue``): ``POST /api_prompt?task_id=T`` with the
bare workflow is put on the input queue; ``metadata.instance`` workers take entries one at a time,
run them, and put the result on the sink with the input's tags plus ``requestId`` (and
``lastCode`` when it is not 200), then commit the input entry. Sink data:

* success: ``[{"type": "executed", "data": {"node", "output", "prompt_id"}}, ..., {node: output}]``,
  the shape of the guide's sample (``tests/fixtures/seed-sink-messages.jsonl``);
* a workflow ComfyUI refuses: ``lastCode`` 400 and ComfyUI's ``/prompt`` error body
  ``{"error": {...}, "node_errors": {...}}`` (the queue cannot validate, so the put succeeds);
* a node failing at run time: ``lastCode`` 500 and ``[executed events..., {"type":
  "execution_error", "data": {prompt_id, node_id, node_type, executed, exception_message,
  exception_type, traceback, current_inputs, current_outputs, timestamp}}]`` (or
  ``execution_interrupted``);
* a POST to another path: ``lastCode`` 404, data ``404 page not found``.
The failure shapes are guesses, unverified against the real API-edition image.

Object info is ``data/object_info.json`` (the guide's 11 node classes) adjusted to the mount: model
combos (``ckpt_name``, ...) list the files really in ``models/<folder>/``, and a custom node class
exists only when its pack's folder is in ``custom_nodes/`` (``CUSTOM_NODE_PACKS``, case-insensitive).
``/prompt`` validates like ComfyUI's ``validate_prompt`` (same error types, messages and
``node_errors``; outputs whose inputs are fine still run when others fail). Jobs run one at a time,
``job_seconds`` each; SaveImage, SaveAnimatedWEBP and VHS_VideoCombine write small real files named
as the PAI images name them (``outputs``; ``Fidelity.output_names``) under ``output/`` (or
``temp/``), and a prefix escaping ``output/`` fails the node with ComfyUI's message. After a prompt,
``executing {node: null, prompt_id}`` goes to the prompt's client (ComfyUI's ``main.py``). Not
emulated: node caching (ComfyUI skips nodes whose inputs did not change, so re-running an identical
workflow returns the earlier files without writing new ones), batches, previews, mask compositing
and ``%date%``-style prefix variables.

Faults: ``fail(node id or class_type, message, exception_type)`` makes that node raise at run time;
``job_seconds`` is per emulator.

Modules:

- ``attach``: ``attach``/``Attachment`` (the emulators behind every service of an ``EasSandbox``),
  ``ServiceBackend`` (one service: ComfyUI, or the queue and its workers) and ``edition_of``;
- ``emulator``: ``ComfyUIEmulator``, one service's ComfyUI (HTTP, websocket, running jobs, the
  API edition's answers);
- ``files``: the routes over the mount's files (uploads, embeddings, extensions, view_metadata);
- ``validation``: ComfyUI's ``validate_prompt`` and the order nodes run in;
- ``jobs``: a queued prompt and what running it produced;
- ``outputs``: the files output nodes write;
- ``mount``: ``ServiceMount``, the service's data dir on the OSS sandbox, and ``/object_info``;
- ``media``: tiny real PNG, WEBP, GIF and MP4 files.

Re-exported here: ``attach``, ``Attachment`` and ``ComfyUIEmulator``.
"""

from __future__ import annotations

from .attach import Attachment, attach
from .emulator import ComfyUIEmulator

__all__ = ["Attachment", "ComfyUIEmulator", "attach"]
