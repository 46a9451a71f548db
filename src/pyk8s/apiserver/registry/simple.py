"""Kinds whose rules are a few lines each: secrets, nodes, workloads, events."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json

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


_POD_CIDR_FORBIDDEN = 'Forbidden: node updates may not change podCIDR except from "" to valid'


def _go_strings(values: list[object]) -> str:
    """A []string as Go's %#v prints it in field errors."""
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"


def _cidr_version(value: object) -> int | None:
    """4 or 6 for ``addr/len`` (host bits allowed, as Go's ParseCIDR), None if not a CIDR."""
    if not isinstance(value, str) or value.count("/") != 1 or not value.split("/")[1].isdigit():
        return None
    try:
        return ipaddress.ip_network(value, strict=False).version
    except ValueError:
        return None


def _sync_pod_cidrs(obj: Obj) -> None:
    """Keep ``podCIDR`` and ``podCIDRs[0]`` one value, as upstream's v1 conversion does
    (``podCIDR`` wins when both are given and differ)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    single, many = spec.get("podCIDR"), spec.get("podCIDRs")
    if not isinstance(many, list):
        many = []
    if single:
        if not many or many[0] != single:
            spec["podCIDRs"] = [single]
    elif many:
        spec["podCIDR"] = many[0]


def _pod_cidrs(obj: Obj) -> list[object]:
    many = (obj.get("spec") or {}).get("podCIDRs")
    return list(many) if isinstance(many, list) else []


class NodeStrategy(Strategy):
    """Nodes are created by their kubelet with a status already filled in: keep it.

    ``spec.podCIDRs`` must be valid CIDRs, at most one per IP family, and may be set once
    (by the node IPAM controller, or the kubelet at registration) but not changed after."""

    tracks_generation = False

    def prepare_create(self, obj: Obj) -> None:
        obj.setdefault("spec", {})
        _sync_pod_cidrs(obj)

    def prepare_update(self, new: Obj, old: Obj) -> None:
        _sync_pod_cidrs(new)

    def validate_create(self, obj: Obj) -> list[Cause]:
        cidrs = _pod_cidrs(obj)
        causes: list[Cause] = []
        versions = [_cidr_version(c) for c in cidrs]
        for i, version in enumerate(versions):
            if version is None:
                causes.append((f"spec.podCIDRs[{i}]", "FieldValueInvalid",
                               f"Invalid value: {_go_strings(cidrs)}: must be valid CIDR"))
        if len(cidrs) > 1:
            if len(cidrs) > 2 or None in versions or versions[0] == versions[1]:
                causes.append(("spec.podCIDRs", "FieldValueInvalid",
                               f"Invalid value: {_go_strings(cidrs)}: "
                               "may specify no more than one CIDR for each IP family"))
            seen: set[str] = set()
            for i, cidr in enumerate(cidrs):
                if str(cidr) in seen:
                    causes.append((f"spec.podCIDRs[{i}]", "FieldValueDuplicate",
                                   f"Duplicate value: {json.dumps(str(cidr))}"))
                seen.add(str(cidr))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate_create(new)
        before = _pod_cidrs(old)
        if before and before != _pod_cidrs(new):
            causes.append(("spec.podCIDRs", "FieldValueForbidden", _POD_CIDR_FORBIDDEN))
        return causes


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
