"""The EAS queue emulator and the API edition's async path, driven by the UNMODIFIED eas-prediction
``QueueClient`` exactly as the vendor guide does, through the EAS sandbox's service endpoints."""

from __future__ import annotations

import base64
import json
import warnings
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest
import websocket

with warnings.catch_warnings():  # its generated *_pb2 modules call deprecated protobuf APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from eas_prediction import QueueClient
    from eas_prediction.queue_types.queueservice_pb2 import AttributesProto, DataFrameListProto, DataFrameProto

from eascomfy.sandbox.queue import encode_attributes, encode_data_frame, encode_data_frame_list
from tests.conftest import TESTS
from tests.sandbox.test_comfyui_sandbox import (  # noqa: F401 - comfy is a fixture
    BUCKET,
    WORKFLOW,
    Comfy,
    Service,
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
