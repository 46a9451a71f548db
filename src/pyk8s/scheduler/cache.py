"""The scheduler's cache: every node and the pods on it, including pods it has *assumed*.

Fed by the node and pod informers (bound pods only; pending pods live in the queue). When a
cycle picks a node, the pod is **assumed** there at once: its requests, ports and affinity
count on the node for the next cycle, although the binding is still in flight and its watch
event has not arrived. Then:

- the pod's informer event (``spec.nodeName`` set) *confirms* the assumption (the pod object
  is swapped, its parsed requests kept: nothing is recounted unless the spec, labels, owners
  or deletion mark changed; the kubelet's status reports take the same path);
- a failed binding *forgets* it (the resources are free again);
- an assumption whose binding finished but whose event never came *expires* after
  ``ttl`` seconds (0: never), so a lost event cannot leak capacity forever.

Terminal pods (``Succeeded``/``Failed``) hold no resources and are not kept. A node deleted
while pods are still on it keeps an entry without a Node until they go (upstream does the
same), but only nodes with a Node object are offered to cycles.

The cache keeps one :class:`~.snapshot.Snapshot` until a node is removed (a new node is
appended to it) and keeps it current as it changes nodes and pods: each changed NodeInfo's
row in the snapshot's columns, the per-controller pod counts (per node and per label value)
and the nodes running pods with affinity terms (:class:`~.snapshot.Indexes`).

Concurrency: one event loop; the cache is mutated only by informer callbacks and the
scheduling loop, never during a cycle's synchronous filter/score phase. Objects from the
informers are shared and never mutated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.scheduler.nodeinfo import NodeInfo, PodInfo
from pyk8s.scheduler.snapshot import Indexes, Snapshot

__all__ = ["Cache", "is_terminal"]

Obj = Mapping[str, Any]
log = logging.getLogger("pyk8s.scheduler")


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class _PodState:
    info: PodInfo
    node: str
    assumed: bool = False
    deadline: float | None = None  # set once an assumed pod's binding finished


class Cache:
    """Node infos keyed by node name, plus where each known pod is."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, ttl: float = 30.0) -> None:
        self.clock = clock
        self.ttl = ttl
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodState] = {}
        # Assumed pods whose binding finished, waiting for their watch event: the only ones
        # that can expire, so the periodic cleanup looks at these, not at every pod.
        self._binding_done: set[str] = set()
        self._snapshot: Snapshot | None = None
        # Kept current for the snapshots (see Indexes): PodTopologySpread's defaults read
        # pods by controller owner, InterPodAffinity the nodes with affinity pods.
        self._indexes = Indexes()
        self._owners = self._indexes.owners
        self._owner_labels = self._indexes.owner_labels
        self._affinity = self._indexes.affinity

    # --- nodes ---------------------------------------------------------------------------

    def add_node(self, node: Obj) -> NodeInfo:
        name = (node.get("metadata") or {}).get("name") or ""
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo()
        had_node = info.node is not None
        old_labels = info.labels
        info.set_node(node)
        snapshot = self._snapshot
        if not had_node:
            self._owner_labels.clear()
            if snapshot is not None:
                snapshot.add(info)
                snapshot.labels_changed()
        else:
            if info.labels != old_labels:
                self._owner_labels.clear()
                if snapshot is not None:
                    snapshot.labels_changed()
            if snapshot is not None:
                snapshot.changed(info)
        return info

    def update_node(self, old: Obj, new: Obj) -> NodeInfo:
        return self.add_node(new)

    def remove_node(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name") or ""
        info = self._nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None
        else:
            del self._nodes[name]
        self._snapshot = None
        self._owner_labels.clear()

    def node_info(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    # --- pods from the informer (bound) ------------------------------------------------

    def add_pod(self, pod: Obj) -> None:
        if is_terminal(pod):
            self.remove_pod(pod)
            return
        info = PodInfo(pod)
        node = (pod.get("spec") or {}).get("nodeName") or ""
        current = self._pods.get(info.uid)
        if current is not None:
            holder = self._nodes.get(node)
            if (current.node == node and holder is not None and info.uid in holder.pods
                    and current.info.same_placement(info)):
                # The binding confirmed, or a status report: the node's accounting stands.
                info.adopt(current.info)
                holder.replace_pod(info)
                self._pods[info.uid] = _PodState(info, node)
                self._binding_done.discard(info.uid)
                return
            self._remove_from(current.node, info.uid)
            self._binding_done.discard(info.uid)
        self._add_to(node, info)
        self._pods[info.uid] = _PodState(info, node)

    def update_pod(self, old: Obj, new: Obj) -> None:
        self.add_pod(new)

    def remove_pod(self, pod: Obj) -> None:
        uid = PodInfo(pod).uid
        state = self._pods.pop(uid, None)
        if state is not None:
            self._binding_done.discard(uid)
            self._detach(uid, state.node)

    # --- assumptions -------------------------------------------------------------------

    def assume_pod(self, info: PodInfo, node: str) -> PodInfo:
        """Count the pod on ``node`` now; returns the pod as bound there."""
        if info.uid in self._pods:
            raise ValueError(f"pod {info.key} is in the cache, so can't be assumed")
        bound = info.with_node(node)
        self._add_to(node, bound)
        self._pods[info.uid] = _PodState(bound, node, assumed=True)
        return bound

    def finish_binding(self, uid: str) -> None:
        state = self._pods.get(uid)
        if state is not None and state.assumed:
            state.deadline = self.clock.monotonic() + self.ttl if self.ttl > 0 else None
            if state.deadline is not None:
                self._binding_done.add(uid)

    def forget_pod(self, uid: str) -> None:
        state = self._pods.get(uid)
        if state is not None and state.assumed:
            del self._pods[uid]
            self._binding_done.discard(uid)
            self._detach(uid, state.node)

    def is_assumed(self, uid: str) -> bool:
        state = self._pods.get(uid)
        return state is not None and state.assumed

    def cleanup_expired(self) -> int:
        now = self.clock.monotonic()
        pods = self._pods
        expired = [uid for uid in self._binding_done
                   if (s := pods[uid]).deadline is not None and s.deadline <= now]
        for uid in expired:
            log.warning("assumed pod expired pod=%s node=%s", self._pods[uid].info.key,
                        self._pods[uid].node)
            self.forget_pod(uid)
        return len(expired)

    # --- views ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The nodes with a Node object; the same Snapshot until a node goes."""
        if self._snapshot is None:
            self._snapshot = Snapshot([n for n in self._nodes.values() if n.node is not None],
                                      self._indexes)
        return self._snapshot

    def pod_count(self) -> int:
        return len(self._pods)

    def _node(self, name: str) -> NodeInfo:
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo()
            info.name = name
        return info

    def _add_to(self, node: str, pod: PodInfo) -> None:
        info = self._node(node)
        if pod.uid in info.pods:
            self._remove_from(node, pod.uid)
        info.add_pod(pod)
        snapshot = self._snapshot
        if snapshot is not None:
            snapshot.changed(info)
        if pod.has_affinity:
            self._affinity[node] = info
        key = pod.owner_key
        if key is not None:
            per_node = self._owners.setdefault(key, {})
            per_node[node] = per_node.get(node, 0) + 1
            if snapshot is not None:
                snapshot.owner_changed(key, node, 1)
            by_label = self._owner_labels.get(key)
            if by_label and info.node is not None:
                for label, counts in by_label.items():
                    value = info.labels.get(label)
                    if value is not None:
                        counts[value] = counts.get(value, 0) + 1

    def _remove_from(self, node: str, uid: str) -> None:
        info = self._node(node)
        pod = info.pods.get(uid)
        if pod is None or not info.remove_pod(uid):
            return
        snapshot = self._snapshot
        if snapshot is not None:
            snapshot.changed(info)
        if pod.has_affinity and not info.pods_with_affinity:
            self._affinity.pop(node, None)
        key = pod.owner_key
        if key is not None:
            per_node = self._owners[key]
            if per_node[node] > 1:
                per_node[node] -= 1
            else:
                del per_node[node]
                if not per_node:
                    del self._owners[key]
                    self._owner_labels.pop(key, None)
                    if snapshot is not None:
                        snapshot.owner_gone(key)
                    return
            if snapshot is not None:
                snapshot.owner_changed(key, node, -1)
            by_label = self._owner_labels.get(key)
            if by_label and info.node is not None:
                for label, counts in by_label.items():
                    value = info.labels.get(label)
                    if value is not None:
                        left = counts.get(value, 0) - 1
                        if left > 0:
                            counts[value] = left
                        else:
                            counts.pop(value, None)

    def _detach(self, uid: str, node: str) -> None:
        if node not in self._nodes:
            return
        self._remove_from(node, uid)
        info = self._nodes[node]
        if info.node is None and not info.pods:
            del self._nodes[node]
