"""DefaultPreemption: when no node fits, evict lower-priority pods to make room.

PostFilter, as upstream's ``defaultpreemption`` + ``preemption.Evaluator``:

1. The pod must be eligible: not ``preemptionPolicy: Never``, and not already waiting for
   lower-priority victims that are still terminating on its nominated node.
2. Nodes rejected as ``UnschedulableAndUnresolvable`` are skipped (``Preemption is not
   helpful for scheduling``).
3. On each other node, a what-if on a clone of its NodeInfo: remove every pod of lower
   priority (``spec.priority``); if the filters still reject the node, preemption cannot help
   there. Otherwise put pods back, most important first (higher priority, then earlier start),
   keeping each that still lets the pod fit; the rest are the victims.
4. The candidate with the lowest highest-victim priority wins, then the smallest sum of
   priorities, then the fewest victims, then node order.
5. Victims are deleted (graceful, as upstream; each gets a ``Preempted`` event) and the
   node is returned as the pod's
   nominated node; the scheduler records it in ``status.nominatedNodeName`` and the pod
   waits in the queue for the victims' deletion events.

With no candidate the status is ``Unschedulable`` with the message ``preemption: 0/N nodes
are available: ...`` (a :class:`FitError` over the per-node preemption verdicts), which the
scheduler appends to the pod's FailedScheduling message.

Deliberately absent: PodDisruptionBudgets, the ``DisruptionTarget`` condition on victims,
and clearing lower-priority pods' nominations on the chosen node.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Handle,
    NodeInfo,
    PodInfo,
    PostFilterResult,
    Status,
)

NAME = "DefaultPreemption"
PODS = CATALOGUE.resource("v1", "pods")
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
_PRIORITY_OFFSET = 2**31

log = logging.getLogger("pyk8s.scheduler")


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]

    def rank(self) -> tuple[int, int, int]:
        return (max(v.priority for v in self.victims),
                sum(v.priority + _PRIORITY_OFFSET for v in self.victims),
                len(self.victims))


def _start_time(pod: PodInfo) -> str:
    return ((pod.pod.get("status") or {}).get("startTime")
            or (pod.pod.get("metadata") or {}).get("creationTimestamp") or "")


class DefaultPreemption:
    name = NAME

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    def eligibility(self, pod: PodInfo) -> str:
        """Empty if the pod may preempt, else upstream's reason why not."""
        if (pod.pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return "not eligible due to preemptionPolicy=Never."
        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        if nominated:
            node = self.handle.snapshot.get(nominated)
            if node is not None and any(p.terminating and p.priority < pod.priority
                                        for p in node.pods.values()):
                return "not eligible due to a terminating pod on the nominated node."
        return ""

    def select_victims(self, state: CycleState, pod: PodInfo,
                       node: NodeInfo) -> tuple[list[PodInfo], Status]:
        framework = self.handle.framework
        assert framework is not None
        what_if = node.clone()
        potential = [p for p in node.pods.values() if p.priority < pod.priority]
        if not potential:
            return [], Status.unresolvable(NO_VICTIMS)
        for victim in potential:
            what_if.remove_pod(victim.uid)
        status = framework.run_filter_with_nominated_pods(state, pod, what_if)
        if not status.is_success:
            return [], status
        potential.sort(key=_start_time)
        potential.sort(key=lambda p: p.priority, reverse=True)
        victims = []
        for candidate in potential:
            what_if.add_pod(candidate)
            if not framework.run_filter_with_nominated_pods(state, pod, what_if).is_success:
                what_if.remove_pod(candidate.uid)
                victims.append(candidate)
        if not victims:
            return [], Status.error(f"expected at least one victim pod on node {node.name!r}")
        return victims, SUCCESS

    def find_candidates(self, state: CycleState, pod: PodInfo,
                        statuses: Mapping[str, Status]) -> tuple[list[Candidate], dict[str, Status]]:
        verdicts: dict[str, Status] = {}
        candidates: list[Candidate] = []
        for node in self.handle.snapshot.node_infos:
            status = statuses.get(node.name)
            if status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                verdicts[node.name] = Status.unresolvable(NOT_HELPFUL)
                continue
            victims, verdict = self.select_victims(state.clone(), pod, node)
            if verdict.code == Code.ERROR:
                verdicts[node.name] = verdict
            elif verdict.is_success:
                candidates.append(Candidate(node.name, victims))
            else:
                verdicts[node.name] = verdict
        return candidates, verdicts

    async def post_filter(self, state: CycleState, pod: PodInfo,
                          statuses: Mapping[str, Status]) -> tuple[PostFilterResult | None, Status]:
        reason = self.eligibility(pod)
        if reason:
            return None, Status.unschedulable("preemption: " + reason)
        candidates, verdicts = self.find_candidates(state, pod, statuses)
        if not candidates:
            errors = [s for s in verdicts.values() if s.code == Code.ERROR]
            if errors:
                return None, errors[0]
            fit = FitError(pod, len(verdicts), Diagnosis(node_statuses=verdicts))
            return None, Status.unschedulable("preemption: " + fit.message)
        best = min(candidates, key=Candidate.rank)
        status = await self.evict(pod, best)
        if not status.is_success:
            return None, status
        return PostFilterResult(best.node), SUCCESS

    async def evict(self, pod: PodInfo, candidate: Candidate) -> Status:
        client = self.handle.client
        if client is None:
            return Status.error("no API client to delete preemption victims with")
        for victim in candidate.victims:
            meta = victim.pod.get("metadata") or {}
            log.info("preempting pod=%s node=%s preemptor=%s", victim.key, candidate.node,
                     pod.key)
            try:
                await client.delete(PODS, meta.get("namespace"), meta.get("name"),
                                    preconditions={"uid": meta.get("uid")})
            except ApiError as exc:
                if exc.code != 404:
                    return Status.error(f"deleting preemption victim {victim.key}: {exc.message}")
                continue
            self.handle.record_event(victim.pod, "Normal", "Preempted",
                                     f"Preempted by pod {pod.uid} on node {candidate.node}")
        return SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> DefaultPreemption:
    return DefaultPreemption(handle)
