"""Informer indexes several controllers share, registered once per informer by name.

``controllerUID`` and ``orphanNamespace`` split the pods a workload controller can claim
into those it already controls (by the controller reference's uid) and those no controller
owns (by namespace), so a sync reads its own pods plus the orphans, not the whole namespace.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from pyk8s.client import Informer

Obj = dict[str, Any]

CONTROLLER_UID = "controllerUID"
NAMESPACE = "namespace"
NODE_NAME = "nodeName"
ORPHAN_NAMESPACE = "orphanNamespace"


def _controller(obj: Obj) -> Obj | None:
    refs: list[Obj] = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return None


def _controller_uid(obj: Obj) -> list[str]:
    ref = _controller(obj)
    return [str(ref["uid"])] if ref is not None and ref.get("uid") else []


def _orphan_namespace(obj: Obj) -> list[str]:
    return _namespace(obj) if _controller(obj) is None else []


def _namespace(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _node_name(obj: Obj) -> list[str]:
    return [str((obj.get("spec") or {}).get("nodeName") or "")]


_FUNCTIONS: dict[str, Callable[[Obj], list[str]]] = {
    CONTROLLER_UID: _controller_uid, NAMESPACE: _namespace, NODE_NAME: _node_name,
    ORPHAN_NAMESPACE: _orphan_namespace,
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
