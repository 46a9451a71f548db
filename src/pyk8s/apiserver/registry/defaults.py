"""Upstream's defaults for pod templates and workloads (``pkg/apis/*/v1/defaults.go``).

Applied on create and update so that what clients read back is what upstream would store;
the full OpenAPI-driven defaulting replaces this with the API-fidelity work.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def image_pull_policy(image: str) -> str:
    """Always for ``:latest`` or untagged images, else IfNotPresent (digests included)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_probe(probe: Obj) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http_get = probe.get("httpGet")
    if isinstance(http_get, dict):
        http_get.setdefault("scheme", "HTTP")
        http_get.setdefault("path", "/")


def _default_container(container: Obj) -> None:
    if not isinstance(container, dict):
        return
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = container.get("image")
    if isinstance(image, str) and image:
        container.setdefault("imagePullPolicy", image_pull_policy(image))
    container.setdefault("resources", {})
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(key)
        if isinstance(probe, dict):
            _default_probe(probe)
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


DEFAULT_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", 300),
    ("node.kubernetes.io/unreachable", 300),
)


def default_pod_spec(spec: Obj, *, tolerations: bool = False) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            _default_container(container)
    if tolerations:
        # DefaultTolerationSeconds admission: pods ride out a short node outage.
        existing = spec.get("tolerations")
        if existing is None or isinstance(existing, list):
            existing = list(existing or [])
            for key, seconds in DEFAULT_TOLERATIONS:
                if not any(isinstance(t, dict) and t.get("key") == key and t.get("effect") in ("NoExecute", None, "")
                           for t in existing):
                    existing.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                     "tolerationSeconds": seconds})
            spec["tolerations"] = existing


def default_template(template: Any) -> None:
    if isinstance(template, dict):
        default_pod_spec(template.setdefault("spec", {}))
        template.setdefault("metadata", {}).pop("creationTimestamp", None)


def default_workload(kind: str, obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        spec.setdefault("replicas", 1)
    if kind in ("Deployment", "DaemonSet", "StatefulSet"):
        spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.get("strategy")
        if not strategy:
            strategy = spec["strategy"] = {}
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
    if kind == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", 1)
                    rolling.setdefault("maxSurge", 0)
    if kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                strategy.setdefault("rollingUpdate", {"partition": 0})
    if kind == "Job":
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        if "completions" not in spec:
            spec["completions"] = 1
        template = spec.get("template")
        if isinstance(template, dict):
            template.setdefault("spec", {}).setdefault("restartPolicy", "Never")
    if kind == "CronJob":
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_template = spec.get("jobTemplate")
        if isinstance(job_template, dict):
            job_spec = job_template.setdefault("spec", {})
            if isinstance(job_spec, dict):
                default_template(job_spec.get("template"))
        return
    default_template(spec.get("template"))
