"""One lockfile for the service and its mount (issue 14), through the CLI against the EAS and OSS
emulators: what deploy and sync record (compared with the objects the OSS emulator stores), plan
showing bucket changes, the sync before the service update, saved plans, rollback, a damaged lock."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from eascomfy.core.lockfile import LOCKFILE_SHA_LABEL, digest
from eascomfy.local.lockfile import record_nodes
from eascomfy.sandbox.eas import EasSandbox
from eascomfy.sandbox.oss import OssSandbox

from .conftest import REGION, Project, api_calls, mark

BUCKET, PREFIX = "eascomfy-test", "comfyui/"
WHEEL = "tiny-1.0-py3-none-any.whl"


@pytest.fixture
def oss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OssSandbox]:
    with OssSandbox(tmp_path / "oss-state", region=REGION) as sandbox:
        sandbox.create_bucket(BUCKET)
        monkeypatch.setenv("EASCOMFY_OSS_ENDPOINT", sandbox.url)
        monkeypatch.delenv("EASCOMFY_OSS_ENDPOINTS", raising=False)
        monkeypatch.setenv("EASCOMFY_STATE_DIR", str(tmp_path / "state"))
        yield sandbox


def locked(p: Project) -> dict:
    data = json.loads((p.dir / "eascomfy.lock").read_text())
    assert data["format"] == "eascomfy-lock/1"
    return data["services"][f"{p.name}@{REGION}"]


def with_files(p: Project, oss: OssSandbox, model: bytes = b"") -> Path:
    """A spec with a local model, a wheel already on the mount, and a custom node folder there."""
    file = p.dir / "a.safetensors"
    file.write_bytes(model or os.urandom(300_000))
    oss.put_object(BUCKET, f"{PREFIX}models/whl/{WHEEL}", b"PK wheel bytes")
    oss.put_object(BUCKET, f"{PREFIX}custom_nodes/MyPack/__init__.py", b"NODE_CLASS_MAPPINGS = {}\n")
    with p.spec.open("a") as fh:
        fh.write(f"models:\n  - file: a.safetensors\n    kind: checkpoints\nwheels: [{WHEEL}]\n")
    return file


def oss_writes(oss: OssSandbox, since: int = 0) -> list[str]:
    return [r.action or "" for r in oss.requests()[since:] if r.method in ("PUT", "POST", "DELETE")]


def test_deploy_syncs_first_and_locks_what_oss_stores(sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project]) -> None:
    p = project("lock_svc")
    with_files(p, oss)
    res = p.cli("-o", "json", "deploy")
    assert res.exit_code == 0, res.stderr
    key = f"{PREFIX}models/checkpoints/a.safetensors"
    # the sync came before the service was created: compare the two emulators' recorders
    put = [r.time for r in oss.requests() if r.action == "PutObject" and r.path.endswith("a.safetensors")]
    create = [r.time for r in sandbox.recorder.all() if r.action == "CreateService"]
    assert put and create and max(put) < min(create)

    section = locked(p)
    record = sandbox.get_service("lock_svc")
    assert section["image"] == record["config"]["containers"][0]["image"]
    info = oss.object_info(BUCKET, key)
    [model] = section["models"]
    assert (model["kind"], model["name"], model["size"], model["crc64"]) == ("checkpoints", "a.safetensors", info["size"], info["crc64"])
    [wheel] = section["wheels"]
    winfo = oss.object_info(BUCKET, f"{PREFIX}models/whl/{WHEEL}")
    assert (wheel["name"], wheel["size"], wheel["crc64"]) == (WHEEL, winfo["size"], winfo["crc64"])
    [node] = section["nodes"]
    assert node["name"] == "MyPack" and len(node["tree"]) == 64
    # the service carries the digest; the mount keeps the section for version 1 (for rollback)
    assert record["labels"][LOCKFILE_SHA_LABEL] == digest(section)
    assert json.loads(oss.object_bytes(BUCKET, f"{PREFIX}.eascomfy/locks/lock_svc/v1.json")) == section
    data = res.json()["data"]
    assert data["lock"]["digest"] == digest(section) and data["lock"]["version"] == 1

    # deterministic: a second deploy with nothing changed writes the same text, and no upload
    text = (p.dir / "eascomfy.lock").read_text()
    since = len(oss.requests())
    assert p.cli("deploy").exit_code == 0
    assert (p.dir / "eascomfy.lock").read_text() == text
    puts = [r.path for r in oss.requests()[since:] if r.action == "PutObject"]
    assert len(puts) == 1 and puts[0].endswith("/.eascomfy/locks/lock_svc/v1.json")  # the model is not sent again


def test_storage_sync_writes_the_lock_with_oss_crc64(oss: OssSandbox, project: Callable[..., Project]) -> None:
    p = project("sync_svc")
    with_files(p, oss)
    res = p.cli("-o", "json", "storage", "sync")
    assert res.exit_code == 0, res.stderr
    section = locked(p)
    info = oss.object_info(BUCKET, f"{PREFIX}models/checkpoints/a.safetensors")
    assert section["models"][0]["crc64"] == info["crc64"] and section["models"][0]["etag"] == info["etag"]
    assert section["image"] is None  # nothing deployed yet: a sync records no image
    assert res.json()["data"]["lock"]["digest"] == digest(section)


def test_record_nodes_is_kept_while_the_folder_is_unchanged(oss: OssSandbox, project: Callable[..., Project]) -> None:
    p = project("nodes_svc")
    with_files(p, oss)
    record_nodes(p.dir / "eascomfy.lock", f"nodes_svc@{REGION}", [("MyPack", "https://github.com/me/MyPack", "abc123")])
    assert p.cli("storage", "sync").exit_code == 0
    [node] = locked(p)["nodes"]
    assert (node["url"], node["commit"]) == ("https://github.com/me/MyPack", "abc123") and len(node["tree"]) == 64
    # the folder changes on the mount: plan says so; a sync records the new tree and forgets the commit
    oss.put_object(BUCKET, f"{PREFIX}custom_nodes/MyPack/__init__.py", b"changed\n")
    data = p.cli("-o", "json", "storage", "sync", "--dry-run").json()["data"]
    assert [i["action"] for i in data["storage"]["items"] if i["what"] == "node"] == ["changed"]
    assert p.cli("storage", "sync").exit_code == 0
    [after] = locked(p)["nodes"]
    assert after["tree"] != node["tree"] and after["commit"] is None


def test_plan_shows_bucket_changes_with_one_listing(sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project]) -> None:
    p = project("plan_svc")
    file = with_files(p, oss)
    assert p.cli("deploy").exit_code == 0
    since = len(oss.requests())
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "up to date" in res.stdout
    assert [r.action for r in oss.requests()[since:] if r.action != "GetBucketLocation"] == ["ListObjectsV2", "ListObjectsV2"]

    file.write_bytes(os.urandom(300_000))  # same size, other bytes
    before = mark(sandbox)
    since = len(oss.requests())
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 2, res.stderr
    assert "upload" in res.stdout and "a.safetensors" in res.stdout
    data = p.cli("-o", "json", "plan").json()["data"]
    assert data["action"] == "noop" and data["storage"]["changes"] == 1
    assert [i["action"] for i in data["storage"]["items"] if i["what"] == "model"] == ["upload"]
    markdown = p.cli("plan", "-o", "markdown").stdout
    assert f"mount oss://{BUCKET}/{PREFIX}: 1 change(s)" in markdown and "a.safetensors" in markdown
    # cheap: listings, no HEAD per file (the lock knows the CRC64 of the listed ETag); nothing written
    assert "HeadObject" not in [r.action for r in oss.requests()[since:]]
    assert not oss_writes(oss, since)
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]


def test_a_failed_sync_leaves_the_service_untouched(sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project]) -> None:
    p = project("fail_svc")
    file = with_files(p, oss)
    assert p.cli("deploy").exit_code == 0
    text = (p.dir / "eascomfy.lock").read_text()
    file.write_bytes(os.urandom(300_000))
    p.edit("instances: 1", "instances: 2")
    oss.data_faults.add("wrong_crc", action="PutObject", times=-1)
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert [r.action for r in api_calls(sandbox, before) if r.method != "GET"] == []
    assert (p.dir / "eascomfy.lock").read_text() == text


def test_a_model_missing_from_the_mount_stops_deploy_before_anything_is_sent(
    sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project]
) -> None:
    p = project("miss_svc")
    with p.spec.open("a") as fh:
        fh.write("models:\n  - name: nowhere.safetensors\n    kind: loras\n")
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 1, res.stderr
    assert "nowhere.safetensors" in res.stderr
    assert "CreateService" not in [r.action for r in api_calls(sandbox, before)]
    assert not oss_writes(oss)
    assert not (p.dir / "eascomfy.lock").exists()


def test_a_saved_plan_covers_the_bucket(sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project]) -> None:
    p = project("saved_svc")
    with_files(p, oss)
    assert p.cli("deploy").exit_code == 0
    (p.dir / "a.safetensors").write_bytes(os.urandom(400_000))
    assert p.cli("plan", "--out", "plan.json").exit_code == 0
    assert json.loads((p.dir / "plan.json").read_text())["storage"][0]["action"] == "upload"
    # the bucket changes after the review: the plan is stale, nothing is sent anywhere
    oss.put_object(BUCKET, f"{PREFIX}models/checkpoints/a.safetensors", b"someone else's")
    before, since = mark(sandbox), len(oss.requests())
    res = p.cli("deploy", "--plan", "plan.json")
    assert res.exit_code != 0 and "stale" in res.stderr, res.stderr
    assert not oss_writes(oss, since)
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]
    # reviewed again; then the local file changes (same size, other bytes): stale again
    assert p.cli("plan", "--out", "plan.json").exit_code == 0
    (p.dir / "a.safetensors").write_bytes(os.urandom(400_000))
    res = p.cli("deploy", "--plan", "plan.json")
    assert res.exit_code != 0 and "stale" in res.stderr, res.stderr
    # reviewed again: applied
    assert p.cli("plan", "--out", "plan.json").exit_code == 0
    res = p.cli("deploy", "--plan", "plan.json")
    assert res.exit_code == 0, res.stderr
    info = oss.object_info(BUCKET, f"{PREFIX}models/checkpoints/a.safetensors")
    assert info["size"] == 400_000 and locked(p)["models"][0]["crc64"] == info["crc64"]


def test_rollback_says_which_files_differ(sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project]) -> None:
    p = project("back_svc", version="1.8")
    file = with_files(p, oss)
    assert p.cli("deploy").exit_code == 0
    first = locked(p)["models"][0]["crc64"]
    file.write_bytes(os.urandom(300_000))
    p.edit('version: "1.8"', 'version: "1.9"')
    assert p.cli("deploy").exit_code == 0
    assert sandbox.get_service("back_svc")["labels"][LOCKFILE_SHA_LABEL] == digest(locked(p))
    res = p.cli("-o", "json", "rollback", "1", "--allow-other-changes")
    assert res.exit_code == 0, res.stderr
    lock = res.json()["data"]["lock"]
    assert lock["recorded"] is True and lock["version"] == 1
    found = {(d["what"], d["name"]): d for d in lock["differences"]}
    assert found[("image", "image")]["new"].endswith(":1.8-api")
    model = found[("model", "checkpoints/a.safetensors")]
    assert model["fields"]["crc64"] == {"old": locked(p)["models"][0]["crc64"], "new": first}
    text = p.cli("rollback", "1", "--allow-other-changes")  # already there: says so, and the differences again
    assert text.exit_code == 0, text.stderr
    assert "model checkpoints/a.safetensors: crc64" in text.stdout and ":1.9-api -> " in text.stdout


@pytest.mark.parametrize("content, field", [
    ("{not json", "not JSON"),
    ('{"format": "eascomfy-lock/9", "services": {}}', "format"),
    ('{"format": "eascomfy-lock/1", "services": {"x@cn-hangzhou": {"models": [{"kind": "loras", "name": "a", "size": 1, "crc64": "12"}]}}}',
     "services.x@cn-hangzhou.models[0].crc64"),
])
def test_a_damaged_lock_is_one_clear_line_and_no_call(
    sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project], content: str, field: str
) -> None:
    p = project("bad_lock")
    (p.dir / "eascomfy.lock").write_text(content)
    for command in (["plan"], ["deploy"], ["storage", "sync"], ["rollback", "1", "--allow-other-changes"]):
        before, since = mark(sandbox), len(oss.requests())
        res = p.cli(*command)
        assert res.exit_code == 2, (command, res.stdout, res.stderr)
        first = res.stderr.strip().splitlines()[0]
        assert "eascomfy.lock" in first and field in first and "Traceback" not in res.stderr
        assert api_calls(sandbox, before) == [] and oss.requests()[since:] == []


def test_a_deploy_without_waiting_keeps_the_section_for_the_version_it_sent(
    sandbox: EasSandbox, oss: OssSandbox, project: Callable[..., Project]
) -> None:
    p = project("nowait_svc")
    with_files(p, oss)
    assert p.cli("deploy").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    res = p.cli("-o", "json", "deploy", "--no-wait")
    assert res.exit_code == 0, res.stderr
    latest = sandbox.get_service("nowait_svc")["latest_version"]
    assert latest == 2 and res.json()["data"]["lock"]["version"] == latest
    assert json.loads(oss.object_bytes(BUCKET, f"{PREFIX}.eascomfy/locks/nowait_svc/v2.json")) == locked(p)
