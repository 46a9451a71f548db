"""The ReplicaSet controller: keep ``spec.replicas`` pods matching the selector.

Level-triggered (upstream ``pkg/controller/replicaset/replica_set.go``): a sync counts the
active pods this ReplicaSet controls in the pod informer's cache, adopting matching orphans
and releasing pods whose labels no longer match, then creates or deletes the difference and
writes the status through ``/status``.

Syncs that change nothing are cheap: the pod handlers keep, per controller uid, the count
of active pods by (namespace, labels, ready), so a sync that only writes status or creates
pods reads those few groups instead of every pod; a scale-down ranks just the pods it
controls (from the controller-uid index), and only an adoption or release, or minReadySeconds
(availability depends on the clock) walks and claims the pods.

Double creation is prevented with expectations: creations and deletions are recorded before
they are issued and ticked off as the pod informer sees them; until then a sync only updates
status. Creations go out in slow-start batches (1, 2, 4, ...), so a template the server rejects
costs one failed request, not hundreds. Deletions prefer the pods that matter least:
unscheduled, pending, not ready (``podutil.deletion_rank``).
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers import indexes, podutil
from pyk8s.controllers.base import (
    Obj,
    QueueController,
    WrittenObjects,
    cached_controller_key,
    controller_ref,
    is_deleting,
    key_of,
    meta,
    owner_reference,
    selecting_keys,
)
from pyk8s.controllers.events import EventRecorder
from pyk8s.controllers.expectations import Expectations
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.meta import parse_rfc3339, rfc3339
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.machinery.selectors import LabelSelector, label_selector_from_dict

PODS = CATALOGUE.resource("v1", "pods")
REPLICASETS = CATALOGUE.resource("apps/v1", "replicasets")
_Group = tuple[str, "frozenset[tuple[str, str]] | None", bool]  # namespace, labels, ready
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1


async def slow_start_batch(count: int, initial: int,
                           fn: Callable[[], Awaitable[None]]) -> tuple[int, Exception | None]:
    """Call ``fn`` ``count`` times in doubling batches; stop after a batch with a failure.

    Returns how many calls succeeded and the first error. Calls never attempted are
    ``count - successes - failures``; the caller must lower its expectations by those.
    """
    remaining = count
    successes = 0
    batch = min(remaining, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if isinstance(err, asyncio.CancelledError):
                raise err
        successes += batch - len(errors)
        if errors:
            first = errors[0]
            return successes, first if isinstance(first, Exception) else Exception(str(first))
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


@dataclass(slots=True)
class PodFacts:
    """What a ReplicaSet sync needs from one cached pod, read once per pod object (the pod
    handlers read them at every event; a sync that walks the pods finds them here)."""

    namespace: str
    active: bool
    deleting: bool
    controlled: bool
    ref_uid: str | None
    labels: dict[str, str]
    label_key: frozenset[tuple[str, str]] | None
    ready: bool
    ready_at: str  # the Ready condition's lastTransitionTime, parsed only when needed
    since: datetime | bool | None = False  # ready_since() once parsed (False: not yet)
    rank: tuple[Any, ...] | None = None  # ranked(): deletion_rank minus the co-located count

    @classmethod
    def of(cls, pod: Obj) -> PodFacts:
        m = pod.get("metadata") or {}
        labels = m.get("labels") or {}
        try:
            label_key: frozenset[tuple[str, str]] | None = frozenset(labels.items())
        except TypeError:
            label_key = None
        ref = controller_ref(pod)
        cond = podutil.condition(pod, "Ready")
        ready = cond is not None and cond.get("status") == "True"
        ready_at = str(cond.get("lastTransitionTime") or "") if cond and ready else ""
        return cls(namespace=str(m.get("namespace") or ""), active=podutil.is_active(pod),
                   deleting=bool(m.get("deletionTimestamp")), controlled=ref is not None,
                   ref_uid=ref.get("uid") if ref is not None else None,
                   labels=labels, label_key=label_key, ready=ready, ready_at=ready_at)

    def ready_since(self) -> datetime | None:
        """Upstream's Ready lastTransitionTime when ready (None when not ready or unset)."""
        if self.since is False:
            self.since = parse_rfc3339(self.ready_at) if self.ready else None
        return self.since  # type: ignore[return-value]

    def ranked(self, pod: Obj) -> tuple[Any, ...]:
        """Upstream's ActivePodsWithRanks key of ``pod`` (whose facts these are) split around
        the co-located count: (node, the fields before it, the fields after it), read once per
        object: a rollout ranks the same pods at every step."""
        if self.rank is None:
            self.rank = podutil.deletion_rank_parts(pod, self.ready, self.ready_since())
        return self.rank

    def available(self, min_ready_seconds: int, now: datetime) -> bool:
        """Upstream's IsPodAvailable."""
        if not self.ready:
            return False
        if min_ready_seconds <= 0:
            return True
        since = self.ready_since()
        return since is not None and (now - since).total_seconds() >= min_ready_seconds


