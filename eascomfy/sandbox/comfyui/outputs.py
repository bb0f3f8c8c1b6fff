"""What ComfyUI's output nodes write: SaveImage, SaveAnimatedWEBP and VHS_VideoCombine make small
real files (``media``) named like ComfyUI's, under ``output/`` (or ``temp/``) on the mount, and
return the node's UI output. A prefix escaping the output folder fails the node.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from typing import Any, Callable, Iterable

from . import media
from .jobs import NodeFailure, Run
from .mount import ServiceMount

Json = dict[str, Any]
IMAGE_SIZE = 16  # outputs are IMAGE_SIZE x IMAGE_SIZE


def _colour(*seed: str) -> media.Rgb:
    digest = hashlib.sha256("/".join(seed).encode()).digest()
    return digest[0], digest[1], digest[2]


def _image_counter(names: Iterable[str], filename: str) -> int:
    """SaveImage's counter: one more than the highest ``{filename}_{n}_...`` in the folder."""
    highest = 0
    for name in names:
        head, rest = name[:len(filename) + 1], name[len(filename) + 1:]
        if head == filename + "_":
            digits = rest.split("_")[0]
            highest = max(highest, int(digits) if digits.isdigit() else 0)
    return highest + 1


def _video_counter(names: Iterable[str], filename: str) -> int:
    """VHS_VideoCombine's counter: one more than the highest ``{filename}_{n}<non-digits>.<ext>``."""
    pattern = re.compile(f"{re.escape(filename)}_(\\d+)\\D*\\..+", re.IGNORECASE)
    return max([int(m[1]) for m in map(pattern.fullmatch, names) if m] + [0]) + 1


def _video_kind(fmt: str) -> str:
    if fmt in ("image/gif", "video/ffmpeg-gif"):
        return "gif"
    if fmt == "image/webp":
        return "webp"
    if fmt.startswith("video/") and fmt.endswith("mp4"):
        return "mp4"
    raise NodeFailure(f"The eascomfy sandbox does not emulate the VHS_VideoCombine format {fmt!r}", "NotImplementedError")


def _video(kind: str, frames: list[media.Rgb], fps: int) -> tuple[bytes, str]:
    """The file VHS_VideoCombine writes for ``kind`` (see ``_video_kind``) and its content type."""
    if kind == "mp4":
        return media.mp4(IMAGE_SIZE, IMAGE_SIZE, frames, fps), "video/mp4"
    if kind == "webp":
        return media.animated_webp(IMAGE_SIZE, IMAGE_SIZE, frames, 1000 // fps), "image/webp"
    return media.gif(IMAGE_SIZE, IMAGE_SIZE, frames[0]), "image/gif"


def save_path(mount: ServiceMount, prefix: str, kind: str) -> tuple[str, str, str]:
    """ComfyUI's ``get_save_image_path``: (folder relative to the mount, file name stem, subfolder).
    A prefix that leaves the output folder fails the node with ComfyUI's message."""
    root = f"{mount.path}/{kind}"
    normal = posixpath.normpath(prefix)
    subfolder, name = posixpath.dirname(normal), posixpath.basename(normal)
    folder = posixpath.normpath(posixpath.join(root, subfolder))
    common = posixpath.commonpath([root, folder])
    if common != root:
        raise NodeFailure("**** ERROR: Saving image outside the output folder is not allowed."
                          f"\n full_output_folder: {folder}\n         output_dir: {root}"
                          f"\n         commonpath: {common}", "Exception")
    return posixpath.relpath(folder, mount.path) + "/", name, subfolder


def png_text(run: Run) -> dict[str, str]:
    text = {"prompt": json.dumps(run.job.prompt)}
    workflow = (run.job.extra_data.get("extra_pnginfo") or {}).get("workflow")
    if workflow is not None:
        text["workflow"] = json.dumps(workflow)
    return text


def save_image(mount: ServiceMount, run: Run, node_id: str, inputs: Json) -> Json:
    folder, name, subfolder = save_path(mount, str(inputs.get("filename_prefix", "ComfyUI")), "output")
    filename = f"{name}_{_image_counter(mount.children(folder), name):05}_.png"
    data = media.png(IMAGE_SIZE, IMAGE_SIZE, _colour(run.job.prompt_id, node_id), png_text(run))
    mount.write(folder + filename, data, "image/png")
    return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}


def save_webp(mount: ServiceMount, run: Run, node_id: str, inputs: Json) -> Json:
    folder, name, subfolder = save_path(mount, str(inputs.get("filename_prefix", "ComfyUI")), "output")
    filename = f"{name}_{_image_counter(mount.children(folder), name):05}_.webp"
    fps = float(inputs.get("fps") or 6.0)
    frames = [_colour(run.job.prompt_id, node_id, str(i)) for i in range(3)]
    mount.write(folder + filename, media.animated_webp(IMAGE_SIZE, IMAGE_SIZE, frames, int(1000 / fps)), "image/webp")
    return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}


def save_video(mount: ServiceMount, run: Run, node_id: str, inputs: Json) -> Json:
    fmt = str(inputs.get("format", "image/gif"))
    kind = _video_kind(fmt)
    where = "output" if inputs.get("save_output", True) else "temp"
    folder, name, subfolder = save_path(mount, str(inputs.get("filename_prefix", "AnimateDiff")), where)
    stem = f"{name}_{_video_counter(mount.children(folder), name):05}"
    frames = [_colour(run.job.prompt_id, node_id, str(i)) for i in range(3)]
    # Like VHS, keep the first frame as a PNG carrying the workflow, next to the video.
    first = media.png(IMAGE_SIZE, IMAGE_SIZE, frames[0], png_text(run))
    mount.write(f"{folder}{stem}.png", first, "image/png")
    mount.write(f"{folder}{stem}.{kind}", *_video(kind, frames, max(1, round(float(inputs.get("frame_rate") or 8)))))
    return {"gifs": [{"filename": f"{stem}.{kind}", "subfolder": subfolder, "type": where, "format": fmt}]}


SAVERS: dict[str, Callable[[ServiceMount, Run, str, Json], Json]] = {
    "SaveImage": save_image,
    "SaveAnimatedWEBP": save_webp,
    "VHS_VideoCombine": save_video,
}
