"""The ComfyUI emulator's routes that third-party clients use, driven over plain HTTP and the
websocket through the EAS endpoints: uploads, embeddings, extensions, /free, /view_metadata,
/system_stats, /queue, and the end-of-prompt ``executing`` event (ComfyUI's server.py and main.py).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, Iterator

import aiohttp
import pytest

from tests.sandbox.test_comfyui_sandbox import (  # noqa: F401 - comfy is a fixture
    BUCKET,
    WORKFLOW,
    Comfy,
    Service,
    comfy,
    wait_history,
    wait_until,
)

PNG_A = b"\x89PNG\r\n\x1a\n" + b"a" * 32
PNG_B = b"\x89PNG\r\n\x1a\n" + b"b" * 32


def upload(service: Service, name: str | None, data: bytes = PNG_A, route: str = "/upload/image",
           **fields: str) -> Any:
    """A multipart form as ComfyUI's frontend sends it: ``image`` (a file) plus plain fields."""
    files = {"image": (name, data, "image/png")} if name is not None else {"dummy": ("", b"")}
    return service.post(route, files=files, data=fields)


def mount_bytes(comfy: Comfy, relative: str) -> bytes | None:
    try:
        return comfy.oss.object_bytes(BUCKET, f"comfyui/{relative}")
    except KeyError:
        return None


@pytest.fixture
def scratch(comfy: Comfy) -> Iterator[list[str]]:
    """Keys (relative to the std mount) a test put there; removed afterwards."""
    keys: list[str] = []
    yield keys
    for key in keys:
        comfy.oss.store.delete_object(BUCKET, f"comfyui/{key}")


def put(comfy: Comfy, scratch: list[str], relative: str, data: bytes) -> None:
    comfy.oss.put_object(BUCKET, f"comfyui/{relative}", data)
    scratch.append(relative)


# -- uploads -----------------------------------------------------------------------------------------
def test_upload_image_lands_in_input_with_comfyuis_names(comfy: Comfy, scratch: list[str]) -> None:
    scratch += ["input/cat.png", "input/cat (1).png", "input/sub/cat.png", "temp/cat.png"]
    answer = upload(comfy.std, "cat.png")
    assert answer.status_code == 200 and answer.json() == {"name": "cat.png", "subfolder": "", "type": "input"}
    assert mount_bytes(comfy, "input/cat.png") == PNG_A
    # The same bytes again keep the name (ComfyUI #3465); other bytes get " (1)"; overwrite replaces.
    assert upload(comfy.std, "cat.png").json()["name"] == "cat.png"
    assert upload(comfy.std, "cat.png", PNG_B).json()["name"] == "cat (1).png"
    assert mount_bytes(comfy, "input/cat (1).png") == PNG_B
    assert upload(comfy.std, "cat.png", PNG_B, overwrite="true").json()["name"] == "cat.png"
    assert mount_bytes(comfy, "input/cat.png") == PNG_B
    answer = upload(comfy.std, "cat.png", route="/api/upload/image", subfolder="sub")
    assert answer.json() == {"name": "cat.png", "subfolder": "sub", "type": "input"}
    assert upload(comfy.std, "cat.png", type="temp").json()["type"] == "temp"
    assert mount_bytes(comfy, "temp/cat.png") == PNG_A
    view = comfy.std.get("/view", params={"filename": "cat.png", "subfolder": "sub", "type": "input"})
    assert view.status_code == 200 and view.content == PNG_A

    assert upload(comfy.std, "x.png", subfolder="../../models").status_code == 400
    assert upload(comfy.std, "x.png", subfolder="/etc").status_code == 400
    assert upload(comfy.std, "../x.png").status_code == 400
    assert upload(comfy.std, None).status_code == 400  # no image field
    assert upload(comfy.std, "x.png", type="models").status_code == 500  # get_dir_by_type: unbound
    assert comfy.std.post("/upload/image", data={"image": "not a file"}).status_code == 500
    assert not [k for k in comfy.oss.list_keys(BUCKET) if k.endswith("x.png")]


