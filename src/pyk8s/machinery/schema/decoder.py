"""Decoding a JSON object into a built-in kind, as kube-apiserver's Go decoder does.

Upstream decodes a request body into the kind's Go struct. That one step:

* drops fields the struct does not have (always: built-in types are always pruned); with
  ``fieldValidation=Strict`` or ``Warn`` it also reports them, with their path
  (``unknown field "spec.template.spec.containers[0].foo"``), and reports fields that occur
  twice in one JSON object (``duplicate field "metadata.name"``);
* fails on a value of the wrong JSON type, with encoding/json's wording
  (``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type
  int32``), and on values that types with their own decoder reject (a quantity that does not
  parse, a time that is not RFC 3339, bytes that are not base64).

:func:`decode_object` is the entry point. Clean objects (nearly all) are recognised by the
compiled check of :mod:`.fast` in microseconds and returned untouched; only the others are
walked here. :func:`decoder_for` compiles a definition into a tree of small node objects once
(cached; the tree is immutable after construction, so threads share it), and the walk touches
each value once, pruning as it goes. Duplicate keys are invisible once orjson has parsed a
body, so they are found by comparing key counts of the raw text and of the parsed object,
and located by a slower re-parse only when the counts differ.

Nothing is checked that the Go decoder does not check: semantic rules (names, required
fields, ranges) belong to the registry's validation, which runs after decoding, as upstream.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from typing import Any

import orjson

from pyk8s.machinery.schema import definitions as schema_defs
from pyk8s.machinery.schema.quantity import QuantityError
from pyk8s.machinery.schema.quantity import check as check_quantity

# Node kinds.
_ANY, _STRING, _INT, _FLOAT, _BOOL, _BYTES, _TIME, _QUANTITY, _INTSTR, _STRUCT, _LIST, _MAP = range(12)

_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)


class DuplicateKeys(dict):  # type: ignore[type-arg]
    """A JSON object in which some keys occurred more than once (see :func:`parse_checked`)."""

    duplicates: list[str]


class Report:
    """What decoding found. ``error`` (a decode failure) wins over strict findings."""

    __slots__ = ("duplicates", "error", "fatal", "unknown")

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.duplicates: list[str] = []
        self.error: str | None = None  # first saved type error (decoding continues)
        self.fatal: str | None = None  # an error that stops the Go decoder at once

    @property
    def failure(self) -> str | None:
        return self.fatal or self.error

    def strict_errors(self) -> list[str]:
        return ([f'duplicate field "{p}"' for p in self.duplicates]
                + [f'unknown field "{p}"' for p in self.unknown])


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _render(path: tuple[str, ...], key: str) -> str:
    """``("spec", "containers", "[0]")`` and ``"foo"`` as ``spec.containers[0].foo``."""
    out = ""
    for part in (*path, key):
        out += part if part.startswith("[") or not out else "." + part
    return out


class Node:
    __slots__ = ("fields", "format", "go_name", "go_type", "item", "kind")

    def __init__(self, kind: int, go_type: str, fmt: str = "") -> None:
        self.kind = kind
        self.go_type = go_type
        self.format = fmt
        self.item: Node | None = None
        self.fields: dict[str, Node] = {}
        self.go_name = ""


def _type_error(report: Report, value: Any, node: Node, struct: str, stack: tuple[str, ...],
                number_text: str | None = None) -> None:
    if report.error is None:
        shown = f"number {number_text}" if number_text is not None else _json_kind(value)
        where = f"Go struct field {struct}.{'.'.join(stack)}" if struct else "Go value"
        report.error = f"json: cannot unmarshal {shown} into {where} of type {node.go_type}"


def _fatal(report: Report, message: str) -> None:
    if report.fatal is None:
        report.fatal = message


def _check(node: Node, value: Any, report: Report, path: tuple[str, ...], struct: str,
           stack: tuple[str, ...]) -> None:
    """Decode ``value`` as ``node``. ``path`` is the strict-error path (with indices),
    ``struct``/``stack`` the Go decoder's error context."""
    if value is None:
        return
    kind = node.kind
    if kind == _STRING:
        if type(value) is not str:
            _type_error(report, value, node, struct, stack)
    elif kind == _INT:
        if type(value) is not int:
            if type(value) is float:
                _type_error(report, value, node, struct, stack, repr(value))
            else:
                _type_error(report, value, node, struct, stack)
        else:
            low, high = _INT_RANGE.get(node.format, _INT_RANGE["int64"])
            if not low <= value <= high:
                _type_error(report, value, node, struct, stack, str(value))
    elif kind == _BOOL:
        if type(value) is not bool:
            _type_error(report, value, node, struct, stack)
    elif kind == _STRUCT:
        if type(value) is not dict and not isinstance(value, dict):
            _type_error(report, value, node, struct, stack)
            return
        _struct(node, value, report, path, stack)
    elif kind == _LIST:
        if type(value) is not list:
            _type_error(report, value, node, struct, stack)
            return
        item = node.item
        assert item is not None
        if item.kind == _STRING:
            for v in value:
                if type(v) is not str and v is not None:
                    _type_error(report, v, item, struct, stack)
            return
        for i, v in enumerate(value):
            _check(item, v, report, (*path, f"[{i}]"), struct, stack)
    elif kind == _MAP:
        if not isinstance(value, dict):
            _type_error(report, value, node, struct, stack)
            return
        if type(value) is DuplicateKeys:
            report.duplicates.extend(_render(path, k) for k in value.duplicates)
        item = node.item
        assert item is not None
        if item.kind == _STRING:
            for v in value.values():
                if type(v) is not str and v is not None:
                    _type_error(report, v, item, struct, stack)
            return
        for k, v in value.items():
            _check(item, v, report, (*path, f"[{k}]"), struct, stack)
    elif kind == _QUANTITY:
        try:
            check_quantity(value)
        except QuantityError as exc:
            _fatal(report, str(exc))
    elif kind == _INTSTR:
        if type(value) is str:
            return
        if type(value) is int:
            if not -(2**31) <= value < 2**31:
                _fatal(report, f"json: cannot unmarshal number {value} into Go value of type int32")
        elif type(value) is float:
            _fatal(report, f"json: cannot unmarshal number {value!r} into Go value of type int32")
        else:
            _fatal(report, f"json: cannot unmarshal {_json_kind(value)} into Go value of type int32")
    elif kind == _TIME:
        if type(value) is not str:
            _fatal(report, f"json: cannot unmarshal {_json_kind(value)} into Go value of type string")
        elif value and not _RFC3339.match(value):
            _fatal(report, f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                           f'"{value}" as "2006"')
    elif kind == _FLOAT:
        if type(value) not in (int, float):
            _type_error(report, value, node, struct, stack)
    elif kind == _BYTES:
        if type(value) is not str:
            _type_error(report, value, node, struct, stack)
        elif report.error is None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                report.error = f"illegal base64 data at input byte {_bad_base64_at(value)}"


