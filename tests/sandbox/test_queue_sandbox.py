"""The EAS queue emulator and the API edition's async path, driven by the UNMODIFIED eas-prediction
``QueueClient`` exactly as the vendor guide does, through the EAS sandbox's service endpoints."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest
import requests
import websocket
from alibabacloud_eas20210701 import models as eas_models
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi.models import Config

with warnings.catch_warnings():  # its generated *_pb2 modules call deprecated protobuf APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from eas_prediction import QueueClient
    from eas_prediction.exception import PredictException
    from eas_prediction.queue_types.queueservice_pb2 import AttributesProto, DataFrameListProto, DataFrameProto

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.queue import encode_attributes, encode_data_frame, encode_data_frame_list
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import TESTS
from tests.sandbox.test_comfyui_sandbox import FAST as FAST_TIMINGS
from tests.sandbox.test_comfyui_sandbox import (  # noqa: F401 - comfy is a fixture
    BUCKET,
    IMAGE,
    MODELS,
    REGION,
    VHS_PACK,
    WORKFLOW,
    Comfy,
    Service,
    _deploy,
    comfy,
    mp4_is_valid,
    wait_until,
    workflow,
)

SEED_SINK = [json.loads(line) for line in (TESTS / "fixtures" / "seed-sink-messages.jsonl").read_text().splitlines()]


def shape(value: Any) -> Any:
    """``value`` with file names and prompt ids blanked out."""
    if isinstance(value, dict):
        return {k: "..." if k in ("filename", "prompt_id") else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def sink_client(service: Service) -> QueueClient:
    """As the guide builds it: QueueClient(scheme://host of the service URL, '<service>/sink')."""
    url = urlparse(service.endpoint)
    client = QueueClient(f"{url.scheme}://{url.netloc}", f"{url.path.rstrip('/').split('/')[-1]}/sink")
    client.set_token(service.token)
    client.init()
    return client


@pytest.fixture
def sink(comfy: Comfy) -> Iterator[QueueClient]:
    client = sink_client(comfy.api)
    yield client
    client.destroy()
    comfy.attachment.queue(comfy.api.name).sink.truncate(1 << 62)  # leave the sink empty for the next test


def submit(service: Service, task_id: str, prompt: Any = WORKFLOW, path: str = "/api_prompt") -> tuple[str, str]:
    """The guide's push: POST {service_url}/api_prompt?task_id=... with the bare workflow."""
    answer = service.post(path, params={"task_id": task_id}, json=prompt)
    assert answer.status_code == 200, answer.text
    return answer.text, answer.headers["X-Eas-Queueservice-Request-Id"]


def sink_length(client: QueueClient) -> int:
    return int(client.attributes()["stream.length"])


def watch(client: QueueClient, count: int, commit: bool = True) -> list[Any]:
    """The guide's subscription loop: watch(0, 5, auto_commit=False), commit each, stop after ``count``."""
    got = []
    watcher = client.watch(0, 5, auto_commit=False)
    for x in watcher.run():
        got.append(x)
        if commit:
            client.commit(x.index)
        if len(got) == count:
            break
    watcher.close()
    return got


# -- protobuf ----------------------------------------------------------------------------------------
def test_protobuf_encoding_is_what_the_sdk_parses() -> None:
    frame = DataFrameProto()
    frame.ParseFromString(encode_data_frame(300, {"task_id": "t1", "lastCode": "500"}, b"\x00data", "msg"))
    assert (frame.index, dict(frame.tags), frame.data, frame.message) == (300, {"task_id": "t1", "lastCode": "500"},
                                                                          b"\x00data", "msg")
    frames = DataFrameListProto()
    frames.ParseFromString(encode_data_frame_list([encode_data_frame(1, {}, b"a"), encode_data_frame(2, {"k": "v"})]))
    assert [(f.index, f.data, dict(f.tags)) for f in frames.index] == [(1, b"a", {}), (2, b"", {"k": "v"})]
    attributes = AttributesProto()
    attributes.ParseFromString(encode_attributes({"stream.length": "3"}))
    assert dict(attributes.attributes) == {"stream.length": "3"}


# -- the queue protocol --------------------------------------------------------------------------------
def test_put_get_search_commit_delete_and_truncate(comfy: Comfy, sink: QueueClient) -> None:
    index, request_id = sink.put(b"abc", tags={"task_id": "direct"})
    assert index.isdigit() and request_id
    [got] = sink.get(request_id=request_id, auto_delete=False)
    assert (got.index, got.data, dict(got.tags)) == (int(index), b"abc", {"task_id": "direct"})
    assert [x.data for x in sink.get(index=int(index), length=5, auto_delete=False)] == [b"abc"]
    assert sink.search(int(index)) == {"IsPending": True, "WaitCount": 0}
    attributes = sink.attributes()
    assert attributes["stream.length"] == "1" and attributes["stream.lastEntry"] == index

    # Plain HTTP, as alipai polls: JSON with base64 data, 204 while there is nothing.
    http, url = comfy.api.http, comfy.api.url("/sink")
    answer = http.get(url, params={"requestId": request_id, "_raw_": "false", "_auto_delete_": "false"})
    assert answer.status_code == 200 and base64.b64decode(answer.json()[0]["data"]) == b"abc"
    assert http.get(url, params={"requestId": "nope", "_raw_": "false"}).status_code == 204

    sink.commit(int(index))
    assert sink_length(sink) == 0 and sink.get(index=0, timeout="0s") == []
    last = [sink.put(str(i).encode())[0] for i in range(4)][-1]
    sink.delete([int(last)])
    assert sink_length(sink) == 3
    sink.truncate(int(last))
    assert sink_length(sink) == 0 and "stream.lastEntry" not in sink.attributes()


def test_sandbox_faults_hit_the_queue_endpoints(comfy: Comfy, sink: QueueClient) -> None:
    index, _ = sink.put(b"x")
    comfy.eas.faults.add(kind="status", status=503, code="ServiceUnavailable", method="PUT", path="/sink$", times=2)
    comfy.eas.recorder.clear()
    sink.commit(int(index))  # the SDK retries non-2xx answers
    assert [r.fault for r in comfy.eas.recorder.all() if r.method == "PUT"] == ["status", "status", None]
    assert sink_length(sink) == 0


def test_a_watcher_gets_at_most_its_window_uncommitted(comfy: Comfy, sink: QueueClient) -> None:
    indexes = [int(sink.put(f"m{i}".encode())[0]) for i in range(3)]
    url = comfy.api.url("/sink?_watch_=true&_index_=0&_window_=2&_auto_commit_=false").replace("http://", "ws://")
    ws = websocket.create_connection(url, header={"Authorization": comfy.api.token}, timeout=30)
    try:
        received = [DataFrameProto.FromString(ws.recv()) for _ in range(2)]
        assert [f.index for f in received] == indexes[:2]
        ws.settimeout(0.5)  # nothing more comes while both are uncommitted
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
        sink.commit(indexes[0])
        ws.settimeout(30)
        assert DataFrameProto.FromString(ws.recv()).data == b"m2"
    finally:
        ws.close()


# -- the API edition, end to end ---------------------------------------------------------------------
def test_api_prompt_jobs_each_arrive_once_in_the_guides_shape(comfy: Comfy, sink: QueueClient) -> None:
    sent = dict(submit(comfy.api, f"txt2img_{i}") for i in range(20))
    assert sorted(map(int, sent)) == list(range(min(map(int, sent)), min(map(int, sent)) + 20))

    got = watch(sink, 20)
    task_ids = [x.tags["task_id"] for x in got]
    assert sorted(task_ids) == sorted(f"txt2img_{i}" for i in range(20))
    assert {x.tags["requestId"] for x in got} == set(sent.values())
    assert all("lastCode" not in x.tags for x in got)
    assert sink_length(sink) == 0 and len(comfy.attachment.queue(comfy.api.name).input) == 0

    data = json.loads(got[0].data)
    assert shape(data) == shape(json.loads(SEED_SINK[0]["data"]))  # executed events, then the outputs map
    assert data[-1] == {e["data"]["node"]: e["data"]["output"] for e in data[:-1]}
    video = data[-1]["19"]["gifs"][0]["filename"]
    assert mp4_is_valid(comfy.oss.object_bytes(BUCKET, f"comfyui/output/{video}"))


def test_uncommitted_results_are_redelivered_to_the_next_watcher(comfy: Comfy, sink: QueueClient) -> None:
    for i in range(6):
        submit(comfy.api, f"again_{i}")
    wait_until(lambda: sink_length(sink) == 6)

    seen_first = watch(sink, 3, commit=False)  # a results process dies before committing anything
    later = sink_client(comfy.api)
    try:
        seen_again = watch(later, 6)
    finally:
        later.destroy()
    assert {x.tags["task_id"] for x in seen_again} == {f"again_{i}" for i in range(6)}
    assert {x.index for x in seen_first} <= {x.index for x in seen_again}
    assert sink_length(sink) == 0


def test_failures_reach_the_sink_with_comfyuis_error(comfy: Comfy, sink: QueueClient) -> None:
    emulator = comfy.attachment.comfyui(comfy.api.name)
    emulator.fail("19", "CUDA out of memory. Tried to allocate 2.00 GiB", "torch.OutOfMemoryError")
    try:
        _, broken = submit(comfy.api, "oom")
        [result] = sink.get(request_id=broken, timeout="5s")
    finally:
        emulator.clear_failures()
    assert result.tags["task_id"] == "oom" and result.tags["lastCode"] == "500"
    data = json.loads(result.data)
    assert [e["data"]["node"] for e in data[:-1]] == ["9", "15"]
    assert data[-1]["type"] == "execution_error"
    error = data[-1]["data"]
    assert (error["node_id"], error["node_type"], error["exception_type"]) == ("19", "VHS_VideoCombine",
                                                                              "torch.OutOfMemoryError")
    assert error["exception_message"] == "CUDA out of memory. Tried to allocate 2.00 GiB"

    _, refused = submit(comfy.api, "no-model", workflow(**{"4.ckpt_name": "x.safetensors"}))
    [result] = sink.get(request_id=refused, timeout="5s")
    assert result.tags["lastCode"] == "400"
    body = json.loads(result.data)
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"

    _, lost = submit(comfy.api, "wrong-path", path="/prompt")
    [result] = sink.get(request_id=lost, timeout="5s")
    assert (result.tags["lastCode"], result.data) == ("404", b"404 page not found")


def test_api_edition_serves_only_the_queue(comfy: Comfy) -> None:
    assert comfy.api.get("/").status_code == 200  # a bare GET answers the input queue's attributes
    assert comfy.api.get("/object_info").status_code == 404
    assert comfy.api.get("/").json()["meta.name"] == comfy.api.name


# -- persistence ---------------------------------------------------------------------------------------
def test_a_restart_on_the_same_state_loses_no_job_and_no_result(tmp_path: Path) -> None:
    """issue 11 item 12: stop the whole sandbox mid-batch, start it again on the same state dir;
    every submitted job runs and every result (those already on the sink too) is there, once."""
    state, name, total = tmp_path / "state", "persist_api", 12

    def service(stack: SandboxStack) -> Service:
        record = stack.eas.get_service(name)
        assert record is not None
        http = requests.Session()
        http.trust_env = False
        http.headers["Authorization"] = record["access_token"]
        return Service(name, stack.eas.internet_endpoint(name), record["access_token"], http)

    with SandboxStack(state, timings=FAST_TIMINGS, job_seconds=0.15) as first:
        first.oss.create_bucket(BUCKET)
        for key in MODELS + (VHS_PACK,):
            first.oss.put_object(BUCKET, f"comfyui/{key}", b"not really a model")
        client = Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                               endpoint=first.eas.endpoint, protocol="http", region_id=REGION))
        config = {"metadata": {"name": name, "instance": 1, "type": "Async"},
                  "containers": [{"image": f"{IMAGE}:1.9-api", "port": 8000}],
                  "storage": [{"mount_path": "/code/data-oss", "oss": {"path": f"oss://{BUCKET}/comfyui/"}}]}
        client.create_service(eas_models.CreateServiceRequest(body=json.dumps(config)))
        api = service(first)
        wait_until(lambda: api.get("/").status_code == 200)
        for i in range(total):
            submit(api, f"persist_{i}")
        queue = first.comfyui.queue(name)
        wait_until(lambda: len(queue.sink) >= 3)
        assert len(queue.input) > 0, "the batch finished before the restart; slow the jobs down"
        done_before = len(queue.sink)
    assert (state / "queue").is_dir()

    with SandboxStack(state, timings=FAST_TIMINGS, job_seconds=0.02) as second:
        api = service(second)
        sink = sink_client(api)
        try:
            assert int(sink.attributes()["stream.length"]) >= done_before  # the request also staffs the workers
            wait_until(lambda: sink_length(sink) == total, timeout=20)
            got = watch(sink, total)
        finally:
            sink.destroy()
        assert sorted(x.tags["task_id"] for x in got) == sorted(f"persist_{i}" for i in range(total))
        assert len({x.index for x in got}) == total and len(second.comfyui.queue(name).input) == 0
        index, _ = submit(api, "after_restart")
        assert int(index) > total  # input indexes keep growing across the restart


