"""Files from the mount to a local folder: every object under a prefix (e.g. output/).

Object names come from the server, so they are data: each becomes a safe local name
(``local.files.local_names``): names escaping the folder are refused, names too long for the
filesystem are cut with a hash (extension kept), a file clashing with a folder of the same name is
renamed; every renaming is reported. A file that cannot be written here (a local file in the way,
a full disk) is reported and the pull goes on with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters.oss import LocalWriteError
from ..errors import EascomfyError, UsageError
from ..local.files import folder_problem, hashed_name, local_names
from ..ports import SILENT, Bucket, Progress
from .mount import OUTPUT, Mount


@dataclass
class Pulled:
    """What a pull wrote (name, size, local path), what it renamed, refused or could not write."""

    dest: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    renamed: list[dict[str, str]] = field(default_factory=list)  # name, path
    failed: list[dict[str, str]] = field(default_factory=list)  # name, reason

    def to_dict(self) -> dict[str, Any]:
        return {"pulled": self.files, "refused": self.refused, "renamed": self.renamed, "failed": self.failed}

    def check(self) -> None:
        """A refused name (someone wrote a hostile name) or a file not written is an error, after
        the rest was pulled."""
        problems = []
        if self.refused:
            problems.append(f"{len(self.refused)} output names were refused (they would escape {self.dest})")
        if self.failed:
            problems.append(f"{len(self.failed)} files could not be written into {self.dest}")
        if problems:
            raise EascomfyError("; ".join(problems))


def pull_outputs(mount: Mount, dest: Path, prefix: str = "", progress: Progress = SILENT) -> Pulled:
    """What ComfyUI wrote to output/ (names starting with ``prefix``) into ``dest``."""
    return pull(mount.bucket, mount.key(OUTPUT) + prefix, dest, progress)


def pull(bucket: Bucket, prefix: str, dest: Path, progress: Progress = SILENT) -> Pulled:
    """Download every object under ``prefix`` into ``dest`` under safe local names."""
    problem = folder_problem(dest)
    if problem is not None:
        raise UsageError(problem, "give a folder to download into", param="dest")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    result = Pulled(dest)
    listed = [(key[len(prefix):], key, size) for key, size, _, _ in bucket.list(prefix)]
    listed = [(name, key, size) for name, key, size in listed if name and not name.endswith("/")]
    names = local_names(name for name, _, _ in listed)
    for name in names.refused:
        progress.warn(f"refused {name!r}: it would be written outside {dest}")
        result.refused.append(name)
    for name, key, size in listed:
        if name not in names.paths:
            continue
        relative = names.paths[name]
        target = dest / relative
        if target.is_dir():  # a folder left here by an earlier pull
            relative = str(Path(relative).with_name(hashed_name(target.name, key=name)))
            target = dest / relative
        if root not in target.resolve().parents:  # a link in dest pointing elsewhere
            progress.warn(f"refused {name!r}: it would be written outside {dest}")
            result.refused.append(name)
            continue
        if relative != name:
            progress.warn(f"renamed {name!r} to {relative!r}")
            result.renamed.append({"name": name, "path": relative})
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            bucket.download(key, str(target))
        except (OSError, LocalWriteError) as exc:
            reason = exc.message if isinstance(exc, LocalWriteError) else f"cannot write {target}: {exc.strerror or exc}"
            progress.warn(f"{name}: {reason}")
            result.failed.append({"name": name, "reason": reason})
            continue
        result.files.append({"name": name, "size": size, "path": str(target)})
    return result
