"""The Node object the kubelet registers and keeps fresh (upstream ``nodestatus/setters.go``).

Machine facts are read once (:func:`machine_info`); :func:`node_status` turns them and the
previous conditions into a status whose ``lastHeartbeatTime`` is now and whose
``lastTransitionTime`` moves only when a condition's status changes. Pressure conditions are
always False for now (there is no eviction manager); Ready is True while the kubelet runs.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pyk8s.kubelet.envvars import parse_quantity
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.machinery.meta import rfc3339

Obj = dict[str, Any]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x"}


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


@dataclass(frozen=True)
class MachineInfo:
    cpus: int
    memory_bytes: int
    ephemeral_storage_bytes: int
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str
    os_image: str
    architecture: str
    hostname: str


def machine_info(root_dir: Path) -> MachineInfo:
    mem_kib = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    root_dir.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(root_dir).total
    os_image = "Linux"
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_image = line.split("=", 1)[1].strip('"')
    machine_id = _read("/etc/machine-id")
    return MachineInfo(
        cpus=os.cpu_count() or 1, memory_bytes=mem_kib * 1024, ephemeral_storage_bytes=disk,
        machine_id=machine_id,
        system_uuid=_read("/sys/class/dmi/id/product_uuid", machine_id),
        boot_id=_read("/proc/sys/kernel/random/boot_id"), kernel_version=platform.release(),
        os_image=os_image, architecture=_ARCH.get(platform.machine(), platform.machine()),
        hostname=platform.node())


def capacity(info: MachineInfo, settings: KubeletSettings) -> tuple[dict[str, str],
                                                                      dict[str, str]]:
    """(capacity, allocatable): allocatable keeps upstream's default eviction thresholds out
    (memory 100Mi, ephemeral-storage 10 %)."""
    cap = {"cpu": str(info.cpus), "memory": f"{info.memory_bytes // 1024}Ki",
           "ephemeral-storage": f"{info.ephemeral_storage_bytes // 1024}Ki",
           "pods": str(settings.max_pods), "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    reserve = int(parse_quantity(settings.eviction_memory_reserve))
    alloc = {**cap,
             "memory": f"{max(info.memory_bytes - reserve, 0) // 1024}Ki",
             "ephemeral-storage": str(info.ephemeral_storage_bytes * 9 // 10)}
    return cap, alloc


def node_labels(info: MachineInfo, settings: KubeletSettings) -> dict[str, str]:
    return {"kubernetes.io/hostname": settings.node_name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": info.architecture, "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": info.architecture, **settings.node_labels}


_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory",
     "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def node_conditions(previous: list[Obj], now: datetime) -> list[Obj]:
    prev = {c.get("type"): c for c in previous}
    out = []
    for type_, status, reason, message in _CONDITIONS:
        old = prev.get(type_)
        since = rfc3339(now)
        if old is not None and old.get("status") == status:
            since = old.get("lastTransitionTime") or since
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": since})
    return out


def node_status(info: MachineInfo, settings: KubeletSettings, node_ip: str, runtime_version: str,
                previous: list[Obj], now: datetime) -> Obj:
    cap, alloc = capacity(info, settings)
    return {
        "capacity": cap, "allocatable": alloc,
        "conditions": node_conditions(previous, now),
        "addresses": [{"type": "InternalIP", "address": node_ip},
                      {"type": "Hostname", "address": settings.node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": settings.server_port}},
        "nodeInfo": {
            "machineID": info.machine_id, "systemUUID": info.system_uuid,
            "bootID": info.boot_id, "kernelVersion": info.kernel_version,
            "osImage": info.os_image, "containerRuntimeVersion": runtime_version,
            "kubeletVersion": settings.kubelet_version, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": info.architecture,
        },
    }


def node_object(info: MachineInfo, settings: KubeletSettings, node_ip: str,
                runtime_version: str, now: datetime) -> Obj:
    spec: Obj = {}
    if settings.pod_cidr:
        spec = {"podCIDR": settings.pod_cidr, "podCIDRs": [settings.pod_cidr]}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": settings.node_name, "labels": node_labels(info, settings),
                     "annotations": {
                         "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                         "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": spec,
        "status": node_status(info, settings, node_ip, runtime_version, [], now),
    }
