"""The logic (and answers) of ComfyUI's ``execution.validate_prompt``: error types, messages and
``node_errors`` as ComfyUI returns them from ``POST /prompt``, and the order nodes run in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

Json = dict[str, Any]


def _node_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def error_info(kind: str, message: str, details: str = "", **extra: Any) -> Json:
    """One error as ComfyUI reports it: ``type``, ``message``, ``details`` and ``extra_info``."""
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def invalid_prompt(message: str, details: str = "") -> Json:
    return error_info("invalid_prompt", message, details)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


def _types_match(received: str, expected: Any) -> bool:
    if not isinstance(expected, str):  # a link into a combo input
        return True
    return "*" in (received, expected) or received == expected or received in expected.split(",")


def _literal_error(name: str, value: Any, spec: list[Any]) -> Json | None:
    kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    converter = _CONVERTERS.get(kind) if isinstance(kind, str) else None
    try:
        value = converter(value) if converter else value
    except (TypeError, ValueError) as exc:
        return error_info("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                      f"{name}, {value}, {exc}", input_name=name, input_config=spec, received_value=value,
                      exception_message=str(exc))
    if "min" in options and value < options["min"]:
        return error_info("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name,
                      input_name=name, input_config=spec, received_value=value)
    if "max" in options and value > options["max"]:
        return error_info("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name,
                      input_name=name, input_config=spec, received_value=value)
    if isinstance(kind, list) and value not in kind:
        listed = f"(list of length {len(kind)})" if len(kind) > 20 else str(kind)
        return error_info("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}",
                      input_name=name, input_config=spec if len(kind) <= 20 else None, received_value=value)
    return None


# Inputs whose node class defines VALIDATE_INPUTS taking them: ComfyUI's ``validate_inputs`` skips
# the combo check for such an input and calls the class's check instead (``execution.py``: "if x not
# in validate_function_inputs" guards the list check). LoadImage (``nodes.py``): "Invalid image
# file: {image}" unless ``folder_paths.exists_annotated_filepath(image)``.
CUSTOM_CHECKS: dict[tuple[str, str], str] = {("LoadImage", "image"): "Invalid image file: {}"}


class _Validator:
    """``validate_inputs``: each node once, following links; like ComfyUI, a lookup that fails (a
    link to a missing node or output) raises, and the node that raised gets the error."""

    def __init__(self, prompt: Json, info: Json, input_exists: Callable[[str], bool] | None = None) -> None:
        self.prompt, self.info = prompt, info
        self.input_exists = input_exists or (lambda name: False)
        self.validated: dict[str, tuple[bool, list[Json]]] = {}

    def _custom(self, class_type: str, name: str, value: Any) -> Json | None:
        """``execution.py``'s answer when VALIDATE_INPUTS returns a string: ``custom_validation_failed``,
        details ``"<input> - <returned text>"``, ``extra_info`` the input name."""
        if self.input_exists(str(value)):
            return None
        return error_info("custom_validation_failed", "Custom validation failed for node",
                          f"{name} - {CUSTOM_CHECKS[(class_type, name)].format(value)}", input_name=name)

    def node(self, node_id: str) -> bool:
        if node_id in self.validated:
            return self.validated[node_id][0]
        node = self.prompt[node_id]
        inputs, spec = node["inputs"], self.info[node["class_type"]]["input"]
        errors: list[Json] = []
        valid = True
        for section in ("required", "optional"):
            for name, input_spec in spec.get(section, {}).items():
                if name not in inputs:
                    if section == "required":
                        errors.append(error_info("required_input_missing", "Required input is missing", name, input_name=name))
                    continue
                value = inputs[name]
                if not isinstance(value, list) and (node["class_type"], name) in CUSTOM_CHECKS:
                    error = self._custom(node["class_type"], name, value)
                    if error:
                        errors.append(error)
                    continue
                if not isinstance(value, list):
                    error = _literal_error(name, value, input_spec)
                    if error:
                        errors.append(error)
                    continue
                if len(value) != 2:
                    errors.append(error_info("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                         name, input_name=name, input_config=input_spec, received_value=value))
                    continue
                source_id, slot = value
                received = self.info[self.prompt[source_id]["class_type"]]["output"][slot]
                if not _types_match(received, input_spec[0]):
                    errors.append(error_info("return_type_mismatch", "Return type mismatch between linked nodes",
                                         f"{name}, received_type({received}) mismatch input_type({input_spec[0]})",
                                         input_name=name, input_config=input_spec, received_type=received, linked_node=value))
                    continue
                try:
                    valid = self.node(source_id) and valid
                except Exception as exc:  # noqa: BLE001 - reported like ComfyUI does
                    valid = False
                    self.validated[source_id] = (False, [error_info(
                        "exception_during_inner_validation", "Exception when validating inner node", str(exc),
                        input_name=name, input_config=input_spec, exception_message=str(exc),
                        exception_type=type(exc).__name__, traceback=[], linked_node=value)])
        result = (valid and not errors, errors)
        self.validated[node_id] = result
        return result[0]


@dataclass
class Validation:
    """ComfyUI's ``validate_prompt`` result: ``error`` and ``node_errors`` are its answer shapes."""

    ok: bool
    error: Json | None
    outputs: list[str]
    node_errors: Json


def validate_prompt(prompt: Any, info: Json, input_exists: Callable[[str], bool] | None = None) -> Validation:
    """ComfyUI's checks: every node has a known class_type, there is an output node, and each
    output's inputs (recursively) are linked and valid. Outputs that pass run even if others fail.
    ``input_exists``: whether a LoadImage name is on the data dir (``CUSTOM_CHECKS``)."""
    if not isinstance(prompt, dict):
        return Validation(False, invalid_prompt("Cannot execute because the prompt is not a JSON object."), [], {})
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return Validation(False, invalid_prompt(
                "Cannot execute because a node is missing the class_type property.", f"Node ID '#{node_id}'"), [], {})
        class_type = node["class_type"]
        if class_type not in info:
            return Validation(False, invalid_prompt(
                f"Cannot execute because node {class_type} does not exist.", f"Node ID '#{node_id}'"), [], {})
        if info[class_type].get("output_node"):
            outputs.append(node_id)
    if not outputs:
        return Validation(False, error_info("prompt_no_outputs", "Prompt has no outputs"), [], {})
    checker = _Validator(prompt, info, input_exists)
    good: list[str] = []
    failed: list[Json] = []
    node_errors: Json = {}
    for output in sorted(outputs, key=_node_order):
        try:
            ok = checker.node(output)
        except Exception as exc:  # noqa: BLE001 - reported like ComfyUI does
            ok = False
            checker.validated[output] = (False, [error_info("exception_during_validation", "Exception when validating node",
                                                         str(exc), exception_type=type(exc).__name__, traceback=[])])
        if ok:
            good.append(output)
            continue
        failed += checker.validated[output][1]
        for node_id, (valid, reasons) in checker.validated.items():
            if not valid and reasons:
                entry = node_errors.setdefault(node_id, {"errors": reasons, "dependent_outputs": [],
                                                         "class_type": prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for e in failed)
        return Validation(False, error_info("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
                          [], node_errors)
    return Validation(True, None, good, node_errors)


def execution_order(prompt: Json, outputs: Iterable[str]) -> list[str]:
    """The nodes the outputs need, each after the nodes it links to."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in prompt:
                visit(value[0])
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order
