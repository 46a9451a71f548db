"""The small controllers: namespace emptying, default service accounts, pod GC, events,
expectations, and which controllers the manager starts."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from controller_fakes import FakeApi, FakeFactory, settle

from pyk8s.client import FakeClock
from pyk8s.controllers import ControllerManager, ControllerManagerSettings
from pyk8s.controllers.events import EVENTS, EventRecorder
from pyk8s.controllers.expectations import Expectations
from pyk8s.controllers.namespace import NAMESPACES, NamespaceController, deletable_resources
from pyk8s.controllers.podgc import PodGCController
from pyk8s.controllers.serviceaccount import SERVICE_ACCOUNTS, ServiceAccountController
from pyk8s.machinery.resources import CATALOGUE

PODS = CATALOGUE.resource("v1", "pods")
NODES = CATALOGUE.resource("v1", "nodes")
CONFIGMAPS = CATALOGUE.resource("v1", "configmaps")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class TestNamespace:
    def test_catalogue_walk_covers_namespaced_kinds_only(self) -> None:
        plurals = {r.plural for r in deletable_resources()}
        assert {"pods", "configmaps", "deployments", "events", "leases"} <= plurals
        assert "namespaces" not in plurals and "nodes" not in plurals and "bindings" not in plurals

    def test_terminating_namespace_is_emptied_then_finalized(self) -> None:
        async def scenario() -> None:
            api = FakeApi(FakeClock())
            ctl = NamespaceController(api, FakeFactory(api))  # type: ignore[arg-type]
            api.seed(NAMESPACES, {"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}})
            api.seed(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "x"}})
            api.seed(PODS, {"metadata": {"name": "p", "namespace": "x"}, "spec": {"nodeName": "n"}})
            api.seed(CONFIGMAPS, {"metadata": {"name": "other", "namespace": "y"}})
            await api.delete(NAMESPACES, "", "x")
            await settle(api, ctl)
            assert [n["metadata"]["name"] for n in api.objects(NAMESPACES)] == ["x"], \
                "a pod still terminating holds the namespace"
            assert api.objects(CONFIGMAPS, "x") == []
            conditions = {c["type"]: c for c in api.objects(NAMESPACES)[0]["status"]["conditions"]}
            assert conditions["NamespaceContentRemaining"]["message"] == \
                "Some resources are remaining: pods. has 1 resource instances"
            assert conditions["NamespaceFinalizersRemaining"]["status"] == "False"
            await api.delete(PODS, "x", "p", grace_period_seconds=0)
            await asyncio.sleep(0)
            assert await ctl.sync("x") is None
            api.flush()
            assert api.objects(NAMESPACES) == []
            assert len(api.objects(CONFIGMAPS, "y")) == 1

        run(scenario())


class TestServiceAccount:
    def test_default_account_created_and_recreated(self) -> None:
        async def scenario() -> None:
            api = FakeApi(FakeClock())
            ctl = ServiceAccountController(api, FakeFactory(api))  # type: ignore[arg-type]
            api.seed(NAMESPACES, {"metadata": {"name": "a"}})
            api.seed(NAMESPACES, {"metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                                  "status": {"phase": "Terminating"}})
            await settle(api, ctl)
            assert [(s["metadata"]["namespace"], s["metadata"]["name"])
                    for s in api.objects(SERVICE_ACCOUNTS)] == [("a", "default")]
            await api.delete(SERVICE_ACCOUNTS, "a", "default")
            await settle(api, ctl)
            assert len(api.objects(SERVICE_ACCOUNTS)) == 1

        run(scenario())


class TestPodGC:
    def test_orphaned_unscheduled_terminating_and_excess_terminated_pods(self) -> None:
        async def scenario() -> None:
            api = FakeApi(FakeClock())
            ctl = PodGCController(api, FakeFactory(api), terminated_pod_threshold=2)  # type: ignore[arg-type]
            api.seed(NODES, {"metadata": {"name": "n1"}})
            api.seed(PODS, {"metadata": {"name": "on-n1", "namespace": "d"}, "spec": {"nodeName": "n1"}})
            api.seed(PODS, {"metadata": {"name": "lost", "namespace": "d"}, "spec": {"nodeName": "gone"}})
            api.seed(PODS, {"metadata": {"name": "stuck", "namespace": "d",
                                         "deletionTimestamp": "2026-01-01T00:00:00Z",
                                         "finalizers": []}, "spec": {}})
            for i in range(4):
                api.clock.advance(1)
                api.seed(PODS, {"metadata": {"name": f"done-{i}", "namespace": "d"},
                                "spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}})
            await ctl.gc_once()
            names = sorted(p["metadata"]["name"] for p in api.objects(PODS))
            assert names == ["done-2", "done-3", "on-n1"]

        run(scenario())


class TestEvents:
    def test_repeated_events_are_aggregated_into_a_count(self) -> None:
        async def scenario() -> list[dict]:
            api = FakeApi(FakeClock())
            rec = EventRecorder(api, "deployment-controller")  # type: ignore[arg-type]
            obj = {"metadata": {"name": "web", "namespace": "d", "uid": "u1"}}
            deploy = CATALOGUE.resource("apps/v1", "deployments")
            for _ in range(3):
                rec.event(obj, deploy, "Normal", "ScalingReplicaSet", "Scaled up")
            rec.event(obj, deploy, "Normal", "Other", "x")
            await rec.flush()
            await rec.close()
            return api.objects(EVENTS)

        events = run(scenario())
        assert sorted((e["reason"], e["count"]) for e in events) == [("Other", 1), ("ScalingReplicaSet", 3)]
        scaled = next(e for e in events if e["reason"] == "ScalingReplicaSet")
        assert scaled["involvedObject"] == {"kind": "Deployment", "apiVersion": "apps/v1", "name": "web",
                                            "uid": "u1", "resourceVersion": "", "namespace": "d"}
        assert scaled["source"] == {"component": "deployment-controller"}
        assert scaled["metadata"]["namespace"] == "d"


class TestExpectations:
    def test_satisfied_when_observed_or_expired(self) -> None:
        clock = FakeClock()
        exp = Expectations(clock, timeout=300)
        assert exp.satisfied("k")
        exp.expect_creations("k", 2)
        exp.creation_observed("k")
        assert not exp.satisfied("k")
        exp.creation_observed("k")
        assert exp.satisfied("k")
        exp.expect_deletions("k", ["ns/a", "ns/b"])
        exp.deletion_observed("k", "ns/a")
        exp.deletion_observed("k", "ns/zzz")
        assert not exp.satisfied("k")
        clock.advance(301)
        assert exp.satisfied("k"), "a lost event cannot block a controller forever"


class TestSettings:
    def test_controller_selection_as_upstream_flag(self) -> None:
        assert ControllerManagerSettings().enabled("deployment")
        only = ControllerManagerSettings(controllers=("replicaset", "namespace"))
        assert only.enabled("replicaset") and not only.enabled("deployment")
        most = ControllerManagerSettings(controllers=("*", "-nodelifecycle"))
        assert most.enabled("podgc") and not most.enabled("nodelifecycle")
        assert ControllerManagerSettings().node_monitor_grace_period == 40.0


class TestManager:
    def test_runs_enabled_controllers_on_shared_informers_until_cancelled(self) -> None:
        async def scenario() -> None:
            api = FakeApi(FakeClock())
            settings = ControllerManagerSettings(leader_elect=False,
                                                 controllers=("*", "-nodelifecycle", "-podgc"))
            manager = ControllerManager(api, settings, clock=api.clock,  # type: ignore[arg-type]
                                        informer_factory=lambda _: FakeFactory(api))  # type: ignore[arg-type,return-value]
            task = asyncio.create_task(manager.run())
            await asyncio.wait_for(manager.synced.wait(), 1)
            assert set(manager.controllers) == {"replicaset", "deployment", "garbagecollector",
                                                "namespace", "serviceaccount", "endpoint",
                                                "endpointslice", "nodeipam"}
            api.seed(NAMESPACES, {"metadata": {"name": "fresh"}})
            for _ in range(20):
                await asyncio.sleep(0)
                api.flush()
            assert [s["metadata"]["name"] for s in api.objects(SERVICE_ACCOUNTS)] == ["default"]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert not manager.synced.is_set()

        run(scenario())
