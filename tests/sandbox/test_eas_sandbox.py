"""The EAS OpenAPI emulator, driven by the unmodified official SDK over loopback HTTP."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from aiohttp import web
from alibabacloud_eas20210701 import models as eas_models
from alibabacloud_eas20210701.client import Client
from alibabacloud_eas20210701.models import UpdateServiceVersionRequest
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from alibabacloud_tea_openapi.models import Config
from Tea.exceptions import TeaException, UnretryableException

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox, PredictContext, Timings
from eascomfy.sandbox.eas.errors import EasError
from eascomfy.sandbox.eas.signing import authorization_header, canonical_query, canonical_request, verify_signature

REGION = "cn-hangzhou"
COMFY = f"eas-registry-vpc.{REGION}.cr.aliyuncs.com/pai-eas/comfyui"
FAST = Timings(creating=0.15, updating=0.15, ready=0.15, stopping=0.1, starting=0.15, deleting=0.1)
VPC_HOST = f"1000000000000000.vpc.{REGION}.pai-eas.aliyuncs.com"  # <uid>.vpc.<region>.pai-eas.aliyuncs.com


def service_config(name: str, image: str = f"{COMFY}:1.9", instance: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "instance": instance, "workspace_id": "123456"},
        "containers": [{"image": image, "port": 8000, "script": "python main.py --listen --port 8000"}],
        **extra,
    }


def make_client(
    sandbox: EasSandbox, secret: str = SANDBOX_ACCESS_KEY_SECRET, ak: str = SANDBOX_ACCESS_KEY_ID
) -> Client:
    return Client(
        Config(
            access_key_id=ak,
            access_key_secret=secret,
            endpoint=sandbox.endpoint,
            protocol="http",
            region_id=REGION,
        )
    )


class Clock:
    """Real time that a test can stop. It is the emulator's lifecycle clock (``store.clock``, which
    schedules and applies every step), so while it is stopped a transitional status (Creating,
    Updating, Stopping...) lasts however long a loaded machine takes to look at it: no assertion
    races the steps' 0.1 s windows. Resumed, it never runs backwards."""

    def __init__(self) -> None:
        self._held: float | None = None
        self._offset = 0.0

    def __call__(self) -> float:
        return self._held if self._held is not None else time.time() + self._offset

    @contextmanager
    def stopped(self) -> Iterator[float]:
        self._held = self()
        try:
            yield self._held
        finally:
            self._offset = max(self._offset, self._held - time.time())
            self._held = None

    def set(self, when: float) -> None:
        """While stopped: jump to ``when`` (e.g. the instant a step ends)."""
        assert self._held is not None and when >= self._held
        self._held = when


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(tmp_path: Path, clock: Clock) -> Iterator[EasSandbox]:
    with EasSandbox(state_dir=tmp_path, timings=FAST) as sb:
        sb.store.clock = clock
        yield sb


@pytest.fixture
def client(sandbox: EasSandbox) -> Client:
    return make_client(sandbox)


def create(client: Client, config: dict[str, Any], **kwargs: Any) -> eas_models.CreateServiceResponseBody:
    return client.create_service(eas_models.CreateServiceRequest(body=json.dumps(config), **kwargs)).body


def describe(client: Client, name: str) -> eas_models.Service:
    return client.describe_service(REGION, name).body


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.03)


def wait_status(client: Client, name: str, status: str) -> eas_models.Service:
    wait_until(lambda: describe(client, name).status == status)
    return describe(client, name)


def update(client: Client, name: str, body: dict[str, Any], update_type: str | None = None) -> None:
    request = eas_models.UpdateServiceRequest(update_type=update_type, body=json.dumps(body))
    client.update_service(REGION, name, request)


def sdk_error(call: Callable[[], Any]) -> TeaException:
    with pytest.raises(TeaException) as info:
        call()
    return info.value


# -- signature -----------------------------------------------------------------------------------
VECTOR_BODY = b'{"metadata":{"name":"demo","instance":1}}'
VECTOR_QUERY = [("WorkspaceId", "12345"), ("Labels", '{"team":"a b"}')]
VECTOR_HEADERS = {
    "accept": "application/json",
    "content-type": "application/json; charset=utf-8",
    "host": "pai-eas.cn-hangzhou.aliyuncs.com",
    "user-agent": "test-agent",
    "x-acs-action": "CreateService",
    "x-acs-content-sha256": "3dff3500c0fcc557c1b56eb476cff27674bbee1b1737c00e5e002ab9910a3c10",
    "x-acs-date": "2025-01-01T00:00:00Z",
    "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef",
    "x-acs-version": "2021-07-01",
}
VECTOR_SIGNED = ";".join(VECTOR_HEADERS)
VECTOR_AUTHORIZATION = (
    f"ACS3-HMAC-SHA256 Credential=testAKID,SignedHeaders={VECTOR_SIGNED},"
    "Signature=abab90774d0dab4db460a5f2cf938f337b45e104eb2fc3608ed9ddea82675261"
)


