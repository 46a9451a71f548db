"""The Deployment controller: roll a Deployment's pod template out through ReplicaSets.

Upstream ``pkg/controller/deployment`` (sync.go, rolling.go, recreate.go, progress.go), in
one level-triggered sync per Deployment key:

* claim the ReplicaSets it controls (adopting matching orphans, releasing strays);
* the *new* ReplicaSet is the oldest one whose template equals the Deployment's, ignoring the
  ``pod-template-hash`` label; the rest are *old*. A rollback (``kubectl rollout undo``
  restores an old template) therefore finds the old ReplicaSet again, which gets the next
  revision and remembers its previous ones in ``revision-history``;
* paused, or only ``spec.replicas`` changed: scale (proportionally mid-rollout) and stop;
* RollingUpdate: grow the new ReplicaSet within maxSurge, shrink old ones within
  maxUnavailable; Recreate: old ones to zero, wait for their pods to go, then the new one;
* status and the Progressing / Available conditions, with a requeue at the progress
  deadline so ProgressDeadlineExceeded is reported without any other event.

All arithmetic lives in ``deployment_util`` (pure); the rollout steps (scaling, rolling,
recreate, progress) in ``deployment_rollout``. Writes use optimistic concurrency on the
cached resourceVersion; a conflict just requeues the key.
"""

from __future__ import annotations

import copy

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers import deployment_util as du
from pyk8s.controllers import indexes
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
from pyk8s.controllers.deployment_rollout import RolloutMixin
from pyk8s.controllers.events import EventRecorder
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.machinery.selectors import LabelSelector, label_selector_from_dict

PODS = CATALOGUE.resource("v1", "pods")
REPLICASETS = CATALOGUE.resource("apps/v1", "replicasets")
DEPLOYMENTS = CATALOGUE.resource("apps/v1", "deployments")


