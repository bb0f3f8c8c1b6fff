"""Input files (issue 14): ``--input NODE.INPUT=FILE`` and ``@FILE`` in ``--set`` upload a local file
where ComfyUI reads its inputs (Standard: ``POST /upload/image``; API edition: ``input/`` on the
mount), the workflow names it as ComfyUI stored it, and the same bytes are never uploaded twice.
Checked on what the emulators recorded and hold."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import BUCKET, Sandbox


@pytest.fixture(autouse=True)
def _forget_own_prompts(sandbox: Sandbox) -> Iterator[None]:
    """The services' ComfyUI histories are the session's: the prompts these tests ran (finished
    when each command returned; ``submit``'s when ``results`` got them) are removed afterwards, so
    other tests read only theirs."""
    emulators = [sandbox.stack.comfyui.comfyui(s.name) for s in (sandbox.std, sandbox.api)]
    before = [set(e.history) for e in emulators]
    yield
    for emulator, known in zip(emulators, before):
        for key in [k for k in list(emulator.history) if k not in known]:
            emulator.history.pop(key, None)


def load_image_workflow(folder: Path) -> Path:
    flow = {
        "10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Load Image"}},
        "20": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "inputs/loaded"}},
    }
    path = folder / "img.api.json"
    path.write_text(json.dumps(flow))
    return path


def photo(folder: Path, name: str = "photo.png") -> tuple[Path, str]:
    """A PNG-looking file with bytes no other test has (the mount lives for the whole session)."""
    path = folder / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()[:16] + ".png"


def uploads(sandbox: Sandbox, service: str) -> int:
    return sum(1 for r in sandbox.stack.eas.recorder.all()
               if r.method == "POST" and r.path == f"/api/predict/{service}/upload/image")


def input_keys(sandbox: Sandbox, prefix: str, name: str) -> list[str]:
    return [k for k in sandbox.stack.oss.list_keys(BUCKET, f"{prefix}input/") if name.split(".")[0] in k]


@pytest.mark.parametrize("head", ["forwarded", "refused"])
def test_run_uploads_an_input_once_and_the_prompt_names_it(sandbox: Sandbox, tmp_path: Path, head: str) -> None:
    """Two runs of one file: one POST /upload/image when HEAD /view reaches ComfyUI; when the gateway
    refuses HEAD (``gateway_head``) the file travels again, and ComfyUI keeps one copy."""
    flow = load_image_workflow(tmp_path)
    image, name = photo(tmp_path)
    emulator = sandbox.stack.comfyui.comfyui(sandbox.std.name)
    sandbox.stack.eas.fidelity.gateway_head = head
    try:
        first = sandbox.std.cli("run", str(flow), "--input", f"10.image={image}", "--out", str(tmp_path / "a"))
        second = sandbox.std.cli("-o", "json", "run", str(flow), "--set", f"Load Image.inputs.image=@{image}",
                                 "--out", str(tmp_path / "b"))
    finally:
        sandbox.stack.eas.fidelity.gateway_head = "forwarded"
    assert first.exit_code == 0, first.stderr
    assert second.exit_code == 0, second.stderr
    assert f"input {image} -> input/{name}: uploaded ({image.stat().st_size} bytes)" in first.stderr, first.stderr
    [sent] = second.json()["data"]["inputs"]
    assert sent == {**sent, "node": "10", "input": "image", "name": name, "size": image.stat().st_size,
                    "uploaded": head == "refused"}
    # the prompts ComfyUI ran named the uploaded file, and ComfyUI holds its bytes once
    ran = [e["prompt"][2]["10"]["inputs"]["image"] for e in emulator.history.values()
           if e["prompt"][2].get("10", {}).get("class_type") == "LoadImage"]
    assert ran.count(name) == 2, ran
    assert sandbox.stack.oss.object_bytes(BUCKET, f"{sandbox.std.prefix}input/{name}") == image.read_bytes()
    assert input_keys(sandbox, sandbox.std.prefix, name) == [f"{sandbox.std.prefix}input/{name}"]
    if head == "forwarded":
        assert uploads(sandbox, sandbox.std.name) == 1
    else:
        assert uploads(sandbox, sandbox.std.name) == 2  # nothing could say it was there


def test_the_same_file_for_two_inputs_is_uploaded_once(sandbox: Sandbox, tmp_path: Path) -> None:
    flow = json.loads(load_image_workflow(tmp_path).read_text())
    flow["11"] = {**flow["10"], "_meta": {"title": "Mask source"}}
    flow["21"] = {**flow["20"], "inputs": {"images": ["11", 0], "filename_prefix": "inputs/second"}}
    path = tmp_path / "two.api.json"
    path.write_text(json.dumps(flow))
    image, name = photo(tmp_path)
    res = sandbox.std.cli("-o", "json", "run", str(path), "--input", f"10.image={image}", "--input",
                          f"11.image={image}", "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.stderr
    assert uploads(sandbox, sandbox.std.name) == 1


def test_bad_inputs_are_refused_before_any_call(sandbox: Sandbox, tmp_path: Path) -> None:
    flow = load_image_workflow(tmp_path)
    image, _ = photo(tmp_path)
    (tmp_path / "folder").mkdir()
    cases = [
        (("--input", f"10.image={tmp_path / 'nope.png'}"), ["--input", "nope.png: not found"]),
        (("--input", f"10.image={tmp_path / 'folder'}"), ["--input", "not a regular file (a folder)", "give a file, not a folder"]),
        (("--input", f"11.image={image}"), ["--input", "no node '11'", "nodes: 10 (Load Image), 20 (SaveImage)"]),
        (("--input", f"10.imag={image}"), ["--input", "has no input 'imag'", "did you mean 'image'?"]),
        (("--input", f"20.images={image}"), ["--input", "takes another node's output"]),
        (("--input", "10.image"), ["--input", "expected NODE.INPUT=FILE"]),
        (("--set", f"10.inputs.image=@{tmp_path / 'nope.png'}"), ["--set", "not found"]),
        (("--set", "Load Imag.inputs.image=@x.png"), ["--set", "no node 'Load Imag'", "did you mean 'Load Image'?"]),
    ]
    for args, expected in cases:
        for command in ("run", "submit"):
            service = sandbox.std if command == "run" else sandbox.api
            res = service.cli(command, str(flow), *args)
            assert res.exit_code == 2, (command, args, res.stderr)
            line = res.stderr.strip().splitlines()[-1]
            assert all(e in res.stderr for e in expected), (command, args, res.stderr)
            assert "Traceback" not in res.stderr and line.startswith("error:"), res.stderr
    assert sandbox.stack.eas.recorder.all() == [] and sandbox.stack.oss.recorder.all() == []


def test_a_literal_at_sign_is_sent_with_two(sandbox: Sandbox, tmp_path: Path) -> None:
    from tests.workflows.conftest import WORKFLOW

    emulator = sandbox.stack.comfyui.comfyui(sandbox.std.name)
    res = sandbox.std.cli("run", str(WORKFLOW), "--set", "6.inputs.text=@@home, a cat", "--out", str(tmp_path))
    assert res.exit_code == 0, res.stderr
    assert any(e["prompt"][2].get("6", {}).get("inputs", {}).get("text") == "@home, a cat" for e in emulator.history.values())
    assert uploads(sandbox, sandbox.std.name) == 0


def test_submit_puts_an_input_on_the_mount_once(sandbox: Sandbox, tmp_path: Path) -> None:
    """API edition: ``input/`` on the OSS mount (ComfyUI's data dir), through the upload engine,
    which HEADs the object first; the queued jobs name it and ComfyUI finds it."""
    flow = load_image_workflow(tmp_path)
    image, name = photo(tmp_path)
    key = f"{sandbox.api.prefix}input/{name}"
    journal = tmp_path / "j.jsonl"
    for n in range(2):
        res = sandbox.api.cli("-o", "json", "submit", str(flow), "--input", f"10.image={image}", "--count", "2",
                              "--journal", str(journal))
        assert res.exit_code == 0, res.stderr
        assert res.json()["data"]["inputs"][0]["uploaded"] is (n == 0), res.stdout
    puts = [r for r in sandbox.stack.oss.recorder.all() if r.method == "PUT" and r.path.endswith(f"/{key}")]
    assert len(puts) == 1, [(r.method, r.path) for r in sandbox.stack.oss.recorder.all()]
    assert sandbox.stack.oss.object_bytes(BUCKET, key) == image.read_bytes()
    res = sandbox.api.cli("-o", "json", "results", "--follow", "--journal", str(journal))
    assert res.exit_code == 0, res.stdout + res.stderr
    written = res.json()["data"]["written"]
    assert len(written) == 4 and all(json.loads(Path(w["file"]).read_text())["ok"] for w in written), written


def test_submit_without_the_spec_storage_refuses_input_files(sandbox: Sandbox, tmp_path: Path) -> None:
    flow = load_image_workflow(tmp_path)
    image, _ = photo(tmp_path)
    spec = tmp_path / "nostorage.yaml"
    spec.write_text(sandbox.api.spec.read_text().replace("storage:", "unused_storage:", 1))
    res = sandbox.api.cli("submit", str(flow), "--input", f"10.image={image}", "--file", str(spec))
    assert res.exit_code in (2, 3), res.stderr
    assert sandbox.stack.eas.recorder.all() == [] and sandbox.stack.oss.recorder.all() == []
