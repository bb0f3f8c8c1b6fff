"""The demo scenario: the whole eascomfy loop against an in-process sandbox (EAS, OSS, ComfyUI and
the EAS queue on loopback): init, storage init, models push, a models pull from the emulated Hugging
Face hub, nodes push, plan, deploy, update-image,
check, submit, results (outputs pulled from the mount), a synchronous run on a Standard-edition
service, signed-url and status. Costs nothing, reaches no cloud, takes a few seconds.

A library scenario, not a CLI concern: ``eascomfy demo`` prints what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ports import Progress

if TYPE_CHECKING:
    from .adapters.eas import Event, LiveService


@dataclass
class DemoResult:
    data: dict[str, Any]
    signed_url: str
    live: "LiveService"
    events: "list[Event]"
    region: str


def run_demo(progress: Progress, directory: Path | None = None) -> DemoResult:
    """Run the scenario; ``directory`` keeps the demo project (a temporary one otherwise)."""
    import contextlib
    import json
    import tempfile
    from importlib import resources

    from .control.deploy import deploy, plan_service
    from .control.lifecycle import status
    from .control.wait import Poll
    from .core.image import check_image_update, with_image_version
    from .adapters.credentials import AccessKey, credential_client
    from .adapters.eas import EasClient
    from .adapters.oss import OssClient
    from .core.spec import load_spec
    from .core.workflow import parse_workflow
    from .local.scaffold import init_spec
    from .sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
    from .sandbox.eas import Timings
    from .sandbox.stack import SandboxStack
    from .local.specfile import rewrite_image_version
    from .storage.mount import NODES, Mount, check_bucket, init_layout, model_path, node_files, parse_oss_uri
    from .storage.pull_source import plan_pulls, run_pulls
    from .storage.upload import CrcCache, MiB, Uploader
    from .workflows.check import check_workflow, errors_only, inventory
    from .workflows.journal import Journal
    from .workflows.queue import results, submit
    from .workflows.run import run
    from .workflows.target import Target

    steps = 14
    fast = Timings(creating=0.3, updating=0.3, ready=0.2, stopping=0.1, starting=0.2, deleting=0.1)
    poll = Poll(first=0.1, probe=0.1)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eascomfy-demo-")))
        work = directory or scratch / "project"
        sandbox = stack.enter_context(SandboxStack(scratch / "sandbox", timings=fast, job_seconds=0.1))
        progress.info(f"[0/{steps}] sandbox: EAS on {sandbox.eas.url}, OSS on {sandbox.oss.url} (nothing reaches the real cloud)")
        region = sandbox.region
        key = AccessKey(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET)
        client = EasClient(region, endpoint=sandbox.eas.url, credential=credential_client(key), log=progress.debug)
        path = init_spec(work, name="comfy_demo", region=region, edition="api",
                         oss="oss://eascomfy-demo/comfyui/", image_version="1.9", force=True)
        progress.info(f"[1/{steps}] init: wrote {path} (API edition, image 1.9)")
        spec = load_spec(path)
        bucket_name, prefix = parse_oss_uri(spec.data["storage"]["oss"])
        bucket = OssClient(bucket_name, region, key=key, endpoint=sandbox.oss.url)
        mount = Mount(bucket, prefix)
        check_bucket(bucket, region, create=True)
        created = init_layout(bucket, mount.prefix)
        progress.info(f"[2/{steps}] storage init: bucket {bucket.name} created, {len(created)} ComfyUI folders")
        # Stand-ins for the guide's models and custom node (the sandbox only checks they are there).
        models = work / "models"
        models.mkdir(parents=True, exist_ok=True)
        (models / "LandscapeBING_v10.safetensors").write_bytes(b"stand-in model\n" * 64)
        (models / "svd_xt.safetensors").write_bytes(bytes(range(256)) * (3 * 4096))  # 3 MiB: three 1 MiB parts
        vhs = work / "custom_nodes" / "ComfyUI-VideoHelperSuite"
        vhs.mkdir(parents=True, exist_ok=True)
        (vhs / "__init__.py").write_text("# stand-in for ComfyUI-VideoHelperSuite (VHS_VideoCombine)\n")
        uploader = Uploader(bucket, part_size=1 * MiB, workers=3, cache=CrcCache(scratch / "crc-cache.json"))
        pushed = uploader.push_many([(f, mount.key(model_path("checkpoints", f.name))) for f in sorted(models.iterdir())])
        listed = ", ".join(f"{mount.url(r.key)} ({r.parts} part{'s' if r.parts != 1 else ''})" for r in pushed)
        progress.info(f"[3/{steps}] models push: {listed}, CRC64 verified")
        # A model from where it lives: the sandbox's Hugging Face-shaped hub answers 302 to its CDN
        # with the file's SHA-256; the parts stream by ranged GETs into a multipart upload.
        sandbox.models.add_file("eascomfy-demo/upscalers", "4x_ESRGAN_demo.pth", bytes(range(256)) * (10 * 1024))
        pulls = plan_pulls(mount, ["hf://eascomfy-demo/upscalers/4x_ESRGAN_demo.pth"], hf=sandbox.models.url)
        pulled = run_pulls(uploader, mount, pulls, progress)
        progress.info(f"[4/{steps}] models pull: hf://eascomfy-demo/upscalers/4x_ESRGAN_demo.pth -> "
                      f"{mount.url(pulled[0].key)} ({pulled[0].parts} parts, SHA-256 and CRC64 verified, no local copy)")
        nodes = uploader.push_many([(f, mount.key(f"{NODES}{rel}")) for f, rel in node_files(vhs)])
        progress.info(f"[5/{steps}] nodes push: {vhs.name} ({len(nodes)} file) to custom_nodes/")
        progress.info(f"[6/{steps}] plan:")
        first_plan, _ = plan_service(spec, client)
        for line in first_plan.lines():
            progress.info(f"  {line}")
        progress.info(f"[7/{steps}] deploy:")
        created_result = deploy(spec, client, progress, timeout=30, poll=poll)
        progress.info(f"[8/{steps}] update-image 2.2:")
        check_image_update(spec, "2.2")
        updated = deploy(with_image_version(spec, "2.2"), client, progress, timeout=30, poll=poll)
        rewrite_image_version(path, "2.2")
        progress.info(f"  wrote image.version 2.2 to {path}")

        text = resources.files("eascomfy").joinpath("data", "seed-workflow.api.json").read_text(encoding="utf-8")
        workflow_file = work / "seed-workflow.api.json"
        workflow_file.write_text(text, encoding="utf-8")
        flow = parse_workflow(json.loads(text), str(workflow_file))
        problems = check_workflow(flow, mount=inventory(mount))
        progress.info(f"[9/{steps}] check {workflow_file.name}: {len(flow)} nodes, models and custom nodes on the mount: "
                 f"{len(errors_only(problems))} problems")
        for problem in problems:
            progress.info(f"  {problem.line()}")
        live = client.require(spec.name)
        target = Target(live.internet_endpoint, live.access_token, spec.name, spec.edition, spec)
        journal = Journal(work / "jobs.jsonl")
        with target.client(progress) as service:
            sent = submit(service, [(flow, [])], journal, progress, prefix="txt2img")
        progress.info(f"[10/{steps}] submit: task {sent.task_ids[0]} queued (POST /api_prompt), journal {journal.path}")
        outputs = work / "outputs"
        got = results(target, journal, progress, follow=True, mount=mount, download=outputs)
        journal.close()
        pulled = [f["path"] for r in got.written for f in r["files"]]
        progress.info(f"[11/{steps}] results: {len(got.written)} result from the sink, outputs pulled: "
                 + ", ".join(Path(p).name for p in pulled))

        std_path = init_spec(work / "standard", name="comfy_demo_std", region=region, edition="standard",
                             oss=spec.data["storage"]["oss"], image_version="2.2", force=True)
        std_spec = load_spec(std_path)
        progress.info(f"[12/{steps}] run on a Standard-edition service (same mount):")
        deploy(std_spec, client, progress, timeout=30, poll=poll)
        std_live = client.require(std_spec.name)
        with Target(std_live.internet_endpoint, std_live.access_token, std_spec.name).client(progress) as service:
            ran = run(service, flow, progress, out_dir=outputs / "run", timeout=60)
        progress.info(f"  prompt {ran.prompt_id}: {ran.status} in {ran.seconds:.1f} s, "
                 + ", ".join(Path(f["path"]).name for f in ran.files))
        progress.info(f"[13/{steps}] signed-url (printed on stdout at the end)")
        url = client.signed_url(spec.name, 3600)
        progress.info(f"[14/{steps}] status:")
        live, events = status(client, spec.name)
        data: dict[str, Any] = {
            "file": str(path),
            "service": spec.name,
            "deploy_seconds": round(created_result.seconds, 3),
            "update_seconds": round(updated.seconds, 3),
            "submitted": sent.task_ids,
            "results": [{"task_id": r["task_id"], "ok": r["ok"], "files": [f["path"] for f in r["files"]]}
                        for r in got.written],
            "run": ran.to_dict(),
            "status": live.to_dict(),
        }
        return DemoResult(data, url, live, events, region)



