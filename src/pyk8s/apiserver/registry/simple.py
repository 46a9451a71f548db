"""Kinds whose rules are a few lines each: secrets, nodes, workloads, events."""

from __future__ import annotations

import base64
import binascii

from pyk8s.apiserver.registry.base import Cause, Obj, Strategy, immutable, invalid_value, required
from pyk8s.apiserver.registry.defaults import default_workload
from pyk8s.apiserver.registry.pods import validate_pod_spec
from pyk8s.machinery import selectors


class SecretStrategy(Strategy):
    tracks_generation = False

    def _fold(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.get("data")
            if not isinstance(data, dict):
                data = obj["data"] = {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def prepare_create(self, obj: Obj) -> None:
        self._fold(obj)

    def prepare_update(self, new: Obj, old: Obj) -> None:
        self._fold(new)

    def validate_create(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        data = obj.get("data")
        if data is not None and not isinstance(data, dict):
            return [invalid_value("data", "", "must be a map of base64 strings")]
        for key, value in (data or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                causes.append(invalid_value(f"data[{key}]", "<secret contents redacted>",
                                            "must be base64-encoded"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate_create(new)
        if old.get("immutable") and (new.get("data") != old.get("data") or not new.get("immutable")):
            causes.append(("data", "Forbidden", "Forbidden: field is immutable when `immutable` is set"))
        if new.get("type") != old.get("type"):
            causes.append(immutable("type"))
        return causes


class ConfigMapStrategy(Strategy):
    tracks_generation = False

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if old.get("immutable") and (new.get("data") != old.get("data")
                                     or new.get("binaryData") != old.get("binaryData")
                                     or not new.get("immutable")):
            return [("data", "Forbidden", "Forbidden: field is immutable when `immutable` is set")]
        return []


class NodeStrategy(Strategy):
    """Nodes are created by their kubelet with a status already filled in: keep it."""

    tracks_generation = False

    def prepare_create(self, obj: Obj) -> None:
        obj.setdefault("spec", {})


class PlainStrategy(Strategy):
    """Kinds without spec/status generations (events, leases, endpoints...)."""

    tracks_generation = False


class WorkloadStrategy(Strategy):
    """Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs, CronJobs."""

    def prepare_create(self, obj: Obj) -> None:
        super().prepare_create(obj)
        default_workload(self.resource.kind, obj)

    def prepare_update(self, new: Obj, old: Obj) -> None:
        default_workload(self.resource.kind, new)

    def validate_create(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        causes: list[Cause] = []
        kind = self.resource.kind
        if kind == "CronJob":
            if not spec.get("schedule"):
                causes.append(required("spec.schedule"))
            template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
            return causes + validate_pod_spec((template or {}).get("spec"),
                                              "spec.jobTemplate.spec.template.spec")
        for field in ("replicas",):
            value = spec.get(field)
            if value is not None and (not isinstance(value, int) or value < 0):
                causes.append(invalid_value(f"spec.{field}", value,
                                            "must be greater than or equal to 0"))
        template = spec.get("template")
        if not isinstance(template, dict):
            causes.append(required("spec.template"))
            return causes
        selector = spec.get("selector")
        if kind != "Job" or selector is not None:
            if not isinstance(selector, dict) or not selector:
                causes.append(required("spec.selector"))
            else:
                try:
                    parsed = selectors.label_selector_from_dict(selector)
                except selectors.SelectorError as exc:
                    causes.append(invalid_value("spec.selector", "", str(exc)))
                    parsed = None
                labels = (template.get("metadata") or {}).get("labels") or {}
                if parsed is not None and (parsed.empty or not parsed.matches(labels)):
                    causes.append(invalid_value(
                        "spec.template.metadata.labels",
                        ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                        "`selector` does not match template `labels`"))
        causes += validate_pod_spec(template.get("spec"), "spec.template.spec")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate_create(new)
        if self.resource.kind == "Job":
            old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
            for field in ("template", "selector", "completions"):
                if new_spec.get(field) != old_spec.get(field):
                    causes.append(immutable(f"spec.{field}"))
        workload = self.resource.kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")
        if workload and (new.get("spec") or {}).get("selector") != (old.get("spec") or {}).get("selector"):
            causes.append(immutable("spec.selector"))
        return causes
