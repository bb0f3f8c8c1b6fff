"""init writes a working environments block: the README's `validate --env prod` runs right after
`init` (issue 11, item 8)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_init_then_env_prod_validates_and_renders(tmp_path: Path) -> None:
    res = run_cli("init", str(tmp_path), "--name", "comfy_prod", "--region", "cn-shanghai", "--edition", "api",
                  "--oss", "oss://bucket/comfyui/")
    assert res.exit_code == 0, res.stderr
    res = run_cli("validate", "--env", "prod", cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert "environment prod" in res.stdout
    base = json.loads(run_cli("render", cwd=tmp_path).stdout)
    prod = json.loads(run_cli("render", "--env", "prod", cwd=tmp_path).stdout)
    assert (base["metadata"]["instance"], prod["metadata"]["instance"]) == (1, 2)