def test_signature_test_vector() -> None:
    assert hashlib.sha256(VECTOR_BODY).hexdigest() == VECTOR_HEADERS["x-acs-content-sha256"]
    assert canonical_query(VECTOR_QUERY) == "Labels=%7B%22team%22%3A%22a%20b%22%7D&WorkspaceId=12345"
    auth = authorization_header("testAKID", "testSecret", "POST", "/api/v2/services", VECTOR_QUERY, VECTOR_HEADERS)
    assert auth == VECTOR_AUTHORIZATION
    canonical = canonical_request(
        "POST", "/api/v2/services", VECTOR_QUERY, {k: [v] for k, v in VECTOR_HEADERS.items()},
        VECTOR_SIGNED.split(";"), VECTOR_HEADERS["x-acs-content-sha256"],
    )
    assert canonical.endswith(f"x-acs-version:2021-07-01\n\n{VECTOR_SIGNED}\n{VECTOR_HEADERS['x-acs-content-sha256']}")


def sandbox_authorization(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> str:
    return authorization_header(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET, method, path, query, headers)


def _signed_headers(body: bytes, action: str = "CreateService", date: str | None = None) -> dict[str, str]:
    headers = dict(VECTOR_HEADERS, **{"x-acs-action": action, "x-acs-content-sha256": hashlib.sha256(body).hexdigest()})
    headers["x-acs-date"] = date or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return headers


def _verify(headers: dict[str, str], body: bytes, auth: str | None) -> str:
    lowered = {k: [v] for k, v in headers.items()}
    if auth is not None:
        lowered["authorization"] = [auth]
    return verify_signature("POST", "/api/v2/services", VECTOR_QUERY, lowered, body)


def test_verify_signature_checks() -> None:
    headers = _signed_headers(VECTOR_BODY)
    sign = lambda secret=SANDBOX_ACCESS_KEY_SECRET, ak=SANDBOX_ACCESS_KEY_ID: authorization_header(  # noqa: E731
        ak, secret, "POST", "/api/v2/services", VECTOR_QUERY, headers
    )
    assert _verify(headers, VECTOR_BODY, sign()) == SANDBOX_ACCESS_KEY_ID
    cases = [
        (headers, VECTOR_BODY, None, 400, "MissingAuthorization"),
        (headers, VECTOR_BODY, sign(ak="LTAIunknown"), 404, "InvalidAccessKeyId.NotFound"),
        (headers, VECTOR_BODY, sign(secret="wrong"), 403, "SignatureDoesNotMatch"),
        (headers, VECTOR_BODY + b" ", sign(), 403, "SignatureDoesNotMatch"),
        (headers, VECTOR_BODY, sign().replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3"), 400, "IncompleteSignature"),
        (headers, VECTOR_BODY, sign().replace("x-acs-date;", ""), 400, "IncompleteSignature"),
    ]
    for hdrs, body, auth, status, code in cases:
        with pytest.raises(EasError) as info:
            _verify(hdrs, body, auth)
        assert (info.value.status, info.value.code) == (status, code)
        assert SANDBOX_ACCESS_KEY_SECRET not in info.value.message
    old = _signed_headers(VECTOR_BODY, date="2020-01-01T00:00:00Z")
    old_auth = sandbox_authorization("POST", "/api/v2/services", VECTOR_QUERY, old)
    with pytest.raises(EasError, match="expired"):
        _verify(old, VECTOR_BODY, old_auth)


def test_wrong_secret_and_unknown_key_through_the_sdk(sandbox: EasSandbox) -> None:
    err = sdk_error(lambda: describe(make_client(sandbox, secret="not-the-secret"), "anything"))
    assert isinstance(err, ClientException)
    assert (err.code, err.statusCode) == ("SignatureDoesNotMatch", 403)
    assert "not-the-secret" not in str(err) and SANDBOX_ACCESS_KEY_SECRET not in str(err)
    err = sdk_error(lambda: describe(make_client(sandbox, ak="LTAIunknownKey"), "anything"))
    assert (err.code, err.statusCode) == ("InvalidAccessKeyId.NotFound", 404)


def test_raw_http_errors(sandbox: EasSandbox) -> None:
    resp = requests.get(f"{sandbox.url}/api/v2/services")
    assert resp.status_code == 400
    assert set(resp.json()) == {"RequestId", "HostId", "Code", "HttpCode", "Success", "Message"}
    assert resp.json()["Code"] == "MissingAuthorization" and resp.json()["Success"] is False
    # A correctly signed call to a route that does not exist.
    path = "/api/v2/services/cn-hangzhou/some_svc/nonsense"
    headers = _signed_headers(b"", action="Nonsense")
    headers["host"] = sandbox.endpoint
    headers["Authorization"] = sandbox_authorization("GET", path, [], headers)
    resp = requests.get(sandbox.url + path, headers=headers)
    assert (resp.status_code, resp.json()["Code"], resp.json()["HttpCode"]) == (404, "InvalidApi.NotFound", 404)
    # The same signed request again: the nonce was used.
    assert requests.get(sandbox.url + path, headers=headers).json()["Code"] == "SignatureNonceUsed"


# -- lifecycle -----------------------------------------------------------------------------------
def test_create_describe_and_endpoint_readiness(sandbox: EasSandbox, client: Client, clock: Clock) -> None:
    probe = lambda url, **h: requests.get(url, headers=h)  # noqa: E731
    with clock.stopped() as created_at:
        created = create(client, service_config("demo_svc"), workspace_id="123456")
        assert (created.service_name, created.status, created.region) == ("demo_svc", "Creating", REGION)
        assert created.internet_endpoint == f"{sandbox.url}/api/predict/demo_svc"
        assert created.intranet_endpoint == f"http://{VPC_HOST}/api/predict/demo_svc"  # the API doc's form

        svc = describe(client, "demo_svc")
        assert svc.status == "Creating" and svc.running_instance == 0
        assert json.loads(svc.service_config)["metadata"]["name"] == "demo_svc"
        token = svc.access_token
        assert token and probe(created.internet_endpoint + "/", Authorization=token).status_code == 503

        clock.set(created_at + FAST.creating)  # the instant it is Running, before its probes pass
        svc = describe(client, "demo_svc")
        assert svc.status == "Running"
        assert (svc.running_instance, svc.total_instance, svc.current_version, svc.latest_version) == (1, 1, 1, 1)
        assert svc.image == f"{COMFY}:1.9" and svc.workspace_id == "123456" and svc.create_time.endswith("Z")
        assert probe(created.internet_endpoint + "/", Authorization=token).status_code == 503  # Running is not ready
        assert probe(created.internet_endpoint + "/", Authorization=token).text == "no healthy upstream"
    wait_until(lambda: probe(created.internet_endpoint + "/", Authorization=token).status_code == 200)
    assert probe(created.internet_endpoint + "/prompt", Authorization=token).json() == {"ok": True}
    assert probe(f"{sandbox.url}/vpc/api/predict/demo_svc/", Authorization=token).status_code == 200
    assert probe(created.internet_endpoint + "/").status_code == 401
    assert probe(created.internet_endpoint + "/", Authorization="Bearer " + token).status_code == 401
    assert probe(f"{sandbox.url}/api/predict/nope/", Authorization=token).status_code == 404


def test_describe_service_follows_the_api_docs_example(sandbox: EasSandbox, client: Client) -> None:
    """The Service struct's example (help.aliyun.com .../api-eas-2021-07-01-struct-service): a
    running service has Reason RUNNING and Message "Service start successfully"; the intranet
    endpoint is the account uid's VPC host. The sandbox serves that host when a request carries it."""
    create(client, service_config("doc_svc"))
    svc = wait_status(client, "doc_svc", "Running")
    assert (svc.reason, svc.message) == ("RUNNING", "Service start successfully")
    assert svc.intranet_endpoint == f"http://{VPC_HOST}/api/predict/doc_svc" and svc.caller_uid == "1000000000000000"
    seen: list[PredictContext] = []

    async def backend(request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        seen.append(ctx)
        return web.json_response({})

    sandbox.backends["doc_svc"] = backend
    through_vpc = {"Authorization": svc.access_token, "Host": VPC_HOST}
    wait_until(lambda: requests.get(f"{sandbox.url}/api/predict/doc_svc/x", headers=through_vpc).status_code == 200)
    assert seen[-1].internal and seen[-1].subpath == "/x"
    requests.get(f"{svc.internet_endpoint}/x", headers={"Authorization": svc.access_token})
    assert not seen[-1].internal


def test_a_name_owned_by_another_account_is_forbidden(sandbox: EasSandbox, client: Client) -> None:
    """agentscope-runtime's pai_deployer.py reads Forbidden.PrivilegeCheckFailed on DescribeService
    as "Given service name is owned by another user"."""
    sandbox.mark_foreign("their_svc")
    for call in (lambda: describe(client, "their_svc"),
                 lambda: update(client, "their_svc", {"metadata": {"instance": 2}}),
                 lambda: client.delete_service(REGION, "their_svc"),
                 lambda: create(client, service_config("their_svc"))):
        err = sdk_error(call)
        assert isinstance(err, ClientException)
        assert (err.code, err.statusCode) == ("Forbidden.PrivilegeCheckFailed", 403)
    assert not client.list_services(eas_models.ListServicesRequest()).body.services  # not listed: not ours
    control = f"{sandbox.url}/_sandbox/foreign"
    assert requests.delete(control, json={"name": "their_svc"}).json() == []
    assert sdk_error(lambda: describe(client, "their_svc")).code == "InvalidService.NotFound"
    assert requests.post(control, json={"name": "other_svc"}).json() == ["other_svc"]
    assert sdk_error(lambda: describe(client, "other_svc")).code == "Forbidden.PrivilegeCheckFailed"


def test_backend_hook(sandbox: EasSandbox, client: Client) -> None:
    seen: list[PredictContext] = []

    async def backend(request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        seen.append(ctx)
        return web.json_response({"prompt_id": "p1"})

    sandbox.backends["hooked"] = backend
    create(client, service_config("hooked"))
    token = wait_status(client, "hooked", "Running").access_token
    url = f"{sandbox.url}/vpc/api/predict/hooked/prompt"
    wait_until(lambda: requests.post(url, headers={"Authorization": token}, json={}).status_code == 200)
    assert seen[-1].subpath == "/prompt" and seen[-1].internal and seen[-1].kind == "predict"
    assert seen[-1].config["containers"][0]["image"] == f"{COMFY}:1.9"


def test_update_merge_and_replace(client: Client, clock: Clock) -> None:
    storage = [{"mount_path": "/code/data-oss", "oss": {"path": "oss://bucket/comfyui/"}}]
    create(client, service_config("upd_svc", storage=storage))
    wait_status(client, "upd_svc", "Running")

    with clock.stopped():
        update(client, "upd_svc", {"metadata": {"instance": 2}})  # merge is the default
        svc = describe(client, "upd_svc")
        assert svc.status == "Updating" and svc.latest_version == 2
    svc = wait_status(client, "upd_svc", "Running")
    config = json.loads(svc.service_config)
    assert config["metadata"] == {"name": "upd_svc", "instance": 2, "workspace_id": "123456"}
    assert config["storage"] == storage and svc.running_instance == 2

    update(client, "upd_svc", service_config("upd_svc", image=f"{COMFY}:2.2"), update_type="replace")
    svc = wait_status(client, "upd_svc", "Running")
    config = json.loads(svc.service_config)
    assert "storage" not in config and svc.image == f"{COMFY}:2.2" and svc.latest_version == 3

    err = sdk_error(lambda: update(client, "upd_svc", {"metadata": {"name": "other_name"}}))
    assert (err.code, err.statusCode) == ("InvalidParameter", 400)
    err = sdk_error(lambda: update(client, "upd_svc", {"metadata": {}}, update_type="replace"))
    assert err.code == "InvalidParameter"


def test_unknown_image_tag_fails_with_an_event(sandbox: EasSandbox, client: Client) -> None:
    create(client, service_config("bad_tag", image=f"{COMFY}:9.9"))
    svc = wait_status(client, "bad_tag", "Failed")
    assert "Failed to pull image" in svc.message
    events = client.describe_service_event(REGION, "bad_tag", eas_models.DescribeServiceEventRequest()).body.events
    warnings = [e for e in events if e.type == "Warning"]
    assert warnings and f"Failed to pull image {COMFY}:9.9" in warnings[-1].message
    versions = client.list_service_versions(REGION, "bad_tag", eas_models.ListServiceVersionsRequest()).body.versions
    assert versions[0].image_available == "false"

    update(client, "bad_tag", {"containers": [{"image": f"{COMFY}:2.1-api"}]})  # a fix recovers it
    wait_status(client, "bad_tag", "Running")
    update(client, "bad_tag", {"containers": [{"image": f"{COMFY}:2.1-foo"}]})  # an update can break it
    wait_status(client, "bad_tag", "Failed")

    create(client, service_config("custom_img", image="registry.example.com/me/comfyui:anything"))
    wait_status(client, "custom_img", "Running")
    assert sandbox.catalogue.can_pull(f"eas-registry.{REGION}.cr.aliyuncs.com/pai-eas/comfyui:1.7-cluster", REGION)


def test_versions_and_rollback(client: Client, clock: Clock) -> None:
    # a custom image: ListServiceVersions returns each version's ServiceConfig
    create(client, service_config("ver_svc", image="registry.example.com/me/comfyui:mine"))
    wait_status(client, "ver_svc", "Running")
    update(client, "ver_svc", {"metadata": {"instance": 3}})
    wait_status(client, "ver_svc", "Running")

    body = client.list_service_versions(REGION, "ver_svc", eas_models.ListServiceVersionsRequest()).body
    assert body.total_count == 2 and [v.image_id for v in body.versions] == [2, 1]  # newest first
    assert json.loads(body.versions[1].service_config)["metadata"]["instance"] == 1
    assert body.versions[0].build_time.endswith("Z") and body.versions[0].service_runnable == "true"

    with clock.stopped():
        client.update_service_version(REGION, "ver_svc", UpdateServiceVersionRequest(version=1))
        assert describe(client, "ver_svc").status == "Updating"
    svc = wait_status(client, "ver_svc", "Running")
    assert (svc.current_version, svc.latest_version, svc.total_instance) == (1, 2, 1)
    for bad in (0, 3):
        err = sdk_error(
            lambda: client.update_service_version(REGION, "ver_svc", UpdateServiceVersionRequest(version=bad))
        )
        assert (err.code, err.statusCode) == ("InvalidParameter", 400)
    events = client.describe_service_event(REGION, "ver_svc", eas_models.DescribeServiceEventRequest()).body.events
    assert any(e.reason == "VersionSwitched" for e in events)


def test_versions_omit_service_config_for_official_images(sandbox: EasSandbox, client: Client) -> None:
    """SDK docstring of ListServiceVersionsResponseBodyVersions.service_config: "returned only if
    the service is deployed by using a custom image"."""
    create(client, service_config("official_svc"))
    wait_status(client, "official_svc", "Running")
    update(client, "official_svc", {"containers": [{"image": "registry.example.com/me/comfyui:mine"}]})
    wait_status(client, "official_svc", "Running")
    listing = lambda: client.list_service_versions(  # noqa: E731
        REGION, "official_svc", eas_models.ListServiceVersionsRequest()).body.versions
    custom, official = listing()  # the default: custom_images
    assert json.loads(custom.service_config)["containers"][0]["image"].startswith("registry.example.com/")
    assert official.service_config is None and (official.image_id, official.image_available) == (1, "true")
    sandbox.fidelity.versions_service_config = "always"
    try:
        assert [bool(v.service_config) for v in listing()] == [True, True]
    finally:
        sandbox.fidelity.versions_service_config = "custom_images"


def test_update_service_version_strict_and_loose_readings(sandbox: EasSandbox, client: Client) -> None:
    """SDK docstring of UpdateServiceVersionRequest.version: "greater than 0 and smaller than the
    current version of the service". Strict (default): only backwards; loose: 1..LatestVersion."""
    create(client, service_config("roll_svc"))
    wait_status(client, "roll_svc", "Running")
    for instance in (2, 3):
        update(client, "roll_svc", {"metadata": {"instance": instance}})
        wait_status(client, "roll_svc", "Running")
    switch = lambda v: client.update_service_version(REGION, "roll_svc", UpdateServiceVersionRequest(version=v))  # noqa: E731

    assert sandbox.fidelity.version_switch == "below_current"
    switch(1)  # 3 -> 1
    wait_status(client, "roll_svc", "Running")
    for forward in (1, 2, 3):  # not below the current version (1)
        err = sdk_error(lambda: switch(forward))
        assert (err.code, err.statusCode) == ("InvalidParameter", 400)
        assert "smaller than the current version" in err.message

    sandbox.fidelity.version_switch = "up_to_latest"
    try:
        switch(3)  # forward again
        svc = wait_status(client, "roll_svc", "Running")
        assert (svc.current_version, svc.latest_version, svc.total_instance) == (3, 3, 3)
        switch(3)  # the current one: accepted
        for bad in (0, 4):
            assert sdk_error(lambda: switch(bad)).code == "InvalidParameter"
    finally:
        sandbox.fidelity.version_switch = "below_current"


def test_event_messages_are_json_and_the_page_order_switches(sandbox: EasSandbox, client: Client) -> None:
    """SDK docstring of DescribeServiceEventResponseBodyEvents.message: "formatted and returned in
    the JSON format" ({"versionId": N, "message": "..."}); the page order is undocumented."""
    create(client, service_config("ev_svc"))
    wait_status(client, "ev_svc", "Running")
    update(client, "ev_svc", {"metadata": {"instance": 2}})
    wait_status(client, "ev_svc", "Running")

    def events(**kwargs: Any) -> list[eas_models.DescribeServiceEventResponseBodyEvents]:
        request = eas_models.DescribeServiceEventRequest(**kwargs)
        return client.describe_service_event(REGION, "ev_svc", request).body.events

    oldest_first = events()
    parsed = [json.loads(e.message) for e in oldest_first]
    assert all(set(p) == {"versionId", "message"} for p in parsed)
    assert [p["versionId"] for p in parsed] == [1, 1, 2, 2] and "Creating" in parsed[0]["message"]
    assert oldest_first[0].message.startswith('{"versionId":1,"message":')
    assert [e.time for e in oldest_first] == sorted(e.time for e in oldest_first)

    sandbox.fidelity.update(event_message="text", event_order="newest_first")
    try:
        newest_first = events()
        assert [e.reason for e in newest_first] == [e.reason for e in reversed(oldest_first)]
        assert newest_first[-1].message == parsed[0]["message"]  # plain text
        assert [e.reason for e in events(page_size=2, page_num=1)] == [e.reason for e in newest_first[:2]]
    finally:
        sandbox.fidelity.update(event_message="json", event_order="oldest_first")


def test_labels(client: Client) -> None:
    create(client, service_config("lab_svc"), labels={"team": "a b", "env": "dev"})
    create(client, service_config("lab_other"), labels={"team": "other"})
    labels = lambda: {l.label_key: l.label_value for l in describe(client, "lab_svc").labels}  # noqa: E731,E741
    assert labels() == {"team": "a b", "env": "dev"}
    new_labels = eas_models.UpdateServiceLabelRequest(labels={"env": "prod", "x": "1"})
    client.update_service_label(REGION, "lab_svc", new_labels)
    assert labels() == {"team": "a b", "env": "prod", "x": "1"}
    client.delete_service_label(REGION, "lab_svc", eas_models.DeleteServiceLabelRequest(keys=["x", "team"]))
    assert labels() == {"env": "prod"}
    listed = client.list_services(eas_models.ListServicesRequest(label={"env": "prod"})).body
    assert [s.service_name for s in listed.services] == ["lab_svc"]


def test_list_services_paging_and_filter(client: Client) -> None:
    for i in range(3):
        create(client, service_config(f"page_{i}"))
    body = client.list_services(eas_models.ListServicesRequest(page_size=2, page_number=2, order="asc")).body
    assert (body.total_count, [s.service_name for s in body.services]) == (3, ["page_2"])
    body = client.list_services(eas_models.ListServicesRequest(filter="page_1")).body
    assert [s.service_name for s in body.services] == ["page_1"]
    assert json.loads(body.services[0].service_config)["metadata"]["name"] == "page_1"


def test_signed_url_expiry_capped_and_internal(sandbox: EasSandbox, client: Client) -> None:
    create(client, service_config("url_svc"))
    wait_status(client, "url_svc", "Running")

    def signed(**kwargs: Any) -> str:
        request = eas_models.DescribeServiceSignedUrlRequest(**kwargs)
        return client.describe_service_signed_url(REGION, "url_svc", request).body.signed_url

    url = signed(type="webview", expire=9007199254740991, internal=False)
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}" == sandbox.url and parts.path == "/webview/url_svc/"
    assert abs(int(query["expire"]) - (time.time() + 43200)) < 5 and len(query["signature"]) == 64
    short = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(signed(expire=60)).query))
    assert abs(int(short["expire"]) - (time.time() + 60)) < 5

    internal = signed(type="monitor", expire=600, internal=True)
    assert urllib.parse.urlsplit(internal).path == "/vpc/monitor/url_svc/"
    wait_until(lambda: requests.get(url).status_code == 200)  # served once the service is ready
    assert requests.get(internal).status_code == 200
    assert requests.get(url.replace(query["signature"], "0" * 64)).status_code == 403
    err = sdk_error(lambda: signed(type="shell"))
    assert err.code == "InvalidParameter"


def test_stop_start_and_stuck(sandbox: EasSandbox, client: Client, clock: Clock) -> None:
    create(client, service_config("stuck_svc"))
    sandbox.set_stuck("stuck_svc")
    time.sleep(FAST.creating * 2)  # it would have been Running by now
    svc = describe(client, "stuck_svc")
    assert svc.status == "Waiting" and svc.running_instance == 0
    assert requests.get(svc.internet_endpoint + "/", headers={"Authorization": svc.access_token}).status_code == 503
    sandbox.set_stuck("stuck_svc", None)
    wait_status(client, "stuck_svc", "Running")

    with clock.stopped():
        client.stop_service(REGION, "stuck_svc")
        assert describe(client, "stuck_svc").status == "Stopping"
    wait_status(client, "stuck_svc", "Stopped")
    with clock.stopped():
        client.start_service(REGION, "stuck_svc")
        assert describe(client, "stuck_svc").status == "Starting"
    wait_status(client, "stuck_svc", "Running")
    client.restart_service(REGION, "stuck_svc")
    wait_status(client, "stuck_svc", "Running")
    record = sandbox.get_service("stuck_svc")
    assert record is not None and record["config"]["metadata"]["name"] == "stuck_svc"
    assert [e["Reason"] for e in record["events"]][:2] == ["Creating", "InsufficientResources"]


def test_delete_then_not_found(client: Client, clock: Clock) -> None:
    create(client, service_config("del_svc"))
    with clock.stopped():
        client.delete_service(REGION, "del_svc")
        assert describe(client, "del_svc").status == "Deleting"
    wait_until(lambda: not client.list_services(eas_models.ListServicesRequest(service_name="del_svc")).body.services)
    err = sdk_error(lambda: describe(client, "del_svc"))
    assert (err.code, err.statusCode) == ("InvalidService.NotFound", 404)
    assert "The specified service does not exist" in err.message
    err = sdk_error(lambda: client.delete_service(REGION, "del_svc"))
    assert err.code == "InvalidService.NotFound"
    err = sdk_error(lambda: client.describe_service("cn-shanghai", "whatever"))
    assert err.code == "InvalidService.NotFound"


def test_create_validation_and_duplicates(client: Client) -> None:
    create(client, service_config("dup_svc"))
    err = sdk_error(lambda: create(client, service_config("dup_svc")))
    assert (err.code, err.statusCode) == ("InvalidParameter", 409) and "already exists" in err.message
    bad_configs = [
        service_config("Bad-Name"),
        service_config("ab"),
        {"containers": [{"image": "x"}]},
        service_config("no_image", image=""),
        service_config("neg_instance", instance=-1),
        {**service_config("two_names"), "name": "other_name"},
    ]
    for config in bad_configs:
        err = sdk_error(lambda: create(client, config))
        assert (err.code, err.statusCode) == ("InvalidParameter", 400), config
    create(client, {**service_config("top_name"), "metadata": {"instance": 1}, "name": "top_name"})


def test_autoscaler(client: Client) -> None:
    create(client, service_config("as_svc"))
    strategies = [eas_models.CreateServiceAutoScalerRequestScaleStrategies(metric_name="qps", threshold=10)]
    client.create_service_auto_scaler(
        REGION, "as_svc", eas_models.CreateServiceAutoScalerRequest(min=1, max=3, scale_strategies=strategies)
    )
    body = client.describe_service_auto_scaler(REGION, "as_svc").body
    assert (body.min_replica, body.max_replica, body.scale_strategies[0].metric_name) == (1, 3, "qps")
    err = sdk_error(
        lambda: client.create_service_auto_scaler(
            REGION, "as_svc", eas_models.CreateServiceAutoScalerRequest(min=3, max=1, scale_strategies=strategies)
        )
    )
    assert err.code == "InvalidParameter"
    client.delete_service_auto_scaler(REGION, "as_svc")
    assert client.describe_service_auto_scaler(REGION, "as_svc").body.max_replica == 0


def test_endpoints(sandbox: EasSandbox, client: Client) -> None:
    create(client, service_config("ep_svc"))
    body = client.describe_service_endpoints(REGION, "ep_svc").body
    assert body.access_token == describe(client, "ep_svc").access_token
    assert body.endpoints[0].internet_endpoints == [f"{sandbox.url}/api/predict/ep_svc"]
    assert body.endpoints[0].intranet_endpoints == [f"http://{VPC_HOST}/api/predict/ep_svc"]
    sandbox.fidelity.intranet_endpoint = "path"  # the sandbox's reachable form
    try:
        body = client.describe_service_endpoints(REGION, "ep_svc").body
        assert body.endpoints[0].intranet_endpoints == [f"{sandbox.url}/vpc/api/predict/ep_svc"]
        assert describe(client, "ep_svc").intranet_endpoint == f"{sandbox.url}/vpc/api/predict/ep_svc"
    finally:
        sandbox.fidelity.intranet_endpoint = "host"


# -- faults, recording, persistence ----------------------------------------------------------------
def test_injected_faults_reach_the_sdk(sandbox: EasSandbox, client: Client) -> None:
    sandbox.faults.add(kind="throttle", action="DescribeService")
    err = sdk_error(lambda: describe(client, "x_svc"))
    assert isinstance(err, ThrottlingException) and err.code == "Throttling.User" and err.retry_after == 1000

    sandbox.faults.add(kind="status", status=503, code="ServiceUnavailable", action="ListServices")
    err = sdk_error(lambda: client.list_services(eas_models.ListServicesRequest()))
    assert isinstance(err, ServerException) and (err.code, err.statusCode) == ("ServiceUnavailable", 503)

    sandbox.faults.add(kind="drop", method="POST")
    with pytest.raises(UnretryableException):
        create(client, service_config("dropped"))
    assert [r.fault for r in sandbox.recorder.all()] == ["throttle", "status", "drop"]
    create(client, service_config("dropped"))  # faults are used up


def test_throttling_retry_after_is_in_milliseconds(sandbox: EasSandbox, client: Client) -> None:
    """x-acs-retry-after is milliseconds to the SDK: tea-openapi's get_throttling_time_left puts
    the integer in ThrottlingException.retry_after and darabonba's get_backoff_time sleeps
    min(retry_after, 120000) ms. The default is 1000 (ms); the switch sends 1 (seconds)."""
    from darabonba.core import DaraCore
    from darabonba.policy.retry import RetryOptions, RetryPolicyContext

    assert sandbox.fidelity.retry_after_unit == "ms"
    sandbox.faults.add(kind="throttle", action="DescribeService")
    err = sdk_error(lambda: describe(client, "x_svc"))
    assert isinstance(err, ThrottlingException) and err.retry_after == 1000
    options = RetryOptions({"retryCondition": [{"exception": ["ThrottlingException"]}]})
    assert DaraCore.get_backoff_time(options, RetryPolicyContext(1, exception=err)) == 1000  # one second
    resp = requests.get(f"{sandbox.url}/api/v2/services", headers={"x-acs-action": "ListServices"})
    assert "x-acs-retry-after" not in resp.headers  # only throttling answers carry it
    sandbox.fidelity.retry_after_unit = "s"
    try:
        sandbox.faults.add(kind="throttle", action="DescribeService")
        assert sdk_error(lambda: describe(client, "x_svc")).retry_after == 1
        sandbox.faults.add(kind="throttle", action="DescribeService", retry_after="86400000")
        err = sdk_error(lambda: describe(client, "x_svc"))  # a fault may name its own value
        assert DaraCore.get_backoff_time(options, RetryPolicyContext(1, exception=err)) == 120000  # capped
    finally:
        sandbox.fidelity.retry_after_unit = "ms"


def test_recorder_lists_actions_and_writes(sandbox: EasSandbox, client: Client) -> None:
    create(client, service_config("rec_svc"))
    describe(client, "rec_svc")
    client.list_services(eas_models.ListServicesRequest())
    update(client, "rec_svc", {"metadata": {"instance": 2}}, update_type="merge")
    assert sandbox.recorder.actions() == ["CreateService", "DescribeService", "ListServices", "UpdateService"]
    assert [(w.action, w.method) for w in sandbox.writes()] == [("CreateService", "POST"), ("UpdateService", "PUT")]
    assert sandbox.recorder.all()[-1].query == {"UpdateType": "merge"}


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with EasSandbox(state_dir=tmp_path, timings=FAST) as first:
        client = make_client(first)
        create(client, service_config("keep_svc"), labels={"k": "v"})
        token = wait_status(client, "keep_svc", "Running").access_token
    assert (tmp_path / "eas" / REGION / "state.json").is_file()  # one file per region
    with EasSandbox(state_dir=tmp_path, timings=FAST) as second:
        svc = describe(make_client(second), "keep_svc")
        assert (svc.status, svc.access_token, svc.labels[0].label_key) == ("Running", token, "k")
        assert svc.internet_endpoint == f"{second.url}/api/predict/keep_svc"
        probe = lambda: requests.get(svc.internet_endpoint + "/", headers={"Authorization": token})  # noqa: E731
        wait_until(lambda: probe().status_code == 200)


# -- regions -----------------------------------------------------------------------------------------
def region_client(sandbox: EasSandbox, region: str) -> Client:
    """As the SDK is pointed at a region: its endpoint (here the sandbox's port for it)."""
    return Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                         endpoint=sandbox.endpoint_for(region), protocol="http", region_id=region))