def test_upload_mask_writes_only_over_an_existing_original(comfy: Comfy, scratch: list[str]) -> None:
    put(comfy, scratch, "output/base.png", PNG_A)
    scratch += ["input/mask.png", "input/orphan.png", "input/sneaky.png"]
    ref = json.dumps({"filename": "base.png", "subfolder": "", "type": "output"})
    answer = upload(comfy.std, "mask.png", PNG_B, route="/upload/mask", original_ref=ref)
    assert answer.status_code == 200 and answer.json() == {"name": "mask.png", "subfolder": "", "type": "input"}
    assert mount_bytes(comfy, "input/mask.png") == PNG_B
    # A missing original or a path escape: ComfyUI's save function returns early, the answer is 200.
    missing = json.dumps({"filename": "gone.png", "type": "output"})
    assert upload(comfy.std, "orphan.png", route="/upload/mask", original_ref=missing).status_code == 200
    escape = json.dumps({"filename": "../base.png", "type": "output"})
    assert upload(comfy.std, "sneaky.png", route="/upload/mask", original_ref=escape).status_code == 200
    assert mount_bytes(comfy, "input/orphan.png") is None and mount_bytes(comfy, "input/sneaky.png") is None
    assert upload(comfy.std, "mask.png", route="/upload/mask").status_code == 500  # no original_ref
    annotated = json.dumps({"filename": "base.png [output]"})
    assert upload(comfy.std, "mask.png", PNG_A, route="/upload/mask", original_ref=annotated).json()["name"] == "mask (1).png"
    scratch.append("input/mask (1).png")


# -- listings and metadata ---------------------------------------------------------------------------
def test_embeddings_and_extensions_list_the_mount(comfy: Comfy, scratch: list[str]) -> None:
    for key in ("models/embeddings/easy.pt", "models/embeddings/sub/bad.safetensors", "models/embeddings/notes.txt",
                "custom_nodes/ComfyUI-VideoHelperSuite/web/js/VHS.core.js",
                "custom_nodes/ComfyUI-VideoHelperSuite/web/js/style.css"):
        put(comfy, scratch, key, b"x")
    assert comfy.std.get("/embeddings").json() == ["easy", "sub/bad"]
    assert comfy.std.get("/extensions").json() == ["/extensions/ComfyUI-VideoHelperSuite/js/VHS.core.js"]
    assert comfy.bare.get("/embeddings").json() == [] and comfy.bare.get("/api/extensions").json() == []


def safetensors(header: dict[str, Any]) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\x00" * 16


