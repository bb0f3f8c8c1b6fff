"""ComfyUI workflows as data: read an API-format workflow, refuse the UI format, and find the model
files it references and the folder each belongs in; check its graph (links, cycles), apply
``--set`` overrides, check it against a ComfyUI ``/object_info`` or what is on the mount. ComfyUI's
answers are read in ``comfy_answers``. Pure: no network, no SDK.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import SpecError, UsageError
from .validate import did_you_mean
from .yamlio import not_regular

Workflow = dict[str, dict[str, Any]]

# Loader input name -> folder under models/ (ComfyUI's folder_paths names; `styles` as the PAI
# guide says for the style model loader). Class-specific names win over the plain input name.
MODEL_INPUTS = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "style_model_name": "styles",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "ipadapter_file": "ipadapter",
}
CLASS_INPUTS = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
}
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


@dataclass(frozen=True)
class ModelRef:
    node: str
    class_type: str
    title: str
    input: str
    filename: str
    kind: str


MAX_WORKFLOW_BYTES = 64 << 20  # far above any real workflow; /dev/zero is not read for ever
MAX_DEPTH = 64  # nesting of an input value: ComfyUI's are a few levels deep at most


def load_workflow(path: Path) -> dict[str, dict[str, Any]]:
    """An API-format workflow (node id -> node); the UI format is refused with what to do. A path
    that is not a readable file is a usage error; content that is not a workflow (not JSON, too
    big, nested too deep) a ``SpecError``."""
    if (kind := not_regular(path)) is not None:
        raise UsageError(f"{path}: is {kind}, not a workflow file", "give an API-format workflow file (.json)")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_WORKFLOW_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a workflow file", "give an API-format workflow file (.json)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_WORKFLOW_BYTES:
        raise SpecError(f"{path}: larger than {MAX_WORKFLOW_BYTES >> 20} MiB: not a workflow")
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a workflow") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from None
    return parse_workflow(data, str(path))


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/mappings more than ``limit`` deep (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def parse_workflow(data: Any, source: str) -> dict[str, dict[str, Any]]:
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise SpecError(
            f"{source}: this is a UI-format workflow (it has nodes and links), which /prompt cannot run",
            hint="in the ComfyUI WebUI use Workflow > Export (API) and pass that file",
        )
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]  # an already wrapped synchronous body
    if not isinstance(data, dict) or not data:
        raise SpecError(f"{source}: expected an API-format workflow (a mapping of node ids to nodes)")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise SpecError(f"{source}: node {node_id!r} has no class_type; expected an API-format workflow")
        if not isinstance(node.get("inputs", {}), dict):
            raise SpecError(f"{source}: node {node_id!r}: inputs must be a mapping")
        if _depth_over(node, MAX_DEPTH):
            raise SpecError(f"{source}: node {node_id!r} is nested more than {MAX_DEPTH} levels deep: not a workflow")
    return data


def title(node: dict[str, Any]) -> str:
    return str((node.get("_meta") or {}).get("title") or node.get("class_type"))


def model_refs(workflow: dict[str, dict[str, Any]]) -> list[ModelRef]:
    """Every model file a workflow's loaders name, with the models/ folder it must be in."""
    refs = []
    for node_id, node in workflow.items():
        cls = node["class_type"]
        for name, value in (node.get("inputs") or {}).items():
            if not isinstance(value, str):
                continue
            kind = model_kind(cls, name, value)
            if kind:
                refs.append(ModelRef(str(node_id), cls, title(node), name, value, kind))
    return refs


def kind_for(workflow: dict[str, dict[str, Any]], filename: str) -> str | None:
    """The models/ folder a workflow expects ``filename`` in, or None if it does not name it."""
    kinds = {r.kind for r in model_refs(workflow) if Path(r.filename).name == filename}
    if len(kinds) > 1:
        raise UsageError(f"{filename} is used as {' and '.join(sorted(kinds))} in the workflow", "name the model kind", param="kind")
    return kinds.pop() if kinds else None


