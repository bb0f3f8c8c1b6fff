"""The EAS emulator's instances, logs and diagnosis, driven by the unmodified official SDK:
ListServiceInstances, ListServiceContainers, DescribeServiceLog (paging, time range, keyword,
previous container), DescribeServiceDiagnosis and DescribeServiceInstanceDiagnosis."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from alibabacloud_eas20210701 import models
from alibabacloud_eas20210701.client import Client
from Tea.exceptions import TeaException

from eascomfy.sandbox.eas import EasSandbox, Timings

from .test_eas_sandbox import COMFY, REGION, make_client, service_config

FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[EasSandbox]:
    with EasSandbox(state_dir=tmp_path, timings=FAST) as sb:
        yield sb


@pytest.fixture
def client(sandbox: EasSandbox) -> Client:
    return make_client(sandbox)


def running(client: Client, name: str, instance: int = 2, image: str = f"{COMFY}:1.9") -> None:
    client.create_service(models.CreateServiceRequest(body=json.dumps(service_config(name, image, instance))))
    deadline = time.monotonic() + 5
    while client.describe_service(REGION, name).body.status not in ("Running", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def instances(client: Client, name: str, **query: object) -> models.ListServiceInstancesResponseBody:
    return client.list_service_instances(REGION, name, models.ListServiceInstancesRequest(**query)).body


def logs(client: Client, name: str, **query: object) -> models.DescribeServiceLogResponseBody:
    return client.describe_service_log(REGION, name, models.DescribeServiceLogRequest(**query)).body


def test_running_instances_have_names_states_and_boot_logs(sandbox: EasSandbox, client: Client) -> None:
    running(client, "ops_list", instance=2)
    body = instances(client, "ops_list")
    assert body.total_count == 2 and body.page_number == 1 and body.page_size == 100
    first = body.instances[0]
    assert first.instance_name.startswith("ops-list-") and first.status == "Running" and first.reason == "RUNNING"
    assert first.restart_count == 0 and first.start_time.endswith("Z") and first.last_state == []
    assert instances(client, "ops_list", page_size=1, page_number=2).instances[0].instance_name == body.instances[1].instance_name
    assert instances(client, "ops_list", instance_name=first.instance_name).total_count == 1

    page = logs(client, "ops_list", instance_name=first.instance_name)
    assert "To see the GUI go to: http://0.0.0.0:8000" in page.logs and page.total_page_num == 1
    assert logs(client, "ops_list", keyword="Starting server").total_count == 2  # both instances
    paged = logs(client, "ops_list", instance_name=first.instance_name, page_size=5, page_num=2)
    assert paged.page_num == 2 and len(paged.logs) == 5 and paged.total_page_num == 3
    future = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 3600))
    assert logs(client, "ops_list", start_time=future).total_count == 0
    assert client.describe_service_diagnosis(REGION, "ops_list").body.diagnosis_list == []
    one = client.describe_service_instance_diagnosis(REGION, "ops_list", first.instance_name).body
    assert one.diagnosis is None or one.diagnosis.error is None


def test_a_restart_counts_and_keeps_the_previous_log(sandbox: EasSandbox, client: Client) -> None:
    running(client, "ops_restart", instance=1)
    name = sandbox.restart_instance("ops_restart", 0, "OOMKilled", 137, ["run.sh: line 54:    41 Killed    python main.py"])
    listed = instances(client, "ops_restart").instances[0]
    assert listed.instance_name == name and listed.restart_count == 1
    previous = logs(client, "ops_restart", instance_name=name, previous=True).logs
    assert previous[-1].endswith("Killed    python main.py")
    assert "Killed" not in " ".join(logs(client, "ops_restart", instance_name=name).logs)
    container = client.list_service_containers(REGION, "ops_restart", name).body.containers[0]
    assert container.name == "worker0" and container.restart_count == 1 and container.last_reason == "OOMKilled"
    assert container.last_status == "Terminated" and container.current_status == "Running"
    diag = client.describe_service_instance_diagnosis(REGION, "ops_restart", name).body.diagnosis
    assert "OOMKilled" in diag.causes[0]
    sandbox.add_logs("ops_restart", ["got prompt"], instance=name)
    assert logs(client, "ops_restart", instance_name=name).logs[-1] == "got prompt"


def test_a_planned_crash_fails_the_service_with_its_lines_and_diagnosis(sandbox: EasSandbox, client: Client) -> None:
    sandbox.fail_deploy("ops_crash", ["loading", "run.sh: line 54:  7 Killed  python main.py"], reason="OOMKilled",
                        message="Container worker0 was killed", diagnosis={"causes": ["The container ran out of memory."]})
    running(client, "ops_crash", instance=1)
    described = client.describe_service(REGION, "ops_crash").body
    assert (described.status, described.reason) == ("Failed", "OOMKilled")
    listed = instances(client, "ops_crash").instances[0]
    assert (listed.status, listed.reason, listed.restart_count) == ("Failed", "CrashLoopBackOff", 3)
    assert logs(client, "ops_crash", previous=True).logs[-1].endswith("python main.py")
    diagnosis = client.describe_service_diagnosis(REGION, "ops_crash").body.diagnosis_list
    assert diagnosis[0].causes == ["The container ran out of memory."] and diagnosis[0].error


def test_image_pull_failure_and_unknown_instance(sandbox: EasSandbox, client: Client) -> None:
    running(client, "ops_pull", instance=1, image=f"{COMFY}:9.9")
    listed = instances(client, "ops_pull").instances[0]
    assert (listed.status, listed.reason) == ("Pending", "ImagePullBackOff")
    entry = client.describe_service_diagnosis(REGION, "ops_pull").body.diagnosis_list[0]
    assert entry.error == "Container worker0 failed to pull image." and "9.9" in entry.causes[0]
    with pytest.raises(TeaException) as caught:
        client.describe_service_instance_diagnosis(REGION, "ops_pull", "nope-123-abc")
    assert caught.value.code == "InvalidInstance.NotFound"
