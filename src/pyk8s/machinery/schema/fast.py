"""A compiled yes/no check in front of :mod:`decoder`: "would this object decode cleanly?"

Nearly every object a client writes is clean: no unknown field, every value of the right
type. :mod:`jsonschema_rs` answers that question for a 2 KiB object in a few microseconds,
an order of magnitude faster than walking it in Python, so the walk (which finds the exact
paths and upstream's messages, and prunes) only runs for objects that have a problem.

The JSON Schema is generated from the same definitions and is strictly *as strict as* the Go
decoder: closed objects (``additionalProperties: false``) for structs, ``null`` allowed
everywhere, integer ranges from their formats, quantities by the exact grammar the parser
accepts, times and base64 bytes by the patterns the walk uses. It may reject what the walk
accepts (the walk then decides), but must never accept an unknown field or a wrong value.

Without ``jsonschema_rs`` installed :func:`fast_check` answers None and everything is walked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pyk8s.machinery.schema import definitions as schema_defs
from pyk8s.machinery.schema.decoder import RFC3339_PATTERN
from pyk8s.machinery.schema.quantity import VALID_PATTERN

try:  # an optional accelerator
    import jsonschema_rs
except ImportError:  # pragma: no cover - exercised only without the wheel
    jsonschema_rs = None

_INT_LIMITS = {"int32": 2**31, "int64": 2**63}
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_TIME = {"anyOf": [{"type": "string", "pattern": RFC3339_PATTERN}, {"type": "null"}]}
_SPECIAL: dict[str, dict[str, Any]] = {
    schema_defs.QUANTITY: {"anyOf": [{"type": "string", "pattern": VALID_PATTERN.replace(
        "^", r"^\s*", 1).replace("$", r"\s*$")}, {"type": ["number", "null"]}]},
    schema_defs.INT_OR_STRING: {"anyOf": [
        {"type": ["string", "null"]},
        {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}]},
    schema_defs.TIME: _TIME,
    schema_defs.MICRO_TIME: _TIME,
}


def _node(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return {"$ref": "#/$defs/" + ref}
    kind = schema.get("type")
    if kind == "array":
        out: dict[str, Any] = {"type": ["array", "null"]}
        if isinstance(schema.get("items"), dict):
            out["items"] = _node(schema["items"])
        return out
    if "properties" in schema:
        return {"type": ["object", "null"], "additionalProperties": False,
                "properties": {k: _node(v) for k, v in schema["properties"].items()}}
    if kind == "object":
        out = {"type": ["object", "null"]}
        if isinstance(schema.get("additionalProperties"), dict):
            out["additionalProperties"] = _node(schema["additionalProperties"])
        return out
    fmt = schema.get("format", "")
    if kind == "integer":
        limit = _INT_LIMITS.get(fmt, 2**63)
        return {"type": ["integer", "null"], "minimum": -limit, "maximum": limit - 1}
    if kind == "string" and fmt == "byte":
        return {"anyOf": [{"type": "string", "pattern": BASE64_PATTERN}, {"type": "null"}]}
    if kind == "string" and fmt == "date-time":
        return _TIME
    if kind in ("string", "boolean", "number"):
        return {"type": [kind, "null"]}
    return {}


def json_schema(defs: schema_defs.Definitions, root: str) -> dict[str, Any]:
    """The closed JSON Schema of definition ``root``."""
    out: dict[str, Any] = {}
    for name in defs.closure([root]):
        out[name] = dict(_SPECIAL[name]) if name in _SPECIAL else _node(defs.schema(name))
    return {"$ref": "#/$defs/" + root, "$defs": out}


_validators: dict[str, Callable[[Any], bool]] = {}
_lock = threading.Lock()


def fast_check(root: str) -> Callable[[Any], bool] | None:
    """``is_valid`` of the compiled schema of ``root``, or None without jsonschema_rs."""
    check = _validators.get(root)
    if check is not None or jsonschema_rs is None:
        return check
    with _lock:
        check = _validators.get(root)
        if check is None:
            schema = json_schema(schema_defs.get(), root)
            check = jsonschema_rs.validator_for(schema).is_valid
            _validators[root] = check
    return check