def _bad_base64_at(text: str) -> int:
    for i, ch in enumerate(text):
        if not (ch.isascii() and (ch.isalnum() or ch in "+/=")):
            return i
    return max(len(text) - len(text) % 4, 0)


def _struct(node: Node, obj: dict[str, Any], report: Report, path: tuple[str, ...],
            stack: tuple[str, ...]) -> None:
    fields = node.fields
    name = node.go_name
    unknown: list[str] | None = None
    if type(obj) is DuplicateKeys:
        report.duplicates.extend(_render(path, k) for k in obj.duplicates)
    for key, value in obj.items():
        sub = fields.get(key)
        if sub is None:
            if unknown is None:
                unknown = []
            unknown.append(key)
            report.unknown.append(_render(path, key))  # in document order, as Go reports
            continue
        if value is None:
            continue
        skind = sub.kind
        # The common scalar cases inline: most values of an object are strings and ints.
        if skind == _STRING:
            if type(value) is not str:
                _type_error(report, value, sub, name, (*stack, key))
        elif skind != _ANY:
            _check(sub, value, report, (*path, key), name, (*stack, key))
    if unknown:
        for key in unknown:
            del obj[key]


# --------------------------------------------------------------------------------------------
# Compiling definitions into nodes


def _go_package(definition: str) -> str:
    parts = definition.split(".")
    return parts[-2] if len(parts) >= 2 else ""


_SCALARS = {
    ("string", ""): (_STRING, "string"),
    ("string", "byte"): (_BYTES, "[]uint8"),
    ("string", "date-time"): (_TIME, "v1.Time"),
    ("integer", "int32"): (_INT, "int32"),
    ("integer", "int64"): (_INT, "int64"),
    ("integer", ""): (_INT, "int"),
    ("number", "double"): (_FLOAT, "float64"),
    ("number", ""): (_FLOAT, "float64"),
    ("boolean", ""): (_BOOL, "bool"),
}


class _Compiler:
    def __init__(self, defs: schema_defs.Definitions) -> None:
        self.defs = defs
        self.structs: dict[str, Node] = {}
        self.lock = threading.Lock()

    def definition(self, name: str) -> Node:
        node = self.structs.get(name)
        if node is not None:
            return node
        if name == schema_defs.QUANTITY:
            return Node(_QUANTITY, "resource.Quantity")
        if name == schema_defs.INT_OR_STRING:
            return Node(_INTSTR, "intstr.IntOrString")
        if name in (schema_defs.TIME, schema_defs.MICRO_TIME):
            return Node(_TIME, "v1." + name.rsplit(".", 1)[-1])
        schema = self.defs.schema(name)
        short = name.rsplit(".", 1)[-1]
        if "properties" not in schema:
            kind = _ANY if schema.get("type") in (None, "object") else None
            if kind is None:
                scalar = _SCALARS.get((schema.get("type"), schema.get("format", "")))
                return Node(*scalar) if scalar else Node(_ANY, short)
            return Node(_ANY, f"{_go_package(name)}.{short}")
        node = Node(_STRUCT, f"{_go_package(name)}.{short}")
        node.go_name = short
        self.structs[name] = node  # before the fields: definitions are recursive
        node.fields = {field: self.node(prop) for field, prop in schema["properties"].items()}
        return node

    def node(self, schema: dict[str, Any]) -> Node:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self.definition(ref)
        kind = schema.get("type")
        if kind == "array" and isinstance(schema.get("items"), dict):
            item = self.node(schema["items"])
            node = Node(_LIST, "[]" + item.go_type)
            node.item = item
            return node
        if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            item = self.node(schema["additionalProperties"])
            go_type = ("v1.ResourceList" if item.kind == _QUANTITY
                       else "map[string]" + item.go_type)
            node = Node(_MAP, go_type)
            node.item = item
            return node
        scalar = _SCALARS.get((kind, schema.get("format", "")))
        if scalar is not None:
            return Node(scalar[0], scalar[1], schema.get("format", ""))
        return Node(_ANY, "interface {}")