# -- problems ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow: where (node id, title), what, and what to do.
    ``severity`` is ``error`` or ``unverified`` (could not be checked: reported, not fatal)."""

    node: str | None
    title: str | None
    message: str
    hint: str | None = None
    code: str = "error"
    input: str | None = None
    severity: str = "error"

    def line(self) -> str:
        where = f"node {self.node} ({self.title})" if self.node is not None else "workflow"
        if self.input:
            where += f" input {self.input!r}"
        return f"{where}: {self.message}" + (f" ({self.hint})" if self.hint else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _problem(workflow: Workflow, node: str | None, message: str, **kw: Any) -> Problem:
    return Problem(node, title(workflow[node]) if node in workflow else None, message, **kw)


# -- the graph ---------------------------------------------------------------------------------------
def is_link(value: Any) -> bool:
    """An API-format input that is a link: ``[source node id, output index]``."""
    return isinstance(value, list)


def _link_parts(value: list[Any]) -> tuple[str, int] | None:
    if len(value) != 2 or not isinstance(value[0], (str, int)) or isinstance(value[0], bool):
        return None
    if not isinstance(value[1], int) or isinstance(value[1], bool) or value[1] < 0:
        return None
    return str(value[0]), value[1]


def _links(workflow: Workflow) -> dict[str, list[str]]:
    """Node id -> the ids of the nodes its inputs link to (well-formed links to present nodes)."""
    found: dict[str, list[str]] = {}
    for node_id, node in workflow.items():
        for value in (node.get("inputs") or {}).values():
            parts = _link_parts(value) if is_link(value) else None
            if parts is not None and parts[0] in workflow:
                found.setdefault(node_id, []).append(parts[0])
    return found


def cycles(workflow: Workflow) -> list[list[str]]:
    """Each dependency cycle once, as the node ids along it (first id repeated at the end): a node
    whose inputs lead back to itself. ComfyUI refuses such a prompt. Iterative: any graph size."""
    links, state, found, seen = _links(workflow), dict.fromkeys(workflow, 0), [], set()
    for root in workflow:
        if state[root]:
            continue
        path, stack = [root], [iter(links.get(root, ()))]
        state[root] = 1  # on the path
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2  # done
                stack.pop()
            elif state[nxt] == 1:
                loop = path[path.index(nxt):]
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    found.append(loop + [nxt])
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(links.get(nxt, ())))
    return found


def graph_problems(workflow: Workflow, info: Mapping[str, Any] | None = None) -> list[Problem]:
    """Malformed links, links to missing nodes, dependency cycles, and (with ``info``, ComfyUI's
    ``/object_info``) links to outputs a node does not have."""
    problems = []
    for loop in cycles(workflow):
        problems.append(_problem(workflow, loop[0], f"dependency cycle {' -> '.join(loop)}: its inputs lead back to "
                                 "itself, which ComfyUI refuses", code="cycle",
                                 hint="break the loop in the WebUI and export again"))
    for node_id, node in workflow.items():
        for name, value in (node.get("inputs") or {}).items():
            if not is_link(value):
                continue
            parts = _link_parts(value)
            if parts is None:
                problems.append(_problem(workflow, node_id, f"malformed link {value!r}", code="bad_link", input=name,
                                         hint="a link is [source node id, output index]; re-export the workflow"))
                continue
            source, slot = parts
            if source not in workflow:
                problems.append(_problem(workflow, node_id, f"links to node {source}, which is not in the workflow",
                                         code="bad_link", input=name, hint=did_you_mean(source, workflow)
                                         or "re-export the workflow with Workflow > Export (API)"))
                continue
            outputs = ((info or {}).get(workflow[source]["class_type"]) or {}).get("output")
            if isinstance(outputs, list) and slot >= len(outputs):
                problems.append(_problem(
                    workflow, node_id,
                    f"links to output {slot} of node {source} ({workflow[source]['class_type']}), "
                    f"which has {len(outputs)} output{'s' if len(outputs) != 1 else ''}",
                    code="bad_link", input=name, hint="reconnect the input in the WebUI and export again"))
    return problems


# -- --set NODE.inputs.FIELD=VALUE -------------------------------------------------------------------
@dataclass(frozen=True)
class Override:
    node: str  # a node id or a node title
    field: str
    value: Any
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> "Override":
        """``NODE.inputs.FIELD=VALUE``; VALUE is JSON (``20``, ``1.5``, ``true``, ``"a b"``,
        ``[1, 2]``), else plain text."""
        target, eq, raw = text.partition("=")
        node, sep, field = target.partition(".inputs.")
        if not eq or not sep or not node or not field:
            raise UsageError(f"{text!r}: expected NODE.inputs.FIELD=VALUE", 'e.g. 3.inputs.seed=42 or 6.inputs.text="a cat"', param="overrides")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        return cls(node.strip(), field.strip(), value, text)

    @classmethod
    def of(cls, item: Any) -> "list[Override]":
        """Overrides from a matrix entry: a mapping ``{"3.inputs.seed": 1}`` or a list of
        ``NODE.inputs.FIELD=VALUE`` strings."""
        if isinstance(item, Mapping):
            found = []
            for key, value in item.items():
                node, sep, field = str(key).partition(".inputs.")
                if not sep:
                    raise UsageError(f"matrix key {key!r}: expected NODE.inputs.FIELD", "e.g. {\"3.inputs.seed\": 42}")
                found.append(cls(node, field, value, f"{key}={json.dumps(value)}"))
            return found
        if isinstance(item, list) and all(isinstance(x, str) for x in item):
            return [cls.parse(x) for x in item]
        if isinstance(item, str):
            return [cls.parse(item)]
        raise UsageError(f"matrix entry {item!r}: expected a mapping of NODE.inputs.FIELD to values, or a list of NODE.inputs.FIELD=VALUE")


def resolve_node(workflow: Workflow, ref: str) -> str:
    """A node id, or the id of the one node with that title."""
    if ref in workflow:
        return ref
    titled = [node_id for node_id, node in workflow.items() if title(node) == ref]
    if len(titled) == 1:
        return titled[0]
    if len(titled) > 1:
        raise UsageError(f"{len(titled)} nodes are titled {ref!r} (nodes {', '.join(titled)})", "use the node id", param="overrides")
    choices = list(workflow) + [title(n) for n in workflow.values()]
    listed = ", ".join(f"{i} ({title(n)})" for i, n in workflow.items())
    raise UsageError(f"no node {ref!r} in the workflow; nodes: {listed}", did_you_mean(ref, choices), param="overrides")


def apply_overrides(workflow: Workflow, overrides: Iterable[Override]) -> Workflow:
    """A copy of ``workflow`` with the overrides applied; unknown nodes or inputs are refused."""
    result = copy.deepcopy(workflow)
    for o in overrides:
        node_id = resolve_node(result, o.node)
        inputs = result[node_id].setdefault("inputs", {})
        if o.field not in inputs:
            known = ", ".join(inputs) or "none"
            raise UsageError(
                f"{o.text or o.field}: node {node_id} ({title(result[node_id])}) has no input {o.field!r}; inputs: {known}",
                did_you_mean(o.field, inputs),
                param="overrides",
            )
        inputs[o.field] = o.value
    return result


# -- input files: --input NODE.FIELD=FILE, and @FILE as a --set value ---------------------------------
@dataclass(frozen=True)
class InputRef:
    """A local file for one node input, as the user named it; ``param`` is the option it came from."""

    node: str
    field: str
    path: str
    text: str
    param: str = "inputs"

    @classmethod
    def parse(cls, text: str) -> "InputRef":
        """``NODE.FIELD=FILE`` (``NODE.inputs.FIELD=FILE`` too); NODE is a node id or title."""
        target, eq, path = text.partition("=")
        node, sep, field = target.partition(".inputs.")
        if not sep:
            node, _, field = target.rpartition(".")
        if not eq or not node.strip() or not field.strip() or not path:
            raise UsageError(f"{text!r}: expected NODE.INPUT=FILE", "e.g. 10.image=photo.png", param="inputs")
        return cls(node.strip(), field.strip(), path, text)


def split_file_sets(sets: Iterable[str]) -> tuple[list[str], list[InputRef]]:
    """The ``--set`` items whose VALUE is ``@FILE`` (a local file to upload) apart from the others;
    ``@@`` at the start of a value sends a literal ``@``."""
    plain: list[str] = []
    files: list[InputRef] = []
    for text in sets:
        target, eq, raw = text.partition("=")
        if eq and raw.startswith("@@"):
            plain.append(f"{target}={raw[1:]}")
        elif eq and raw.startswith("@") and ".inputs." in target:
            node, _, field = target.partition(".inputs.")
            if not raw[1:]:
                raise UsageError(f"{text!r}: no file after @", "e.g. 10.inputs.image=@photo.png", param="overrides")
            files.append(InputRef(node.strip(), field.strip(), raw[1:], text, "overrides"))
        else:
            plain.append(text)
    return plain, files


def resolve_input(workflow: Workflow, ref: InputRef) -> str:
    """The id of the node ``ref`` names, refused (with "did you mean") when the node or its input
    is not in the workflow, or when that input is a link (it takes another node's output)."""
    try:
        node_id = resolve_node(workflow, ref.node)
    except UsageError as exc:
        raise UsageError(f"{ref.text}: {exc.message}", exc.hint, param=ref.param) from None
    inputs = workflow[node_id].get("inputs") or {}
    if ref.field not in inputs:
        raise UsageError(f"{ref.text}: node {node_id} ({title(workflow[node_id])}) has no input {ref.field!r}; "
                         f"inputs: {', '.join(inputs) or 'none'}", did_you_mean(ref.field, inputs), param=ref.param)
    if is_link(inputs[ref.field]):
        raise UsageError(f"{ref.text}: input {ref.field!r} of node {node_id} ({title(workflow[node_id])}) takes another "
                         "node's output, not a file", "name an input that takes a file name, such as LoadImage's image",
                         param=ref.param)
    return node_id


# -- against ComfyUI's /object_info --------------------------------------------------------------------
# Custom node packs and the node types they provide: shipped as data with its source
# (eascomfy/data/node-packs.json: the popular packs of ComfyUI-Manager's lists), read once.
@dataclass(frozen=True)
class NodePack:
    """A custom node pack: its folder in custom_nodes/, where it lives, what it provides."""

    folder: str
    url: str
    classes: frozenset[str]
    prefixes: tuple[str, ...] = ()
    pattern: str | None = None

    def provides(self, class_type: str) -> bool:
        return (class_type in self.classes or class_type.startswith(self.prefixes)
                or (self.pattern is not None and re.search(self.pattern, class_type) is not None))


@functools.lru_cache(maxsize=1)
def node_packs() -> tuple[NodePack, ...]:
    """The shipped pack table (``eascomfy/data/node-packs.json``)."""
    text = resources.files("eascomfy").joinpath("data", "node-packs.json").read_text(encoding="utf-8")
    return tuple(NodePack(p["folder"], p["url"], frozenset(p.get("classes", ())), tuple(p.get("prefixes", ())), p.get("pattern"))
                 for p in json.loads(text)["packs"])


# ComfyUI's own node classes (a subset: the common ones), which need no custom node folder.
BUILTIN_NODES = frozenset("""
KSampler KSamplerAdvanced CheckpointLoaderSimple CheckpointLoader ImageOnlyCheckpointLoader unCLIPCheckpointLoader
CLIPTextEncode CLIPSetLastLayer CLIPLoader DualCLIPLoader TripleCLIPLoader CLIPVisionLoader CLIPVisionEncode
VAEDecode VAEEncode VAEDecodeTiled VAEEncodeTiled VAEEncodeForInpaint VAELoader EmptyLatentImage LatentUpscale
LatentUpscaleBy LatentComposite LatentBlend LatentCrop LatentFromBatch RepeatLatentBatch SetLatentNoiseMask
SaveImage PreviewImage LoadImage LoadImageMask ImageScale ImageScaleBy ImageUpscaleWithModel UpscaleModelLoader
ImageInvert ImageBatch ImagePadForOutpaint ImageCrop EmptyImage ImageBlend ImageBlur ImageSharpen
LoraLoader LoraLoaderModelOnly ControlNetLoader DiffControlNetLoader ControlNetApply ControlNetApplyAdvanced
UNETLoader StyleModelLoader StyleModelApply GLIGENLoader GLIGENTextBoxApply ConditioningCombine
ConditioningAverage ConditioningConcat ConditioningSetArea ConditioningSetAreaPercentage ConditioningSetMask
ConditioningZeroOut ConditioningSetTimestepRange InpaintModelConditioning SVD_img2vid_Conditioning
VideoLinearCFGGuidance VideoTriangleCFGGuidance SaveAnimatedWEBP SaveAnimatedPNG ModelSamplingDiscrete
ModelSamplingSD3 ModelSamplingFlux FluxGuidance CFGGuider BasicGuider BasicScheduler KSamplerSelect
SamplerCustom SamplerCustomAdvanced RandomNoise EmptySD3LatentImage EmptyHunyuanLatentVideo PrimitiveNode
Note CLIPTextEncodeSDXL CLIPTextEncodeFlux FreeU FreeU_V2 RescaleCFG PerturbedAttentionGuidance
""".split())


def pack_for(class_type: str) -> NodePack | None:
    """The custom node pack that provides ``class_type``, if the table knows one: an exact class
    name first, then prefixes and patterns."""
    packs = node_packs()
    return next((p for p in packs if class_type in p.classes), None) or next((p for p in packs if p.provides(class_type)), None)


def _missing_type(workflow: Workflow, node_id: str) -> Problem:
    cls = workflow[node_id]["class_type"]
    pack = pack_for(cls)
    if pack:
        message = f"node type {cls} is not installed on the service (it comes from the custom node pack {pack.folder})"
        hint = f"eascomfy nodes add {pack.url}, then eascomfy restart"
    else:
        message = f"node type {cls} is not installed on the service (custom node pack missing)"
        hint = f"install the custom node pack that provides {cls} (eascomfy nodes add GIT_URL, or nodes push DIR), then eascomfy restart"
    return _problem(workflow, node_id, message, code="missing_node", hint=hint)


def _combo(spec: Any) -> list[Any] | None:
    """The allowed values of a combo input spec (old ``[[...], opts]`` and new ``["COMBO", {"options"}]``)."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"), list):
        return spec[1]["options"]
    return None


def model_kind(class_type: str, input_name: str, value: Any) -> str | None:
    """The models/ folder an input names a file of, if it is a model input."""
    kind = CLASS_INPUTS.get((class_type, input_name)) or MODEL_INPUTS.get(input_name)
    if kind is None and isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES) and input_name.endswith("_name"):
        kind = input_name[: -len("_name")] + "s"
    return kind


def _missing_model(workflow: Workflow, node_id: str, name: str, filename: str, kind: str, elsewhere: str | None = None) -> Problem:
    hint = f"eascomfy models push {filename} --kind {kind}"
    if elsewhere:
        hint = f"it is in models/{elsewhere}/; move it to models/{kind}/ or push it: {hint}"
    return _problem(workflow, node_id, f"model {filename!r} is not in models/{kind}/ on the mount", code="missing_model",
                    input=name, hint=hint)


def object_info_problems(workflow: Workflow, info: Mapping[str, Any]) -> list[Problem]:
    """What ComfyUI would refuse, from its ``/object_info``: unknown node types (a custom node pack
    not installed), combo values not in the list (a model not in its folder), required inputs
    missing, links to outputs a node does not have."""
    problems = []
    for node_id, node in workflow.items():
        cls = node["class_type"]
        if cls not in info:
            problems.append(_missing_type(workflow, node_id))
            continue
        inputs = node.get("inputs") or {}
        spec = (info[cls] or {}).get("input") or {}
        for section in ("required", "optional"):
            for name, input_spec in (spec.get(section) or {}).items():
                if name not in inputs:
                    if section == "required":
                        problems.append(_problem(workflow, node_id, "required input is missing", code="missing_input",
                                                 input=name, hint="re-export the workflow, or add it with --set"))
                    continue
                value = inputs[name]
                allowed = _combo(input_spec)
                if allowed is None or is_link(value) or value in allowed:
                    continue
                kind = model_kind(cls, name, value)
                if kind is not None:
                    problems.append(_missing_model(workflow, node_id, name, str(value), kind))
                else:
                    shown = ", ".join(map(str, allowed[:10])) + (" ..." if len(allowed) > 10 else "")
                    problems.append(_problem(workflow, node_id, f"{value!r} is not one of: {shown}", code="value_not_in_list",
                                             input=name, hint=did_you_mean(str(value), map(str, allowed))))
    return problems + graph_problems(workflow, info)


# -- against what is on the mount ----------------------------------------------------------------------
def mount_problems(workflow: Workflow, models: Mapping[str, set[str]], packs: set[str]) -> list[Problem]:
    """Models not in their ``models/<kind>/`` folder (``models``: kind -> file names there) and node
    types whose pack is not in ``custom_nodes/`` (``packs``: lower-case folder names). Types that
    are neither built in nor in the pack table are reported as unverified."""
    problems = []
    for ref in model_refs(workflow):
        if ref.filename in models.get(ref.kind, set()):
            continue
        elsewhere = next((k for k, names in sorted(models.items()) if ref.filename in names), None)
        problems.append(_missing_model(workflow, ref.node, ref.input, ref.filename, ref.kind, elsewhere))
    for node_id, node in workflow.items():
        cls = node["class_type"]
        if cls in BUILTIN_NODES:
            continue
        pack = pack_for(cls)
        if pack is None:
            problems.append(_problem(workflow, node_id, f"cannot verify node type {cls}: not a built-in node eascomfy knows, "
                                     "and no known custom node pack provides it", code="unverified", severity="unverified",
                                     hint="check it on a running Standard-edition service (eascomfy check with its endpoint)"))
        elif pack.folder.lower() not in packs:
            problems.append(_missing_type(workflow, node_id))
    return problems
