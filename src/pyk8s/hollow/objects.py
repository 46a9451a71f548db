"""The objects a hollow node writes, as pure functions of settings and time.

Addresses are fake but unique and stable: node *i* gets ``InternalIP`` 100.64.0.0/10 + *i* + 1
(the shared-address range, so it can never be mistaken for a real host) and the pod range
``10.(64 + i // 256).(i % 256).0/24``, from which its pods take addresses one by one.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import datetime
from typing import Any

from pyk8s.hollow.settings import HollowNodeSettings
from pyk8s.machinery.meta import rfc3339

Obj = dict[str, Any]

_NODE_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
MAX_NODES = (255 - 64 + 1) * 256


@functools.lru_cache(maxsize=8192)
def node_ip(index: int) -> str:
    """Cached: it is on every pod start's path, and ipaddress is slow."""
    return str(ipaddress.IPv4Address(_NODE_BASE + index + 1))


def pod_cidr(index: int) -> str:
    if not 0 <= index < MAX_NODES:
        raise ValueError(f"hollow node index {index} out of range (at most {MAX_NODES} nodes)")
    return f"10.{64 + index // 256}.{index % 256}.0/24"


class PodAddresses:
    """The free addresses of one node's /24 (.1 is the gateway, .255 broadcast)."""

    def __init__(self, index: int) -> None:
        self._prefix = pod_cidr(index).rsplit(".", 1)[0]
        self._free = list(range(254, 1, -1))
        self._by_uid: dict[str, str] = {}

    def take(self, uid: str) -> str:
        ip = self._by_uid.get(uid)
        if ip is None:
            last = self._free.pop() if self._free else 1
            ip = self._by_uid[uid] = f"{self._prefix}.{last}"
        return ip

    def release(self, uid: str) -> None:
        ip = self._by_uid.pop(uid, None)
        if ip is not None:
            last = int(ip.rsplit(".", 1)[1])
            if last != 1:
                self._free.append(last)


_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory",
     "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def node_conditions(now: datetime, since: datetime) -> list[Obj]:
    heartbeat, transition = rfc3339(now), rfc3339(since)
    return [{"type": t, "status": s, "reason": r, "message": m,
             "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition}
            for t, s, r, m in _CONDITIONS]


def node_status(settings: HollowNodeSettings, index: int, now: datetime,
                since: datetime) -> Obj:
    name = settings.node_name(index)
    resources = {"cpu": settings.cpu, "memory": settings.memory, "pods": str(settings.pods),
                 "ephemeral-storage": settings.ephemeral_storage}
    return {
        "capacity": resources, "allocatable": dict(resources),
        "conditions": node_conditions(now, since),
        "addresses": [{"type": "InternalIP", "address": node_ip(index)},
                      {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": f"hollow-{index}", "systemUUID": f"hollow-{index}",
            "bootID": f"hollow-{index}", "kernelVersion": "hollow",
            "osImage": "Hollow Node", "containerRuntimeVersion": "hollow://1.0",
            "kubeletVersion": settings.kubelet_version, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    }


def node_object(settings: HollowNodeSettings, index: int, now: datetime) -> Obj:
    name = settings.node_name(index)
    cidr = pod_cidr(index)
    spec: Obj = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if settings.taints:
        spec["taints"] = [dict(t) for t in settings.taints]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "type": "hollow", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64", **settings.labels},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": spec,
        "status": node_status(settings, index, now, now),
    }


def lease_object(name: str, duration: int, now: datetime, node_uid: str = "") -> Obj:
    body: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": "kube-node-lease"},
                 "spec": lease_spec(name, duration, now)}
    if node_uid:
        body["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]
    return body


def lease_spec(name: str, duration: int, now: datetime) -> Obj:
    return {"holderIdentity": name, "leaseDurationSeconds": duration,
            "renewTime": micro_time(now)}


def micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_running_and_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def running_status(pod: Obj, host_ip: str, pod_ip: str, now: datetime) -> Obj:
    """What a kubelet reports for a pod whose containers all started and are ready."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    uid = meta.get("uid", "")
    status = pod.get("status") or {}
    now_text = rfc3339(now)
    started = status.get("startTime") or now_text

    def container_id(name: str) -> str:
        return f"hollow://{uid}/{name}"

    init = [{"name": c["name"], "image": c.get("image", ""), "imageID": c.get("image", ""),
             "containerID": container_id(c["name"]), "ready": True, "restartCount": 0,
             "started": False,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                      "finishedAt": started,
                                      "containerID": container_id(c["name"])}}}
            for c in spec.get("initContainers") or []]
    app = [{"name": c["name"], "image": c.get("image", ""), "imageID": c.get("image", ""),
            "containerID": container_id(c["name"]), "ready": True, "restartCount": 0,
            "started": True, "state": {"running": {"startedAt": now_text}}}
           for c in spec.get("containers") or []]
    scheduled = next((c for c in status.get("conditions") or []
                      if c.get("type") == "PodScheduled"), None)
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now_text}
        for t in ("Initialized", "Ready", "ContainersReady")]
    conditions.append(scheduled or {"type": "PodScheduled", "status": "True",
                                    "lastProbeTime": None, "lastTransitionTime": now_text})
    out: Obj = {"phase": "Running", "conditions": conditions, "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
                "startTime": started, "containerStatuses": app}
    if init:
        out["initContainerStatuses"] = init
    return out
