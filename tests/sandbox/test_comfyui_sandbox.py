"""The ComfyUI emulator behind the EAS sandbox: services created with the real EAS SDK, their data
dir on the OSS sandbox, driven over plain HTTP and ComfyUI's websocket through the EAS endpoints.

The ``comfy`` fixture and the helpers here are shared with ``test_queue_sandbox.py``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import aiohttp
import pytest
import requests
from alibabacloud_eas20210701 import models as eas_models
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi.models import Config

from eascomfy.sandbox.comfyui import Attachment, attach, media
from eascomfy.sandbox.comfyui.attach import edition_of
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox, Timings
from eascomfy.sandbox.oss import OssSandbox
from tests.conftest import TESTS

REGION = "cn-hangzhou"
IMAGE = f"eas-registry-vpc.{REGION}.cr.aliyuncs.com/pai-eas/comfyui"
BUCKET = "comfy-data"
FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)
WORKFLOW: dict[str, Any] = json.loads((TESTS / "fixtures" / "seed-workflow.api.json").read_text())
MODELS = ("models/checkpoints/LandscapeBING_v10.safetensors", "models/checkpoints/svd_xt.safetensors")
VHS_PACK = "custom_nodes/ComfyUI-VideoHelperSuite/__init__.py"
PAI_PNG = r"ComfyUI_\d{10}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_\.png"
PAI_WEBP = r"ComfyUI_\d{10}_\.webp"


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return result


@dataclass
class Service:
    """One deployed service as a client sees it: endpoint and token from DescribeService."""

    name: str
    endpoint: str
    token: str
    http: requests.Session

    def url(self, path: str = "") -> str:
        return self.endpoint + path

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url(path), timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url(path), timeout=10, **kwargs)


@dataclass
class Comfy:
    eas: EasSandbox
    oss: OssSandbox
    attachment: Attachment
    std: Service  # standard edition, the guide's models and node pack on its mount
    api: Service  # API edition (2 instances), same mount
    bare: Service  # standard edition, empty mount


def _deploy(client: Client, eas: EasSandbox, name: str, tag: str, prefix: str, **metadata: Any) -> Service:
    config = {
        "metadata": {"name": name, "instance": 1, "workspace_id": "123456", **metadata},
        "containers": [{"image": f"{IMAGE}:{tag}", "port": 8000,
                        "script": "python main.py --listen --port 8000 --data-dir /code/data-oss"}],
        "storage": [{"mount_path": "/code/data-oss", "oss": {"path": f"oss://{BUCKET}/{prefix}"}}],
    }
    client.create_service(eas_models.CreateServiceRequest(body=json.dumps(config)))
    described = client.describe_service(REGION, name).body
    http = requests.Session()
    http.trust_env = False
    http.headers["Authorization"] = described.access_token
    return Service(name, described.internet_endpoint, described.access_token, http)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    state: Path = tmp_path_factory.mktemp("comfy-sandbox")
    with EasSandbox(state_dir=state, timings=FAST) as eas, OssSandbox(state_dir=state) as oss:
        oss.create_bucket(BUCKET)
        for key in (*MODELS, VHS_PACK):
            oss.put_object(BUCKET, f"comfyui/{key}", b"not really a model")
        client = Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                               endpoint=eas.endpoint, protocol="http", region_id=REGION))
        with attach(eas, oss, job_seconds=0.02) as attachment:
            services = Comfy(eas, oss, attachment,
                             std=_deploy(client, eas, "comfy_std", "1.9", "comfyui/"),
                             api=_deploy(client, eas, "comfy_api", "1.9-api", "comfyui/", instance=2, type="Async"),
                             bare=_deploy(client, eas, "comfy_bare", "1.9", "bare/"))
            for service in (services.std, services.api, services.bare):
                wait_until(lambda: service.get("/").status_code == 200)
            yield services
            for service in (services.std, services.api, services.bare):
                service.http.close()


# -- helpers shared with the queue tests ----------------------------------------------------------
def workflow(**changes: Any) -> dict[str, Any]:
    """The guide's workflow, with ``{"4.ckpt_name": value}``-style input changes."""
    flow = copy.deepcopy(WORKFLOW)
    for path, value in changes.items():
        node, name = path.split(".")
        flow[node]["inputs"][name] = value
    return flow


