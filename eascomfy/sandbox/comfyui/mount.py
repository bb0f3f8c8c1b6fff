"""ComfyUI's data dir for one service: the service's OSS mount on the OSS sandbox (or, without
one, its own "local disk"), what models and custom nodes are on it, and the ``/object_info`` a
ComfyUI with that data dir answers (``data/object_info.json`` adjusted to the mount).
"""

from __future__ import annotations

import json
import mimetypes
import posixpath
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from ..oss.sandbox import OssSandbox
    from ..oss.store import ObjectReader

DATA = Path(__file__).with_name("data")
DEFAULT_MOUNT_PATH = "/code/data-oss"
LOCAL_BUCKET = "eas-sandbox-local"  # a service without an OSS mount keeps its files here, per service
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")
MODEL_FOLDERS: dict[str, tuple[str, ...]] = {  # combo input -> folders under models/ it lists
    "ckpt_name": ("checkpoints",),
    "lora_name": ("loras",),
    "vae_name": ("vae",),
    "control_net_name": ("controlnet",),
    "unet_name": ("diffusion_models", "unet"),
}
CUSTOM_NODE_PACKS: dict[str, tuple[str, ...]] = {  # folder in custom_nodes/ (lower case) -> classes
    "comfyui-videohelpersuite": ("VHS_VideoCombine",),
}
KNOWN_MODEL_FOLDERS = ("checkpoints", "clip_vision", "controlnet", "diffusion_models", "embeddings", "loras",
                       "text_encoders", "unet", "upscale_models", "vae")


Json = dict[str, Any]


@dataclass(frozen=True)
class ServiceMount:
    """ComfyUI's ``--data-dir``: a bucket and prefix on the OSS sandbox, mounted at ``path``."""

    oss: OssSandbox = field(compare=False, repr=False)
    bucket: str
    prefix: str  # "" or "some/prefix/"
    path: str = DEFAULT_MOUNT_PATH

    @classmethod
    def of_service(cls, oss: OssSandbox, service: str, config: Json) -> "ServiceMount":
        """The first OSS entry of ``storage``; without one, the service's own "local disk"."""
        for entry in config.get("storage") or []:
            uri = str(((entry or {}).get("oss") or {}).get("path", ""))
            if uri.startswith("oss://"):
                bucket, _, prefix = uri[len("oss://"):].partition("/")
                prefix = prefix.strip("/")
                return cls(oss, bucket, prefix + "/" if prefix else "", str(entry.get("mount_path") or DEFAULT_MOUNT_PATH))
        return cls(oss, LOCAL_BUCKET, f"{service}/", "/code/ComfyUI")

    def keys(self, folder: str) -> list[str]:
        """Keys under ``folder`` (relative to the mount, ending in ``/``), relative to it."""
        base = self.prefix + folder
        return [key[len(base):] for key in self.oss.list_keys(self.bucket, base) if len(key) > len(base)]

    def children(self, folder: str) -> list[str]:
        return [name for name in self.keys(folder) if "/" not in name]

    def models(self, folders: Iterable[str]) -> list[str]:
        return sorted({name for f in folders for name in self.keys(f"models/{f}/") if name.lower().endswith(MODEL_EXTENSIONS)})

    def input_images(self) -> list[str]:
        """LoadImage's list (ComfyUI ``nodes.py`` ``LoadImage.INPUT_TYPES``): the files directly in
        ``input/`` whose type is an image (``folder_paths.filter_files_content_types(files, ["image"])``)."""
        return sorted(name for name in self.children("input/")
                      if (mimetypes.guess_type(name)[0] or "").startswith("image/"))

    def has_input(self, name: str) -> bool:
        """``folder_paths.exists_annotated_filepath``: ``name`` (``sub/a.png``, ``a.png [output]``)
        exists under its folder (``input/`` unless annotated) and does not leave it."""
        kind = "input"
        for annotation in ("input", "temp", "output"):
            if name.endswith(f" [{annotation}]"):
                name, kind = name[: -len(annotation) - 3], annotation
        path = posixpath.normpath(posixpath.join(kind, name))
        if name.startswith("/") or posixpath.commonpath([kind, path]) != kind:
            return False
        reader = self.open(path)
        if reader is None:
            return False
        reader.close()
        return True

    def custom_node_packs(self) -> dict[str, str]:
        """Installed packs: lower-case name -> folder (or ``name.py`` module) in ``custom_nodes/``."""
        packs: dict[str, str] = {}
        for key in self.keys("custom_nodes/"):
            name, slash, _ = key.partition("/")
            if not slash:
                if not name.endswith(".py"):
                    continue
                name = name[:-3]
            if not name.endswith(".disabled") and name != "__pycache__":
                packs.setdefault(name.lower(), name)
        return packs

    def open(self, relative: str) -> ObjectReader | None:
        return self.oss.store.open(self.bucket, self.prefix + relative)

    def write(self, relative: str, data: bytes, content_type: str) -> None:
        if self.oss.store.bucket(self.bucket) is None:  # mounting a missing bucket: the first write creates it
            self.oss.create_bucket(self.bucket)
        self.oss.put_object(self.bucket, self.prefix + relative, data, content_type)


@lru_cache(maxsize=1)
def _object_info_text() -> str:
    return (DATA / "object_info.json").read_text(encoding="utf-8")


def object_info_for(mount: ServiceMount) -> Json:
    """``GET /object_info`` for what is on ``mount``: model combos and custom node classes."""
    info: Json = json.loads(_object_info_text())
    packs = mount.custom_node_packs()
    for pack, classes in CUSTOM_NODE_PACKS.items():
        for class_type in classes:
            if pack in packs and class_type in info:
                info[class_type]["python_module"] = f"custom_nodes.{packs[pack]}"
            else:
                info.pop(class_type, None)
    for node in info.values():
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                if name in MODEL_FOLDERS and spec and isinstance(spec[0], list):
                    spec[0] = mount.models(MODEL_FOLDERS[name])
    if "LoadImage" in info:
        info["LoadImage"]["input"]["required"]["image"][0] = mount.input_images()
    return info
