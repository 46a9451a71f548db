"""PodTopologySpread: spread matching pods evenly across topology domains.

A constraint (``spec.topologySpreadConstraints[]``) counts the pods its ``labelSelector``
selects (same namespace, not terminating; ``matchLabelKeys`` add the pod's own values) per
domain of ``topologyKey``. Only nodes that pass the pod's nodeSelector / required node
affinity (``nodeAffinityPolicy: Honor``, the default) and carry every constraint's key define
domains.

Filter (``whenUnsatisfiable: DoNotSchedule``): placing the pod on the node must keep
``count(node's domain) + self - min(count over domains) <= maxSkew`` (``min`` is 0 when
fewer than ``minDomains`` domains exist). A node without a constraint's key is
``UnschedulableAndUnresolvable``; too much skew is ``Unschedulable``.

Score (``ScheduleAnyway``): fewer matching pods in the node's domains is better; each
constraint weighs ``log(domains + 2)`` (upstream ``scoreForCount``), then min/max-normalized
and reversed so the emptiest node gets 100.

System defaults: a pod without constraints that has a controller owner is spread as upstream's
default ``List`` (hostname maxSkew 3, zone maxSkew 5, both ScheduleAnyway) over the pods of the
same controller. (Upstream derives the selector from the Services/ReplicaSets/StatefulSets
selecting the pod; the owner is the same set for workloads and needs no extra informers.)
Because that is every owned pod's cycle, those counts come from the cache's indexes of pods
by (namespace, controller uid) per node and per zone value (kept as pods come and go), so a
cycle reads a few counters, not every pod of the cluster; ``score_nodes`` reads them from the
snapshot's columns (pods per node, label codes). The number of hostnames among the scored
nodes is the number of scored nodes, as upstream. The constraints are made once per
controller, not per pod. Where every node has a hostname and no scored node has a zone (or
another default key), a node's final score depends only on its count of the controller's
pods: ``weighted_scores`` computes it once per count and looks it up per node, instead of
scoring, normalizing and weighting node by node.

Deliberately absent: ``nodeTaintsPolicy: Honor`` and updating the pre-computed counts while
preemption removes victims (upstream's AddPod/RemovePod extensions).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyk8s.machinery.selectors import label_selector_from_dict, new_requirement
from pyk8s.scheduler.columns import NodeBatch, NodeColumns, as_batch
from pyk8s.scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    MAX_NODE_SCORE,
    NODE_CHANGES,
    NODE_DELETE,
    SUCCESS,
    ClusterEvent,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
)
from pyk8s.scheduler.nodeinfo import OwnerKey
from pyk8s.scheduler.plugins.helpers import match_node_selector_terms

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
SYSTEM_DEFAULTS: tuple[tuple[str, int], ...] = ((HOSTNAME, 3), (ZONE, 5))
OWNERS_KEPT = 1024  # controllers whose system-default constraints are kept


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    hard: bool
    matches: Callable[[PodInfo], bool]
    min_domains: int = 0
    honor_node_affinity: bool = True
    owner: OwnerKey | None = None  # the system defaults: ``matches`` is "same live owner"


def constraints_of(pod: PodInfo, defaults: Sequence[tuple[str, int]]) -> list[Constraint]:
    spec = pod.pod.get("spec") or {}
    out: list[Constraint] = []
    for raw in spec.get("topologySpreadConstraints") or ():
        try:
            selector = label_selector_from_dict(raw.get("labelSelector"))
            if selector is not None:
                for key in raw.get("matchLabelKeys") or ():
                    if key in pod.labels:
                        selector = selector.add(new_requirement(key, "in", [pod.labels[key]]))
        except ValueError:
            selector = None
        namespace = pod.namespace

        def matches(other: PodInfo, selector: Any = selector, namespace: str = namespace) -> bool:
            return (other.namespace == namespace and selector is not None
                    and selector.matches(other.labels))

        out.append(Constraint(
            max_skew=int(raw.get("maxSkew") or 1),
            topology_key=raw.get("topologyKey") or "",
            hard=(raw.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule",
            matches=matches,
            min_domains=int(raw.get("minDomains") or 0),
            honor_node_affinity=(raw.get("nodeAffinityPolicy") or "Honor") == "Honor"))
    if out or not defaults:
        return out
    owner = pod.controller_uid
    if not owner:
        return out

    def same_owner(other: PodInfo, owner: str = owner, namespace: str = pod.namespace) -> bool:
        return other.controller_uid == owner and other.namespace == namespace

    return [Constraint(skew, key, False, same_owner, owner=(pod.namespace, owner))
            for key, skew in defaults]


def _has_node_affinity(pod: PodInfo) -> bool:
    """Whether :func:`_passes_node_affinity` can say no to any node."""
    spec = pod.pod.get("spec") or {}
    return bool(spec.get("nodeSelector")) or (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {})
        .get("requiredDuringSchedulingIgnoredDuringExecution") is not None)


def _passes_node_affinity(pod: PodInfo, node: NodeInfo) -> bool:
    spec = pod.pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if node.labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        return match_node_selector_terms(required.get("nodeSelectorTerms") or (), node.node or {})
    return True


def _count(node: NodeInfo, constraint: Constraint) -> int:
    if constraint.owner is not None:
        owner = constraint.owner
        return sum(1 for p in node.pods.values() if p.owner_key == owner)
    matches = constraint.matches
    return sum(1 for p in node.pods.values() if not p.terminating and matches(p))


@dataclass
class _FilterState:
    constraints: list[Constraint]
    counts: list[dict[str, int]]  # per constraint: domain value -> matching pods
    min_match: list[int]
    self_match: list[int]


Term = tuple[str, Mapping[str, int] | None, Mapping[str, int], float, int]


@dataclass
class _ScoreState:
    ignored: set[str]
    # per constraint, what score() reads: (key, per node or None, per domain, weight, skew - 1)
    # (None until asked for, if ``make_terms`` can build it: the batched paths do not read it)
    terms: list[Term] | None = field(default_factory=list)
    # the same for score_nodes over these columns: (pods per node or None, label codes,
    # per label code the domain's term (the last one, 0.0, for nodes without the label),
    # weight, skew - 1)
    columns: NodeColumns | None = None
    column_terms: list[tuple[Any, Any, list[float], float, int]] = field(default_factory=list)
    # When a node's score is a function of its count of the controller's pods alone (one
    # hostname term, every node has a hostname, no scored node has the other keys): that
    # count column, the term's weight and skew - 1 (see weighted_scores).
    by_count: tuple[Any, float, int] | None = None
    make_terms: Callable[[], list[Term]] | None = None

    def score_terms(self) -> list[Term]:
        if self.terms is None:
            assert self.make_terms is not None
            self.terms = self.make_terms()
        return self.terms


class _Rows(dict[int, list[int]]):
    """count -> row of scores by zone code, each row made on first use."""

    def __init__(self, make: Callable[[int], list[int]]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, count: int) -> list[int]:
        row = self[count] = self.make(count)
        return row


class PodTopologySpread:
    name = NAME
    scores_in_range = True  # see BatchScorePlugin

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return (*NODE_CHANGES, NODE_DELETE, ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE)

    def __init__(self, handle: Handle, defaults: Sequence[tuple[str, int]]) -> None:
        self.handle = handle
        self.defaults = tuple(defaults)
        self._parsed_key = f"{NAME}/{self.defaults}"
        # The system defaults of a controller's pods are the same for all of them (a
        # Deployment's thousands of pods): made once per (namespace, controller uid).
        self._by_owner: dict[OwnerKey, list[Constraint]] = {}

    def _constraints(self, pod: PodInfo) -> list[Constraint]:
        """The pod's constraints, parsed once per pod object (PodInfo.parsed), and the
        system defaults once per controller."""
        found: list[Constraint] | None = pod.parsed.get(self._parsed_key)
        if found is None:
            owner = pod.controller_uid
            if owner and not (pod.pod.get("spec") or {}).get("topologySpreadConstraints"):
                key = (pod.namespace, owner)
                found = self._by_owner.get(key)
                if found is None:
                    if len(self._by_owner) >= OWNERS_KEPT:
                        self._by_owner.clear()
                    found = self._by_owner[key] = constraints_of(pod, self.defaults)
            else:
                found = constraints_of(pod, self.defaults)
            pod.parsed[self._parsed_key] = found
        return found

    def _eligible(self, pod: PodInfo, node: NodeInfo, constraints: Sequence[Constraint]) -> bool:
        if any(c.topology_key not in node.labels for c in constraints):
            return False
        return not (any(c.honor_node_affinity for c in constraints)
                    and not _passes_node_affinity(pod, node))

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   nodes: Sequence[NodeInfo]) -> tuple[None, Status]:
        if not (pod.pod.get("spec") or {}).get("topologySpreadConstraints"):
            return None, Status.skip()  # the system defaults are all ScheduleAnyway
        hard = [c for c in self._constraints(pod) if c.hard]
        if not hard:
            return None, Status.skip()
        counts: list[dict[str, int]] = [{} for _ in hard]
        for node in nodes:
            if not self._eligible(pod, node, hard):
                continue
            for i, c in enumerate(hard):
                value = node.labels[c.topology_key]
                counts[i][value] = counts[i].get(value, 0) + _count(node, c)
        min_match = []
        for i, c in enumerate(hard):
            lowest = min(counts[i].values(), default=0)
            if c.min_domains and len(counts[i]) < c.min_domains:
                lowest = 0
            min_match.append(lowest)
        self_match = [1 if c.matches(pod) else 0 for c in hard]
        state.write(NAME, _FilterState(hard, counts, min_match, self_match))
        return None, SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        s: _FilterState | None = state.read(NAME)
        if s is None:
            return SUCCESS
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                return Status.unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
            skew = s.counts[i].get(value, 0) + s.self_match[i] - s.min_match[i]
            if skew > c.max_skew:
                return Status.unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
        return SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        constraints = self._constraints(pod)
        if not constraints:
            return Status.skip()
        # System-default constraints apply to the keys a node has; explicit ones need all.
        require_all = bool((pod.pod.get("spec") or {}).get("topologySpreadConstraints"))
        if (not require_all and constraints[0].owner is not None
                and self.handle.snapshot.node_infos and not _has_node_affinity(pod)):
            # The system defaults (all ScheduleAnyway, all by owner), every node eligible.
            self._pre_score_owned(state, constraints, as_batch(nodes))
            return SUCCESS
        soft = [c for c in constraints if not c.hard]
        if not soft:
            return Status.skip()
        check_affinity = (any(c.honor_node_affinity for c in soft)
                          and _has_node_affinity(pod))
        keys = [c.topology_key for c in soft]

        def eligible(node: NodeInfo) -> bool:
            if require_all:
                labels = node.labels
                if any(key not in labels for key in keys):
                    return False
            return not (check_affinity and not _passes_node_affinity(pod, node))

        every_node = not require_all and not check_affinity  # eligible() is always True
        snapshot = self.handle.snapshot
        ignored = set() if every_node else {n.name for n in nodes if not eligible(n)}
        all_nodes = snapshot.node_infos or nodes
        # Count each node once per distinct selector (the system defaults share one); only
        # nodes with a matching pod are kept (the others count 0).
        by_selector: dict[int, dict[str, int]] = {}
        for c in soft:
            if id(c.matches) in by_selector:
                continue
            if c.owner is not None and snapshot.node_infos:
                found: dict[str, int] = {}
                in_snapshot = snapshot.by_name.get
                for name, count in snapshot.pods_by_owner(c.owner).items():
                    node = in_snapshot(name)
                    if node is not None and (every_node or eligible(node)):
                        found[name] = count
                by_selector[id(c.matches)] = found
            else:
                by_selector[id(c.matches)] = {
                    n.name: count for n in all_nodes if eligible(n) and (count := _count(n, c))}
        counts: list[dict[str, int]] = [{} for _ in soft]
        weights = []
        by_name = (snapshot.by_name if snapshot.node_infos else {n.name: n for n in nodes}).get
        for i, c in enumerate(soft):
            key = c.topology_key
            if key == HOSTNAME:  # a node is its own domain (upstream counts the nodes)
                weights.append(math.log(len(nodes) - len(ignored) + 2))
                continue
            if ignored:
                domains = {n.labels[key] for n in nodes
                           if key in n.labels and n.name not in ignored}
            else:
                domains = {value for n in nodes if (value := n.labels.get(key)) is not None}
            weights.append(math.log(len(domains) + 2))
            domain_counts = counts[i]
            for name, count in by_selector[id(c.matches)].items():
                node = by_name(name)
                value = node.labels.get(key) if node is not None else None
                if value in domains:
                    domain_counts[value] = domain_counts.get(value, 0) + count
        terms = [(c.topology_key,
                  by_selector[id(c.matches)] if c.topology_key == HOSTNAME else None,
                  counts[i], weights[i], c.max_skew - 1) for i, c in enumerate(soft)]
        state.write(NAME + "/score", _ScoreState(ignored, terms))
        return SUCCESS

    def _pre_score_owned(self, state: CycleState, soft: Sequence[Constraint],
                         batch: NodeBatch) -> None:
        """The system defaults for a controller's pod: read the cache's counters, and the
        snapshot's columns for score_nodes (score()'s terms are made if it is called)."""
        snapshot = self.handle.snapshot
        columns = batch.columns
        column_terms: list[tuple[Any, Any, list[float], float, int]] = []
        # what score() would read: (key, owner, weight, skew - 1, per domain or None)
        specs: list[tuple[str, OwnerKey, float, int, Mapping[str, int] | None]] = []
        by_count: tuple[Any, float, int] | None = None
        hosts = 0
        other_domains = False  # some scored node has a non-hostname key
        for c in soft:
            owner = c.owner
            assert owner is not None
            key = c.topology_key
            codes, values = columns.label_codes(key)
            extra = c.max_skew - 1
            if key == HOSTNAME:  # a node is its own domain (upstream counts the nodes)
                weight = math.log(len(batch) + 2)
                specs.append((key, owner, weight, extra, None))
                counts = columns.owner_counts(owner, lambda o=owner: snapshot.pods_by_owner(o))
                column_terms.append((counts, codes, [], weight, extra))
                hosts += 1
                if columns.label_everywhere(key):
                    by_count = (counts, weight, extra)
                continue
            present: set[int] = set()
            if values:  # else no node has the key: skip looking
                present.update(batch.take(codes))
                present.discard(-1)
            weight = math.log(len(present) + 2)
            other_domains = other_domains or bool(present)
            per_domain = snapshot.pods_by_owner_and_label(owner, key) if values else {}
            specs.append((key, owner, weight, extra, per_domain))
            by_code = [per_domain.get(value, 0) * weight + extra for value in values]
            by_code.append(0.0)  # code -1: no such label
            column_terms.append((None, codes, by_code, weight, extra))
        if hosts != 1 or other_domains:
            by_count = None

        def make_terms() -> list[Term]:
            return [(key, snapshot.pods_by_owner(owner) if per_domain is None else None,
                     {} if per_domain is None else per_domain, weight, extra)
                    for key, owner, weight, extra, per_domain in specs]

        state.write(NAME + "/score", _ScoreState(set(), None, columns, column_terms,
                                                 by_count, make_terms))

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        s: _ScoreState = state.read(NAME + "/score")
        if node.name in s.ignored:
            return 0, SUCCESS
        total = 0.0
        labels = node.labels
        for key, per_node, per_domain, weight, extra in s.score_terms():
            value = labels.get(key)
            if value is None:
                continue
            if per_node is not None:
                count = per_node.get(node.name, 0)
            else:
                count = per_domain.get(value, 0)
            total += count * weight + extra
        return round(total), SUCCESS

    def score_nodes(self, state: CycleState, pod: PodInfo,
                    nodes: Sequence[NodeInfo]) -> list[int]:
        """``score`` term by term over all nodes; the same float additions in the same order
        (a missing label adds 0.0, which changes no sum)."""
        s: _ScoreState = state.read(NAME + "/score")
        if isinstance(nodes, NodeBatch) and nodes.columns is s.columns:
            return self._score_columns(s, nodes)
        totals: list[float] | None = None
        for key, per_node, per_domain, weight, extra in s.score_terms():
            if per_node is not None:
                get = per_node.get
                term = [get(n.name, 0) * weight + extra if n.labels.get(key) is not None
                        else 0.0 for n in nodes]
            else:
                get = per_domain.get
                term = [get(value, 0) * weight + extra
                        if (value := n.labels.get(key)) is not None else 0.0 for n in nodes]
            totals = term if totals is None else [t + x for t, x in zip(totals, term, strict=True)]
        if totals is None:
            return [0] * len(nodes)
        if s.ignored:
            ignored = s.ignored
            return [0 if n.name in ignored else round(t)
                    for n, t in zip(nodes, totals, strict=True)]
        return [round(t) for t in totals]

    def weighted_scores(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                        weight: int) -> list[int] | None:
        """``normalize_score(score_nodes(...))`` times ``weight`` (WeightedScorePlugin), when
        a node's score depends only on its count of the controller's pods (``by_count``):
        the raw score ``round(count * w + extra)`` grows with the count, so the batch's
        lowest and highest raw scores are those of its smallest and largest counts, and each
        count's final score is computed once and looked up per node."""
        s: _ScoreState = state.read(NAME + "/score")
        if (s.by_count is None or not isinstance(nodes, NodeBatch)
                or nodes.columns is not s.columns):
            return None
        column, w, extra = s.by_count
        counts = nodes.take(column).tolist()  # a list is faster to pass over than an array
        if not counts:
            return []
        distinct = set(counts)  # a few values: one pass, then min and max of those

        def raw(count: int) -> int:  # score()'s float operations: 0.0 + the hostname term
            return round(0.0 + (count * w + extra))

        lowest, highest = raw(min(distinct)), raw(max(distinct))
        final = {count: _normalized(raw(count), lowest, highest) * weight
                 for count in distinct}
        return list(map(final.__getitem__, counts))

    @staticmethod
    def _score_columns(s: _ScoreState, batch: NodeBatch) -> list[int]:
        """score() over the batch's columns (only the system defaults get here: no node is
        ignored); the same float additions in the same order as score()."""
        terms = s.column_terms
        if len(terms) == 2 and terms[0][0] is not None and terms[1][0] is None:
            # The system defaults (hostname, then zone). A node's score depends only on its
            # count of the workload's pods and its zone, and few such pairs occur: compute
            # each pair's score once (the same float operations as score()), then look up.
            (counts, host_codes, _, weight, extra), (_, zone_codes, by_code, _, _) = terms
            hosts = batch.take(host_codes)
            counts, zones = batch.take(counts), batch.take(zone_codes)
            if -1 not in hosts:
                table = _Rows(lambda count: [round((count * weight + extra) + zone_term)
                                             for zone_term in by_code])
                return list(map(operator.getitem, map(table.__getitem__, counts), zones))
            return [round(((count * weight + extra) if host >= 0 else 0.0) + by_code[zone])
                    for count, host, zone in zip(counts, hosts, zones, strict=True)]
        totals: list[float] | None = None
        for counts, codes, by_code, weight, extra in terms:
            labels = batch.take(codes)
            if counts is not None:
                term = [(count * weight + extra) if code >= 0 else 0.0
                        for count, code in zip(batch.take(counts), labels, strict=True)]
            else:
                term = [by_code[code] for code in labels]
            totals = term if totals is None else [t + x for t, x in zip(totals, term, strict=True)]
        if totals is None:
            return [0] * len(batch)
        return [round(t) for t in totals]

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                        scores: list[int]) -> Status:
        s: _ScoreState = state.read(NAME + "/score")
        if not scores:
            return SUCCESS
        if not s.ignored:
            # few distinct raw scores: normalize each once, then look up
            distinct = set(scores)
            lowest, highest = min(distinct), max(distinct)
            normalized = {value: _normalized(value, lowest, highest) for value in distinct}
            scores[:] = map(normalized.__getitem__, scores)
            return SUCCESS
        ignored = [n.name in s.ignored for n in nodes]
        valid = [v for v, skip in zip(scores, ignored, strict=True) if not skip]
        if not valid:
            return SUCCESS
        lowest, highest = min(valid), max(valid)
        scores[:] = [0 if skip else _normalized(value, lowest, highest)
                     for value, skip in zip(scores, ignored, strict=True)]
        return SUCCESS


def _normalized(value: int, lowest: int, highest: int) -> int:
    """Upstream's NormalizeScore: fewer matching pods, higher score; all equal to 0, all
    MAX_NODE_SCORE."""
    if highest == 0:
        return MAX_NODE_SCORE
    return MAX_NODE_SCORE * (highest + lowest - value) // highest


def new(args: Mapping[str, Any], handle: Handle) -> PodTopologySpread:
    if args.get("defaultingType") == "List":
        defaults = [(c["topologyKey"], int(c.get("maxSkew") or 1))
                    for c in args.get("defaultConstraints") or ()]
    else:
        defaults = list(SYSTEM_DEFAULTS)
    return PodTopologySpread(handle, defaults)