class DeploymentController(QueueController, RolloutMixin):
    name = "deployment"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 clock: Clock = SYSTEM_CLOCK, recorder: EventRecorder | None = None) -> None:
        super().__init__(clock)
        self.client = client
        self.clock = clock
        self.recorder = recorder or EventRecorder(client, "deployment-controller")
        # What this controller wrote, for the syncs that run before the informers have it.
        self.written_deployments = WrittenObjects()
        self.written_sets = WrittenObjects()
        self.d_informer = indexes.ensure(factory.informer(DEPLOYMENTS), indexes.NAMESPACE)
        self.rs_informer = indexes.ensure(factory.informer(REPLICASETS), indexes.NAMESPACE)
        self.pod_informer = indexes.ensure(factory.informer(PODS), indexes.NAMESPACE)
        # Keys of the cached Deployments with the Recreate strategy: only they care about
        # pod deletions, and a cluster usually has none (every deleted pod skips the lookups).
        self._recreating: set[str] = set()
        self.d_informer.add_handlers(on_add=self._enqueue,
                                     on_update=lambda old, new: self._enqueue(new),
                                     on_delete=self._d_deleted)
        self.rs_informer.add_handlers(on_add=self._rs_changed, on_update=self._rs_updated,
                                      on_delete=self._rs_deleted)
        self.pod_informer.add_handlers(on_delete=self._pod_deleted)

    # -- handlers ----------------------------------------------------------------------

    def _enqueue(self, d: Obj) -> None:
        key = key_of(d)
        if du.is_rolling(d):
            self._recreating.discard(key)
        else:
            self._recreating.add(key)
        self.queue.add(key)

    def _d_deleted(self, d: Obj) -> None:
        self.written_deployments.forget(key_of(d))
        self._recreating.discard(key_of(d))
        self.queue.add(key_of(d))

    def _rs_deleted(self, rs: Obj) -> None:
        self.written_sets.forget(key_of(rs))
        self._rs_changed(rs)

    def _owner_key(self, rs: Obj) -> str | None:
        return cached_controller_key(rs, "Deployment", self.d_informer)

    def _matching(self, rs: Obj) -> list[str]:
        return selecting_keys(rs, self.d_informer)

    def _rs_changed(self, rs: Obj) -> None:
        owner = self._owner_key(rs)
        if owner is not None:
            self.queue.add(owner)
        elif controller_ref(rs) is None:
            for key in self._matching(rs):
                self.queue.add(key)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        if controller_ref(old) != controller_ref(new):
            self._rs_changed(old)
        self._rs_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to be gone; their deletion is its signal."""
        if not self._recreating:
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.get(f"{meta(pod).get('namespace', '')}/{ref.get('name', '')}")
        if rs is None:
            return
        owner = self._owner_key(rs)
        if owner is None:
            return
        d = self.d_informer.get(owner)
        if d is not None and not du.is_rolling(d):
            self.queue.add(owner)

    # -- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        cached = self.d_informer.get(key)
        if cached is None:
            self.written_deployments.forget(key)
            return None
        d = copy.deepcopy(self.written_deployments.fresh(cached))
        spec = d.setdefault("spec", {})
        selector = label_selector_from_dict(spec.get("selector"))
        if selector is None or selector.empty:
            self.recorder.event(d, DEPLOYMENTS, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is required.")
            status = d.setdefault("status", {})
            generation = int(meta(d).get("generation") or 0)
            if int(status.get("observedGeneration") or 0) < generation:
                status["observedGeneration"] = generation
                await self._write_status(d)
            return None
        rs_list = await self._claim_sets(d, selector)
        if is_deleting(d):
            new_rs, olds = await self._new_and_old(d, rs_list, create=False)
            await self._sync_status(d, new_rs, olds)
            return None
        await self._check_paused_conditions(d)
        new_rs, olds = await self._new_and_old(d, rs_list, create=False)
        if spec.get("paused") or self._is_scaling_event(d, new_rs, olds):
            return await self._sync_scale(d, new_rs, olds)
        if not du.is_rolling(d):
            return await self._rollout_recreate(d, new_rs, olds)
        if new_rs is None:
            new_rs = await self._new_replica_set(d, olds, None, create=True)
        assert new_rs is not None
        return await self._rollout_rolling(d, new_rs, olds)

    async def _claim_sets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        uid = meta(d).get("uid")
        claimed: list[Obj] = []
        can_adopt: bool | None = None
        for rs in self.rs_informer.by_index(indexes.NAMESPACE, meta(d).get("namespace", "")):
            rs = self.written_sets.fresh(rs)
            matches = selector.matches(meta(rs).get("labels") or {})
            ref = controller_ref(rs)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches or is_deleting(d):
                    claimed.append(rs)
                elif not is_deleting(rs):
                    refs = [r for r in meta(rs).get("ownerReferences") or [] if r.get("uid") != uid]
                    await self._patch_refs(rs, refs)
                continue
            if not matches or is_deleting(d) or is_deleting(rs):
                continue
            if can_adopt is None:
                can_adopt = await self._fresh_and_alive(d)
            if can_adopt:
                refs = [*(meta(rs).get("ownerReferences") or []),
                        owner_reference(d, DEPLOYMENTS.api_version, DEPLOYMENTS.kind)]
                adopted = await self._patch_refs(rs, refs)
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    async def _fresh_and_alive(self, d: Obj) -> bool:
        try:
            fresh = await self.client.get(DEPLOYMENTS, meta(d).get("namespace", ""),
                                          meta(d).get("name", ""))
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return meta(fresh).get("uid") == meta(d).get("uid") and not is_deleting(fresh)

    async def _patch_refs(self, rs: Obj, refs: list[Obj]) -> Obj | None:
        try:
            return await self.client.patch(
                REPLICASETS, meta(rs).get("namespace", ""), meta(rs).get("name", ""),
                {"metadata": {"ownerReferences": refs or None, "uid": meta(rs).get("uid")}},
                patch_type="merge")
        except ApiError as exc:
            if exc.code in (404, 409, 422):
                return None
            raise

    async def _new_and_old(self, d: Obj, rs_list: list[Obj],
                           create: bool) -> tuple[Obj | None, list[Obj]]:
        template = d["spec"].get("template") or {}
        matching = sorted((rs for rs in rs_list
                           if du.equal_ignore_hash((rs.get("spec") or {}).get("template") or {},
                                                   template)), key=du.created_key)
        existing = matching[0] if matching else None
        olds = [rs for rs in rs_list if rs is not existing]
        new_rs = await self._new_replica_set(d, olds, existing, create)
        return new_rs, olds

    async def _new_replica_set(self, d: Obj, olds: list[Obj], existing: Obj | None,
                               create: bool) -> Obj | None:
        """The new ReplicaSet with its revision brought up to date, created if asked."""
        new_revision = du.max_revision(olds) + 1
        now = self.clock.now()
        if existing is not None:
            rs = copy.deepcopy(existing)
            changed = du.set_new_rs_annotations(d, rs, new_revision, exists=True)
            min_ready = d["spec"].get("minReadySeconds") or 0
            if changed or (rs.get("spec") or {}).get("minReadySeconds", 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                written = await self.client.update(REPLICASETS, rs)
                self.written_sets.wrote(meta(rs).get("resourceVersion"), copy.deepcopy(written))
                return written
            await self._set_deployment_revision(d, rs)
            if du.has_progress_deadline(d) and du.get_condition(d.get("status") or {},
                                                               "Progressing") is None:
                du.set_condition(d.setdefault("status", {}), du.new_condition(
                    "Progressing", "True", du.FOUND_NEW_RS,
                    f'Found new replica set "{meta(rs).get("name")}"', now))
                await self._write_status(d)
            return rs
        if not create:
            return None
        status = d.setdefault("status", {})
        template = copy.deepcopy(d["spec"].get("template") or {})
        pod_hash = du.template_hash(template, status.get("collisionCount"))
        template.setdefault("metadata", {}).setdefault("labels", {})[du.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[du.HASH_LABEL] = pod_hash
        name = f"{meta(d).get('name')}-{pod_hash}"
        rs: Obj = {
            "apiVersion": REPLICASETS.api_version, "kind": REPLICASETS.kind,
            "metadata": {"name": name, "namespace": meta(d).get("namespace"),
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [owner_reference(d, DEPLOYMENTS.api_version,
                                                             DEPLOYMENTS.kind)]},
            "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds") or 0,
                     "selector": selector, "template": template},
        }
        count = du.new_rs_replicas(d, [*olds, rs], 0)
        rs["spec"]["replicas"] = count
        du.set_new_rs_annotations(d, rs, new_revision, exists=False)
        try:
            created = await self.client.create(REPLICASETS, rs)
        except ApiError as exc:
            if exc.code != 409 or exc.reason != "AlreadyExists":
                raise
            found = await self.client.get(REPLICASETS, meta(d).get("namespace", ""), name)
            ref = controller_ref(found)
            if (ref is not None and ref.get("uid") == meta(d).get("uid") and du.equal_ignore_hash(
                    (found.get("spec") or {}).get("template") or {}, d["spec"].get("template") or {})):
                return found
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            await self._write_status(d)
            raise ApiError(409, "AlreadyExists",
                           f"hash collision for replica set {name}; collisionCount raised") from exc
        if count > 0:
            self.recorder.event(d, DEPLOYMENTS, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {name} from 0 to {count}")
        await self._set_deployment_revision(d, created)
        if du.has_progress_deadline(d):
            du.set_condition(status, du.new_condition(
                "Progressing", "True", du.NEW_RS_CREATED, f'Created new replica set "{name}"', now))
            await self._write_status(d)
        return created

    async def _set_deployment_revision(self, d: Obj, rs: Obj) -> None:
        """The Deployment carries its new ReplicaSet's revision (``kubectl describe``)."""
        wanted = (meta(rs).get("annotations") or {}).get(du.REVISION)
        annotations = d["metadata"].setdefault("annotations", {})
        if wanted is None or annotations.get(du.REVISION) == wanted:
            return
        patched = await self.client.patch(
            DEPLOYMENTS, meta(d).get("namespace", ""), meta(d).get("name", ""),
            {"metadata": {"annotations": {du.REVISION: wanted}}}, patch_type="merge")
        annotations[du.REVISION] = wanted
        self.written_deployments.wrote(meta(d).get("resourceVersion"), patched)
        d["metadata"]["resourceVersion"] = meta(patched).get("resourceVersion")

    async def _write_status(self, d: Obj) -> None:
        """Write ``d``'s status. The status is computed from the ReplicaSets and the spec, so
        when a conflict comes from a newer object with the same generation (our own previous
        write not yet in the cache, an annotation change) it is still right: retry on that."""
        replaced = meta(d).get("resourceVersion")
        try:
            written = await self.client.update(DEPLOYMENTS, d, subresource="status")
        except ApiError as exc:
            if exc.code != 409:
                raise
            fresh = await self.client.get(DEPLOYMENTS, meta(d).get("namespace", ""),
                                          meta(d).get("name", ""))
            if (meta(fresh).get("uid") != meta(d).get("uid")
                    or meta(fresh).get("generation") != meta(d).get("generation")):
                raise
            fresh["status"] = d.get("status") or {}
            replaced = meta(fresh).get("resourceVersion")
            written = await self.client.update(DEPLOYMENTS, fresh, subresource="status")
        d["metadata"]["resourceVersion"] = meta(written).get("resourceVersion")
        self.written_deployments.wrote(replaced, written)

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not du.has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = du.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED
        now = self.clock.now()
        if d["spec"].get("paused") and not paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.PAUSED,
                                                      "Deployment is paused", now))
        elif not d["spec"].get("paused") and paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.RESUMED,
                                                      "Deployment is resumed", now))
        else:
            return
        await self._write_status(d)

    def _is_scaling_event(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> bool:
        for rs in du.active([*olds, new_rs]):
            desired = (meta(rs).get("annotations") or {}).get(du.DESIRED_REPLICAS)
            if desired is not None and desired != str(du.replicas(d)):
                return True
        return False
