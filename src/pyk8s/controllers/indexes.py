"""Informer indexes several controllers share, registered once per informer by name."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from pyk8s.client import Informer

Obj = dict[str, Any]

NAMESPACE = "namespace"
NODE_NAME = "nodeName"
OWNER_UID = "ownerUID"
UID = "uid"


def _namespace(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _node_name(obj: Obj) -> list[str]:
    return [str((obj.get("spec") or {}).get("nodeName") or "")]


def _owner_uids(obj: Obj) -> list[str]:
    return [str(ref.get("uid")) for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
            if ref.get("uid")]


def _uid(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("uid") or "")]


_FUNCTIONS: dict[str, Callable[[Obj], list[str]]] = {
    NAMESPACE: _namespace, NODE_NAME: _node_name, OWNER_UID: _owner_uids, UID: _uid,
}
_registered: weakref.WeakKeyDictionary[Informer, set[str]] = weakref.WeakKeyDictionary()


def ensure(informer: Informer, *names: str) -> Informer:
    """Add the named shared indexes to ``informer`` unless a controller already did."""
    done = _registered.setdefault(informer, set())
    for name in names:
        if name not in done:
            informer.add_index(name, _FUNCTIONS[name])
            done.add(name)
    return informer