def png_is_valid(data: bytes) -> bool:
    assert data.startswith(media.PNG_SIGNATURE)
    offset, kinds = len(media.PNG_SIGNATURE), []
    while offset < len(data):
        (length,), kind = struct.unpack(">I", data[offset:offset + 4]), data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        kinds.append(kind)
        offset += 12 + length
    return kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds and offset == len(data)


def riff_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    offset, kinds = 12, []
    while offset < len(data):
        kinds.append(data[offset:offset + 4])
        size = struct.unpack("<I", data[offset + 4:offset + 8])[0]
        offset += 8 + size + size % 2
    assert offset == len(data)
    return kinds


def animated_webp_is_valid(data: bytes) -> bool:
    kinds = riff_chunks(data)
    return kinds[:2] == [b"VP8X", b"ANIM"] and kinds.count(b"ANMF") >= 2 and data[20] & 0x02 == 0x02


def mp4_boxes(data: bytes) -> list[bytes]:
    offset, kinds = 0, []
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        assert size >= 8
        kinds.append(kind)
        offset += size
    assert offset == len(data)
    return kinds


def mp4_is_valid(data: bytes) -> bool:
    """ftyp (isom), mdat, moov; the video track's avcC record carries an H.264 SPS."""
    avcc = data.find(b"avcC", data.find(b"moov"))
    sps = data[avcc + 4 + 8] if avcc > 0 else 0
    return mp4_boxes(data) == [b"ftyp", b"mdat", b"moov"] and data[8:12] == b"isom" and sps & 0x1F == 7


