"""Strategic-merge-patch metadata read from the definitions.

:class:`pyk8s.machinery.patch.TableSchema` wants "definition → field → (type of the value or
of list elements, ``x-kubernetes-patch-strategy``, ``x-kubernetes-patch-merge-key``)".
:class:`PatchMetaTable` answers that from the official definitions, converting a definition
the first time a patch reaches it (most patches touch a handful of types).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pyk8s.machinery.patch import FieldMeta, MergeSchema, schema_for_kind
from pyk8s.machinery.schema import definitions as schema_defs


def _element_type(prop: dict[str, Any]) -> str | None:
    ref = prop.get("$ref")
    if isinstance(ref, str):
        return ref
    items = prop.get("items")
    if isinstance(items, dict) and isinstance(items.get("$ref"), str):
        return str(items["$ref"])
    return None


def fields_of(schema: dict[str, Any]) -> dict[str, FieldMeta]:
    return {
        name: (_element_type(prop), prop.get("x-kubernetes-patch-strategy", ""),
               prop.get("x-kubernetes-patch-merge-key", ""))
        for name, prop in (schema.get("properties") or {}).items()
    }


class PatchMetaTable(Mapping[str, Mapping[str, FieldMeta]]):
    """definition name → field → :data:`~pyk8s.machinery.patch.FieldMeta`, lazily."""

    def __init__(self, defs: schema_defs.Definitions) -> None:
        self._defs = defs
        self._done: dict[str, dict[str, FieldMeta]] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Mapping[str, FieldMeta]:
        done = self._done.get(name)
        if done is None:
            if name not in self._defs:
                raise KeyError(name)
            with self._lock:
                done = fields_of(self._defs.schema(name))
                self._done[name] = done
        return done

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._defs

    def __iter__(self) -> Iterator[str]:
        return iter(self._defs.names())

    def __len__(self) -> int:
        return len(self._defs.names())


_table: PatchMetaTable | None = None


def table() -> PatchMetaTable:
    global _table
    if _table is None:
        _table = PatchMetaTable(schema_defs.get())
    return _table


def merge_schema(api_version: str, kind: str) -> MergeSchema | None:
    """The strategic-merge schema of a built-in kind from the definitions; None for kinds
    that are not built in (custom resources get no strategic merge patch)."""
    return schema_for_kind(api_version, kind, table())
