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


def deliver_only(api: FakeApi, resource: Any) -> None:
    """Deliver the pending watch events of one resource, holding back the others (a watch
    that lags behind another)."""
    held = []
    for res, kind, obj in api.pending:
        if res == resource:
            for inf in list(api.informers.values()):
                if inf.resource == res:
                    inf.deliver(kind, obj)
        else:
            held.append((res, kind, obj))
    api.pending = held


class TestCheapSyncs:
    def test_status_from_tracked_counts_matches_a_walk_of_the_pods(self) -> None:
        """The counts the pod handlers keep give the status a walk of every pod gives,
        through creations, readiness, label changes, deletions."""
        async def scenario() -> None:
            api, ctl, _ = setup()
            rs = replicaset(replicas=4)
            rs["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
            api.seed(REPLICASETS, rs)
            await settle(api, ctl)

            def walked() -> dict:
                cached = ctl.rs_informer.get("default/web")
                uid = cached["metadata"]["uid"]
                facts = [f for _, f in ctl._candidates("default", uid) if f.active]
                return rsc.calculate_status(cached, facts, None, 0, api.clock.now())

            assert api.objects(REPLICASETS)[0]["status"] == walked()
            pods = api.objects(PODS)
            await api.update(PODS, ready(pods[0]), subresource="status")
            del pods[1]["metadata"]["labels"]["tier"]  # still selected, no longer fully labeled
            await api.update(PODS, pods[1])
            await settle(api, ctl)
            status = api.objects(REPLICASETS)[0]["status"]
            assert status == walked()
            assert (status["replicas"], status["fullyLabeledReplicas"],
                    status["readyReplicas"], status["availableReplicas"]) == (4, 3, 1, 1)
            await api.delete(PODS, "default", pods[0]["metadata"]["name"])
            await settle(api, ctl)
            assert api.objects(REPLICASETS)[0]["status"] == walked()
            assert len(api.objects(PODS)) == 4

        run(scenario())

    def test_counts_defer_to_a_walk_when_pods_must_be_adopted_released_or_timed(self) -> None:
        async def scenario() -> None:
            api, ctl, _ = setup()
            api.seed(REPLICASETS, replicaset(replicas=1))
            await settle(api, ctl)
            cached = ctl.rs_informer.get("default/web")
            uid = cached["metadata"]["uid"]
            selector = rsc.label_selector_from_dict(cached["spec"]["selector"])
            assert ctl._counts(cached, selector, "default", uid) == (1, 1, 0)
            api.seed(PODS, {"metadata": {"name": "stray", "namespace": "default",
                                         "labels": {"app": "web"}}, "spec": {}})
            assert ctl._counts(cached, selector, "default", uid) is None, "an orphan to adopt"
            await settle(api, ctl)
            assert ctl._counts(cached, selector, "default", uid) == (1, 1, 0)
            assert len(api.objects(PODS)) == 1, "adopted, then the surplus pod deleted"
            timed = dict(cached, spec=dict(cached["spec"], minReadySeconds=5))
            assert ctl._counts(timed, selector, "default", uid) is None

        run(scenario())

    def test_a_sync_ahead_of_its_own_status_write_does_not_conflict(self) -> None:
        """A sync that runs before the watch brings back the controller's previous status
        write starts from that write: no 409, no GET, no second PUT."""
        async def scenario() -> None:
            api, ctl, _ = setup()
            api.seed(REPLICASETS, replicaset(replicas=2))
            await settle(api, ctl)
            for pod in api.objects(PODS):
                await api.update(PODS, ready(pod), subresource="status")
                deliver_only(api, PODS)  # the ReplicaSet watch lags behind
                await rsc_drain(ctl)
            status = api.objects(REPLICASETS)[0]["status"]
            assert status["readyReplicas"] == 2
            assert api.count("get", "replicasets") == 0
            await settle(api, ctl)
            assert api.count("get", "replicasets") == 0

        run(scenario())


    def test_a_scale_down_with_nothing_to_adopt_ranks_only_its_own_pods(
            self, monkeypatch: Any) -> None:
        """A scale-down whose counts show nothing to adopt or release ranks the pods the
        index says it controls, without the claiming walk, and deletes the same pods."""
        async def scenario() -> None:
            api, ctl, recorder = setup()
            api.seed(REPLICASETS, replicaset(replicas=4))
            api.seed(PODS, {"metadata": {"name": "other", "namespace": "default",
                                         "labels": {"app": "else"}}, "spec": {}})
            await settle(api, ctl)
            keep = [p for p in api.objects(PODS) if p["metadata"]["name"] != "other"][:2]
            for pod in keep:
                await api.update(PODS, ready(pod), subresource="status")
            await settle(api, ctl)

            async def no_walk(*args: Any) -> Any:
                raise AssertionError("walked the pods")

            monkeypatch.setattr(ctl, "_claim_pods", no_walk)
            rs = api.objects(REPLICASETS)[0]
            rs["spec"]["replicas"] = 2
            await api.update(REPLICASETS, rs)
            await settle(api, ctl)
            remaining = sorted(p["metadata"]["name"] for p in api.objects(PODS))
            assert remaining == sorted(["other", *(p["metadata"]["name"] for p in keep)])
            assert recorder.reasons().count("SuccessfulDelete") == 2
            status = api.objects(REPLICASETS)[0]["status"]
            assert (status["replicas"], status["readyReplicas"]) == (2, 2)

        run(scenario())


class TestRankingCache:
    def test_cached_keys_rank_as_deletion_rank_does(self) -> None:
        import random as rnd
        rnd.seed(7)
        pods = []
        for i in range(200):
            pod: dict = {"metadata": {"name": f"p{i}", "creationTimestamp":
                                      f"2026-01-0{rnd.randint(1, 3)}T00:00:00Z"},
                         "spec": {}, "status": {"phase": rnd.choice(["Pending", "Running",
                                                                     "Unknown"])}}
            if rnd.random() < 0.8:
                pod["spec"]["nodeName"] = f"n{rnd.randint(1, 20)}"
            if rnd.random() < 0.5:
                pod = ready(pod, at=f"2026-01-0{rnd.randint(4, 6)}T00:00:00Z")
            if rnd.random() < 0.2:
                pod["status"]["containerStatuses"] = [{"restartCount": rnd.randint(0, 3)}]
            if rnd.random() < 0.1:
                pod["metadata"]["annotations"] = {
                    "controller.kubernetes.io/pod-deletion-cost": str(rnd.randint(-2, 2))}
            pods.append(pod)
        per_node: dict = {}
        for p in pods:
            node = p["spec"].get("nodeName") or ""
            per_node[node] = per_node.get(node, 0) + 1
        expected = sorted(pods, key=lambda p: rsc.podutil.deletion_rank(
            p, per_node[p["spec"]["nodeName"]] if p["spec"].get("nodeName") else 0))
        assert [p["metadata"]["name"] for p in rsc.pods_to_delete(pods, 200)] == \
            [p["metadata"]["name"] for p in expected]


    def test_a_few_victims_are_picked_as_a_full_sort_picks_them(self) -> None:
        """Picking a handful out of many (a partial selection) gives the first pods of the
        full ranking, ties kept in their original order."""
        pods = []
        for i in range(100):
            pod: dict = {"metadata": {"name": f"p{i}",
                                      "creationTimestamp": f"2026-01-0{1 + i % 3}T00:00:00Z"},
                         "spec": {"nodeName": f"n{i % 7}"}, "status": {"phase": "Running"}}
            if i % 4:
                pod = ready(pod, at="2026-01-05T00:00:00Z")
            pods.append(pod)
        full = [p["metadata"]["name"] for p in rsc.pods_to_delete(pods, 100)]
        for count in (1, 5, 24, 25, 60):
            assert [p["metadata"]["name"] for p in rsc.pods_to_delete(pods, count)] == full[:count]

async def rsc_drain(ctl: ReplicaSetController) -> None:
    while len(ctl.queue):
        key = await ctl.queue.get()
        try:
            await ctl.process(key)
        finally:
            ctl.queue.done(key)


def test_pod_factory_bodies_match_pod_from_template_and_keep_their_own_metadata() -> None:
    template = replicaset()["spec"]["template"]
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u",
           "controller": True, "blockOwnerDeletion": True}
    new_body = rsc.podutil.pod_factory(template, "default", "web", ref)
    a, b = new_body(), new_body()
    assert a == b == rsc.podutil.pod_from_template(template, "default", "web", ref)
    a["metadata"]["name"] = "web-a"
    assert "name" not in b["metadata"]
    assert a["spec"] is not template["spec"], "the template (a cached object) is never shared"