# -- which services have a queue -----------------------------------------------------------------------
def test_the_queue_comes_from_metadata_type_not_the_image_tag(comfy: Comfy) -> None:
    """issue 10 item 2: EAS puts a queue (and a sink) in front of a service whose config has
    ``metadata.type: "Async"``; without it the service is synchronous, whatever its image."""
    client = Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                           endpoint=comfy.eas.endpoint, protocol="http", region_id=REGION))
    sync_api = _deploy(client, comfy.eas, "sync_api", "1.9-api", "comfyui/")  # no metadata.type
    async_std = _deploy(client, comfy.eas, "async_std", "1.9", "comfyui/", type="Async")
    for service in (sync_api, async_std):
        wait_until(lambda: service.get("/").status_code != 503)  # ready (the API image has no "/")

    # Synchronous: the API image's container answers /api_prompt in the request; there is no sink.
    answer = sync_api.post("/api_prompt", params={"task_id": "direct"}, json=WORKFLOW)
    assert answer.status_code == 200 and set(json.loads(answer.content)[-1]) == {"9", "15", "19"}
    assert sync_api.get("/object_info").status_code == 404
    no_sink = sink_client(sync_api)
    no_sink.set_retry_count(0)
    with pytest.raises(PredictException) as info:
        no_sink.put(b"x")
    assert (info.value.code, info.value.message) == (404, b"404 page not found")
    with pytest.raises(ValueError, match="not an Async service"):
        comfy.attachment.queue("sync_api")

    # Async with the standard image: the queue hands POST /prompt to ComfyUI, its answer reaches the sink.
    index, request_id = submit(async_std, "std-task", prompt={"prompt": WORKFLOW}, path="/prompt")
    sink = sink_client(async_std)
    try:
        [result] = sink.get(request_id=request_id, timeout="5s")
    finally:
        sink.destroy()
    assert index.isdigit() and result.tags["task_id"] == "std-task" and "lastCode" not in result.tags
    assert set(json.loads(result.data)) == {"prompt_id", "number", "node_errors"}

    # The old guess, behind the switch: the -api tag brings the queue, metadata.type is ignored.
    comfy.eas.fidelity.async_from = "image_tag"
    try:
        index, _ = submit(sync_api, "queued-now")
        assert index.isdigit()
        assert set(async_std.post("/prompt", json={"prompt": WORKFLOW}).json()) == {"prompt_id", "number", "node_errors"}
    finally:
        comfy.eas.fidelity.async_from = "metadata_type"
