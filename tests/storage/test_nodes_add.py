"""``nodes add`` and ``nodes push`` through the CLI: packs from the git forge emulator (smart HTTP)
into the OSS emulator at a pinned commit, their requirements merged into the spec's pip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.sandbox.git import GitSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, write_spec

VHS = "org/ComfyUI-VideoHelperSuite"
VHS_FILES = {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n", "videohelpersuite/nodes.py": "# nodes\n",
             "requirements.txt": "opencv-python\nimageio-ffmpeg  # for the codecs\ntorch\n"}


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[GitSandbox]:
    with GitSandbox(tmp_path / "forge") as sandbox:
        yield sandbox


def add(spec: Path, *args: str):
    return run_cli("nodes", "add", *args, "-f", str(spec), "-o", "json")


def spec_with_comments(tmp_path: Path) -> Path:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text() + "# what EAS installs before start\npip:\n  - rich>=13  # mine\n")
    return spec


def keys(oss, prefix: str = "p/custom_nodes/") -> list[str]:
    return sorted(oss.list_keys(BUCKET, prefix))


def test_a_pack_from_git_lands_pinned_without_git_and_its_requirements_are_merged(oss, env, forge, tmp_path) -> None:
    url = forge.add_repo(VHS, VHS_FILES)
    commit = forge.head(VHS)
    spec = spec_with_comments(tmp_path)
    res = add(spec, url)
    assert res.exit_code == 0, res.stdout + res.stderr
    data = res.json()["data"]
    assert data["lock"] == {"ComfyUI-VideoHelperSuite": {"url": url, "commit": commit}}
    assert keys(oss) == ["p/custom_nodes/ComfyUI-VideoHelperSuite/__init__.py",
                         "p/custom_nodes/ComfyUI-VideoHelperSuite/requirements.txt",
                         "p/custom_nodes/ComfyUI-VideoHelperSuite/videohelpersuite/nodes.py"]
    assert oss.object_bytes(BUCKET, "p/custom_nodes/ComfyUI-VideoHelperSuite/__init__.py") == b"NODE_CLASS_MAPPINGS = {}\n"
    assert not any("/.git" in k for k in oss.list_keys(BUCKET, "p/"))
    assert {r.action for r in forge.requests()} == {"InfoRefs", "UploadPack"}  # a real clone over smart HTTP
    text = spec.read_text()
    assert "# what EAS installs before start\n" in text and "  - rich>=13  # mine\n" in text  # comments kept
    assert "  - opencv-python  # nodes: ComfyUI-VideoHelperSuite\n" in text
    assert "  - imageio-ffmpeg  # nodes: ComfyUI-VideoHelperSuite\n" in text
    assert "torch" not in text.split("pip:")[1].split("nodes:")[0]  # the image's torch stays
    assert f"nodes:\n  - {{git: \"{url}\", rev: {commit}}}\n" in text
    check = run_cli("validate", "-f", str(spec))
    assert check.exit_code == 0, check.stdout + check.stderr
    # the spec alone reproduces it: nothing changes, nothing is fetched twice into the spec
    again = add(spec)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert all(f["skipped"] for f in again.json()["data"]["files"])
    assert spec.read_text() == text


def test_the_pinned_commit_is_recorded_in_the_lockfile_and_sync_keeps_it(oss, env, forge, tmp_path) -> None:
    url = forge.add_repo(VHS, VHS_FILES)
    commit = forge.head(VHS)
    spec = write_spec(tmp_path)
    res = add(spec, url)
    assert res.exit_code == 0, res.stdout + res.stderr
    lockfile = Path(res.json()["data"]["lockfile"])
    assert lockfile == spec.with_suffix(".lock")

    def pack() -> dict:
        (section,) = json.loads(lockfile.read_text())["services"].values()
        (entry,) = section["nodes"]
        return entry

    assert (pack()["name"], pack()["url"], pack()["commit"]) == ("ComfyUI-VideoHelperSuite", url, commit)
    synced = run_cli("storage", "sync", "-f", str(spec), "-o", "json")
    assert synced.exit_code == 0, synced.stdout + synced.stderr
    assert (pack()["url"], pack()["commit"]) == (url, commit) and pack()["tree"]  # the sync adds the folder's hash
    no_write = run_cli("nodes", "add", url, "--no-write", "-f", str(spec), "-o", "json")
    assert no_write.exit_code == 0 and no_write.json()["data"]["lockfile"] is None


@pytest.mark.parametrize("kind", ["tag", "branch", "sha"])
def test_rev_names_a_tag_a_branch_or_a_commit(oss, env, forge, tmp_path, kind) -> None:
    url = forge.add_repo(VHS, VHS_FILES)
    first = forge.tag(VHS, "v1.0")
    dev = forge.commit(VHS, {"dev.py": "# dev only\n"}, branch="dev")
    forge.commit(VHS, {"later.py": "# after v1.0\n"})
    rev, commit = {"tag": ("v1.0", first), "branch": ("dev", dev), "sha": (first, first)}[kind]
    spec = write_spec(tmp_path)
    res = add(spec, f"{url}@{rev}")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.json()["data"]["lock"]["ComfyUI-VideoHelperSuite"]["commit"] == commit
    names = {k.rsplit("/", 1)[-1] for k in keys(oss)}
    assert ("dev.py" in names) == (kind == "branch") and "later.py" not in names
    assert f"rev: {commit}}}" in spec.read_text()


def test_a_new_version_replaces_the_folder_and_its_requirements(oss, env, forge, tmp_path) -> None:
    url = forge.add_repo(VHS, VHS_FILES)
    old = forge.tag(VHS, "v1")
    new = forge.commit(VHS, {"requirements.txt": "opencv-python>=4.8\n"}, remove=("videohelpersuite/nodes.py",))
    spec = write_spec(tmp_path)
    assert add(spec, f"{url}@v1").exit_code == 0
    res = add(spec, url)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.json()["data"]["removed"] == ["custom_nodes/ComfyUI-VideoHelperSuite/videohelpersuite/nodes.py"]
    assert "p/custom_nodes/ComfyUI-VideoHelperSuite/videohelpersuite/nodes.py" not in keys(oss)
    text = spec.read_text()
    assert "opencv-python>=4.8  # nodes: ComfyUI-VideoHelperSuite" in text and "imageio-ffmpeg" not in text
    assert f"rev: {new}" in text and old not in text


def test_conflicting_packs_are_named_and_nothing_is_uploaded_or_written(oss, env, forge, tmp_path) -> None:
    a = forge.add_repo("org/PackA", {"__init__.py": "", "requirements.txt": "numpy<2\n"})
    b = forge.add_repo("org/PackB", {"__init__.py": "", "requirements.txt": "numpy>=2\n"})
    spec = spec_with_comments(tmp_path)
    before = spec.read_text()
    res = run_cli("nodes", "add", a, b, "-f", str(spec))
    assert res.exit_code == 2, res.stdout + res.stderr
    assert "numpy: PackA wants numpy<2, PackB wants numpy>=2" in res.stderr
    assert "Traceback" not in res.stderr
    assert oss.list_keys(BUCKET, "p/") == [] and spec.read_text() == before
    # one added earlier: the spec's note names it
    assert add(spec, a).exit_code == 0
    later = run_cli("nodes", "add", b, "-f", str(spec), "-o", "json")
    assert later.exit_code == 2
    assert later.json()["error"]["conflicts"] == [{"name": "numpy", "wants": [
        {"requirement": "numpy<2", "pack": "PackA"}, {"requirement": "numpy>=2", "pack": "PackB"}]}]
    assert keys(oss) == ["p/custom_nodes/PackA/__init__.py", "p/custom_nodes/PackA/requirements.txt"]
    # resolved: the user's own line wins over both
    spec.write_text(spec.read_text().replace("  - numpy<2  # nodes: PackA\n", "  - numpy>=2,<2.3\n"))
    ok = add(spec, b)
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "p/custom_nodes/PackB/__init__.py" in keys(oss)


def test_nodes_push_of_a_local_folder_merges_its_requirements_too(oss, env, tmp_path) -> None:
    pack = tmp_path / "ComfyUI-Local"
    (pack / ".git").mkdir(parents=True)
    (pack / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (pack / "__init__.py").write_text("")
    (pack / "requirements.txt").write_text("rich<13\n")
    spec = spec_with_comments(tmp_path)
    res = run_cli("nodes", "push", str(pack), "-f", str(spec))
    assert res.exit_code == 0, res.stdout + res.stderr  # rich>=13 is the spec's own: it wins, with a warning
    assert "rich: the spec's pip wants rich>=13, ComfyUI-Local wants rich<13" in res.stderr
    (pack / "requirements.txt").write_text("pyyaml==6.0.1\n")
    res = run_cli("nodes", "push", str(pack), "-f", str(spec))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "  - pyyaml==6.0.1  # nodes: ComfyUI-Local\n" in spec.read_text()
    assert keys(oss) == ["p/custom_nodes/ComfyUI-Local/__init__.py", "p/custom_nodes/ComfyUI-Local/requirements.txt"]


@pytest.mark.parametrize("args, expected", [
    (["not a url"], "not a git URL"),
    (["https://example.com/org/Pack@-bad"], "not a git revision: '-bad'"),
    (["https://example.com/org/Pack@v1 bad"], "not a git revision: 'v1 bad'"),
    (["http://user:tok_secret99@example.com/a b"], "not a git URL: 'http://user:***@example.com/a b'"),
    (["https://example.com/org/A.git", "https://example.com/other/A"], "two packs would go to custom_nodes/A/"),
])
def test_bad_sources_are_refused_offline(oss, env, forge, tmp_path, args, expected) -> None:
    res = run_cli("nodes", "add", *args, "-f", str(write_spec(tmp_path)))
    assert res.exit_code == 2, res.stdout + res.stderr
    assert expected in res.stderr and "Traceback" not in res.stderr
    assert oss.recorder.all() == [] and forge.requests() == []


def test_a_bad_nodes_entry_in_the_spec_is_refused_with_its_line(oss, env, forge, tmp_path) -> None:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text() + "nodes:\n  - git: https://example.com/org/Pack\n    revv: v1\n")
    res = run_cli("nodes", "add", "-f", str(spec))
    assert res.exit_code == 3, res.stdout + res.stderr
    assert "nodes[0]" in res.stderr and "rev" in res.stderr  # did you mean
    assert oss.recorder.all() == [] and forge.requests() == []


def test_an_unknown_revision_is_named(oss, env, forge, tmp_path) -> None:
    url = forge.add_repo(VHS, VHS_FILES)
    res = run_cli("nodes", "add", f"{url}@v9", "-f", str(write_spec(tmp_path)))
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "no commit, tag or branch 'v9'" in res.stderr and "Traceback" not in res.stderr
    assert oss.list_keys(BUCKET, "p/") == []


def test_a_token_in_the_url_is_never_printed_nor_recorded(oss, env, forge, tmp_path) -> None:
    forge.add_repo(VHS, VHS_FILES)
    secret_url = forge.url.replace("http://", "http://user:ghp_sandboxsecret123@") + f"/{VHS}.git"
    spec = write_spec(tmp_path)
    res = run_cli("--verbose", "nodes", "add", secret_url, "-f", str(spec), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "ghp_sandboxsecret123" not in res.stdout + res.stderr + spec.read_text()
    assert res.json()["data"]["lock"]["ComfyUI-VideoHelperSuite"]["url"] == forge.repo_url(VHS)


def test_without_git_installed_it_says_so(oss, env, tmp_path, monkeypatch) -> None:
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    res = run_cli("nodes", "add", "https://example.com/org/Pack", "-f", str(write_spec(tmp_path)))
    assert res.exit_code == 2, res.stdout + res.stderr
    assert "git is not installed" in res.stderr and "Traceback" not in res.stderr
    assert oss.recorder.all() == []


def test_a_spec_entry_with_a_name_goes_to_that_folder(oss, env, forge, tmp_path) -> None:
    url = forge.add_repo("org/comfyui-essentials-fork", {"__init__.py": "", "requirements.txt": "numba\n"})
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text() + f"nodes:\n  - git: {url}\n    rev: main\n    name: ComfyUI_essentials\n")
    res = add(spec)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert keys(oss) == ["p/custom_nodes/ComfyUI_essentials/__init__.py", "p/custom_nodes/ComfyUI_essentials/requirements.txt"]
    assert "  - numba  # nodes: ComfyUI_essentials\n" in spec.read_text()
    assert "rev: main\n" in spec.read_text()  # the spec's own entry is left as written


def test_a_failed_upload_writes_nothing_into_the_spec(oss, env, forge, tmp_path) -> None:
    url = forge.add_repo(VHS, VHS_FILES)
    spec = spec_with_comments(tmp_path)
    before = spec.read_text()
    oss.faults.add(kind="status", status=403, code="AccessDenied", action="PutObject", times=-1)
    res = run_cli("nodes", "add", url, "-f", str(spec))
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "AccessDenied" in res.stderr and "Traceback" not in res.stderr
    assert spec.read_text() == before  # neither pip: nor nodes: claims what is not on the mount
