"""Ownership bookkeeping for one write: an Update by a manager, or an Apply.

This is apimachinery's field manager stack (``managedFieldsUpdater``, ``stripMetaManager``,
``skipNonAppliedManager``, ``capManagersManager``, ``lastAppliedManager`` and
``lastAppliedUpdater``) over structured-merge-diff's ``Updater``, on plain objects:

* :func:`record_update` — a create, update or non-apply patch: the fields it changed move to
  the writing manager's ``Update`` entry (merged per manager, apiVersion and subresource, its
  ``time`` renewed), and leave every other entry; removed fields leave every entry.
* :func:`apply` — the applied configuration merged into the live object; the manager's
  ``Apply`` entry becomes exactly the configuration's fields; fields it applied before and
  no longer applies are removed from the object unless another manager owns them; a change
  to a field another manager owns is a conflict unless forced (then ownership moves).

Expected outcomes are values: :func:`apply` returns :class:`Conflicts` rather than raising.
Fields no manager owns: ``apiVersion``, ``kind``, the system metadata (name, namespace, uid,
resourceVersion, generation, creationTimestamp, selfLink, managedFields), and the fields the
strategy resets (``status`` of a resource with a status subresource, written through it).

kubectl's migration from client-side apply is upstream's: when the manager is ``kubectl`` and
the object carries ``kubectl.kubernetes.io/last-applied-configuration``, conflicts on fields
whose live value is still the annotation's are forced, and the annotation is rewritten to the
applied configuration.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import orjson

from pyk8s.machinery.managedfields import entries as entries_mod
from pyk8s.machinery.managedfields import fieldpath, values
from pyk8s.machinery.managedfields.entries import APPLY, UPDATE, Entry
from pyk8s.machinery.managedfields.fieldpath import FieldSet, Path
from pyk8s.machinery.managedfields.typed import Node

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
BEFORE_FIRST_APPLY = "before-first-apply"
KUBECTL = "kubectl"

_META = "f:metadata"
STRIPPED: FieldSet = frozenset(
    [("f:apiVersion",), ("f:kind",), (_META,)]
    + [(_META, "f:" + name) for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
        "generation", "managedFields", "resourceVersion")])
_NOT_WALKED: FieldSet = frozenset({(_META, "f:managedFields")})
_SKIP_META = frozenset(p[1][2:] for p in STRIPPED if len(p) == 2)


@functools.lru_cache(maxsize=256)
def _skip_root(scope: Scope) -> frozenset[str]:
    return frozenset({"apiVersion", "kind"} | {r[0][2:] for r in scope.reset if len(r) == 1})


@dataclass(frozen=True, slots=True)
class Scope:
    """What is being written: the kind's type, the apiVersion entries record, the
    subresource, and the roots of the fields the strategy resets (owned by nobody)."""

    node: Node
    api_version: str
    subresource: str = ""
    reset: FieldSet = fieldpath.EMPTY

    def owned(self, fields: set[Path] | FieldSet) -> FieldSet:
        kept = frozenset(fields) - STRIPPED
        return fieldpath.without_prefixes(kept, self.reset)


@dataclass(frozen=True, slots=True)
class Conflicts:
    """Fields an apply would change that other managers own: (owner, path) pairs."""

    items: tuple[tuple[Entry, Path], ...]

    def _sorted(self) -> list[tuple[Entry, Path]]:
        return sorted(self.items, key=lambda c: (c[0].ident, fieldpath.sort_key(c[1])))

    @property
    def message(self) -> str:
        items = self._sorted()
        if len(items) == 1:
            owner, path = items[0]
            return (f"Apply failed with 1 conflict: conflict with {owner.describe()}: "
                    f"{fieldpath.to_string(path)}")
        lines: list[str] = []
        last = None
        for owner, path in items:
            if owner.ident != last:
                lines.append(f"conflicts with {owner.describe()}:")
                last = owner.ident
            lines.append(f"- {fieldpath.to_string(path)}")
        return f"Apply failed with {len(items)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        return [{"reason": "FieldManagerConflict",
                 "message": f"conflict with {owner.describe()}",
                 "field": fieldpath.to_string(path)}
                for owner, path in self._sorted()]


@dataclass(slots=True)
class Applied:
    """The object an apply makes (before defaulting) and its managedFields."""

    obj: dict[str, Any]
    managed_fields: list[dict[str, Any]] = field(default_factory=list)


def _meta(obj: Any) -> dict[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def _decode_or_empty(raw: Any) -> list[Entry]:
    try:
        return entries_mod.decode(raw)
    except entries_mod.InvalidEntries:
        return []


def _finish(entries: list[Entry], scope: Scope) -> list[dict[str, Any]]:
    kept = [e for e in entries if e.fields]
    return entries_mod.encode(entries_mod.cap_updates(kept, scope.api_version))


def record_update(live: dict[str, Any] | None, new: dict[str, Any], scope: Scope,
                  manager: str, now: str) -> list[dict[str, Any]] | None:
    """The managedFields ``new`` is stored with after an Update by ``manager`` (None: the
    object has none). ``live`` is None for a create. ``new`` still carries the managedFields
    the client sent (or the patched ones)."""
    sent = _meta(new).get("managedFields")
    # A subresource write takes the live entries whatever it sent (upstream's
    # decodeLiveOrNew with ignoreManagedFieldsFromRequestObject), so it cannot reset them.
    if not scope.subresource and entries_mod.is_reset(sent):
        return None
    base: list[Entry] = []
    if not scope.subresource and sent and (live is None or sent != _meta(live).get("managedFields")):
        base = _decode_or_empty(sent)
    if not base and live is None:
        fields = values.created_fields(new, scope.node, _skip_root(scope), _SKIP_META)
        if not fields:
            return None
        return [{"manager": manager, "operation": UPDATE, "apiVersion": scope.api_version,
                 "time": now, "fieldsType": entries_mod.FIELDS_V1, "fieldsV1": fields,
                 **({"subresource": scope.subresource} if scope.subresource else {})}]
    from_live = not base
    live_managed = _meta(live).get("managedFields")
    if from_live and not entries_mod.valid(live_managed):
        return None  # upstream does not start tracking an untracked object on update
    old_value: Any = values.MISSING if live is None else live
    new_value: dict[str, Any]
    if scope.reset:
        # Top-level fields the strategy resets (all but status on a status write) are not
        # compared: Scope.owned would drop whatever they gave.
        skipped = _skip_root(scope)
        if old_value is not values.MISSING:
            old_value = {k: v for k, v in old_value.items() if k not in skipped}
        new_value = {k: v for k, v in new.items() if k not in skipped}
    else:
        new_value = new
    if from_live and old_value is not values.MISSING:
        first = _first_update(live_managed, old_value, new_value, scope, manager, now)
        if first is not None:
            return first
    comparison = values.compare(old_value, new_value, scope.node, _NOT_WALKED)
    taken = scope.owned(comparison.changed)
    removed = scope.owned(comparison.removed)
    if from_live:
        # the stored entries are valid: work on them directly
        if not taken and not removed:
            return live_managed  # type: ignore[no-any-return]
        fast = _update_raw(live_managed, taken, removed, scope, manager, now)
        if fast is not None:
            return fast or None
        base = entries_mod.decode(live_managed)
    ident = (manager, UPDATE, scope.api_version, scope.subresource)
    out: list[Entry] = []
    own: Entry | None = None
    for entry in base:
        remaining = entry.fields - taken - removed
        if entry.ident == ident:
            own = entry.with_fields(remaining)
        else:
            out.append(entry.with_fields(remaining))
    if taken:
        fields = (own.fields if own else frozenset()) | taken
        own = Entry(manager, UPDATE, scope.api_version, fields, now, scope.subresource)
    if own is not None:
        out.append(own)
    return _finish(out, scope) or None


def _raw_ident(item: dict[str, Any]) -> tuple[str, str, str, str]:
    operation = item.get("operation", "")
    return (item.get("manager", ""), operation,
            "" if operation == APPLY else item.get("apiVersion", ""), item.get("subresource", ""))


def _raw_order(item: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (item.get("operation", ""), item.get("time") or "", item.get("manager", ""),
            item.get("apiVersion", ""), item.get("subresource", ""))


def _update_raw(raw: list[dict[str, Any]], taken: FieldSet, removed: FieldSet, scope: Scope,
                manager: str, now: str) -> list[dict[str, Any]] | None:
    """:func:`record_update` on the stored entries themselves: only the entries a change
    touches are decoded and re-encoded (the common write touches one or two). None when the
    Update managers overflow and the general path must fold them."""
    gone = taken | removed
    # The top-level fields the change touches: an entry owning none of them (a status
    # write against the creator's metadata and spec) is kept without a path lookup.
    gone_roots = {path[0] for path in gone if path}
    ident = (manager, UPDATE, scope.api_version, scope.subresource)
    out: list[dict[str, Any]] = []
    own: dict[str, Any] | None = None
    for item in raw:
        if _raw_ident(item) == ident:
            own = item
            continue
        tree = item.get("fieldsV1") or {}
        if gone_roots.isdisjoint(tree) and () not in gone:
            out.append(item)
        elif any(fieldpath.has_member(tree, path) for path in gone):
            fields = fieldpath.decode(tree) - gone
            if fields:
                out.append({**item, "fieldsV1": fieldpath.encode(fields)})
        else:
            out.append(item)
    if own is not None or taken:
        tree = own.get("fieldsV1") or {} if own is not None else {}
        if (own is not None and taken and not removed and "time" in own
                and own.get("fieldsType") == entries_mod.FIELDS_V1
                and all(fieldpath.has_member(tree, path) for path in taken)):
            # The writer changed only fields it already owns (a Lease renewal, a status
            # heartbeat): the same entry with its time renewed. Stored entries are written
            # by entries.encode, so this is exactly what re-encoding them would give.
            out.append({**own, "time": now})
        elif taken or any(fieldpath.has_member(tree, path) for path in removed):
            fields = (fieldpath.decode(tree) - removed) | taken
            if fields:
                entry = Entry(manager, UPDATE, scope.api_version, fields,
                              now if taken else (own or {}).get("time"), scope.subresource)
                out.extend(entries_mod.encode([entry]))
        elif own is not None:
            out.append(own)
    if sum(1 for item in out if item.get("operation") == UPDATE) > entries_mod.MAX_UPDATE_MANAGERS:
        return None
    out.sort(key=_raw_order)
    return out


_NEVER_OWNED_ROOTS = frozenset({"f:apiVersion", "f:kind", _META})


def _first_update(raw: list[dict[str, Any]], old: dict[str, Any], new: dict[str, Any],
                  scope: Scope, manager: str, now: str) -> list[dict[str, Any]] | None:
    """:func:`record_update` from the stored entries when ``manager`` has none yet and no
    entry owns a top-level field the write changes (a kubelet's first status write): every
    entry stays as it is, and the manager's new one holds exactly the changed fields, built
    as a tree in one walk (:func:`values.changed_tree`). None when that is not the case, or
    when the write only removes fields: the general path decides."""
    if any(len(root) != 1 for root in scope.reset):
        return None
    roots = {"f:" + key for key in new.keys() | old.keys() if old.get(key) != new.get(key)}
    if not roots or not roots.isdisjoint(_NEVER_OWNED_ROOTS):
        return None
    ident = (manager, UPDATE, scope.api_version, scope.subresource)
    updates = 1
    for item in raw:
        if _raw_ident(item) == ident or not roots.isdisjoint(item.get("fieldsV1") or {}):
            return None
        updates += item.get("operation") == UPDATE
    if updates > entries_mod.MAX_UPDATE_MANAGERS:
        return None
    tree = values.changed_tree(old, new, scope.node)
    if not tree:
        return None
    entry = {"manager": manager, "operation": UPDATE, "apiVersion": scope.api_version,
             "time": now, "fieldsType": entries_mod.FIELDS_V1, "fieldsV1": fieldpath.emit(tree)}
    if scope.subresource:
        entry["subresource"] = scope.subresource
    out = [*raw, entry]
    out.sort(key=_raw_order)
    return out


def _config_without_reset(config: dict[str, Any], scope: Scope) -> dict[str, Any]:
    config = dict(config)
    for root in scope.reset:
        if len(root) == 1:
            config.pop(root[0][2:], None)
    meta = config.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        config["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return config


def _before_first_apply(live: dict[str, Any], scope: Scope, now: str) -> list[Entry]:
    fields = scope.owned(values.compare(values.MISSING, live, scope.node, _NOT_WALKED).added)
    return [Entry(BEFORE_FIRST_APPLY, UPDATE, scope.api_version, fields, now)] if fields else []


def _apply_once(live: dict[str, Any] | None, config: dict[str, Any], base: list[Entry],
                scope: Scope, manager: str, force: bool, now: str) -> Applied | Conflicts:
    config_set = scope.owned(values.field_set(config, scope.node, _NOT_WALKED))
    ident = (manager, APPLY, "", scope.subresource)
    own = next((e for e in base if e.ident == ident), None)
    others = [e for e in base if e.ident != ident]
    live_value = live if live is not None else values.MISSING
    merged = values.merge(live_value, _config_without_reset(config, scope), scope.node)
    if own is not None:
        dropped = own.fields - config_set
        if dropped:
            kept: set[Path] = set(config_set)
            for entry in others:
                kept |= entry.fields
            in_use = fieldpath.prefixes(frozenset(kept))
            removable = frozenset(p for p in dropped if p not in in_use)
            if removable:
                merged = values.remove(merged, removable, scope.node)
    comparison = values.compare(live_value, merged, scope.node, _NOT_WALKED)
    changed = scope.owned(comparison.changed)
    removed = scope.owned(comparison.removed)
    conflicts = tuple((entry, path) for entry in others
                      for path in sorted(entry.fields & changed, key=fieldpath.sort_key))
    if conflicts and not force:
        return Conflicts(conflicts)
    out = [entry.with_fields(entry.fields - changed - removed) for entry in others]
    unchanged = live is not None and merged == live
    time = own.time if (own is not None and unchanged) else now
    out.append(Entry(manager, APPLY, scope.api_version, config_set, time, scope.subresource))
    return Applied(merged, _finish(out, scope))


def _allowed_by_last_applied(live: dict[str, Any], scope: Scope) -> FieldSet:
    """Fields whose live value is still what client-side apply last applied."""
    text = (_meta(live).get("annotations") or {}).get(LAST_APPLIED)
    if not isinstance(text, str) or not text:
        return fieldpath.EMPTY
    try:
        last = orjson.loads(text)
    except orjson.JSONDecodeError:
        return fieldpath.EMPTY
    if not isinstance(last, dict):
        return fieldpath.EMPTY
    in_last = values.field_set(last, scope.node, _NOT_WALKED)
    differs = values.compare(last, live, scope.node, _NOT_WALKED)
    return frozenset(in_last - differs.modified - differs.removed - differs.added)


def last_applied_text(config: dict[str, Any]) -> str:
    """The annotation client-side apply would write for ``config`` (upstream's
    ``buildLastApplied``: the configuration without the annotation, as sorted JSON)."""
    copy_ = dict(config)
    meta = copy_.get("metadata")
    if isinstance(meta, dict):
        meta = dict(meta)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        copy_["metadata"] = meta
    text = orjson.dumps(copy_, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE).decode()
    # Go's encoder escapes these (kubectl compares its own encoding with this one)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text


_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
               ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def apply(live: dict[str, Any] | None, config: dict[str, Any], scope: Scope, manager: str,
          *, force: bool, now: str) -> Applied | Conflicts:
    """Apply ``config`` (the decoded applied configuration) by ``manager`` to ``live`` (None
    when the apply creates the object)."""
    base: list[Entry] = []
    if live is not None:
        base = _decode_or_empty(_meta(live).get("managedFields"))
        if not base:
            base = _before_first_apply(live, scope, now)
    result = _apply_once(live, config, base, scope, manager, force, now)
    has_last_applied = live is not None and LAST_APPLIED in (_meta(live).get("annotations") or {})
    if manager != KUBECTL or not has_last_applied:
        return result
    assert live is not None
    if isinstance(result, Conflicts):
        allowed = _allowed_by_last_applied(live, scope)
        remaining = tuple(c for c in result.items if c[1] not in allowed)
        if remaining:
            return Conflicts(remaining)
        result = _apply_once(live, config, base, scope, manager, True, now)
        assert isinstance(result, Applied)
    annotations = _meta(result.obj).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        obj = dict(result.obj)
        meta = dict(_meta(obj))
        meta["annotations"] = {**annotations, LAST_APPLIED: last_applied_text(config)}
        obj["metadata"] = meta
        result = Applied(obj, result.managed_fields)
    return result