class _LabelMatcher:
    """``matches(labels)`` memoised by label set: a set's pods share a few label sets."""

    def __init__(self, matches: Callable[[dict[str, str]], bool]) -> None:
        self._matches = matches
        self._seen: dict[frozenset[tuple[str, str]], bool] = {}

    def __call__(self, facts: PodFacts) -> bool:
        if facts.label_key is None:
            return self._matches(facts.labels)
        found = self._seen.get(facts.label_key)
        if found is None:
            found = self._seen[facts.label_key] = self._matches(facts.labels)
        return found


def _template_labels(rs: Obj) -> dict[str, str]:
    return (((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels") or {}


def _fully_labeled(template_labels: dict[str, str]) -> Callable[[dict[str, str]], bool]:
    return lambda labels: all(labels.get(k) == v for k, v in template_labels.items())


def calculate_status(rs: Obj, pods: list[PodFacts], manage_error: Exception | None, diff: int,
                     now: Any) -> Obj:
    """The status a ReplicaSet should have given the active pods it controls."""
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    fully_labeled = _LabelMatcher(_fully_labeled(_template_labels(rs)))
    fully = ready = available = 0
    for facts in pods:
        if fully_labeled(facts):
            fully += 1
        if facts.ready:
            ready += 1
            if facts.available(min_ready, now):
                available += 1
    return status_from_counts(rs, len(pods), fully, ready, available, manage_error, diff, now)


def status_from_counts(rs: Obj, replicas: int, fully: int, ready: int, available: int,
                       manage_error: Exception | None, diff: int, now: Any) -> Obj:
    """The status from the counts of claimed pods: all, fully labeled, ready, available."""
    old = rs.get("status") or {}
    conditions = [dict(c) for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    existing = podutil.condition(rs, "ReplicaFailure")
    if manage_error is not None:
        reason = "FailedCreate" if diff < 0 else "FailedDelete"
        message = getattr(manage_error, "message", None) or str(manage_error)
        cond = {"type": "ReplicaFailure", "status": "True", "reason": reason, "message": message,
                "lastTransitionTime": rfc3339(now)}
        if existing is not None and existing.get("status") == "True":
            cond["lastTransitionTime"] = existing.get("lastTransitionTime")
        conditions.append(cond)
    status: Obj = {"replicas": replicas}
    for field, value in (("fullyLabeledReplicas", fully), ("readyReplicas", ready),
                         ("availableReplicas", available),
                         ("observedGeneration", int(meta(rs).get("generation") or 0))):
        if value:
            status[field] = value
    if conditions:
        status["conditions"] = conditions
    return status


class ReplicaSetController(QueueController):
    name = "replicaset"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 clock: Clock = SYSTEM_CLOCK, recorder: EventRecorder | None = None) -> None:
        super().__init__(clock)
        self.client = client
        self.clock = clock
        self.recorder = recorder or EventRecorder(client, "replicaset-controller")
        self.expectations = Expectations(clock)
        self._pod_facts: dict[str | None, tuple[Obj, PodFacts]] = {}
        self._facts_limit = 1024
        # controller uid -> {(namespace, label set, ready): active pods}, and what each
        # tracked pod (by key) counts towards; kept by the pod handlers.
        self._owned: dict[str, Counter[_Group]] = {}
        self._tracked: dict[str, tuple[str, _Group]] = {}
        self._written = WrittenObjects()
        self.rs_informer = indexes.ensure(factory.informer(REPLICASETS), indexes.NAMESPACE)
        self.pod_informer = indexes.ensure(factory.informer(PODS), indexes.NAMESPACE,
                                           indexes.CONTROLLER_UID, indexes.ORPHAN_NAMESPACE)
        self.rs_informer.add_handlers(on_add=self._rs_changed,
                                      on_update=lambda old, new: self._rs_changed(new),
                                      on_delete=self._rs_deleted)
        self.pod_informer.add_handlers(on_add=self._pod_added, on_update=self._pod_updated,
                                       on_delete=self._pod_deleted)

    # -- handlers: only bookkeeping and enqueueing --------------------------------------

    def _rs_changed(self, rs: Obj) -> None:
        self.queue.add(key_of(rs))

    def _rs_deleted(self, rs: Obj) -> None:
        key = key_of(rs)
        self.expectations.forget(key)
        self._written.forget(key)
        self.queue.add(key)

    def _owner_key(self, pod: Obj) -> str | None:
        return cached_controller_key(pod, "ReplicaSet", self.rs_informer)

    def _matching_sets(self, pod: Obj) -> list[str]:
        return selecting_keys(pod, self.rs_informer)

    def _track(self, key: str, pod: Obj | None) -> PodFacts | None:
        """Move the pod's contribution to its controller's counts (``None``: it is gone);
        the pod's facts (which the handlers read instead of the pod)."""
        old = self._tracked.pop(key, None)
        if old is not None:
            counts = self._owned[old[0]]
            counts[old[1]] -= 1
            if counts[old[1]] <= 0:
                del counts[old[1]]
                if not counts:
                    del self._owned[old[0]]
        if pod is None:
            return None
        facts = self._facts(pod)
        if facts.active and facts.ref_uid:
            group = (facts.namespace, facts.label_key, facts.ready)
            self._tracked[key] = (facts.ref_uid, group)
            counts = self._owned.get(facts.ref_uid)
            if counts is None:
                counts = self._owned[facts.ref_uid] = Counter()
            counts[group] += 1
        return facts

    def _pod_added(self, pod: Obj) -> None:
        facts = self._track(key_of(pod), pod)
        assert facts is not None
        if facts.deleting:
            self._pod_deleted(pod)
            return
        owner = self._owner_key(pod) if facts.controlled else None
        if owner is not None:
            self.expectations.creation_observed(owner)
            self.queue.add(owner)
        elif not facts.controlled:
            for key in self._matching_sets(pod):
                self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        facts = self._track(key_of(new), new)
        assert facts is not None
        old_meta, new_meta = meta(old), meta(new)
        if old_meta.get("resourceVersion") == new_meta.get("resourceVersion"):
            return
        labels_changed = old_meta.get("labels") != new_meta.get("labels")
        if facts.deleting:
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            old_owner = self._owner_key(old)
            if old_owner is not None:
                self.queue.add(old_owner)
        owner = self._owner_key(new)
        if owner is not None:
            self.queue.add(owner)
            rs = self.rs_informer.get(owner)
            min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and podutil.is_ready(new) and not podutil.is_ready(old):
                self.queue.add_after(owner, float(min_ready))
        elif new_ref is None and (labels_changed or old_ref != new_ref):
            for key in self._matching_sets(new):
                self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        """A pod gone, or being deleted (still cached then, but no longer active)."""
        self._track(key_of(pod), None)
        self._forget_facts(pod)
        owner = self._owner_key(pod)
        if owner is None:
            ref = controller_ref(pod)
            if ref is None or ref.get("kind") != "ReplicaSet":
                return
            owner = f"{meta(pod).get('namespace', '')}/{ref.get('name', '')}"
        self.expectations.deletion_observed(owner, key_of(pod))
        self.queue.add(owner)

    # -- the sync ----------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        cached = self.rs_informer.get(key)
        if cached is None:
            self.expectations.forget(key)
            self._written.forget(key)
            return None
        rs = self._written.fresh(cached)  # shared: read only
        namespace = meta(rs).get("namespace", "")
        uid = str(meta(rs).get("uid") or "")
        spec = rs.get("spec") or {}
        selector = label_selector_from_dict(spec.get("selector"))
        needs_sync = self.expectations.satisfied(key) and not is_deleting(rs)
        replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
        counts = self._counts(rs, selector, namespace, uid)
        owned: list[tuple[Obj, PodFacts]] = []
        if counts is not None and needs_sync and counts[0] > replicas:
            # A scale-down ranks the pods: with nothing to adopt or release, the claimed
            # pods are exactly the active ones the index says it controls.
            owned = self._controlled_active(namespace, uid)
            if len(owned) != counts[0]:
                counts = None
        manage_error: Exception | None = None
        if counts is not None:
            diff = counts[0] - replicas
            if needs_sync and diff:
                manage_error = await self._manage_replicas(key, rs, owned, diff)
            now = self.clock.now()
            status = status_from_counts(rs, counts[0], counts[1], counts[2], counts[2],
                                        manage_error, diff, now)
        else:
            active = [(p, f) for p, f in self._candidates(namespace, uid) if f.active]
            claimed = await self._claim_pods(rs, selector, active)
            diff = len(claimed) - replicas
            if needs_sync and diff:
                manage_error = await self._manage_replicas(key, rs, claimed, diff)
            now = self.clock.now()
            status = calculate_status(rs, [f for _, f in claimed], manage_error, diff, now)
        await self._write_status(rs, status)
        if manage_error is not None:
            raise manage_error
        min_ready = int(spec.get("minReadySeconds") or 0)
        if (min_ready > 0 and status.get("readyReplicas", 0) == replicas
                and status.get("availableReplicas", 0) != replicas):
            return float(min_ready)
        return None

    def _counts(self, rs: Obj, selector: LabelSelector | None, namespace: str,
                uid: str) -> tuple[int, int, int] | None:
        """(claimed, fully labeled, ready) pods from the tracked counts, or None when the
        sync must walk the pods: orphans to adopt, pods to release, minReadySeconds."""
        if (not uid or int((rs.get("spec") or {}).get("minReadySeconds") or 0) > 0
                or selector is None or selector.empty):
            return None
        deleting = is_deleting(rs)
        if not deleting:
            for orphan in self.pod_informer.by_index(indexes.ORPHAN_NAMESPACE, namespace):
                facts = self._facts(orphan)
                if facts.active and selector.matches(facts.labels):
                    return None  # one to adopt
        fully_labeled = _fully_labeled(_template_labels(rs))
        claimed = fully = ready = 0
        for (ns, label_key, is_ready), n in (self._owned.get(uid) or {}).items():
            if ns != namespace:
                continue
            if label_key is None:
                return None
            labels = dict(label_key)
            if not deleting and not selector.matches(labels):
                return None  # a pod to release
            claimed += n
            if fully_labeled(labels):
                fully += n
            if is_ready:
                ready += n
        return claimed, fully, ready

    def _facts(self, pod: Obj) -> PodFacts:
        """The pod's facts, remembered by uid for as long as the informer holds this very
        object (an update brings a new object, so they are read again; deletion drops them)."""
        uid = (pod.get("metadata") or {}).get("uid")
        entry = self._pod_facts.get(uid)
        if entry is not None and entry[0] is pod:
            return entry[1]
        facts = PodFacts.of(pod)
        if len(self._pod_facts) >= self._facts_limit:
            self._facts_limit = 2 * len(self.pod_informer.keys()) + 1024
            if len(self._pod_facts) >= self._facts_limit:
                self._pod_facts.clear()  # entries a relist replaced without an event
        self._pod_facts[uid] = (pod, facts)
        return facts

    def _forget_facts(self, pod: Obj) -> None:
        self._pod_facts.pop((pod.get("metadata") or {}).get("uid"), None)

    def _candidates(self, namespace: str, uid: str) -> list[tuple[Obj, PodFacts]]:
        """The namespace's pods this ReplicaSet controls or could adopt (no controller);
        pods another controller owns are not read at all."""
        found = []
        if uid:
            for pod in self.pod_informer.by_index(indexes.CONTROLLER_UID, uid):
                facts = self._facts(pod)
                if facts.namespace == namespace:
                    found.append((pod, facts))
        for pod in self.pod_informer.by_index(indexes.ORPHAN_NAMESPACE, namespace):
            found.append((pod, self._facts(pod)))
        return found

    def _controlled_active(self, namespace: str, uid: str) -> list[tuple[Obj, PodFacts]]:
        """The active pods in ``namespace`` whose controller reference names ``uid``."""
        found = []
        facts_of = self._facts
        for pod in self.pod_informer.by_index(indexes.CONTROLLER_UID, uid):
            facts = facts_of(pod)
            if facts.active and facts.namespace == namespace:
                found.append((pod, facts))
        return found

    async def _claim_pods(self, rs: Obj, selector: LabelSelector | None,
                          pods: list[tuple[Obj, PodFacts]]) -> list[tuple[Obj, PodFacts]]:
        """Pods this ReplicaSet controls after adopting orphans and releasing strays."""
        uid = meta(rs).get("uid")
        rs_deleting = is_deleting(rs)
        usable = selector is not None and not selector.empty
        matches = _LabelMatcher(selector.matches if usable and selector is not None
                                else lambda labels: False)
        claimed: list[tuple[Obj, PodFacts]] = []
        fresh_checked: bool | None = None
        for pod, facts in pods:
            if facts.controlled:
                if facts.ref_uid != uid:
                    continue
                if rs_deleting or matches(facts):
                    claimed.append((pod, facts))
                elif not facts.deleting:
                    await self._release(pod, uid)
                continue
            if rs_deleting or facts.deleting or not matches(facts):
                continue
            if fresh_checked is None:
                fresh_checked = await self._can_adopt(rs)
            if not fresh_checked:
                continue
            adopted = await self._adopt(pod, rs)
            if adopted is not None:
                claimed.append((adopted, PodFacts.of(adopted)))
        return claimed

    async def _can_adopt(self, rs: Obj) -> bool:
        """Adoption must not race a deletion of the owner: re-read it from the server."""
        try:
            fresh = await self.client.get(REPLICASETS, meta(rs).get("namespace", ""),
                                          meta(rs).get("name", ""))
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return meta(fresh).get("uid") == meta(rs).get("uid") and not is_deleting(fresh)

    async def _adopt(self, pod: Obj, rs: Obj) -> Obj | None:
        refs = [*(meta(pod).get("ownerReferences") or []),
                owner_reference(rs, REPLICASETS.api_version, REPLICASETS.kind)]
        try:
            return await self.client.patch(
                PODS, meta(pod).get("namespace", ""), meta(pod).get("name", ""),
                {"metadata": {"ownerReferences": refs, "uid": meta(pod).get("uid")}},
                patch_type="merge")
        except ApiError as exc:
            if exc.code in (404, 409, 422):
                return None
            raise

    async def _release(self, pod: Obj, uid: str | None) -> None:
        refs = [r for r in meta(pod).get("ownerReferences") or [] if r.get("uid") != uid]
        try:
            await self.client.patch(
                PODS, meta(pod).get("namespace", ""), meta(pod).get("name", ""),
                {"metadata": {"ownerReferences": refs or None, "uid": meta(pod).get("uid")}},
                patch_type="merge")
        except ApiError as exc:
            if exc.code not in (404, 409, 422):
                raise

    async def _manage_replicas(self, key: str, rs: Obj, pods: list[tuple[Obj, PodFacts]],
                               diff: int) -> Exception | None:
        namespace = meta(rs).get("namespace", "")
        name = meta(rs).get("name", "")
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            template = (rs.get("spec") or {}).get("template") or {}
            ref = owner_reference(rs, REPLICASETS.api_version, REPLICASETS.kind)
            new_body = podutil.pod_factory(template, namespace, name, ref)
            attempted = 0

            async def create_one() -> None:
                nonlocal attempted
                attempted += 1
                body = new_body()
                try:
                    created = await self.client.create(PODS, body, namespace=namespace)
                except ApiError as exc:
                    self.expectations.lower_creations(key, 1)
                    if exc.code == 403 and "terminat" in exc.message.lower():
                        return  # the namespace is going away; nothing to report
                    self.recorder.event(rs, REPLICASETS, "Warning", "FailedCreate",
                                        f"Error creating: {exc.message}")
                    raise
                except BaseException:
                    self.expectations.lower_creations(key, 1)
                    raise
                self.recorder.event(rs, REPLICASETS, "Normal", "SuccessfulCreate",
                                    f"Created pod: {meta(created).get('name', '')}")

            _, error = await slow_start_batch(count, SLOW_START_INITIAL_BATCH, create_one)
            if count - attempted > 0:
                self.expectations.lower_creations(key, count - attempted)
            return error
        if diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = ranked_for_deletion(pods, count)
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            results = await asyncio.gather(*(self._delete_pod(key, rs, p) for p in victims),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, Exception):
                    return result
        return None

    async def _delete_pod(self, key: str, rs: Obj, pod: Obj) -> None:
        m = meta(pod)
        try:
            await self.client.delete(PODS, m.get("namespace", ""), m.get("name", ""),
                                     preconditions={"uid": m.get("uid")})
        except ApiError as exc:
            self.expectations.deletion_observed(key, key_of(pod))
            if exc.code == 404:
                return
            self.recorder.event(rs, REPLICASETS, "Warning", "FailedDelete",
                                f"Error deleting: {exc.message}")
            raise
        self.recorder.event(rs, REPLICASETS, "Normal", "SuccessfulDelete",
                            f"Deleted pod: {m.get('name', '')}")

    async def _write_status(self, rs: Obj, status: Obj) -> None:
        """Write the status if it changed (upstream's updateReplicaSetStatus: one retry on a
        fresh copy after a conflict)."""
        if (rs.get("status") or {}) == status:
            return
        body = dict(rs)  # ``rs`` is shared with the cache: only the top level is replaced
        body["status"] = status
        try:
            written = await self.client.update(REPLICASETS, body, subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return
            if exc.code != 409:
                raise
            fresh = await self.client.get(REPLICASETS, meta(rs).get("namespace", ""),
                                          meta(rs).get("name", ""))
            fresh["status"] = status
            written = await self.client.update(REPLICASETS, fresh, subresource="status")
            rs = fresh
        self._written.wrote(meta(rs).get("resourceVersion"), written)


def ranked_for_deletion(pods: list[tuple[Obj, PodFacts]], count: int) -> list[Obj]:
    """The ``count`` pods to give up first, ranked as upstream's ActivePodsWithRanks (see
    ``podutil.deletion_rank``); the per-pod parts of each key are cached in its facts.

    The keys are (fields before the co-located count, minus that count, fields after it,
    position): the parts are fixed-length tuples, so this orders as the flat key would, and
    the position keeps the sort stable without ever comparing two pods."""
    ranks = [facts.ranked(pod) for pod, facts in pods]
    per_node = Counter(rank[0] for rank in ranks)
    keys = [(rank[1], -per_node[rank[0]] if rank[0] else 0, rank[2], i)
            for i, rank in enumerate(ranks)]
    if count < len(keys) // 4:
        keys = heapq.nsmallest(count, keys)
    else:
        keys.sort()
    return [pods[key[3]][0] for key in keys[:count]]


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    """The ``count`` pods to give up first, ranked as upstream ranks them."""
    return ranked_for_deletion([(p, PodFacts.of(p)) for p in pods], count)
