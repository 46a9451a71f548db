"""How a Deployment moves between ReplicaSets: scaling, RollingUpdate, Recreate, progress.

The second half of the Deployment controller (upstream splits the same methods over
sync.go, rolling.go, recreate.go and progress.go). ``RolloutMixin`` holds the steps that
act on an already-classified set of ReplicaSets — the new one and the old ones — and turn
``deployment_util``'s arithmetic into writes; ``DeploymentController`` provides the
classification, the new ReplicaSet and the status write.

Every step that scales returns at once, so a sync makes one kind of move and the next sync
(triggered by the ReplicaSet's own events) re-reads the world before the next move.
"""

from __future__ import annotations

import copy
from datetime import datetime

from pyk8s.client import ApiClient, Informer
from pyk8s.client.clock import Clock
from pyk8s.controllers import deployment_util as du
from pyk8s.controllers import indexes, podutil
from pyk8s.controllers.base import Obj, WrittenObjects, controller_ref, is_deleting, meta
from pyk8s.controllers.events import EventRecorder
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE

REPLICASETS = CATALOGUE.resource("apps/v1", "replicasets")
DEPLOYMENTS = CATALOGUE.resource("apps/v1", "deployments")


class RolloutMixin:
    client: ApiClient
    clock: Clock
    recorder: EventRecorder
    pod_informer: Informer
    written_sets: WrittenObjects

    async def _new_replica_set(self, d: Obj, olds: list[Obj], existing: Obj | None,
                               create: bool) -> Obj | None:
        raise NotImplementedError

    async def _write_status(self, d: Obj) -> None:
        raise NotImplementedError

    # -- scaling -----------------------------------------------------------------------

    async def _scale_rs(self, d: Obj, rs: Obj, size: int, op: str = "") -> Obj:
        """Set a ReplicaSet's size and replica annotations; an Event when the size changes."""
        old = du.replicas(rs)
        updated = copy.deepcopy(rs)
        annotations_changed = du.set_replicas_annotations(
            updated, du.replicas(d), du.replicas(d) + du.max_surge(d))
        if old == size and not annotations_changed:
            return rs
        updated["spec"]["replicas"] = size
        written = await self.client.update(REPLICASETS, updated)
        self.written_sets.wrote(meta(rs).get("resourceVersion"), copy.deepcopy(written))
        if old != size:
            op = op or ("up" if old < size else "down")
            self.recorder.event(d, DEPLOYMENTS, "Normal", "ScalingReplicaSet",
                                f"Scaled {op} replica set {meta(rs).get('name')} from {old} to {size}")
        return written

    async def _scale_and_record(self, d: Obj, rs: Obj, size: int) -> tuple[bool, Obj]:
        if du.replicas(rs) == size:
            return False, rs
        return True, await self._scale_rs(d, rs, size)

    async def _scale(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        """Upstream ``scale``: one active set takes everything; otherwise proportionally."""
        target = du.find_active_or_latest(new_rs, olds)
        if target is not None:
            if du.replicas(target) != du.replicas(d):
                written = await self._scale_rs(d, target, du.replicas(d))
                return _replace(new_rs, olds, written)
            return new_rs, olds
        if du.is_saturated(d, new_rs):
            for rs in du.active(olds):
                written = await self._scale_rs(d, rs, 0)
                new_rs, olds = _replace(new_rs, olds, written)
            return new_rs, olds
        if du.is_rolling(d):
            sets = [*olds, *([new_rs] if new_rs is not None else [])]
            sizes, op = du.proportional_sizes(d, sets)
            for rs in du.active(sets):
                written = await self._scale_rs(d, rs, sizes[meta(rs)["name"]], op)
                new_rs, olds = _replace(new_rs, olds, written)
        return new_rs, olds

    async def _sync_scale(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        new_rs, olds = await self._scale(d, new_rs, olds)
        if d["spec"].get("paused"):
            await self._cleanup(d, olds)
        await self._sync_status(d, new_rs, olds)
        return None

    async def _sync_status(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        status = du.calculate_status(_all(new_rs, olds), new_rs, d, self.clock.now())
        if status != (d.get("status") or {}):
            d["status"] = status
            await self._write_status(d)

    # -- RollingUpdate -----------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, new_rs: Obj, olds: list[Obj]) -> float | None:
        scaled, new_rs = await self._reconcile_new(d, new_rs, olds)
        if scaled:
            return await self._sync_rollout_status(d, new_rs, olds)
        scaled, olds = await self._reconcile_olds(d, new_rs, olds)
        if scaled:
            return await self._sync_rollout_status(d, new_rs, olds)
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, olds)
        return await self._sync_rollout_status(d, new_rs, olds)

    async def _reconcile_new(self, d: Obj, new_rs: Obj, olds: list[Obj]) -> tuple[bool, Obj]:
        want = du.replicas(d)
        if du.replicas(new_rs) == want:
            return False, new_rs
        if du.replicas(new_rs) > want:
            return await self._scale_and_record(d, new_rs, want)
        count = du.new_rs_replicas(d, [*olds, new_rs], du.replicas(new_rs))
        return await self._scale_and_record(d, new_rs, count)

    async def _reconcile_olds(self, d: Obj, new_rs: Obj, olds: list[Obj]) -> tuple[bool, list[Obj]]:
        if du.spec_total(olds) == 0:
            return False, olds
        all_count = du.spec_total([*olds, new_rs])
        min_available = du.replicas(d) - du.max_unavailable(d)
        new_unavailable = du.replicas(new_rs) - int(
            (new_rs.get("status") or {}).get("availableReplicas") or 0)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False, olds
        olds = sorted(olds, key=du.created_key)
        cleaned = 0
        for i, rs in enumerate(olds):
            if cleaned >= max_scaled_down:
                break
            available = int((rs.get("status") or {}).get("availableReplicas") or 0)
            if du.replicas(rs) == 0 or du.replicas(rs) == available:
                continue
            count = min(max_scaled_down - cleaned, du.replicas(rs) - available)
            if count < 0:
                # More available than wanted: the ReplicaSet has not caught up with its last
                # scale-down. Upstream's cleanupUnhealthyReplicas refuses ("invalid request to
                # scale down") and the rollout step is skipped; never scale an old set up.
                return False, olds
            _, olds[i] = await self._scale_and_record(d, rs, du.replicas(rs) - count)
            cleaned += count
        scaled_down = 0
        available = du.status_total([*olds, new_rs], "availableReplicas")
        if available > min_available:
            total = available - min_available
            for i, rs in enumerate(olds):
                if scaled_down >= total:
                    break
                if du.replicas(rs) == 0:
                    continue
                count = min(du.replicas(rs), total - scaled_down)
                _, olds[i] = await self._scale_and_record(d, rs, du.replicas(rs) - count)
                scaled_down += count
        return cleaned + scaled_down > 0, olds

    # -- Recreate ----------------------------------------------------------------------

    async def _rollout_recreate(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> float | None:
        scaled = False
        for i, rs in enumerate(olds):
            if du.replicas(rs) > 0:
                changed, olds[i] = await self._scale_and_record(d, rs, 0)
                scaled = scaled or changed
        if scaled or self._old_pods_running(new_rs, olds):
            return await self._sync_rollout_status(d, new_rs, olds)
        if new_rs is None:
            new_rs = await self._new_replica_set(d, olds, None, create=True)
        assert new_rs is not None
        _, new_rs = await self._scale_and_record(d, new_rs, du.replicas(d))
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, olds)
        return await self._sync_rollout_status(d, new_rs, olds)

    def _old_pods_running(self, new_rs: Obj | None, olds: list[Obj]) -> bool:
        if du.status_total(olds, "replicas") > 0:
            return True
        old_uids = {meta(rs).get("uid") for rs in olds}
        new_uid = meta(new_rs).get("uid") if new_rs is not None else None
        for pod in self.pod_informer.by_index(indexes.NAMESPACE,
                                              meta(olds[0]).get("namespace", "") if olds else ""):
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") == new_uid or ref.get("uid") not in old_uids:
                continue
            if podutil.phase(pod) not in ("Succeeded", "Failed"):
                return True
        return False

    # -- history and progress ------------------------------------------------------------

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        """Delete the oldest unused ReplicaSets beyond ``revisionHistoryLimit``."""
        limit = d["spec"].get("revisionHistoryLimit")
        if limit is None or limit == 2**31 - 1:
            return
        cleanable = [rs for rs in olds if not is_deleting(rs)]
        diff = len(cleanable) - int(limit)
        if diff <= 0:
            return
        cleanable.sort(key=lambda rs: (du.revision(rs), du.created_key(rs)))
        for rs in cleanable[:diff]:
            status = rs.get("status") or {}
            if (int(status.get("replicas") or 0) != 0 or du.replicas(rs) != 0
                    or int(meta(rs).get("generation") or 0) > int(status.get("observedGeneration") or 0)):
                continue
            try:
                await self.client.delete(REPLICASETS, meta(rs).get("namespace", ""),
                                         meta(rs).get("name", ""))
            except ApiError as exc:
                if exc.code != 404:
                    raise

    async def _sync_rollout_status(self, d: Obj, new_rs: Obj | None,
                                   olds: list[Obj]) -> float | None:
        now = self.clock.now()
        status = du.calculate_status(_all(new_rs, olds), new_rs, d, now)
        if not du.has_progress_deadline(d):
            du.remove_condition(status, "Progressing")
        current = du.get_condition(d.get("status") or {}, "Progressing")
        complete_before = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                           and current is not None and current.get("reason") == du.NEW_RS_AVAILABLE)
        what = f'ReplicaSet "{meta(new_rs).get("name")}"' if new_rs is not None \
            else f'Deployment "{meta(d).get("name")}"'
        if du.has_progress_deadline(d) and not complete_before:
            if du.deployment_complete(d, status):
                du.set_condition(status, du.new_condition(
                    "Progressing", "True", du.NEW_RS_AVAILABLE, f"{what} has successfully progressed.", now))
            elif du.deployment_progressing(d, status):
                cond = du.new_condition("Progressing", "True", du.RS_UPDATED,
                                        f"{what} is progressing.", now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(status, "Progressing")
                du.set_condition(status, cond)
            elif du.timed_out(d, status, now):
                du.set_condition(status, du.new_condition(
                    "Progressing", "False", du.TIMED_OUT, f"{what} has timed out progressing.", now))
        failures = [c for rs in _all(new_rs, olds)
                    if (c := podutil.condition(rs, "ReplicaFailure")) is not None
                    and c.get("status") == "True"]
        if failures:
            du.set_condition(status, {"type": "ReplicaFailure", "status": "True",
                                      "lastUpdateTime": failures[0].get("lastTransitionTime"),
                                      "lastTransitionTime": failures[0].get("lastTransitionTime"),
                                      "reason": failures[0].get("reason"),
                                      "message": failures[0].get("message")})
        else:
            du.remove_condition(status, "ReplicaFailure")
        if status == (d.get("status") or {}):
            return self._requeue_stuck(d, status, now)
        d["status"] = status
        await self._write_status(d)
        return None

    def _requeue_stuck(self, d: Obj, status: Obj, now: datetime) -> float | None:
        current = du.get_condition(d.get("status") or {}, "Progressing")
        if not du.has_progress_deadline(d) or current is None:
            return None
        if du.deployment_complete(d, status) or current.get("reason") == du.TIMED_OUT:
            return None
        at = du.deadline_at(d, d.get("status") or {})
        if at is None:
            return None
        after = (at - now).total_seconds()
        return max(after, 0.0) + 1.0


def _all(new_rs: Obj | None, olds: list[Obj]) -> list[Obj]:
    return [*olds, new_rs] if new_rs is not None else list(olds)


def _replace(new_rs: Obj | None, olds: list[Obj], written: Obj) -> tuple[Obj | None, list[Obj]]:
    """The lists with ``written`` in place of the ReplicaSet of the same name."""
    name = meta(written).get("name")
    if new_rs is not None and meta(new_rs).get("name") == name:
        return written, olds
    return new_rs, [written if meta(rs).get("name") == name else rs for rs in olds]
