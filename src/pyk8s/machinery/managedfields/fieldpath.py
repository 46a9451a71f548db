"""Field paths and field sets, spelled as upstream's ``FieldsV1``.

A path is a tuple of path elements, each kept in its ``fieldsV1`` spelling so that decoding
and encoding are a walk over nested dicts and nothing else:

* ``f:<name>`` — a field of a struct or a key of a map;
* ``k:{"name":"c"}`` — an item of an associative list, by its ``x-kubernetes-list-map-keys``
  (compact JSON, keys sorted, as upstream's ``PathElement`` serializes them);
* ``v:<json>`` — an item of a set (``x-kubernetes-list-type: set``);
* ``i:<n>`` — an item of a list by position (only for lists that are neither; rare).

A field set is a plain ``frozenset`` of paths: the paths that are *members*. In ``fieldsV1`` a
member that also has members below it is written with a ``"."`` child, as
sigs.k8s.io/structured-merge-diff does.
"""

from __future__ import annotations

from typing import Any

import orjson

Path = tuple[str, ...]
FieldSet = frozenset[Path]

EMPTY: FieldSet = frozenset()

_KIND_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def field(name: str) -> str:
    return "f:" + name


def key_element(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "k:" + orjson.dumps({k: item.get(k) for k in keys}, option=orjson.OPT_SORT_KEYS).decode()


def value_element(value: Any) -> str:
    return "v:" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def index_element(index: int) -> str:
    return f"i:{index}"


def _sort_key(element: str) -> tuple[int, str]:
    return (_KIND_ORDER.get(element[:1], 4), element[2:])


def encode(fields: FieldSet) -> dict[str, Any]:
    """The ``fieldsV1`` object of a field set (children sorted as upstream sorts them)."""
    tree: dict[str, Any] = {}
    for path in fields:
        if not path:
            continue
        node = tree
        for element in path:
            child = node.get(element)
            if child is None:
                child = node[element] = {}
            node = child
        node["."] = None  # a member; written as "." only when it also has children
    return _emit(tree)


def emit(tree: dict[str, Any]) -> dict[str, Any]:
    """The ``fieldsV1`` object of a tree built as :func:`encode` builds one (nested dicts by
    path element, ``"."`` set to None on members); ``tree`` is consumed."""
    return _emit(tree)


def _emit(node: dict[str, Any]) -> dict[str, Any]:
    member = node.pop(".", 0) is None
    out: dict[str, Any] = {}
    if member and node:
        out["."] = {}
    for element in _sorted(node):
        child = node[element]
        # a leaf member (most of a set) is {} without a call
        out[element] = {} if len(child) == 1 and "." in child else _emit(child)
    return out


def _sorted(elements: dict[str, Any]) -> list[str]:
    """Elements in upstream's order: fields, keys, values, indexes, each lexically. With no
    index among them that is plain string order ("f:" < "k:" < "v:")."""
    keys = list(elements)
    if len(keys) > 1:
        if all(k[:1] in ("f", "k", "v") for k in keys):
            keys.sort()
        else:
            keys.sort(key=_sort_key)
    return keys


class DecodeError(ValueError):
    """A ``fieldsV1`` value that is not a tree of objects with element keys."""


def decode(value: Any) -> FieldSet:
    """The field set of a ``fieldsV1`` object."""
    if not isinstance(value, dict):
        raise DecodeError("fieldsV1 must be an object")
    out: set[Path] = set()
    _collect(value, (), out)
    return frozenset(out)


def _collect(node: dict[str, Any], path: Path, out: set[Path]) -> None:
    if path and not node:
        out.add(path)
        return
    for element, child in node.items():
        if not isinstance(child, dict):
            raise DecodeError(f"fieldsV1 values must be objects: {element}")
        if element == ".":
            if path:
                out.add(path)
            continue
        if element[:2] not in ("f:", "k:", "v:", "i:"):
            raise DecodeError(f"unknown fieldsV1 element {element!r}")
        _collect(child, (*path, element), out)


# Encodings of field sets found valid. Every update checks the stored entries, and the
# objects of one kind (a ReplicaSet's pods, the Leases) carry the same few sets: recognising
# the encoding (orjson, in C) costs a fraction of walking the tree again.
_VALID_ENCODINGS: dict[bytes, None] = {}
_VALID_LIMIT = 1024


def valid(value: Any) -> bool:
    """Whether :func:`decode` accepts ``value`` (the same walk, building nothing)."""
    if not isinstance(value, dict):
        return False
    try:
        encoded: bytes | None = orjson.dumps(value)
    except TypeError:  # not JSON (never stored): no shortcut
        encoded = None
    if encoded is not None and encoded in _VALID_ENCODINGS:
        return True
    if not _walk_valid(value):
        return False
    if encoded is not None:
        if len(_VALID_ENCODINGS) >= _VALID_LIMIT:
            del _VALID_ENCODINGS[next(iter(_VALID_ENCODINGS))]
        _VALID_ENCODINGS[encoded] = None
    return True


def _walk_valid(value: dict[str, Any]) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        for element, child in node.items():
            if not isinstance(child, dict):
                return False
            if element == ".":
                continue
            if element[:2] not in ("f:", "k:", "v:", "i:"):
                return False
            if child:
                stack.append(child)
    return True


def _value_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def to_string(path: Path) -> str:
    """Upstream's ``fieldpath.Path.String()``: ``.spec.containers[name="c"].image``."""
    parts = []
    for element in path:
        kind, text = element[:1], element[2:]
        if kind == "f":
            parts.append("." + text)
        elif kind == "k":
            item = orjson.loads(text)
            parts.append("[" + ",".join(f"{k}={_value_text(v)}" for k, v in item.items()) + "]")
        elif kind == "v":
            parts.append(f"[={text}]")
        else:
            parts.append(f"[{text}]")
    return "".join(parts)


def prefixes(fields: FieldSet) -> set[Path]:
    """Every path of ``fields`` and every proper prefix of one (the paths "in use")."""
    out: set[Path] = set()
    for path in fields:
        for n in range(1, len(path) + 1):
            out.add(path[:n])
    return out


def without_prefixes(fields: FieldSet, roots: FieldSet) -> FieldSet:
    """``fields`` minus every path at or below one of ``roots`` (upstream's
    ``RecursiveDifference`` against a set of roots)."""
    if not roots:
        return fields
    tops = {r[0] for r in roots if len(r) == 1}
    deep = [r for r in roots if len(r) != 1]
    if not deep:  # the usual case: whole top-level fields (status, spec, metadata)
        return frozenset(p for p in fields if not p or p[0] not in tops)
    return frozenset(p for p in fields if not (p and p[0] in tops)
                     and not any(p[:len(r)] == r for r in deep))


def sort_key(path: Path) -> tuple[tuple[int, str], ...]:
    """Upstream's path order (field names, then keys, values, indexes; each lexically)."""
    return tuple(_sort_key(e) for e in path)


def has_member(tree: dict[str, Any], path: Path) -> bool:
    """Whether ``path`` is a member of the ``fieldsV1`` object ``tree`` (without decoding it)."""
    node: Any = tree
    for element in path:
        node = node.get(element) if isinstance(node, dict) else None
        if node is None:
            return False
    return isinstance(node, dict) and (not node or "." in node)
