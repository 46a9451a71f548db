"""The nodes one scheduling cycle sees, and the indexes that spare it from scanning them.

The cache hands out its live NodeInfos (no copying): a cycle's filter and score phases run
without yielding to the event loop, so nothing changes underneath them. For the same reason
the cache keeps one :class:`Snapshot` while no node leaves (a new node is appended to it, as
upstream's incremental ``UpdateSnapshot``), and keeps its :class:`Indexes` and
:class:`~.columns.NodeColumns` current as pods and nodes change. So a cycle reads:

- the nodes in a stable order, by position (``node_infos``, ``columns``) or by name;
- pods by controller owner, per node and per label value, so spreading a workload's pods
  reads a few counters instead of every pod on every node;
- the nodes running pods with inter-pod affinity terms, so InterPodAffinity does not visit
  every node to find them.

A Snapshot built from a plain list (as tests do) has no one keeping it current: it computes
what it is asked from the nodes, and its columns re-read rows whose NodeInfo changed each
time they are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyk8s.scheduler.columns import NodeColumns
from pyk8s.scheduler.nodeinfo import NodeInfo, OwnerKey

__all__ = ["Indexes", "Snapshot"]


@dataclass
class Indexes:
    """What the cache keeps current for its snapshots. ``owner_labels`` is filled lazily by
    the snapshot; the cache updates it as pods come and go, and empties it whenever the set
    of nodes or a node's labels change."""

    owners: dict[OwnerKey, dict[str, int]] = field(default_factory=dict)
    """(namespace, controller uid) -> node name -> live pods of that controller there."""
    affinity: dict[str, NodeInfo] = field(default_factory=dict)
    """node name -> NodeInfo, for the nodes running pods with inter-pod affinity terms."""
    owner_labels: dict[OwnerKey, dict[str, dict[str, int]]] = field(default_factory=dict)
    """controller -> label key -> label value -> its live pods on nodes with that value."""


class Snapshot:
    """The nodes of a cycle, in a stable order, with lookups by name (module docstring)."""

    def __init__(self, node_infos: list[NodeInfo], indexes: Indexes | None = None) -> None:
        self.node_infos = node_infos
        self.by_name: dict[str, NodeInfo] = {n.name: n for n in node_infos}
        self._indexes = indexes
        self._owners = indexes.owners if indexes is not None else None
        self._columns = NodeColumns(node_infos)

    def get(self, name: str) -> NodeInfo | None:
        return self.by_name.get(name)

    def __len__(self) -> int:
        return len(self.node_infos)

    @property
    def columns(self) -> NodeColumns:
        """The nodes as flat arrays by position (current: see the module docstring)."""
        if self._indexes is None:
            self._columns.sync()
        return self._columns

    # --- the cache's side ----------------------------------------------------------------

    def add(self, node: NodeInfo) -> None:
        """A node joins (at the end)."""
        self.node_infos.append(node)
        self.by_name[node.name] = node
        self._columns.add(node)

    def changed(self, node: NodeInfo) -> None:
        """A node's NodeInfo changed (its pods, or its Node)."""
        self._columns.changed(node)

    def labels_changed(self) -> None:
        self._columns.derived_changed()

    def owner_changed(self, owner: OwnerKey, node_name: str, delta: int) -> None:
        self._columns.owner_changed(owner, node_name, delta)

    def owner_gone(self, owner: OwnerKey) -> None:
        self._columns.owner_gone(owner)

    # --- what plugins read ---------------------------------------------------------------

    def pods_by_owner(self, key: OwnerKey) -> Mapping[str, int]:
        """Node name -> live pods of the controller ``key`` on it (nodes with none omitted;
        may name nodes outside the snapshot, which callers look up with :meth:`get`)."""
        if self._owners is None:
            owners: dict[OwnerKey, dict[str, int]] = {}
            for node in self.node_infos:
                for pod in node.pods.values():
                    owner = pod.owner_key
                    if owner is not None:
                        per_node = owners.setdefault(owner, {})
                        per_node[node.name] = per_node.get(node.name, 0) + 1
            self._owners = owners
        return self._owners.get(key) or {}

    def pods_by_owner_and_label(self, key: OwnerKey, label: str) -> Mapping[str, int]:
        """Value of ``label`` -> live pods of the controller ``key`` on the snapshot's nodes
        with that value (values with none omitted)."""
        indexes = self._indexes
        if indexes is not None:
            found = indexes.owner_labels.get(key, {}).get(label)
            if found is not None:
                return found
        counts: dict[str, int] = {}
        by_name = self.by_name
        for name, count in self.pods_by_owner(key).items():
            node = by_name.get(name)
            if node is not None and (value := node.labels.get(label)) is not None:
                counts[value] = counts.get(value, 0) + count
        if indexes is not None and key in indexes.owners:
            indexes.owner_labels.setdefault(key, {})[label] = counts
        return counts

    @property
    def with_affinity_pods(self) -> list[NodeInfo]:
        """Nodes of the snapshot running at least one pod with inter-pod (anti-)affinity terms."""
        if self._indexes is None:
            return [n for n in self.node_infos if n.pods_with_affinity]
        by_name = self.by_name
        return [n for name, n in self._indexes.affinity.items() if by_name.get(name) is n]
