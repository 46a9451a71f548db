"""Pods: upstream's defaults, the few immutability rules users hit, graceful deletion."""

from __future__ import annotations

from pyk8s.apiserver.registry.base import Cause, Obj, Strategy, invalid_value, required
from pyk8s.apiserver.registry.defaults import default_pod_spec
from pyk8s.apiserver.validation import resource_requirements_causes
from pyk8s.machinery.meta import validate_name

_MUTABLE_SPEC_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def qos_class(spec: Obj) -> str:
    """Guaranteed when every container's requests equal its limits for cpu and memory,
    BestEffort when no container asks for anything, Burstable otherwise."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        resources = c.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            request = requests.get(name, limit)
            if limit is None or request != limit:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def validate_pod_spec(spec: object, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        return [required(path)]
    containers = spec.get("containers")
    if not containers:
        causes.append(required(f"{path}.containers"))
        return causes
    if not isinstance(containers, list):
        return [invalid_value(f"{path}.containers", "", "must be a list")]
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            where = f"{path}.{key}[{i}]"
            if not isinstance(c, dict):
                causes.append(invalid_value(where, "", "must be an object"))
                continue
            name = c.get("name")
            if not name:
                causes.append(required(f"{where}.name"))
            elif not isinstance(name, str):
                causes.append(invalid_value(f"{where}.name", name, "must be a string"))
            else:
                for msg in validate_name(name, label=True):
                    causes.append(invalid_value(f"{where}.name", name, msg))
                if name in seen:
                    causes.append((f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
                seen.add(name)
            if not c.get("image"):
                causes.append(required(f"{where}.image"))
            causes += resource_requirements_causes(c.get("resources"), f"{where}.resources")
            for j, port in enumerate(c.get("ports") or []):
                number = port.get("containerPort") if isinstance(port, dict) else None
                if not isinstance(number, int) or not 0 < number < 65536:
                    causes.append(invalid_value(f"{where}.ports[{j}].containerPort", number,
                                                "must be between 1 and 65535, inclusive"))
    policy = spec.get("restartPolicy")
    if policy not in (None, "Always", "OnFailure", "Never"):
        causes.append((f"{path}.restartPolicy", "FieldValueNotSupported",
                       f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"'))
    return causes


class PodStrategy(Strategy):
    tracks_generation = True

    def prepare_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec, tolerations=True)
        if isinstance(spec, dict):
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("priority", 0)
        obj["status"] = {"phase": "Pending",
                         "qosClass": qos_class(spec) if isinstance(spec, dict) else "BestEffort"}

    def validate_create(self, obj: Obj) -> list[Cause]:
        return validate_pod_spec(obj.get("spec"), "spec")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = validate_pod_spec(new.get("spec"), "spec")
        if causes:
            return causes
        if _masked(new.get("spec")) != _masked(old.get("spec")):
            return [("spec", "Forbidden", "Forbidden: " + _MUTABLE_SPEC_MSG)]
        return []

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if requested is not None:
            return max(requested, 0)
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        period = spec.get("terminationGracePeriodSeconds", 30)
        return period if isinstance(period, int) and period >= 0 else 30


def _masked(spec: object) -> object:
    """The pod spec with the fields an update may change blanked out."""
    if not isinstance(spec, dict):
        return spec
    out = dict(spec)
    for key in ("containers", "initContainers"):
        if isinstance(out.get(key), list):
            out[key] = [{**c, "image": None} if isinstance(c, dict) else c for c in out[key]]
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        out.pop(key, None)
    return out