def test_view_metadata_reads_the_safetensors_header(comfy: Comfy, scratch: list[str]) -> None:
    put(comfy, scratch, "models/vae/styled.safetensors",
        safetensors({"__metadata__": {"ss_network_dim": "32"}, "w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}))
    put(comfy, scratch, "models/vae/plain.safetensors", safetensors({"w": {"dtype": "F16", "shape": [1]}}))
    put(comfy, scratch, "models/vae/short.safetensors", b"\x01\x02")
    put(comfy, scratch, "models/vae/garbled.safetensors", struct.pack("<Q", 4) + b"{{{{")
    get = lambda folder, **q: comfy.std.get(f"/view_metadata/{folder}", params=q)  # noqa: E731
    answer = get("vae", filename="styled.safetensors")
    assert answer.status_code == 200 and answer.json() == {"ss_network_dim": "32"}
    assert get("vae", filename="../styled.safetensors").json() == {"ss_network_dim": "32"}  # anchored in the folder
    for folder, query in (("vae", {"filename": "plain.safetensors"}), ("vae", {"filename": "none.safetensors"}),
                          ("vae", {"filename": "styled.ckpt"}), ("vae", {}), ("nowhere", {"filename": "styled.safetensors"}),
                          ("checkpoints", {"filename": "svd_xt.safetensors"})):  # header length too large: None
        assert get(folder, **query).status_code == 404, (folder, query)
    assert get("vae", filename="short.safetensors").status_code == 500
    assert get("vae", filename="garbled.safetensors").status_code == 500


def test_free_and_bad_json_bodies(comfy: Comfy) -> None:
    emulator = comfy.attachment.comfyui(comfy.std.name)
    assert comfy.std.post("/free", json={"unload_models": True, "free_memory": False}).status_code == 200
    assert emulator.flags == {"unload_models": True}
    for route in ("/free", "/queue", "/history"):  # ComfyUI's `await request.json()` is not guarded
        assert comfy.std.post(route, data=b"not json").status_code == 500, route


def test_system_stats_has_comfyuis_keys(comfy: Comfy) -> None:
    stats = comfy.std.get("/system_stats").json()
    assert set(stats["system"]) == {"os", "ram_total", "ram_free", "comfyui_version", "python_version",
                                    "pytorch_version", "embedded_python", "argv"}
    assert set(stats["devices"][0]) == {"name", "type", "index", "vram_total", "vram_free", "torch_vram_total",
                                        "torch_vram_free"}


# -- the queue ---------------------------------------------------------------------------------------
def test_queue_items_and_clear_leave_the_running_prompt(comfy: Comfy) -> None:
    emulator = comfy.attachment.comfyui(comfy.std.name)
    emulator.job_seconds = 0.8
    try:
        ids = [comfy.std.post("/prompt", json={"prompt": WORKFLOW, "client_id": f"c{i}"}).json()["prompt_id"]
               for i in range(3)]
        queue = wait_until(lambda: (q := comfy.std.get("/queue").json())["queue_running"] and q)
        [running] = queue["queue_running"]
        number, prompt_id, prompt, extra_data, outputs = running
        assert (prompt_id, prompt, extra_data) == (ids[0], WORKFLOW, {"client_id": "c0"})
        assert isinstance(number, int) and sorted(outputs, key=int) == ["9", "15", "19"]
        assert [item[1] for item in queue["queue_pending"]] == ids[1:]
        assert comfy.std.post("/queue", json={"clear": True}).status_code == 200
        assert comfy.std.get("/queue").json()["queue_pending"] == []
        entry = wait_history(comfy.std, ids[0])
    finally:
        emulator.job_seconds = 0.02
    assert entry["status"]["status_str"] == "success"  # clearing the queue does not touch the running one
    assert all(comfy.std.get(f"/history/{i}").json() == {} for i in ids[1:])


# -- websocket: the end of a prompt --------------------------------------------------------------------
def test_final_executing_goes_to_the_prompts_client_only(comfy: Comfy) -> None:
    """main.py ``prompt_worker``: after a prompt, ``executing {node: None, prompt_id}`` is sent to
    ``server.client_id`` (the prompt's ``client_id``) and only when there is one; the per-node
    ``executing`` events of a prompt without a client go to every socket (``send_sync`` sid None)."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, str]:
        headers = {"Authorization": comfy.std.token}
        url = comfy.std.url("/ws?clientId={}").replace("http://", "ws://")
        async with aiohttp.ClientSession(headers=headers, trust_env=False) as session:
            async with session.ws_connect(url.format("owner")) as owner, session.ws_connect(url.format("other")) as other:
                await owner.receive_json(timeout=5), await other.receive_json(timeout=5)
                async with session.post(comfy.std.url("/prompt"), json={"prompt": WORKFLOW}) as r:
                    anonymous = (await r.json())["prompt_id"]
                await asyncio.to_thread(wait_history, comfy.std, anonymous)
                async with session.post(comfy.std.url("/prompt"), json={"prompt": WORKFLOW, "client_id": "owner"}) as r:
                    owned = (await r.json())["prompt_id"]
                seen_owner: list[dict[str, Any]] = []
                while not (seen_owner and seen_owner[-1]["type"] == "executing" and seen_owner[-1]["data"]["node"] is None):
                    seen_owner.append(await owner.receive_json(timeout=5))
                await asyncio.to_thread(wait_history, comfy.std, owned)
                seen_other: list[dict[str, Any]] = []
                while True:
                    try:
                        seen_other.append(await other.receive_json(timeout=0.5))
                    except asyncio.TimeoutError:
                        break
                return seen_owner, seen_other, anonymous, owned

    owner, other, anonymous, owned = asyncio.run(scenario())
    finals = [e["data"]["prompt_id"] for e in owner if e["type"] == "executing" and e["data"]["node"] is None]
    assert finals == [owned]  # none for the prompt without a client
    assert any(e["type"] == "executing" and e["data"].get("prompt_id") == anonymous for e in owner)  # broadcast
    other_ids = {e["data"].get("prompt_id") for e in other if e["type"] != "status"}
    assert anonymous in other_ids and owned not in other_ids


# -- /interrupt: before and after ComfyUI PR #9607 ------------------------------------------------------
def _running(service: Service, prompt_id: str) -> bool:
    return [item[1] for item in service.get("/queue").json()["queue_running"]] == [prompt_id]


def _last_event(service: Service, prompt_id: str) -> str:
    return str(wait_history(service, prompt_id)["status"]["messages"][-1][0])


def test_interrupt_before_pr_9607_stops_whatever_runs(comfy: Comfy) -> None:
    """The default (the PAI images' ComfyUI version is unknown): the body is ignored, so
    interrupting a *pending* prompt by id kills the prompt that is running."""
    emulator = comfy.attachment.comfyui(comfy.std.name)
    assert comfy.eas.fidelity.interrupt == "any"
    emulator.job_seconds = 0.8
    try:
        running = comfy.std.post("/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        pending = comfy.std.post("/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        wait_until(lambda: _running(comfy.std, running))
        answer = comfy.std.post("/interrupt", json={"prompt_id": pending})
        assert answer.status_code == 200 and answer.content == b""
        assert _last_event(comfy.std, running) == "execution_interrupted"
        assert _last_event(comfy.std, pending) == "execution_success"
    finally:
        emulator.job_seconds = 0.02


def test_interrupt_after_pr_9607_stops_only_the_named_prompt(comfy: Comfy) -> None:
    """Switched through the control endpoint, as a test in another process would."""
    emulator = comfy.attachment.comfyui(comfy.std.name)
    control = f"{comfy.eas.url}/_sandbox/fidelity"
    assert comfy.std.http.post(control, json={"interrupt": "prompt_id"}).json()["interrupt"] == "prompt_id"
    assert comfy.std.http.post(control, json={"interrupt": "maybe"}).status_code == 400
    emulator.job_seconds = 0.8
    try:
        first = comfy.std.post("/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        second = comfy.std.post("/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        third = comfy.std.post("/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        wait_until(lambda: _running(comfy.std, first))
        assert comfy.std.post("/interrupt", json={"prompt_id": second}).status_code == 200  # pending: ignored
        wait_until(lambda: _running(comfy.std, second))
        assert comfy.std.post("/interrupt", json={"prompt_id": second}).status_code == 200  # running: stops
        wait_until(lambda: _running(comfy.std, third))
        assert comfy.std.post("/interrupt").status_code == 200  # no body: a global interrupt, as before
        assert [_last_event(comfy.std, p) for p in (first, second, third)] == [
            "execution_success", "execution_interrupted", "execution_interrupted"]
    finally:
        emulator.job_seconds = 0.02
        comfy.std.http.post(control, json={"interrupt": "any"})
    assert comfy.eas.fidelity.interrupt == "any"


# -- LoadImage and HEAD /view (input files, issue 14) ----------------------------------------------------
def test_load_image_lists_input_images_and_refuses_a_missing_one(comfy: Comfy, scratch: list[str]) -> None:
    """``LoadImage.INPUT_TYPES`` lists the image files directly in input/; on /prompt its
    ``VALIDATE_INPUTS`` replaces the combo check: a missing file is ``custom_validation_failed``."""
    put(comfy, scratch, "input/dog.png", PNG_A)
    put(comfy, scratch, "input/notes.txt", b"not an image")
    put(comfy, scratch, "input/deep/cat.png", PNG_B)
    listed = comfy.std.get("/object_info/LoadImage").json()["LoadImage"]
    assert "dog.png" in listed["input"]["required"]["image"][0]
    assert not {"notes.txt", "deep/cat.png", "cat.png"} & set(listed["input"]["required"]["image"][0])
    assert listed["output"] == ["IMAGE", "MASK"]

    def prompt(image: str) -> Any:
        flow = {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "loaded"}}}
        return comfy.std.post("/prompt", json={"prompt": flow})

    accepted = [prompt("dog.png"), prompt("deep/cat.png")]  # exists_annotated_filepath: subfolders too
    assert [a.status_code for a in accepted] == [200, 200]
    ids = [a.json()["prompt_id"] for a in accepted]
    for prompt_id in ids:  # finished and gone before the next test looks at the queue or the history
        wait_history(comfy.std, prompt_id)
    comfy.std.post("/history", json={"delete": ids})
    refused = prompt("ghost.png")
    assert refused.status_code == 400
    error = refused.json()["node_errors"]["1"]["errors"][0]
    assert error == {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                     "details": "image - Invalid image file: ghost.png", "extra_info": {"input_name": "image"}}
    assert prompt("../models/checkpoints/x.png").status_code == 400


@pytest.mark.parametrize("head", ["forwarded", "refused"])
def test_head_view_says_whether_an_input_is_there(comfy: Comfy, scratch: list[str], head: str) -> None:
    """aiohttp serves ComfyUI's GET routes for HEAD too; whether the EAS gateway passes HEAD on is
    the ``gateway_head`` switch (``refused``: 405 from the gateway)."""
    put(comfy, scratch, "input/here.png", PNG_A)
    comfy.eas.fidelity.gateway_head = head
    try:
        here = comfy.std.http.head(comfy.std.url("/view"), params={"filename": "here.png", "type": "input"}, timeout=10)
        gone = comfy.std.http.head(comfy.std.url("/view"), params={"filename": "gone.png", "type": "input"}, timeout=10)
    finally:
        comfy.eas.fidelity.gateway_head = "forwarded"
    if head == "forwarded":
        assert (here.status_code, gone.status_code) == (200, 404)
        assert here.headers["Content-Type"] == "image/png" and here.content == b""
    else:
        assert (here.status_code, gone.status_code) == (405, 405)
