"""Names from the server are data (issue 11 items 10 and 18, storage part): ``outputs pull`` must
turn any key into a safe local name (too long: cut, with a hash, extension kept; a file and a
folder of the same name: the file renamed), report each renaming and never crash; an OSS URI with
``.``/``..`` segments is refused wherever one is parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from eascomfy.errors import UsageError
from eascomfy.storage.mount import parse_oss_uri
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, write_spec


def test_long_names_and_file_folder_clashes_are_renamed_not_fatal(oss, env, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "o")
    long_name = "ComfyUI_" + "x" * 292 + ".png"  # 300 characters: over NAME_MAX (255 bytes)
    wide = "画" * 100 + ".webp"  # 100 characters but 300 bytes in UTF-8
    objects = {
        long_name: b"long",
        wide: b"wide",
        "dir": b"a file named like the folder",
        "dir/x.png": b"inside",
        "plain.png": b"plain",
        f"deep/{long_name}": b"deep long",
    }
    for name, data in objects.items():
        oss.put_object(BUCKET, f"o/output/{name}", data)
    dest = tmp_path / "dl"
    result = run_cli("outputs", "pull", "--dest", str(dest), "-f", str(spec), "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    data = result.json()["data"]
    assert data["refused"] == []
    by_name = {p["name"]: Path(p["path"]) for p in data["pulled"]}
    assert set(by_name) == set(objects)
    for name, blob in objects.items():  # every object landed, under dest, with its bytes
        path = by_name[name]
        assert path.read_bytes() == blob and dest.resolve() in path.resolve().parents
        assert all(len(part.encode()) <= 255 for part in path.relative_to(dest).parts)
    assert by_name["plain.png"] == dest / "plain.png" and by_name["dir/x.png"] == dest / "dir" / "x.png"
    for name in (long_name, wide, f"deep/{long_name}"):
        assert by_name[name].suffix == Path(name).suffix  # the extension is kept
    assert by_name[long_name].name.startswith("ComfyUI_xxx")
    assert by_name["dir"].parent == dest and by_name["dir"].name.startswith("dir~")
    renamed = {r["name"]: r["path"] for r in data["renamed"]}
    assert set(renamed) == {long_name, wide, "dir", f"deep/{long_name}"}
    text = run_cli("outputs", "pull", "--dest", str(tmp_path / "dl2"), "-f", str(spec))
    assert text.exit_code == 0, text.stderr
    assert "4 renamed" in text.stdout and "renamed 'dir' to " in text.stderr


def test_a_local_file_in_the_way_is_reported_not_a_crash(oss, env, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "w")
    oss.put_object(BUCKET, "w/output/sub/a.png", b"a")
    oss.put_object(BUCKET, "w/output/b.png", b"b")
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "sub").write_text("a file where a folder must go")
    result = run_cli("outputs", "pull", "--dest", str(dest), "-f", str(spec), "-o", "json")
    assert result.exit_code == 1, result.stdout + result.stderr
    data = result.json()
    assert "internal error" not in data["error"]["message"]
    assert [p["name"] for p in data["data"]["pulled"]] == ["b.png"]
    assert [f["name"] for f in data["data"]["failed"]] == ["sub/a.png"]
    assert (dest / "b.png").read_bytes() == b"b"


@pytest.mark.parametrize("uri", ["oss://bkt/../x/", "oss://bkt/a/../../x/", "oss://bkt/./x/", "oss://bkt/a//b/",
                                 "oss://bkt//x/", "oss://bkt/.."])
def test_dot_segments_in_oss_uris_are_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        parse_oss_uri(uri)
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text(f"name: comfy_store\nregion: cn-hangzhou\nedition: api\nstorage:\n  oss: {uri}\n")
    result = run_cli("validate", "-f", str(spec))
    assert result.exit_code == 3, result.stdout + result.stderr
    assert "storage.oss" in result.stderr


def test_ordinary_oss_uris_still_parse() -> None:
    assert parse_oss_uri("oss://bkt/a/b/") == ("bkt", "a/b/")
    assert parse_oss_uri("oss://bkt/..a/b.c/") == ("bkt", "..a/b.c/")
    assert parse_oss_uri("oss://bkt") == ("bkt", "")
    assert parse_oss_uri("oss://bkt/") == ("bkt", "")
