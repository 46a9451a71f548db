"""Node health, taints and taint-based eviction, on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from controller_fakes import FakeApi, FakeFactory, NullRecorder

from pyk8s.client import FakeClock
from pyk8s.controllers import nodelifecycle as nl
from pyk8s.controllers.nodelifecycle import LEASES, NODES, PODS, NodeLifecycleController
from pyk8s.machinery.errors import ApiError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class TestTolerations:
    taint = {"key": nl.UNREACHABLE, "effect": "NoExecute"}

    def test_matching_rules(self) -> None:
        assert nl.tolerates({"key": nl.UNREACHABLE, "operator": "Exists"}, self.taint)
        assert nl.tolerates({"operator": "Exists"}, self.taint)
        assert not nl.tolerates({"key": nl.UNREACHABLE, "operator": "Exists",
                                 "effect": "NoSchedule"}, self.taint)
        assert not nl.tolerates({"key": "other", "operator": "Exists"}, self.taint)
        assert nl.tolerates({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"})
        assert not nl.tolerates({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoExecute"})

    def test_eviction_time(self) -> None:
        taints = [{**self.taint, "timeAdded": "2026-01-01T00:00:00Z"}]

        def pod(*tolerations: dict) -> dict:
            return {"spec": {"tolerations": list(tolerations)}}

        assert nl.eviction_time(pod(), taints, T0) <= T0, "no toleration: at once"
        forever = {"key": nl.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
        assert nl.eviction_time(pod(forever), taints, T0) is None
        assert nl.eviction_time(pod({**forever, "tolerationSeconds": 300}), taints, T0) == \
            T0 + timedelta(seconds=300)
        assert nl.eviction_time(pod({**forever, "tolerationSeconds": 300},
                                    {**forever, "tolerationSeconds": 5}), taints, T0) == \
            T0 + timedelta(seconds=5)
        assert nl.eviction_time(pod(), [{"key": "x", "effect": "NoSchedule"}], T0) is None

    def test_wanted_taints_follow_ready(self) -> None:
        def node(status: str | None, unschedulable: bool = False) -> dict:
            conds = [{"type": "Ready", "status": status}] if status else []
            return {"spec": {"unschedulable": unschedulable}, "status": {"conditions": conds}}

        assert nl.wanted_taints(node("True")) == []
        assert set(nl.wanted_taints(node("Unknown"))) == {(nl.UNREACHABLE, "NoSchedule"),
                                                          (nl.UNREACHABLE, "NoExecute")}
        assert set(nl.wanted_taints(node("False"))) == {(nl.NOT_READY, "NoSchedule"),
                                                        (nl.NOT_READY, "NoExecute")}
        assert nl.wanted_taints(node("True", unschedulable=True)) == [(nl.UNSCHEDULABLE, "NoSchedule")]
        assert nl.wanted_taints(node(None)) is None, "never reported: registration taints stay"
        pressured = node("True")
        pressured["status"]["conditions"].append({"type": "DiskPressure", "status": "True"})
        assert nl.wanted_taints(pressured) == [("node.kubernetes.io/disk-pressure", "NoSchedule")]


class Scene:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.api = FakeApi(self.clock)
        self.ctl = NodeLifecycleController(self.api, FakeFactory(self.api), clock=self.clock,  # type: ignore[arg-type]
                                           grace_period=40, startup_grace_period=60,
                                           recorder=NullRecorder())  # type: ignore[arg-type]
        stamp = "2026-01-01T00:00:00Z"
        self.api.seed(NODES, {"metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": stamp,
             "lastTransitionTime": stamp}]}})
        self.api.seed(LEASES, {"metadata": {"name": "n1", "namespace": "kube-node-lease"},
                               "spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}})

    async def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.api.flush()
        await self.ctl.monitor_once()
        self.api.flush()

    def node(self) -> dict:
        return self.api.objects(NODES)[0]

    def taints(self) -> set[str]:
        return {f"{t['key']}:{t['effect']}" for t in self.node().get("spec", {}).get("taints", [])}

    def ready(self) -> dict:
        return next(c for c in self.node()["status"]["conditions"] if c["type"] == "Ready")

    async def renew_lease(self) -> None:
        lease = self.api.objects(LEASES)[0]
        lease["spec"]["renewTime"] = self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await self.api.update(LEASES, lease)


def test_lease_renewals_keep_a_node_healthy() -> None:
    async def scenario() -> None:
        s = Scene()
        for _ in range(10):
            await s.renew_lease()
            await s.tick(10)
        assert s.ready()["status"] == "True" and not s.taints()

    run(scenario())


def test_silent_node_becomes_unknown_tainted_and_evicts_after_toleration() -> None:
    async def scenario() -> None:
        s = Scene()
        tol = {"key": nl.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
        for name, tolerations in (("none", []), ("short", [{**tol, "tolerationSeconds": 30}]),
                                  ("forever", [tol])):
            s.api.seed(PODS, {"metadata": {"name": name, "namespace": "default"},
                              "spec": {"nodeName": "n1", "tolerations": tolerations},
                              "status": {"phase": "Running", "conditions": [
                                  {"type": "Ready", "status": "True"}]}})
        await s.tick(0)
        await s.tick(39)
        assert s.ready()["status"] == "True", "within the grace period"
        await s.tick(2)
        ready = s.ready()
        assert (ready["status"], ready["reason"], ready["message"]) == (
            "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        kinds = {c["type"]: c["status"] for c in s.node()["status"]["conditions"]}
        assert kinds == {"Ready": "Unknown", "MemoryPressure": "Unknown", "DiskPressure": "Unknown",
                         "PIDPressure": "Unknown"}
        await s.tick(0)
        assert s.taints() == {f"{nl.UNREACHABLE}:NoExecute", f"{nl.UNREACHABLE}:NoSchedule"}
        await s.tick(0)

        def deleting() -> set[str]:
            return {p["metadata"]["name"] for p in s.api.objects(PODS)
                    if p["metadata"].get("deletionTimestamp")}
        assert deleting() == {"none"}
        pods = {p["metadata"]["name"]: p for p in s.api.objects(PODS)}
        assert pods["forever"]["status"]["conditions"][0]["status"] == "False", "marked not ready"
        await s.tick(31)
        assert deleting() == {"none", "short"}
        await s.tick(3600)
        assert deleting() == {"none", "short"}

    run(scenario())


def test_taints_go_when_the_node_comes_back() -> None:
    async def scenario() -> None:
        s = Scene()
        await s.tick(0)
        await s.tick(41)
        await s.tick(0)
        assert s.taints()
        node = s.node()
        for cond in node["status"]["conditions"]:
            cond.update(status="True" if cond["type"] == "Ready" else "False",
                        lastHeartbeatTime="2026-01-01T00:01:00Z")
        await s.api.update(NODES, node, subresource="status")
        await s.renew_lease()
        await s.tick(1)
        assert not s.taints() and s.ready()["status"] == "True"

    run(scenario())


def test_not_ready_node_gets_not_ready_taints_and_user_taints_survive() -> None:
    async def scenario() -> None:
        s = Scene()
        node = s.node()
        node["spec"] = {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}
        node["status"]["conditions"][0]["status"] = "False"
        await s.api.update(NODES, node)
        await s.api.update(NODES, {**s.node(), "status": node["status"]}, subresource="status")
        await s.tick(1)
        assert s.taints() == {"dedicated:NoSchedule", f"{nl.NOT_READY}:NoExecute",
                              f"{nl.NOT_READY}:NoSchedule"}
        noexec = next(t for t in s.node()["spec"]["taints"] if t["effect"] == "NoExecute")
        assert noexec["timeAdded"] == "2026-01-01T00:00:01Z"

    run(scenario())


def test_node_that_never_reported_gets_the_startup_grace() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(NODES, {"metadata": {"name": "fresh"}})
        await s.tick(0)
        await s.tick(50)
        fresh = next(n for n in s.api.objects(NODES) if n["metadata"]["name"] == "fresh")
        assert not fresh.get("status", {}).get("conditions")
        await s.tick(11)
        fresh = next(n for n in s.api.objects(NODES) if n["metadata"]["name"] == "fresh")
        ready = next(c for c in fresh["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusNeverUpdated")

    run(scenario())


def test_a_conflict_on_one_node_does_not_stall_the_others() -> None:
    async def scenario() -> None:
        s = Scene()
        s.api.seed(NODES, {"metadata": {"name": "n2"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}})
        s.api.fail = lambda verb, res, obj: ApiError(409, "Conflict", "modified") \
            if verb == "update" and obj["metadata"]["name"] == "n1" else None
        await s.tick(0)
        await s.tick(41)
        n2 = next(n for n in s.api.objects(NODES) if n["metadata"]["name"] == "n2")
        assert next(c for c in n2["status"]["conditions"] if c["type"] == "Ready")["status"] == "Unknown"

    run(scenario())


def test_an_unchanged_node_has_its_taints_examined_once(monkeypatch: Any) -> None:
    """Every pass visits every node; a cached node object already found right is not
    examined again, while a new object (any update) is."""
    calls: list[str] = []
    real = nl.wanted_taints

    def counting(node: dict) -> Any:
        calls.append(node["metadata"]["name"])
        return real(node)

    monkeypatch.setattr(nl, "wanted_taints", counting)

    async def scenario() -> None:
        s = Scene()
        for _ in range(3):
            await s.renew_lease()
            await s.tick(10)
        assert calls == ["n1"]
        node = s.node()
        for cond in node["status"]["conditions"]:
            cond["status"] = "False"
        await s.api.update(NODES, node, subresource="status")
        await s.tick(1)
        await s.tick(1)
        assert calls == ["n1", "n1", "n1"], "the new object, then the tainted one it wrote"
        assert "node.kubernetes.io/not-ready:NoExecute" in s.taints()

    run(scenario())


def test_a_quiet_node_is_not_read_again_until_its_grace_runs_out(monkeypatch: Any) -> None:
    """A pass that finds the node and its Lease unchanged and within grace skips the node
    (no health, taint or eviction work); the clock alone still makes it Unknown."""
    checked: list[str] = []
    real = NodeLifecycleController._check_health

    async def counting(self: NodeLifecycleController, node: dict) -> Any:
        checked.append(node["metadata"]["name"])
        return await real(self, node)

    monkeypatch.setattr(NodeLifecycleController, "_check_health", counting)

    async def scenario() -> None:
        s = Scene()
        await s.tick(0)
        assert checked == ["n1"]
        for _ in range(3):
            await s.tick(10)
        assert checked == ["n1"], "same node, same Lease, within grace: skipped"
        await s.renew_lease()
        await s.tick(5)
        assert checked == ["n1", "n1"], "a renewed Lease is looked at"
        await s.tick(39)
        assert checked == ["n1", "n1"] and s.ready()["status"] == "True"
        await s.tick(2)
        assert s.ready()["status"] == "Unknown", "silent past the grace period"

    run(scenario())
