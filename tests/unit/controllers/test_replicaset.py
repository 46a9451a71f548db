"""The ReplicaSet controller: counting, expectations, slow start, ranking, adoption, status."""

from __future__ import annotations

import asyncio
from typing import Any

from controller_fakes import (
    FakeApi,
    FakeFactory,
    NullRecorder,
    advance,
    kubelet_ready_all,
    ready,
    settle,
)

from pyk8s.client import FakeClock
from pyk8s.controllers import replicaset as rsc
from pyk8s.controllers.replicaset import PODS, REPLICASETS, ReplicaSetController
from pyk8s.machinery.errors import ApiError


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def replicaset(name: str = "web", replicas: int = 3, **spec: Any) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}, **spec}}


def setup() -> tuple[FakeApi, ReplicaSetController, NullRecorder]:
    api = FakeApi(FakeClock())
    recorder = NullRecorder()
    controller = ReplicaSetController(api, FakeFactory(api), clock=api.clock,  # type: ignore[arg-type]
                                      recorder=recorder)  # type: ignore[arg-type]
    return api, controller, recorder


class TestSlowStart:
    def test_batches_double_and_stop_at_first_failure(self) -> None:
        calls: list[int] = []

        async def scenario() -> tuple[int, Exception | None]:
            async def fn() -> None:
                calls.append(1)
                if len(calls) == 5:
                    raise RuntimeError("boom")

            return await rsc.slow_start_batch(20, 1, fn)

        successes, error = run(scenario())
        assert len(calls) == 7  # batches of 1, 2, 4; the failure is in the third
        assert successes == 6 and isinstance(error, RuntimeError)

    def test_all_succeed(self) -> None:
        async def ok() -> None:
            return None

        assert run(rsc.slow_start_batch(10, 1, ok)) == (10, None)


