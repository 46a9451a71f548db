"""Walks over object values by type: field sets, comparison, merge and removal.

These are the four operations of sigs.k8s.io/structured-merge-diff that server-side apply is
built from, on plain JSON values (dicts, lists, scalars) and the :mod:`.typed` nodes:

* :func:`field_set` — the fields a value sets (``TypedValue.ToFieldSet``): leaves, atomic
  values, list items, map keys, and struct fields that are null or empty;
* :func:`compare` — what changed between two values (``Compare``): added, modified and removed
  paths. A node that appears is itself *added* (so it is owned, and written with ``"."``),
  except the structs a Go zero value always has (``metadata``, ``spec``, a pod template...):
  upstream compares against such a zero object when it creates;
* :func:`merge` — the applied configuration merged into the live value (``Merge``): granular
  maps per key, associative lists per key, sets per value, everything atomic replaced;
* :func:`remove` — the value without some paths (``RemoveItems``).

A list whose items cannot be told apart (a duplicate key, an item missing its key and no
default for it) is treated as atomic, as upstream tolerates such lists in stored objects.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from pyk8s.machinery.managedfields import fieldpath
from pyk8s.machinery.managedfields.fieldpath import FieldSet, Path
from pyk8s.machinery.managedfields.typed import DEDUCED, LIST, MAP, STRUCT, Node

MISSING: Any = object()
_MAP_KINDS = frozenset({STRUCT, MAP, DEDUCED})
_CONTAINERS = (dict, list)

# Struct fields a Go object always has (value, not pointer, types) outside lists.
_ZERO_STRUCTS = frozenset({"metadata", "spec", "status", "template", "strategy",
                           "updateStrategy", "jobTemplate"})


def _granular_list(node: Node) -> bool:
    return node.kind == LIST and node.list_type != "atomic"


def _granular_map(node: Node, value: Any) -> bool:
    return node.kind in (STRUCT, MAP, DEDUCED) and isinstance(value, dict)


# Defaults of list-map key fields, from upstream's OpenAPI (the definitions this package
# reads omit ``default``): every ``protocol`` key of the built-in types defaults to TCP.
_KEY_DEFAULTS = {"protocol": "TCP"}


def _key_default(node: Node, key: str) -> Any:
    elem = node.elem
    if elem.kind != STRUCT:
        return None
    prop = elem._props.get(key)
    if isinstance(prop, dict) and prop.get("default") is not None:
        return prop["default"]
    return _KEY_DEFAULTS.get(key)


def _single_key_element(name: str, value: Any) -> str:
    return 'k:{"' + name + '":' + orjson.dumps(value).decode() + "}"


def index(items: list[Any], node: Node) -> list[tuple[str, Any]] | None:
    """The path element of each item of a granular list, or None when they cannot be
    told apart."""
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        if node.list_type == "set":
            if isinstance(item, (dict, list)):
                return None
            element = fieldpath.value_element(item)
        else:
            if type(item) is not dict:
                return None
            keys = node.keys
            if len(keys) == 1 and item.get(keys[0]) is not None:
                element = _single_key_element(keys[0], item[keys[0]])
            else:
                key: dict[str, Any] = {}
                for name in keys:
                    if item.get(name) is not None:
                        key[name] = item[name]
                    else:
                        default = _key_default(node, name)
                        if default is None:
                            continue
                        key[name] = default
                if not key:
                    return None
                element = fieldpath.key_element(key, tuple(key))
        if element in seen:
            return None
        seen.add(element)
        out.append((element, item))
    return out


# -- field sets -------------------------------------------------------------------------

def field_set(value: Any, node: Node, skip: FieldSet = fieldpath.EMPTY) -> FieldSet:
    """The fields ``value`` sets; subtrees at a path of ``skip`` are not walked."""
    out: set[Path] = set()
    _fields(value, node, (), out, skip)
    return frozenset(out)


def _fields(value: Any, node: Node, path: Path, out: set[Path], skip: FieldSet) -> None:
    if path in skip:
        return
    if _granular_map(node, value):
        for key, child_value in value.items():
            child, declared = node.child(key)
            child_path = (*path, "f:" + key)
            if child_path in skip:
                continue
            if child_value is None or child_value == {} or not declared:
                out.add(child_path)
            if child_value is not None:
                _fields(child_value, child, child_path, out, skip)
        return
    if _granular_list(node) and isinstance(value, list):
        items = index(value, node)
        if items is not None:
            for element, item in items:
                item_path = (*path, element)
                out.add(item_path)
                _fields(item, node.elem, item_path, out, skip)
            return
    if path:
        out.add(path)


# -- comparison -------------------------------------------------------------------------

class Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: set[Path] = set()
        self.modified: set[Path] = set()
        self.removed: set[Path] = set()

    @property
    def changed(self) -> set[Path]:
        return self.added | self.modified


def compare(old: Any, new: Any, node: Node, skip: FieldSet = fieldpath.EMPTY) -> Comparison:
    """What ``new`` changes of ``old`` (either may be :data:`MISSING`)."""
    acc = Comparison()
    _compare(old, new, node, (), acc, True, skip)
    return acc


def _leaf(old: Any, new: Any, path: Path, acc: Comparison) -> None:
    if old is MISSING:
        acc.added.add(path)
    elif new is MISSING:
        acc.removed.add(path)
    elif old != new:
        acc.modified.add(path)


def _compare(old: Any, new: Any, node: Node, path: Path, acc: Comparison, zero: bool,
             skip: FieldSet) -> None:
    if path in skip:
        return
    if old is None:
        old = MISSING
    if new is None:
        new = MISSING
    if old is MISSING and new is MISSING:
        return
    present = new if new is not MISSING else old
    other = old if new is not MISSING else new
    if _granular_map(node, present) and (other is MISSING or isinstance(other, dict)):
        if path and not zero:
            if old is MISSING:
                acc.added.add(path)
            elif new is MISSING:
                acc.removed.add(path)
        o = old if old is not MISSING else {}
        n = new if new is not MISSING else {}
        for key in (n.keys() | o.keys()) if o and n else (n or o):
            o_value = o.get(key)
            n_value = n.get(key)
            if o_value is n_value or o_value == n_value:
                continue
            if not isinstance(o_value, _CONTAINERS) and not isinstance(n_value, _CONTAINERS):
                # Two scalars (or null): what _compare would find for them, without the
                # call and the child type (most changed fields of a write are leaves).
                child_path = (*path, "f:" + key)
                if skip and child_path in skip:
                    continue
                if o_value is None:
                    acc.added.add(child_path)
                elif n_value is None:
                    acc.removed.add(child_path)
                else:
                    acc.modified.add(child_path)
                continue
            child, _ = node.child(key)
            child_zero = zero and key in _ZERO_STRUCTS and child.kind == STRUCT
            _compare(o_value, n_value, child, (*path, "f:" + key), acc, child_zero, skip)
        return
    if _granular_list(node) and isinstance(present, list) and (other is MISSING or isinstance(other, list)):
        o_items = index(old, node) if old is not MISSING else []
        n_items = index(new, node) if new is not MISSING else []
        if o_items is not None and n_items is not None:
            o_map = dict(o_items)
            n_map = dict(n_items)
            for element in list(n_map) + [e for e in o_map if e not in n_map]:
                item_path = (*path, element)
                o_item = o_map.get(element, MISSING)
                n_item = n_map.get(element, MISSING)
                if o_item is not MISSING and o_item == n_item:
                    continue
                if o_item is MISSING:
                    acc.added.add(item_path)
                elif n_item is MISSING:
                    acc.removed.add(item_path)
                _compare(o_item, n_item, node.elem, item_path, acc, False, skip)
            return
    if path:
        _leaf(old, new, path, acc)


def changed_tree(old: Any, new: Any, node: Node) -> dict[str, Any]:
    """The fields ``new`` adds or modifies (``compare(old, new).changed``) as a ``fieldsV1``
    tree under construction: nested dicts keyed by path element, ``"."`` (None) marking a
    member, for :func:`fieldpath.emit`. The same walk as :func:`_compare` without a path
    tuple per field or a set to encode afterwards: a manager's first status write changes a
    few dozen fields, and building them as paths and then a tree was most of its cost."""
    out: dict[str, Any] = {}
    _changes(old, new, node, out, True, True)
    return out


def _changes(old: Any, new: Any, node: Node, out: dict[str, Any], zero: bool,
             root: bool) -> None:
    if old is None:
        old = MISSING
    if new is None:
        new = MISSING
    if old is MISSING and new is MISSING:
        return
    present = new if new is not MISSING else old
    other = old if new is not MISSING else new
    if _granular_map(node, present) and (other is MISSING or isinstance(other, dict)):
        if not root and not zero and old is MISSING:
            out["."] = None
        o = old if old is not MISSING else {}
        n = new if new is not MISSING else {}
        for key in (n.keys() | o.keys()) if o and n else (n or o):
            o_value = o.get(key)
            n_value = n.get(key)
            if o_value is n_value or o_value == n_value:
                continue
            if not isinstance(o_value, _CONTAINERS) and not isinstance(n_value, _CONTAINERS):
                if n_value is not None:  # added or modified; a removal is not a change here
                    out["f:" + key] = {".": None}
                continue
            child, _ = node.child(key)
            sub: dict[str, Any] = {}
            _changes(o_value, n_value, child, sub,
                     zero and key in _ZERO_STRUCTS and child.kind == STRUCT, False)
            if sub:
                out["f:" + key] = sub
        return
    if _granular_list(node) and isinstance(present, list) and (other is MISSING or isinstance(other, list)):
        o_items = index(old, node) if old is not MISSING else []
        n_items = index(new, node) if new is not MISSING else []
        if o_items is not None and n_items is not None:
            o_map = dict(o_items)
            n_map = dict(n_items)
            for element in list(n_map) + [e for e in o_map if e not in n_map]:
                o_item = o_map.get(element, MISSING)
                n_item = n_map.get(element, MISSING)
                if o_item is not MISSING and o_item == n_item:
                    continue
                item: dict[str, Any] = {".": None} if o_item is MISSING else {}
                _changes(o_item, n_item, node.elem, item, False, False)
                if item:
                    out[element] = item
            return
    if not root and new is not MISSING and (old is MISSING or old != new):
        out["."] = None


# -- the fields of a created object -----------------------------------------------------

def created_fields(obj: dict[str, Any], node: Node, skip_root: frozenset[str],
                   skip_meta: frozenset[str]) -> dict[str, Any]:
    """The ``fieldsV1`` of everything a create sets: the same answer as encoding
    ``compare(MISSING, obj).added`` minus the skipped fields, in one walk (a create is the
    hot path: no paths, no sets)."""
    out: dict[str, Any] = {}
    for key in sorted(obj):
        value = obj[key]
        if key in skip_root or value is None:
            continue
        child, _ = node.child(key)
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in skip_meta}
        sub = _created(value, child, key in _ZERO_STRUCTS and child.kind == STRUCT)
        if sub is not None:
            out["f:" + key] = sub
    return out


def _created(value: Any, node: Node, zero: bool) -> dict[str, Any] | None:
    if type(value) is dict and node.kind in _MAP_KINDS:
        children: dict[str, Any] = {}
        child_of = node.child
        for key in sorted(value):
            child_value = value[key]
            if child_value is None:
                continue
            if type(child_value) is dict or type(child_value) is list:
                child = child_of(key)[0]
                sub = _created(child_value, child,
                               zero and key in _ZERO_STRUCTS and child.kind == STRUCT)
                if sub is None:
                    continue
            else:
                sub = {}
            children["f:" + key] = sub
        if zero:
            return children or None
        return {".": {}, **children} if children else {}
    if type(value) is list and node.kind == LIST and node.list_type != "atomic":
        items = index(value, node)
        if items is not None:
            listed: dict[str, Any] = {}
            for element, item in sorted(items, key=lambda pair: pair[0]):
                sub = _created(item, node.elem, False)
                listed[element] = sub if sub is not None else {}
            return listed or None
    return {}


# -- merge ------------------------------------------------------------------------------

def _clean(value: Any) -> Any:
    """A copy of a configuration value without its null map entries."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def merge(live: Any, config: Any, node: Node) -> Any:
    """``config`` merged into ``live`` (neither is modified)."""
    if config is MISSING:
        return live
    if live is MISSING or live is None or config is None:
        return _clean(config)
    if _granular_map(node, config) and isinstance(live, dict):
        out = dict(live)
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
                continue
            child, _ = node.child(key)
            out[key] = merge(live.get(key, MISSING), value, child)
        return out
    if _granular_list(node) and isinstance(config, list) and isinstance(live, list):
        l_items = index(live, node)
        c_items = index(config, node)
        if l_items is not None and c_items is not None:
            c_map = dict(c_items)
            result = []
            for element, item in l_items:
                if element in c_map:
                    result.append(merge(item, c_map.pop(element), node.elem))
                else:
                    result.append(item)
            result.extend(_clean(item) for element, item in c_items if element in c_map)
            return result
    return _clean(config)


# -- removal ----------------------------------------------------------------------------

def remove(value: Any, paths: FieldSet, node: Node) -> Any:
    """A copy of ``value`` without the values at ``paths``; maps and lists emptied by the
    removal go too."""
    out = copy.deepcopy(value)
    for path in sorted(paths, key=len):
        _remove(out, path, node)
    return out


def _remove(value: Any, path: Path, node: Node) -> bool:
    """Remove ``path`` below ``value`` in place; True when ``value`` became empty."""
    element, rest = path[0], path[1:]
    if element.startswith("f:"):
        if not isinstance(value, dict):
            return False
        key = element[2:]
        if key not in value:
            return False
        if not rest:
            del value[key]
        else:
            child, _ = node.child(key)
            child_value = value[key]
            if _remove(child_value, rest, child) and child_value in ({}, []):
                del value[key]
        return not value
    if not isinstance(value, list) or not _granular_list(node):
        return False
    items = index(value, node)
    if items is None:
        return False
    for position, (found, item) in enumerate(items):
        if found == element:
            if not rest or (_remove(item, rest, node.elem) and item in ({}, [])):
                del value[position]
            break
    return not value
