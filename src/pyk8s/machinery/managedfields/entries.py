"""``metadata.managedFields``: decoding, encoding and identifying its entries.

An entry is one manager's ownership for one operation: ``Apply`` entries are one per manager
(whatever apiVersion it applied with), ``Update`` entries one per manager, apiVersion and
subresource, as upstream's ``BuildManagerIdentifier`` keys them. Entries are written sorted
as upstream sorts them (operation, then time, manager, apiVersion, subresource).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pyk8s.machinery.managedfields import fieldpath
from pyk8s.machinery.managedfields.fieldpath import FieldSet

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"


@dataclass(frozen=True, slots=True)
class Entry:
    manager: str
    operation: str
    api_version: str
    fields: FieldSet
    time: str | None = None
    subresource: str = ""

    @property
    def ident(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """The manager as conflict messages name it (upstream's ``printManager``)."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def with_fields(self, fields: FieldSet) -> Entry:
        return replace(self, fields=fields)


class InvalidEntries(ValueError):
    """managedFields that cannot be decoded (the caller falls back on the live ones)."""


def decode(raw: Any) -> list[Entry]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidEntries("managedFields must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidEntries("a managedFields entry must be an object")
        operation = item.get("operation")
        if operation not in (APPLY, UPDATE):
            raise InvalidEntries(f"unsupported operation {operation!r}")
        if item.get("fieldsType", FIELDS_V1) != FIELDS_V1:
            raise InvalidEntries(f"unsupported fieldsType {item.get('fieldsType')!r}")
        try:
            fields = fieldpath.decode(item.get("fieldsV1") or {})
        except fieldpath.DecodeError as exc:
            raise InvalidEntries(str(exc)) from None
        manager, version = item.get("manager", ""), item.get("apiVersion", "")
        time, sub = item.get("time"), item.get("subresource", "")
        if not all(isinstance(v, str) for v in (manager, version, sub)) or not (
                time is None or isinstance(time, str)):
            raise InvalidEntries("managedFields entry fields must be strings")
        out.append(Entry(manager, operation, version, fields, time, sub))
    return out


def valid(raw: Any) -> bool:
    """Whether :func:`decode` would return entries (not none, no error), without building
    their field sets: the write path checks the stored entries on every update and decodes
    only those a change touches."""
    if not isinstance(raw, list) or not raw:
        return False
    for item in raw:
        if not isinstance(item, dict) or item.get("operation") not in (APPLY, UPDATE):
            return False
        if item.get("fieldsType", FIELDS_V1) != FIELDS_V1:
            return False
        if not all(isinstance(item.get(k, ""), str)
                   for k in ("manager", "apiVersion", "subresource")):
            return False
        time = item.get("time")
        if not (time is None or isinstance(time, str)):
            return False
        if not fieldpath.valid(item.get("fieldsV1") or {}):
            return False
    return True


def is_reset(raw: Any) -> bool:
    """An empty list, or a list of one empty entry: the client clears managedFields."""
    return isinstance(raw, list) and (raw == [] or raw == [{}])


def _order(entry: Entry) -> tuple[str, str, str, str, str]:
    return (entry.operation, entry.time or "", entry.manager, entry.api_version, entry.subresource)


def encode(entries: list[Entry]) -> list[dict[str, Any]]:
    out = []
    for entry in sorted(entries, key=_order):
        item: dict[str, Any] = {"manager": entry.manager, "operation": entry.operation,
                                "apiVersion": entry.api_version}
        if entry.time is not None:
            item["time"] = entry.time
        item["fieldsType"] = FIELDS_V1
        item["fieldsV1"] = fieldpath.encode(entry.fields)
        if entry.subresource:
            item["subresource"] = entry.subresource
        out.append(item)
    return out


def cap_updates(entries: list[Entry], api_version: str) -> list[Entry]:
    """At most :data:`MAX_UPDATE_MANAGERS` Update entries: the oldest are folded into one
    ``ancient-changes`` entry, as upstream's capManagersManager does."""
    updates = sorted((e for e in entries if e.operation == UPDATE), key=lambda e: e.time or "")
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return entries
    excess = len(updates) - MAX_UPDATE_MANAGERS + 1
    folded = updates[:excess]
    ancient = [e for e in folded if e.manager == ANCIENT_CHANGES]
    fields: set[fieldpath.Path] = set()
    for entry in folded:
        fields |= entry.fields
    keep = [e for e in entries if e not in folded]
    base = ancient[0] if ancient else Entry(ANCIENT_CHANGES, UPDATE, api_version, frozenset())
    keep.append(base.with_fields(frozenset(fields)))
    return keep
