"""Plain-dict Nodes and Pods for the scheduler's unit tests, and a recording fake client."""

from __future__ import annotations

import itertools
from typing import Any

from pyk8s.machinery.errors import ApiError
from pyk8s.scheduler.framework import CycleState, Framework, Handle
from pyk8s.scheduler.nodeinfo import NodeInfo, PodInfo
from pyk8s.scheduler.plugins.registry import in_tree_registry
from pyk8s.scheduler.settings import Profile
from pyk8s.scheduler.snapshot import Snapshot

_uids = itertools.count(1)


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: int | str = 110, *,
         labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         unschedulable: bool = False, extra: dict[str, str] | None = None) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi",
             **(extra or {})}
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"node-{name}",
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec,
            "status": {"capacity": dict(alloc), "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, cpu: str | None = None, memory: str | None = None, *,
        namespace: str = "default", node_name: str = "", labels: dict[str, str] | None = None,
        priority: int = 0, spec: dict[str, Any] | None = None,
        uid: str | None = None, owner: str = "",
        extended: dict[str, str] | None = None) -> dict[str, Any]:
    requests: dict[str, str] = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    requests.update(extended or {})
    body: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox",
                                            "resources": {"requests": requests}}],
                            "schedulerName": "default-scheduler", "priority": priority,
                            **(spec or {})}
    if node_name:
        body["nodeName"] = node_name
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "uid": uid or f"uid-{name}-{next(_uids)}", "labels": labels or {},
                            "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "1"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                    "uid": f"owner-{owner}", "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body,
            "status": {"phase": "Pending"}}


def node_info(n: dict[str, Any], *pods: dict[str, Any]) -> NodeInfo:
    info = NodeInfo(n)
    for p in pods:
        info.add_pod(PodInfo(p))
    return info


def framework(*node_infos: NodeInfo, profile: Profile | None = None,
              client: Any = None) -> Framework:
    handle = Handle(client=client, snapshot=Snapshot(list(node_infos)))
    return Framework(profile or Profile(), in_tree_registry(), handle)


def run_filter(fwk: Framework, p: dict[str, Any], info: NodeInfo) -> Any:
    state = CycleState()
    pi = PodInfo(p)
    _, status = fwk.run_pre_filter(state, pi, fwk.handle.snapshot.node_infos)
    if not status.is_success:
        return status
    return fwk.run_filter(state, pi, info)


class FakeClient:
    """Records writes; ``fail_binding`` makes binds answer 409."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.bodies: list[Any] = []
        self.fail_binding = False
        self.created: list[dict[str, Any]] = []
        self.patches: list[tuple[str, str, Any, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.bound: dict[str, str] = {}

    async def post_subresource(self, res: Any, namespace: str, name: str, sub: str,
                               body: Any) -> Any:
        self.calls.append(("post", namespace, name, sub))
        if self.fail_binding:
            raise ApiError(409, "Conflict", f'pod {name} is already assigned to node "x"')
        self.bound[f"{namespace}/{name}"] = body["target"]["name"]
        return {"kind": "Status", "status": "Success"}

    async def patch(self, res: Any, namespace: str, name: str, body: Any, *,
                    patch_type: str = "merge", subresource: str = "") -> Any:
        self.patches.append((f"{res.plural}/{namespace}/{name}", subresource, body, patch_type))
        return body

    async def create(self, res: Any, obj: dict[str, Any], *, namespace: str | None = None) -> Any:
        self.created.append(obj)
        return obj

    async def delete(self, res: Any, namespace: str, name: str, **kwargs: Any) -> Any:
        self.deleted.append((namespace, name))
        return {}

    def events(self, reason: str = "") -> list[dict[str, Any]]:
        return [o for o in self.created if o.get("kind") == "Event"
                and (not reason or o.get("reason") == reason)]