def test_every_region_at_its_own_endpoint(tmp_path: Path) -> None:
    """issue 10 item 10: CreateService carries no region, the endpoint is the region; a cn-shanghai
    create must land in cn-shanghai, and the same name may exist in two regions."""
    shanghai_image = "eas-registry-vpc.cn-shanghai.cr.aliyuncs.com/pai-eas/comfyui:1.9"
    with EasSandbox(state_dir=tmp_path, timings=FAST, regions=["cn-shanghai"]) as sandbox:
        hz, sh = region_client(sandbox, REGION), region_client(sandbox, "cn-shanghai")
        assert sandbox.endpoint_for("cn-shanghai") != sandbox.endpoint and set(sandbox.urls) == {REGION, "cn-shanghai"}
        created = create(sh, service_config("twin_svc", image=shanghai_image))
        assert created.region == "cn-shanghai"
        assert created.internet_endpoint == f"{sandbox.url_for('cn-shanghai')}/api/predict/twin_svc"
        assert created.intranet_endpoint == "http://1000000000000000.vpc.cn-shanghai.pai-eas.aliyuncs.com/api/predict/twin_svc"
        assert sandbox.recorder.all()[-1].site == "cn-shanghai"
        assert sdk_error(lambda: hz.describe_service(REGION, "twin_svc")).code == "InvalidService.NotFound"
        assert sdk_error(lambda: sh.describe_service(REGION, "twin_svc")).code == "InvalidService.NotFound"
        assert not hz.list_services(eas_models.ListServicesRequest()).body.services
        wait_until(lambda: sh.describe_service("cn-shanghai", "twin_svc").body.status == "Running")
        token = sh.describe_service("cn-shanghai", "twin_svc").body.access_token
        wait_until(lambda: requests.get(created.internet_endpoint + "/", headers={"Authorization": token}).status_code == 200)
        assert requests.get(f"{sandbox.url}/api/predict/twin_svc/", headers={"Authorization": token}).status_code == 404

        create(hz, service_config("twin_svc"))  # the same name in cn-hangzhou: another service
        twin = wait_status(hz, "twin_svc", "Running")
        assert twin.region == REGION and twin.access_token != token and twin.service_id != created.service_id
        # a registry of another region cannot be pulled (the image catalogue is per region)
        create(hz, service_config("wrong_registry", image=shanghai_image))
        assert "Failed to pull image" in wait_status(hz, "wrong_registry", "Failed").message
        assert sandbox.get_service("twin_svc", "cn-shanghai")["region"] == "cn-shanghai"
    assert {p.parent.name for p in (tmp_path / "eas").glob("*/state.json")} == {REGION, "cn-shanghai"}
    with EasSandbox(state_dir=tmp_path, timings=FAST, regions=["cn-shanghai"]) as again:
        assert region_client(again, "cn-shanghai").describe_service("cn-shanghai", "twin_svc").body.access_token == token


def test_a_single_region_state_dir_is_split_by_region(tmp_path: Path) -> None:
    """State written before the sandbox served several regions (all in eas/state.json) is kept."""
    with EasSandbox(state_dir=tmp_path, timings=FAST) as first:
        create(make_client(first), service_config("old_svc"))
    (tmp_path / "eas" / REGION / "state.json").replace(tmp_path / "eas" / "state.json")
    with EasSandbox(state_dir=tmp_path, timings=FAST) as second:
        assert describe(make_client(second), "old_svc").service_name == "old_svc"
    assert (tmp_path / "eas" / "state.json.migrated").is_file() and not (tmp_path / "eas" / "state.json").exists()
