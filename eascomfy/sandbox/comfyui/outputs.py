"""What ComfyUI's output nodes write: SaveImage, SaveAnimatedWEBP and VHS_VideoCombine make small
real files (``media``) under ``output/`` (or ``temp/``) on the mount, and return the node's UI
output. A prefix escaping the output folder fails the node.

Names: the PAI images name SaveImage outputs ``<prefix>_<unix-ts>_<uuid>_.png`` and
SaveAnimatedWEBP outputs ``<prefix>_<unix-ts>_.webp`` (the vendor guide's sample ``/history``
answer and sink messages: ``ComfyUI_1712645398_18dba34d-..._.png``, ``ComfyUI_1712645867_.webp``),
so two WEBP outputs of one prefix in the same second share a name, the later one replacing the
earlier; VHS_VideoCombine keeps its own counter there (``comfyUI_00002.mp4``). Upstream ComfyUI
counts (``<prefix>_00001_.png``): ``Fidelity.output_names`` picks ``pai`` or ``comfyui``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import time
import uuid
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


def _video_counter(names: Iterable[str], filename: str, ignore_case: bool = True) -> int:
    """VHS_VideoCombine's counter: one more than the highest ``{filename}_{n}<non-digits>.<ext>``.
    Current VHS matches case-insensitively; the PAI images' VHS does not (the guide's sample has
    ``comfyUI_00002.mp4`` beside ``ComfyUI_1712645867_.webp``, which would have counted from the
    timestamp), so the ``pai`` names match case-sensitively."""
    pattern = re.compile(f"{re.escape(filename)}_(\\d+)\\D*\\..+", re.IGNORECASE if ignore_case else 0)
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


def _stamp(mount: ServiceMount, folder: str, name: str, names: str) -> str:
    """The part after ``<prefix>_``: the unix time (PAI images) or ComfyUI's 5-digit counter."""
    if names == "pai":
        return str(int(time.time()))
    return f"{_image_counter(mount.children(folder), name):05}"


def save_image(mount: ServiceMount, run: Run, node_id: str, inputs: Json, names: str = "pai") -> Json:
    folder, name, subfolder = save_path(mount, str(inputs.get("filename_prefix", "ComfyUI")), "output")
    unique = f"_{uuid.uuid4()}" if names == "pai" else ""
    filename = f"{name}_{_stamp(mount, folder, name, names)}{unique}_.png"
    data = media.png(IMAGE_SIZE, IMAGE_SIZE, _colour(run.job.prompt_id, node_id), png_text(run))
    mount.write(folder + filename, data, "image/png")
    return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}


def save_webp(mount: ServiceMount, run: Run, node_id: str, inputs: Json, names: str = "pai") -> Json:
    folder, name, subfolder = save_path(mount, str(inputs.get("filename_prefix", "ComfyUI")), "output")
    filename = f"{name}_{_stamp(mount, folder, name, names)}_.webp"
    fps = float(inputs.get("fps") or 6.0)
    frames = [_colour(run.job.prompt_id, node_id, str(i)) for i in range(3)]
    mount.write(folder + filename, media.animated_webp(IMAGE_SIZE, IMAGE_SIZE, frames, int(1000 / fps)), "image/webp")
    return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}


def save_video(mount: ServiceMount, run: Run, node_id: str, inputs: Json, names: str = "pai") -> Json:
    fmt = str(inputs.get("format", "image/gif"))
    kind = _video_kind(fmt)
    where = "output" if inputs.get("save_output", True) else "temp"
    folder, name, subfolder = save_path(mount, str(inputs.get("filename_prefix", "AnimateDiff")), where)
    stem = f"{name}_{_video_counter(mount.children(folder), name, ignore_case=names != 'pai'):05}"
    frames = [_colour(run.job.prompt_id, node_id, str(i)) for i in range(3)]
    # Like VHS, keep the first frame as a PNG carrying the workflow, next to the video.
    first = media.png(IMAGE_SIZE, IMAGE_SIZE, frames[0], png_text(run))
    mount.write(f"{folder}{stem}.png", first, "image/png")
    mount.write(f"{folder}{stem}.{kind}", *_video(kind, frames, max(1, round(float(inputs.get("frame_rate") or 8)))))
    return {"gifs": [{"filename": f"{stem}.{kind}", "subfolder": subfolder, "type": where, "format": fmt}]}


SAVERS: dict[str, Callable[[ServiceMount, Run, str, Json, str], Json]] = {
    "SaveImage": save_image,
    "SaveAnimatedWEBP": save_webp,
    "VHS_VideoCombine": save_video,
}
