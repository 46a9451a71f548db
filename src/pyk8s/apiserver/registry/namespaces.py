"""Namespaces: the ``kubernetes`` finalizer, Terminating phase, protected namespaces."""

from __future__ import annotations

from pyk8s.apiserver.registry.base import Obj, Strategy
from pyk8s.machinery import errors

PROTECTED = frozenset({"default", "kube-system", "kube-public"})
NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(Strategy):
    tracks_generation = False

    def prepare_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        spec["finalizers"] = ["kubernetes"]
        obj["status"] = {"phase": "Active"}
        self._label(obj)

    def prepare_update(self, new: Obj, old: Obj) -> None:
        # spec.finalizers change only through /finalize.
        new["spec"] = old.get("spec", {})
        self._label(new)

    @staticmethod
    def _label(obj: Obj) -> None:
        meta = obj["metadata"]
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels[NAME_LABEL] = meta.get("name", "")

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        name = obj["metadata"].get("name")
        if name in PROTECTED:
            raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        return 0

    def on_deleting(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def deletion_finalized(self, obj: Obj) -> bool:
        return not obj["metadata"].get("finalizers") and not (obj.get("spec") or {}).get("finalizers")