class TestDeletionRanking:
    def test_unscheduled_then_pending_then_not_ready_go_first(self) -> None:
        def pod(name: str, node: str = "", phase: str = "Running", is_ready: bool = False) -> dict:
            p = {"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                 "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}
            return ready(p) if is_ready else p

        pods = [pod("ready", "n1", is_ready=True), pod("running", "n1"),
                pod("pending", "n1", "Pending"), pod("unscheduled", phase="Pending")]
        order = [p["metadata"]["name"] for p in rsc.pods_to_delete(pods, 4)]
        assert order == ["unscheduled", "pending", "running", "ready"]

    def test_lower_deletion_cost_goes_first(self) -> None:
        cheap = {"metadata": {"name": "cheap", "annotations": {
            "controller.kubernetes.io/pod-deletion-cost": "-5"}}, "spec": {}}
        dear = {"metadata": {"name": "dear", "annotations": {
            "controller.kubernetes.io/pod-deletion-cost": "100"}}, "spec": {}}
        plain = {"metadata": {"name": "plain"}, "spec": {}}
        order = [p["metadata"]["name"] for p in rsc.pods_to_delete([dear, plain, cheap], 3)]
        assert order == ["cheap", "plain", "dear"]

    def test_doubled_up_nodes_give_pods_first(self) -> None:
        def on(name: str, node: str) -> dict:
            return ready({"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                          "spec": {"nodeName": node}})

        pods = [on("alone", "n1"), on("crowd-a", "n2"), on("crowd-b", "n2")]
        assert rsc.pods_to_delete(pods, 1)[0]["metadata"]["name"].startswith("crowd")

    def test_newer_pods_go_first_among_equals(self) -> None:
        old = {"metadata": {"name": "old", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}}
        new = {"metadata": {"name": "new", "creationTimestamp": "2026-01-02T00:00:00Z"}, "spec": {}}
        assert rsc.pods_to_delete([old, new], 1)[0]["metadata"]["name"] == "new"


class TestReplicaSetController:
    def test_creates_pods_with_owner_reference_and_generated_name(self) -> None:
        async def scenario() -> None:
            api, ctl, recorder = setup()
            rs = api.seed(REPLICASETS, replicaset(replicas=3))
            await settle(api, ctl)
            pods = api.objects(PODS)
            assert len(pods) == 3
            for pod in pods:
                assert pod["metadata"]["name"].startswith("web-")
                assert pod["metadata"]["ownerReferences"] == [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
            assert recorder.reasons().count("SuccessfulCreate") == 3
            status = api.objects(REPLICASETS)[0]["status"]
            assert status == {"replicas": 3, "fullyLabeledReplicas": 3, "observedGeneration": 1}

        run(scenario())

    def test_no_double_creation_before_watch_events_arrive(self) -> None:
        async def scenario() -> None:
            api, ctl, _ = setup()
            api.seed(REPLICASETS, replicaset(replicas=2))
            ctl.queue.add("default/web")
            for _ in range(3):  # syncs that run before the pods' ADDED events
                await ctl.sync("default/web")
            assert api.count("create", "pods") == 2
            await settle(api, ctl)
            assert len(api.objects(PODS)) == 2

        run(scenario())

    def test_scale_down_deletes_the_least_valuable_pods(self) -> None:
        async def scenario() -> None:
            api, ctl, recorder = setup()
            api.seed(REPLICASETS, replicaset(replicas=3))
            await settle(api, ctl)
            keep = api.objects(PODS)[0]
            await api.update(PODS, ready(keep), subresource="status")
            rs = api.objects(REPLICASETS)[0]
            rs["spec"]["replicas"] = 1
            await api.update(REPLICASETS, rs)
            await settle(api, ctl)
            remaining = api.objects(PODS)
            assert [p["metadata"]["name"] for p in remaining] == [keep["metadata"]["name"]]
            assert recorder.reasons().count("SuccessfulDelete") == 2

        run(scenario())

    def test_adopts_matching_orphans_and_releases_non_matching(self) -> None:
        async def scenario() -> None:
            api, ctl, _ = setup()
            api.seed(PODS, {"metadata": {"name": "orphan", "namespace": "default",
                                         "labels": {"app": "web"}}, "spec": {}})
            rs = api.seed(REPLICASETS, replicaset(replicas=1))
            await settle(api, ctl)
            pods = api.objects(PODS)
            assert len(pods) == 1, "the orphan was adopted instead of creating a pod"
            assert pods[0]["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
            pod = pods[0]
            pod["metadata"]["labels"] = {"app": "other"}
            await api.update(PODS, pod)
            await settle(api, ctl)
            released = next(p for p in api.objects(PODS) if p["metadata"]["name"] == "orphan")
            assert not released["metadata"].get("ownerReferences")
            assert len(api.objects(PODS)) == 2, "a replacement was created"

        run(scenario())

    def test_counts_only_its_own_pods_among_others_with_the_same_labels(self) -> None:
        async def scenario() -> None:
            api, ctl, _ = setup()
            first = api.seed(REPLICASETS, replicaset(replicas=2))
            await settle(api, ctl)
            # A second set with the same selector, and one of the same name elsewhere: the
            # pods of the first are controlled, so neither adopts nor counts them.
            second = replicaset(name="web2", replicas=1)
            second["spec"]["selector"] = {"matchLabels": {"app": "web"}}
            second["spec"]["template"]["metadata"]["labels"] = {"app": "web"}
            api.seed(REPLICASETS, second)
            other_ns = replicaset(replicas=1)
            other_ns["metadata"]["namespace"] = "other"
            api.seed(REPLICASETS, other_ns)
            await settle(api, ctl)
            by_owner: dict[str, int] = {}
            for pod in api.objects(PODS):
                ref = pod["metadata"]["ownerReferences"][0]
                key = f"{pod['metadata']['namespace']}/{ref['name']}"
                by_owner[key] = by_owner.get(key, 0) + 1
            assert by_owner == {"default/web": 2, "default/web2": 1, "other/web": 1}
            assert all(p["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
                       for p in api.objects(PODS)
                       if p["metadata"]["ownerReferences"][0]["name"] == "web"
                       and p["metadata"]["namespace"] == "default")
            statuses = {f"{r['metadata']['namespace']}/{r['metadata']['name']}":
                        r["status"]["replicas"] for r in api.objects(REPLICASETS)}
            assert statuses == {"default/web": 2, "default/web2": 1, "other/web": 1}

        run(scenario())

    def test_status_counts_ready_and_available_with_min_ready_seconds(self) -> None:
        async def scenario() -> None:
            api, ctl, _ = setup()
            api.seed(REPLICASETS, replicaset(replicas=2, minReadySeconds=10))
            await settle(api, ctl)
            await kubelet_ready_all(api, PODS)
            await settle(api, ctl)
            status = api.objects(REPLICASETS)[0]["status"]
            assert status["readyReplicas"] == 2 and "availableReplicas" not in status
            await advance(api.clock, 11)  # the requeue-after fires on the fake clock
            await settle(api, ctl)
            assert api.objects(REPLICASETS)[0]["status"]["availableReplicas"] == 2

        run(scenario())

    def test_pod_facts_follow_the_cached_object_and_are_dropped_with_it(self) -> None:
        """A sync reads each pod once per object the informer holds: an update (a new
        object) is seen by the next sync, and the replaced object's entry goes."""
        async def scenario() -> None:
            api, ctl, _ = setup()
            api.seed(REPLICASETS, replicaset(replicas=2))
            await settle(api, ctl)
            assert len(ctl._pod_facts) == 2
            await kubelet_ready_all(api, PODS)
            await settle(api, ctl)
            assert api.objects(REPLICASETS)[0]["status"]["readyReplicas"] == 2
            assert all(ctl._pod_facts[p["metadata"]["uid"]][0] is p
                       for p in ctl.pod_informer.list()), "entries for the objects now cached"
            victim = api.objects(PODS)[0]
            await api.delete(PODS, "default", victim["metadata"]["name"])
            await settle(api, ctl)
            assert set(ctl._pod_facts) <= {p["metadata"]["uid"] for p in ctl.pod_informer.list()}
            assert api.objects(REPLICASETS)[0]["status"]["replicas"] == 2

        run(scenario())

    def test_failed_creation_sets_replica_failure_and_retries(self) -> None:
        async def scenario() -> None:
            api, ctl, recorder = setup()
            api.fail = lambda verb, res, obj: ApiError(422, "Invalid", "pods is invalid") \
                if verb == "create" and res.plural == "pods" else None
            api.seed(REPLICASETS, replicaset(replicas=5))
            await settle(api, ctl)
            assert api.count("create", "pods") <= 2, "each sync stops after the first failure"
            cond = api.objects(REPLICASETS)[0]["status"]["conditions"][0]
            assert (cond["type"], cond["reason"]) == ("ReplicaFailure", "FailedCreate")
            assert "FailedCreate" in recorder.reasons()
            api.fail = None
            await advance(api.clock, 1)
            await settle(api, ctl)
            rs = api.objects(REPLICASETS)[0]
            assert len(api.objects(PODS)) == 5 and "conditions" not in rs["status"]

        run(scenario())
