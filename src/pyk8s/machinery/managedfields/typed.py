"""The structure server-side apply needs from a type: what is atomic and what is granular.

structured-merge-diff sees every value as a scalar, a list or a map, and every list and map
as either *atomic* (replaced and owned as a whole) or *granular* (merged and owned per item).
:func:`type_of_kind` answers that from the official definitions:

* a struct (``properties``) is granular unless ``x-kubernetes-map-type: atomic``;
* a map (``additionalProperties``) likewise; its keys are items, not declared fields;
* a list follows ``x-kubernetes-list-type``: ``atomic``; ``set`` (items by value); ``map``
  (items by ``x-kubernetes-list-map-keys``). A list without it falls back, as upstream's
  schema conversion does, on the strategic-merge metadata (``patch-strategy: merge`` with a
  merge key is a map, without one a set) and is otherwise atomic;
* an object without either (``FieldsV1``, ``RawExtension``) is atomic.

Kinds without a definition (custom resources) get upstream's *deduced* type: every object
granular, every list atomic.

Nodes are built on first use and cached per definition, so a create touches only the types
its object uses, and recursive definitions (``JSONSchemaProps``) are fine.
"""

from __future__ import annotations

import threading
from typing import Any

from pyk8s.machinery.schema import definitions as schema_defs

SCALAR, STRUCT, MAP, LIST, ATOMIC, DEDUCED = "scalar", "struct", "map", "list", "atomic", "deduced"


class Node:
    """One type. ``kind`` is one of the constants above; for lists ``list_type`` is
    ``atomic``, ``set`` or ``map`` (with ``keys``)."""

    __slots__ = ("_children", "_elem", "_elem_schema", "_fields", "_props", "keys", "kind",
                 "list_type")

    def __init__(self, kind: str, *, props: dict[str, Any] | None = None,
                 elem_schema: dict[str, Any] | None = None, list_type: str = "",
                 keys: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.list_type = list_type
        self.keys = keys
        self._props = props or {}
        self._fields: dict[str, Node] = {}
        self._children: dict[str, tuple[Node, bool]] = {}
        self._elem_schema = elem_schema
        self._elem: Node | None = None

    def field(self, name: str) -> Node | None:
        """The type of struct field ``name`` (None: not declared)."""
        found = self._fields.get(name)
        if found is None:
            prop = self._props.get(name)
            if prop is None:
                return None
            found = node_of(prop)
            self._fields[name] = found
        return found

    def field_names(self) -> list[str]:
        """A struct's declared fields."""
        return list(self._props) if self.kind == STRUCT else []

    @property
    def elem(self) -> Node:
        """The type of a map's values or a list's items."""
        if self._elem is None:
            self._elem = node_of(self._elem_schema) if self._elem_schema is not None else DEDUCED_NODE
        return self._elem

    def child(self, key: str) -> tuple[Node, bool]:
        """The type of a struct's field or a map's key, and whether it is a declared field."""
        found = self._children.get(key)
        if found is None:
            found = self._child(key)
            if self.kind == STRUCT:
                self._children[key] = found
        return found

    def _child(self, key: str) -> tuple[Node, bool]:
        if self.kind == STRUCT:
            found = self.field(key)
            if found is not None:
                return found, True
            return DEDUCED_NODE, False
        if self.kind == MAP:
            return self.elem, False
        return DEDUCED_NODE, False

    @property
    def granular_map(self) -> bool:
        return self.kind in (STRUCT, MAP, DEDUCED)


DEDUCED_NODE = Node(DEDUCED)
SCALAR_NODE = Node(SCALAR)
ATOMIC_NODE = Node(ATOMIC)

_by_ref: dict[str, Node] = {}
_lock = threading.Lock()


def _from_definition(ref: str) -> Node:
    found = _by_ref.get(ref)
    if found is not None:
        return found
    defs = schema_defs.get()
    node = _build(defs.schema(ref)) if ref in defs else DEDUCED_NODE
    with _lock:
        return _by_ref.setdefault(ref, node)


def _list_node(schema: dict[str, Any]) -> Node:
    items = schema.get("items") if isinstance(schema.get("items"), dict) else None
    list_type = schema.get("x-kubernetes-list-type")
    keys: tuple[str, ...] = tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if list_type is None:
        strategy = str(schema.get("x-kubernetes-patch-strategy") or "")
        merge_key = schema.get("x-kubernetes-patch-merge-key")
        if "merge" in strategy.split(","):
            if merge_key:
                list_type, keys = "map", (str(merge_key),)
            else:
                list_type = "set"
        else:
            list_type = "atomic"
    if list_type == "map" and not keys:
        list_type = "atomic"
    return Node(LIST, elem_schema=items, list_type=str(list_type), keys=keys)


def _build(schema: dict[str, Any]) -> Node:
    if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
        return SCALAR_NODE
    kind = schema.get("type")
    if kind == "array":
        return _list_node(schema)
    atomic = schema.get("x-kubernetes-map-type") == "atomic"
    if isinstance(schema.get("properties"), dict) and schema["properties"]:
        return ATOMIC_NODE if atomic else Node(STRUCT, props=schema["properties"])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return ATOMIC_NODE if atomic else Node(MAP, elem_schema=extra)
    if kind == "object" or schema.get("x-kubernetes-preserve-unknown-fields"):
        return ATOMIC_NODE
    return SCALAR_NODE


def node_of(schema: dict[str, Any]) -> Node:
    """The type of one property schema (a ``$ref`` resolves to its definition)."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _from_definition(ref)
    for key in ("allOf", "oneOf", "anyOf"):
        options = schema.get(key)
        if isinstance(options, list) and len(options) == 1 and isinstance(options[0], dict):
            return node_of(options[0])
    return _build(schema)


def type_of_kind(api_version: str, kind: str) -> Node:
    """The root type of a kind's objects; the deduced type for kinds not built in."""
    group, _, version = api_version.rpartition("/")
    defs = schema_defs.get()
    ref = defs.by_gvk(group, version, kind)
    if ref is None:
        return DEDUCED_NODE
    return _from_definition(ref)
