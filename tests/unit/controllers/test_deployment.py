"""The Deployment controller driving the ReplicaSet controller on an in-memory API.

Each scenario runs both controllers to quiescence, plays the kubelet (pods become Ready) when
the scenario wants progress, and checks what users see: ReplicaSets, revisions, status and
conditions, and the rolling-update bounds at every step.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from controller_fakes import (
    FakeApi,
    FakeFactory,
    NullRecorder,
    advance,
    drain,
    kubelet_ready_all,
    settle,
)
from controller_fakes import ready as ready_pod

from pyk8s.client import FakeClock
from pyk8s.controllers import deployment_util as du
from pyk8s.controllers.deployment import DEPLOYMENTS, DeploymentController
from pyk8s.controllers.replicaset import PODS, REPLICASETS, ReplicaSetController


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def deployment(replicas: int = 4, image: str = "img:1", strategy: str = "RollingUpdate",
               surge: object = 1, unavailable: object = 1, **spec: Any) -> dict:
    strat: dict = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "strategy": strat, "revisionHistoryLimit": 10,
                     "progressDeadlineSeconds": 600,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     **spec}}


class Scene:
    def __init__(self) -> None:
        self.api = FakeApi(FakeClock())
        self.recorder = NullRecorder()
        factory = FakeFactory(self.api)
        self.dc = DeploymentController(self.api, factory, clock=self.api.clock,  # type: ignore[arg-type]
                                       recorder=self.recorder)  # type: ignore[arg-type]
        self.rsc = ReplicaSetController(self.api, factory, clock=self.api.clock,  # type: ignore[arg-type]
                                        recorder=NullRecorder())  # type: ignore[arg-type]

    async def settle(self) -> None:
        await settle(self.api, self.dc, self.rsc)

    async def kubelet(self) -> None:
        await kubelet_ready_all(self.api, PODS)
        await self.settle()

    def d(self) -> dict:
        return self.api.objects(DEPLOYMENTS)[0]

    def sets(self) -> dict[str, dict]:
        """ReplicaSets by revision."""
        return {rs["metadata"]["annotations"][du.REVISION]: rs for rs in self.api.objects(REPLICASETS)}

    async def edit(self, mutate: Any) -> None:
        d = self.d()
        mutate(d)
        await self.api.update(DEPLOYMENTS, d)
        await self.settle()

    def condition(self, kind: str) -> dict:
        return du.get_condition(self.d()["status"], kind) or {}


def set_image(image: str) -> Any:
    def mutate(d: dict) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return mutate


def test_first_rollout_creates_revision_one_and_completes() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=3))
        await s.settle()
        sets = s.sets()
        assert list(sets) == ["1"]
        rs = sets["1"]
        pod_hash = rs["metadata"]["labels"][du.HASH_LABEL]
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["spec"]["replicas"] == 3
        assert rs["metadata"]["annotations"][du.DESIRED_REPLICAS] == "3"
        assert rs["metadata"]["annotations"][du.MAX_REPLICAS] == "4"
        assert s.condition("Progressing")["reason"] == du.RS_UPDATED  # created, then pods came
        assert f"Scaled up replica set {rs['metadata']['name']} from 0 to 3" in \
            [e[3] for e in s.recorder.events]
        await s.kubelet()
        status = s.d()["status"]
        assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"],
                status["readyReplicas"], status["unavailableReplicas"]) == (3, 3, 3, 3, 0)
        assert status["observedGeneration"] == 1
        assert s.condition("Progressing")["reason"] == du.NEW_RS_AVAILABLE
        assert s.condition("Available")["status"] == "True"
        assert s.d()["metadata"]["annotations"][du.REVISION] == "1"

    run(scenario())


def test_rolling_update_respects_surge_and_unavailability_at_every_step() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=4, surge=1, unavailable=1))
        await s.settle()
        await s.kubelet()
        await s.edit(set_image("img:2"))
        steps = 0
        while True:
            sets = s.sets()
            total = sum(rs["spec"]["replicas"] for rs in sets.values())
            available = sum(rs["status"].get("availableReplicas", 0) for rs in sets.values())
            assert total <= 5, "never more than replicas + maxSurge"
            assert available >= 3, "never less than replicas - maxUnavailable available"
            if sets.get("2", {}).get("status", {}).get("availableReplicas") == 4 and \
                    sets["1"]["spec"]["replicas"] == 0:
                break
            await s.kubelet()
            steps += 1
            assert steps < 20
        assert steps >= 2, "the rollout proceeds in several steps"
        assert {p["spec"]["containers"][0]["image"] for p in s.api.objects(PODS)} == {"img:2"}
        assert s.condition("Progressing")["reason"] == du.NEW_RS_AVAILABLE

    run(scenario())


def test_rollback_reuses_the_old_replica_set_with_the_next_revision() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=2))
        await s.settle()
        await s.kubelet()
        first = s.sets()["1"]
        await s.edit(set_image("img:2"))
        for _ in range(5):
            await s.kubelet()
        old_template = copy.deepcopy(first["spec"]["template"])
        del old_template["metadata"]["labels"][du.HASH_LABEL]

        def undo(d: dict) -> None:
            d["spec"]["template"] = old_template
        await s.edit(undo)
        for _ in range(5):
            await s.kubelet()
        sets = s.sets()
        assert set(sets) == {"2", "3"}
        assert sets["3"]["metadata"]["name"] == first["metadata"]["name"]
        assert sets["3"]["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
        assert sets["3"]["spec"]["replicas"] == 2 and sets["2"]["spec"]["replicas"] == 0
        assert s.d()["metadata"]["annotations"][du.REVISION] == "3"

    run(scenario())


def test_scaling_mid_rollout_is_proportional() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=10, surge=3, unavailable=2))
        await s.settle()
        await s.kubelet()
        await s.edit(set_image("img:2"))  # new RS not ready: rollout stalls part way

        def scale(d: dict) -> None:
            d["spec"]["replicas"] = 20
        await s.edit(scale)
        sets = s.sets()
        total = sum(rs["spec"]["replicas"] for rs in sets.values())
        assert total == 23  # 20 + maxSurge 3
        assert sets["1"]["spec"]["replicas"] > 0 and sets["2"]["spec"]["replicas"] > 0
        assert all(rs["metadata"]["annotations"][du.DESIRED_REPLICAS] == "20" for rs in sets.values())

    run(scenario())


def test_recreate_scales_old_down_before_creating_new() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=2, strategy="Recreate"))
        await s.settle()
        await s.kubelet()
        d = s.d()
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
        await s.api.update(DEPLOYMENTS, d)
        s.api.flush()
        await s.dc.sync("default/web")
        assert list(s.sets()) == ["1"], "no new ReplicaSet while old pods exist"
        assert s.sets()["1"]["spec"]["replicas"] == 0
        await s.settle()
        await s.kubelet()
        sets = s.sets()
        assert sets["2"]["spec"]["replicas"] == 2 and sets["1"]["spec"]["replicas"] == 0
        assert {p["spec"]["containers"][0]["image"] for p in s.api.objects(PODS)} == {"img:2"}

    run(scenario())



def test_a_pod_deletion_wakes_only_a_recreate_deployment() -> None:
    """Recreate waits for its old pods to be gone, so their deletion enqueues it; a
    RollingUpdate Deployment (once switched, too) is not woken by pod deletions."""
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=2, strategy="Recreate"))
        await s.settle()
        pods = s.api.objects(PODS)
        s.dc._pod_deleted(pods[0])
        assert len(s.dc.queue) == 1
        await s.settle()
        await s.edit(lambda d: d["spec"].update(strategy={"type": "RollingUpdate"}))
        s.dc._pod_deleted(pods[1])
        assert len(s.dc.queue) == 0

    run(scenario())

def test_progress_deadline_exceeded_without_any_event() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=1, progressDeadlineSeconds=10))
        await s.settle()
        assert s.condition("Progressing")["reason"] == du.RS_UPDATED
        await advance(s.api.clock, 12)
        await s.settle()
        cond = s.condition("Progressing")
        assert (cond["status"], cond["reason"]) == ("False", du.TIMED_OUT)
        assert cond["message"].endswith("has timed out progressing.")

    run(scenario())


def test_paused_deployment_scales_but_does_not_roll_out() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=2))
        await s.settle()

        def pause_and_change(d: dict) -> None:
            d["spec"]["paused"] = True
            d["spec"]["replicas"] = 3
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
        await s.edit(pause_and_change)
        assert list(s.sets()) == ["1"] and s.sets()["1"]["spec"]["replicas"] == 3
        assert s.condition("Progressing")["reason"] == du.PAUSED

        def resume(d: dict) -> None:
            d["spec"]["paused"] = False
        await s.edit(resume)
        assert set(s.sets()) == {"1", "2"}

    run(scenario())


def test_revision_history_limit_deletes_oldest_unused_sets() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=1, revisionHistoryLimit=1))
        await s.settle()
        for image in ("img:2", "img:3", "img:4"):
            await s.edit(set_image(image))
            for _ in range(4):
                await s.kubelet()
        assert set(s.sets()) == {"3", "4"}

    run(scenario())


def test_change_cause_is_copied_to_the_new_replica_set() -> None:
    async def scenario() -> None:
        s = Scene()
        d = deployment(replicas=1)
        d["metadata"]["annotations"] = {du.CHANGE_CAUSE: "kubectl create"}
        s.api.seed(DEPLOYMENTS, d)
        await s.settle()
        assert s.sets()["1"]["metadata"]["annotations"][du.CHANGE_CAUSE] == "kubectl create"

    run(scenario())


def test_cleanup_never_scales_an_old_set_up_while_its_status_lags() -> None:
    """An old ReplicaSet just scaled down still reports more available pods than its new
    size; upstream's cleanupUnhealthyReplicas refuses to "scale down" it to a larger size."""
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=4, surge=1, unavailable=1))
        await s.settle()
        await s.kubelet()
        d = s.dc.d_informer.get("default/web")
        old = copy.deepcopy(s.sets()["1"])
        old["spec"]["replicas"] = 2  # scaled down, its pods not deleted yet: 4 available
        new = {"metadata": {"name": "web-new", "namespace": "default",
                            "creationTimestamp": "2030-01-01T00:00:00Z"},
               "spec": {"replicas": 3}, "status": {"availableReplicas": 3}}
        scaled, olds = await s.dc._reconcile_olds(copy.deepcopy(d), new, [old])
        assert not scaled and olds[0]["spec"]["replicas"] == 2
        assert s.api.count("update", "replicasets") == 0

    run(scenario())


def test_a_sync_ahead_of_its_own_writes_does_not_conflict() -> None:
    """Deployment syncs that run before the watch brings back the controller's previous
    status writes (even part of a chain of them) start from those writes: no 409 and GET."""
    async def scenario() -> None:
        s = Scene()
        s.api.seed(DEPLOYMENTS, deployment(replicas=3))
        await s.settle()
        gets = s.api.count("get", "deployments")
        for pod in s.api.objects(PODS):  # each pod's readiness changes the status
            await s.api.update(PODS, ready_pod(pod), subresource="status")
            held = [e for e in s.api.pending if e[0] == DEPLOYMENTS]
            s.api.pending = [e for e in s.api.pending if e[0] != DEPLOYMENTS]
            s.api.flush()
            await drain(s.rsc, s.dc)
            await drain(s.rsc, s.dc)
            # the Deployment watch delivers only the first of our writes so far
            s.api.pending = [*s.api.pending, *held[:1]]
        await s.settle()
        assert s.d()["status"]["availableReplicas"] == 3
        assert s.api.count("get", "deployments") == gets

    run(scenario())