def wait_history(service: Service, prompt_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_until(lambda: service.get(f"/history/{prompt_id}").json().get(prompt_id), timeout)


def run_prompt(service: Service, prompt: dict[str, Any], **body: Any) -> dict[str, Any]:
    answer = service.post("/prompt", json={"prompt": prompt, **body})
    assert answer.status_code == 200, answer.text
    return wait_history(service, answer.json()["prompt_id"])


# -- the synchronous path --------------------------------------------------------------------------
def test_sync_run_writes_real_outputs_on_the_mount(comfy: Comfy) -> None:
    answer = comfy.std.post("/prompt", json={"prompt": WORKFLOW, "client_id": "sync-test"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
    assert comfy.std.get(f"/history/{body['prompt_id']}").json() in ({}, {body["prompt_id"]: ANY_HISTORY})

    entry = wait_history(comfy.std, body["prompt_id"])
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    number, prompt_id, prompt, extra_data, outputs_to_execute = entry["prompt"]
    assert (number, prompt_id, prompt, extra_data) == (body["number"], body["prompt_id"], WORKFLOW, {"client_id": "sync-test"})
    assert sorted(outputs_to_execute, key=int) == ["9", "15", "19"]
    outputs = entry["outputs"]
    image, webp, video = outputs["9"]["images"][0], outputs["15"]["images"][0], outputs["19"]["gifs"][0]
    # named as the PAI images name them (the vendor guide's sample /history answer)
    assert re.fullmatch(PAI_PNG, image["filename"]) and image["type"] == "output"
    assert re.fullmatch(PAI_WEBP, webp["filename"]) and outputs["15"]["animated"] == [True]
    assert re.fullmatch(r"comfyUI_\d{5}\.mp4", video["filename"]) and video["format"] == "video/h264-mp4"
    assert set(entry["meta"]) == {"9", "15", "19"}

    for item, valid in ((image, png_is_valid), (webp, animated_webp_is_valid), (video, mp4_is_valid)):
        params = {"filename": item["filename"], "subfolder": item["subfolder"], "type": item["type"]}
        served = comfy.std.get("/view", params=params)
        assert served.status_code == 200 and valid(served.content), item
        # The same bytes are in output/ on the mount, where `outputs pull` and OSS downloads find them.
        assert comfy.oss.object_bytes(BUCKET, f"comfyui/output/{item['filename']}") == served.content
    assert b"tEXtprompt" in comfy.oss.object_bytes(BUCKET, f"comfyui/output/{image['filename']}")
    assert comfy.std.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert body["prompt_id"] in comfy.std.get("/api/history").json()  # ComfyUI's /api prefix


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY_HISTORY = _Any()


def test_output_names_follow_the_pai_images(comfy: Comfy) -> None:
    entry = run_prompt(comfy.std, workflow(**{"9.filename_prefix": "pai/shot", "15.filename_prefix": "pai/anim"}))
    image, webp = entry["outputs"]["9"]["images"][0], entry["outputs"]["15"]["images"][0]
    stamp = int(image["filename"].split("_")[1])
    assert re.fullmatch(r"shot_\d{10}_[0-9a-f-]{36}_\.png", image["filename"]) and abs(stamp - time.time()) < 60
    assert re.fullmatch(r"anim_\d{10}_\.webp", webp["filename"]) and image["subfolder"] == "pai"
    assert comfy.std.get("/view", params={"filename": image["filename"], "subfolder": "pai"}).status_code == 200


def test_output_names_count_up_like_comfyui(comfy: Comfy) -> None:
    comfy.eas.fidelity.output_names = "comfyui"  # upstream ComfyUI's counter
    # Every output in its own folder: the module's mount is shared, and a case-insensitive VHS
    # counter in the output root would count on from the other tests' ``ComfyUI_<ts>_.webp``.
    own = {"9.filename_prefix": "counting/shot", "15.filename_prefix": "counting/anim",
           "19.filename_prefix": "counting/clip"}
    try:
        first = run_prompt(comfy.std, workflow(**own))
        second = run_prompt(comfy.std, workflow(**own))
    finally:
        comfy.eas.fidelity.output_names = "pai"
    names = [e["outputs"]["9"]["images"][0] for e in (first, second)]
    assert [n["filename"] for n in names] == ["shot_00001_.png", "shot_00002_.png"]
    assert {n["subfolder"] for n in names} == {"counting"}
    assert comfy.std.get("/view", params={"filename": "shot_00002_.png", "subfolder": "counting"}).status_code == 200


def test_websocket_events_arrive_in_order_through_the_eas_endpoint(comfy: Comfy) -> None:
    async def scenario() -> list[dict[str, Any]]:
        headers = {"Authorization": comfy.std.token}
        ws_url = comfy.std.url("/ws?clientId=ws-client").replace("http://", "ws://")
        async with aiohttp.ClientSession(headers=headers, trust_env=False) as session:
            async with session.ws_connect(ws_url) as ws:
                events = [await ws.receive_json(timeout=5)]
                async with session.post(comfy.std.url("/prompt"), json={"prompt": WORKFLOW, "client_id": "ws-client"}) as r:
                    prompt_id = (await r.json())["prompt_id"]
                while True:
                    event = await ws.receive_json(timeout=5)
                    events.append(event)
                    if event["type"] == "executing" and event["data"]["node"] is None:
                        assert event["data"]["prompt_id"] == prompt_id
                        return events

    events = asyncio.run(scenario())
    assert events[0] == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "ws-client"}}
    kinds = [e["type"] for e in events if e["type"] not in ("status", "executing", "progress", "executed")]
    assert kinds == ["execution_start", "execution_cached", "execution_success"]
    order = [e["type"] for e in events]
    assert order.index("execution_start") < order.index("executing") < order.index("executed")
    assert order[-3:] == ["execution_success", "status", "executing"]
    executing = [e["data"]["node"] for e in events if e["type"] == "executing"][:-1]
    assert sorted(executing, key=int) == sorted(WORKFLOW, key=int)
    for node, needs in (("3", "4"), ("8", "3"), ("16", "18"), ("19", "14")):
        assert executing.index(needs) < executing.index(node)
    progress = [e["data"] for e in events if e["type"] == "progress"]
    assert {p["node"] for p in progress} == {"3", "13"} and progress[-1]["value"] == progress[-1]["max"] == 40
    executed = {e["data"]["node"]: e["data"]["output"] for e in events if e["type"] == "executed"}
    assert set(executed) == {"9", "15", "19"} and "gifs" in executed["19"]
    assert [e["data"]["status"]["exec_info"]["queue_remaining"] for e in events if e["type"] == "status"][-1] == 0


# -- validation ------------------------------------------------------------------------------------
def test_object_info_reflects_the_mount(comfy: Comfy) -> None:
    info = comfy.std.get("/object_info").json()
    assert len(info) == 12 and info["VHS_VideoCombine"]["python_module"] == "custom_nodes.ComfyUI-VideoHelperSuite"
    expected = ["LandscapeBING_v10.safetensors", "svd_xt.safetensors"]
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == expected
    one = comfy.std.get("/object_info/ImageOnlyCheckpointLoader").json()
    assert list(one) == ["ImageOnlyCheckpointLoader"] and one["ImageOnlyCheckpointLoader"]["input"]["required"]["ckpt_name"][0] == expected
    assert comfy.std.get("/object_info/NoSuchNode").json() == {}
    assert comfy.std.get("/models/checkpoints").json() == expected

    bare = comfy.bare.get("/object_info").json()
    assert "VHS_VideoCombine" not in bare and bare["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == []
    # A pack folder counts whatever its case; removing it takes the node away again.
    comfy.oss.put_object(BUCKET, "bare/custom_nodes/comfyui-videohelpersuite/", b"")
    try:
        info = comfy.bare.get("/object_info").json()
        assert info["VHS_VideoCombine"]["python_module"] == "custom_nodes.comfyui-videohelpersuite"
    finally:
        comfy.oss.store.delete_object(BUCKET, "bare/custom_nodes/comfyui-videohelpersuite/")
    assert "VHS_VideoCombine" not in comfy.bare.get("/object_info").json()


def test_missing_model_is_refused_with_comfyui_node_errors(comfy: Comfy) -> None:
    answer = comfy.std.post("/prompt", json={"prompt": workflow(**{"4.ckpt_name": "x.safetensors"})})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["message"] == "Prompt outputs failed validation"
    assert list(body["node_errors"]) == ["4"]
    node = body["node_errors"]["4"]
    assert node["class_type"] == "CheckpointLoaderSimple" and node["dependent_outputs"] == ["9", "15", "19"]
    [error] = node["errors"]
    assert (error["type"], error["message"]) == ("value_not_in_list", "Value not in list")
    assert error["details"] == "ckpt_name: 'x.safetensors' not in ['LandscapeBING_v10.safetensors', 'svd_xt.safetensors']"
    assert error["extra_info"]["input_name"] == "ckpt_name" and error["extra_info"]["received_value"] == "x.safetensors"


def test_outputs_that_validate_still_run_when_others_fail(comfy: Comfy) -> None:
    answer = comfy.std.post("/prompt", json={"prompt": workflow(**{"18.ckpt_name": "gone.safetensors"})})
    assert answer.status_code == 200
    assert answer.json()["node_errors"]["18"]["dependent_outputs"] == ["15", "19"]
    entry = wait_history(comfy.std, answer.json()["prompt_id"])
    assert entry["prompt"][4] == ["9"] and list(entry["outputs"]) == ["9"]


def test_missing_custom_node_pack_is_refused(comfy: Comfy) -> None:
    answer = comfy.bare.post("/prompt", json={"prompt": WORKFLOW})
    assert answer.status_code == 400
    assert answer.json() == {"error": {"type": "invalid_prompt",
                                       "message": "Cannot execute because node VHS_VideoCombine does not exist.",
                                       "details": "Node ID '#19'", "extra_info": {}}, "node_errors": {}}


def _without(node: str) -> dict[str, Any]:
    flow = workflow()
    del flow[node]
    return flow


@pytest.mark.parametrize("body, kind, node, node_kind", [
    ({"client_id": "x"}, "no_prompt", None, None),
    ({"prompt": {"4": WORKFLOW["4"]}}, "prompt_no_outputs", None, None),
    ({"prompt": {"nodes": [], "links": []}}, "invalid_prompt", None, None),  # UI format
    ({"prompt": _without("5")}, "prompt_outputs_failed_validation", "3", "exception_during_inner_validation"),
    ({"prompt": workflow(**{"8.samples": ["3", 7]})}, "prompt_outputs_failed_validation", "8",
     "exception_during_inner_validation"),
    ({"prompt": {"4": WORKFLOW["4"], "9": {"class_type": "SaveImage", "inputs": {"images": ["4", 5]}}}},
     "prompt_outputs_failed_validation", "9", "exception_during_validation"),
    ({"prompt": workflow(**{"8.samples": ["4", 0]})}, "prompt_outputs_failed_validation", "8", "return_type_mismatch"),
    ({"prompt": workflow(**{"3.steps": 0})}, "prompt_outputs_failed_validation", "3", "value_smaller_than_min"),
    ({"prompt": workflow(**{"3.steps": "many"})}, "prompt_outputs_failed_validation", "3", "invalid_input_type"),
], ids=["no-prompt", "no-outputs", "ui-format", "link-to-missing-node", "missing-output-slot",
        "output-node-link", "type-mismatch", "below-min", "not-an-int"])
def test_bad_prompts_get_comfyui_errors(comfy: Comfy, body: dict[str, Any], kind: str, node: str | None,
                                        node_kind: str | None) -> None:
    answer = comfy.std.post("/prompt", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == kind
    if node is None:
        assert answer.json()["node_errors"] == {}
    else:
        assert answer.json()["node_errors"][node]["errors"][0]["type"] == node_kind


def test_view_refuses_escapes_and_missing_files(comfy: Comfy) -> None:
    cases = [
        ({"filename": "../secret.png"}, 400),
        ({"filename": "/etc/passwd"}, 400),
        ({"filename": "a.png", "subfolder": "../models"}, 403),
        ({"filename": "a.png", "type": "models"}, 400),
        ({"filename": "nothing-here.png"}, 404),
        ({}, 404),
    ]
    for params, status in cases:
        assert comfy.std.get("/view", params=params).status_code == status, params
    assert comfy.std.get("/nonsense").text == "404 page not found"
    assert comfy.std.http.put(comfy.std.url("/prompt")).status_code == 404


# -- failures, interrupts, the queue ---------------------------------------------------------------
def test_a_failing_node_gives_a_readable_execution_error(comfy: Comfy) -> None:
    emulator = comfy.attachment.comfyui("comfy_std")
    emulator.fail("VHS_VideoCombine", "CUDA out of memory. Tried to allocate 2.00 GiB", "torch.OutOfMemoryError")
    try:
        entry = run_prompt(comfy.std, WORKFLOW)
    finally:
        emulator.clear_failures()
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    event, data = entry["status"]["messages"][-1]
    assert event == "execution_error"
    assert (data["node_id"], data["node_type"]) == ("19", "VHS_VideoCombine")
    assert data["exception_message"] == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert data["exception_type"] == "torch.OutOfMemoryError" and data["current_inputs"]["format"] == ["video/h264-mp4"]
    assert set(entry["outputs"]) == {"9", "15"} and "19" not in data["executed"]


def test_an_output_prefix_leaving_output_fails_the_node(comfy: Comfy) -> None:
    entry = run_prompt(comfy.std, workflow(**{"9.filename_prefix": "../../escape"}))
    event, data = entry["status"]["messages"][-1]
    assert (event, data["node_id"], data["exception_type"]) == ("execution_error", "9", "Exception")
    assert "Saving image outside the output folder is not allowed" in data["exception_message"]
    assert not [k for k in comfy.oss.list_keys(BUCKET) if "escape" in k]


def test_queue_delete_and_interrupt(comfy: Comfy) -> None:
    emulator = comfy.attachment.comfyui("comfy_std")
    emulator.job_seconds = 10.0  # still running while the test looks, however slow the machine
    try:
        first = comfy.std.post("/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        second = comfy.std.post("/api/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        queue = wait_until(lambda: (q := comfy.std.get("/queue").json())["queue_running"] and q)
        assert [i[1] for i in queue["queue_running"]] == [first] and [i[1] for i in queue["queue_pending"]] == [second]
        assert comfy.std.get("/prompt").json() == {"exec_info": {"queue_remaining": 2}}
        assert comfy.std.post("/queue", json={"delete": [second]}).status_code == 200
        assert comfy.std.post("/interrupt", json={}).status_code == 200
        entry = wait_history(comfy.std, first)
    finally:
        emulator.job_seconds = 0.02
    assert entry["status"]["status_str"] == "error" and entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert comfy.std.get(f"/history/{second}").json() == {}
    assert comfy.std.get("/queue").json() == {"queue_running": [], "queue_pending": []}


# -- units -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("tag, edition", [("1.9", "standard"), ("2.2-api", "api"), ("1.9-cluster", "cluster")])
def test_edition_of_the_image_tag(tag: str, edition: str) -> None:
    assert edition_of({"containers": [{"image": f"{IMAGE}:{tag}"}]}) == edition


def test_media_writers_make_well_formed_files() -> None:
    assert png_is_valid(media.png(3, 2, (1, 2, 3), {"prompt": "{}"}))
    assert animated_webp_is_valid(media.animated_webp(5, 7, [(255, 0, 0), (0, 0, 255)]))
    assert mp4_is_valid(media.mp4(32, 16, [(0, 0, 0), (255, 255, 255)]))
    gif = media.gif(4, 4, (9, 9, 9))
    assert gif.startswith(b"GIF89a") and gif.endswith(b"\x3b") and struct.unpack("<HH", gif[6:10]) == (4, 4)