_compiler: _Compiler | None = None
_compiler_lock = threading.Lock()


def decoder_for(definition: str) -> Node:
    """The compiled decoder of a definition (a kind's root, e.g. ``io.k8s.api.core.v1.Pod``)."""
    global _compiler
    if _compiler is None:
        with _compiler_lock:
            if _compiler is None:
                _compiler = _Compiler(schema_defs.get())
    compiler = _compiler
    node = compiler.structs.get(definition)
    if node is not None:
        return node
    with compiler.lock:
        return compiler.definition(definition)


def decode(node: Node, obj: dict[str, Any]) -> Report:
    """Prune ``obj`` in place to the fields ``node`` knows, and report what was dropped and
    what failed to decode."""
    report = Report()
    _struct(node, obj, report, (), ())
    return report


def decode_object(definition: str, obj: dict[str, Any], raw: bytes | None = None,
                  *, find_duplicates: bool = False,
                  new_values: Any = None) -> tuple[dict[str, Any], Report | None]:
    """Decode a request body already parsed (by orjson) into ``obj``.

    Returns the object to use (``obj`` pruned in place, or a re-parse of ``raw`` when it had
    duplicate keys) and a report, or None when everything was clean (the common case, decided
    by the compiled check of :mod:`fast` without walking). ``find_duplicates`` (Strict and
    Warn) looks for duplicate keys in ``raw``. ``new_values``: where any value ``obj`` holds
    that was not stored before came from (a patch body), when not ``obj`` itself."""
    from pyk8s.machinery.schema.fast import fast_check

    duplicates = False
    if find_duplicates and raw is not None:
        duplicates = raw_key_count(raw) != raw_key_count(orjson.dumps(obj))
    if not duplicates:
        check = fast_check(definition)
        if check is not None and check(obj) and not _may_hold_float(obj, raw, new_values):
            return obj, None
    elif raw is not None:
        try:
            reparsed = parse_checked(raw)
        except ValueError:
            reparsed = None
        if isinstance(reparsed, dict):
            # The caller's own changes (defaults from the URL) are kept.
            for key in ("apiVersion", "kind"):
                if key in obj:
                    reparsed[key] = obj[key]
            obj = reparsed
    return obj, decode(decoder_for(definition), obj)


# A float literal: a value (after ":", "," or "[") of digits and then a decimal point or an
# exponent. Text without one anywhere, strings included, parses to no float (a uid's "-0e"
# or an address's "10.0" inside a string does not match).
_FLOAT_LITERAL = re.compile(rb"[:,\[][ \t\r\n]*-?[0-9]+[.eE]")


def _may_hold_float(obj: Any, raw: bytes | None, new_values: Any) -> bool:
    """Whether a float may sit where the compiled check let it pass: JSON Schema's
    ``integer`` takes 1.0 and 0.0, Go's decoder refuses any number written with a point or
    an exponent for an integer field, so an object with a float goes to the walk. Stored
    objects hold none; a request brings one only in a float literal of its text."""
    if new_values is not None:
        return _has_float(new_values)
    if raw is not None and _FLOAT_LITERAL.search(raw) is None:
        return False
    return _has_float(obj)


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Duplicate keys


def raw_key_count(raw: bytes) -> int:
    """Keys in a compact JSON text: each key ends with an unescaped ``"`` right before ``:``.
    Compared with the count in orjson's re-serialization of the parsed object, a difference
    means keys were lost to duplicates. A text written with spaces before colons (or keys
    ending in a backslash) counts low, which only sends it to the exact (slower) check."""
    return raw.count(b'":') - raw.count(b'\\":')


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    dups: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in dups:
            dups.append(key)
        seen.add(key)
    marked = DuplicateKeys(obj)
    marked.duplicates = dups
    return marked


def parse_checked(raw: bytes) -> Any:
    """Parse JSON keeping track of duplicate keys (objects with some are
    :class:`DuplicateKeys`). Several times slower than orjson: only for bodies whose cheap
    key count disagrees with the parsed object."""
    import json

    return json.loads(raw, object_pairs_hook=_pairs)
