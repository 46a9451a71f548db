"""Hollow nodes without a server: a recording fake client, a hand-fed informer, a fake clock."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hollow_fakes import FakeClient, FakeInformer

from pyk8s.client import FakeClock
from pyk8s.hollow import HollowNodes, HollowNodeSettings, objects
from pyk8s.hollow.heartbeat import Heartbeats
from pyk8s.hollow.pods import PodSimulator
from pyk8s.machinery.errors import ApiError

Obj = dict[str, Any]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float, step: float = 0.05,
                  each: Callable[[], None] | None = None) -> None:
    t = 0.0
    while t < seconds - 1e-9:
        clock.advance(step)
        t += step
        await settle()
        if each is not None:
            each()


def bound_pod(name: str, node: str, **meta: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", **meta},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "img"}],
                     "initContainers": [{"name": "init", "image": "img"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"}]}}


# -- the objects ----------------------------------------------------------------------------

class TestObjects:
    def test_node_carries_settings_capacity_labels_addresses_and_ready(self) -> None:
        settings = HollowNodeSettings(prefix="hn", cpu="8", memory="32Gi", pods=50,
                                      labels={"zone": "a"})
        node = objects.node_object(settings, 3, FakeClock().now())
        assert node["metadata"]["name"] == "hn-3"
        assert node["metadata"]["labels"]["type"] == "hollow"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "hn-3"
        assert node["metadata"]["labels"]["zone"] == "a"
        status = node["status"]
        assert status["capacity"] == status["allocatable"] == {
            "cpu": "8", "memory": "32Gi", "pods": "50", "ephemeral-storage": "100Gi"}
        assert {"type": "InternalIP", "address": "100.64.0.4"} in status["addresses"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
        assert status["nodeInfo"]["kubeletVersion"] == settings.kubelet_version
        assert node["spec"]["podCIDR"] == "10.64.3.0/24"

    def test_node_and_pod_ranges_are_distinct_per_node(self) -> None:
        assert len({objects.node_ip(i) for i in range(5000)}) == 5000
        assert len({objects.pod_cidr(i) for i in range(5000)}) == 5000
        with pytest.raises(ValueError):
            objects.pod_cidr(objects.MAX_NODES)

    def test_pod_addresses_are_unique_stable_and_reused_after_release(self) -> None:
        pool = objects.PodAddresses(1)
        a, b = pool.take("a"), pool.take("b")
        assert a != b and a.startswith("10.64.1.") and pool.take("a") == a
        pool.release("a")
        assert pool.take("c") == a

    def test_running_status_is_what_a_kubelet_reports(self) -> None:
        pod = bound_pod("p", "hollow-0")
        status = objects.running_status(pod, "100.64.0.1", "10.64.0.2", FakeClock().now())
        assert status["phase"] == "Running"
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "Initialized": "True", "Ready": "True", "ContainersReady": "True",
            "PodScheduled": "True"}
        scheduled = next(c for c in status["conditions"] if c["type"] == "PodScheduled")
        assert scheduled["lastTransitionTime"] == "t0"
        [app] = status["containerStatuses"]
        assert app["ready"] is True and app["started"] is True
        assert app["containerID"] == "hollow://uid-p/c" and "running" in app["state"]
        [init] = status["initContainerStatuses"]
        assert init["state"]["terminated"]["reason"] == "Completed"
        assert (status["podIP"], status["hostIP"]) == ("10.64.0.2", "100.64.0.1")
        assert status["startTime"]
        assert objects.is_running_and_ready({"status": status})


def with_nodes(client: FakeClient, *names: str) -> FakeClient:
    for name in names:
        client.objects[("nodes", None, name)] = {"metadata": {"name": name}}
        client.objects[("leases", "kube-node-lease", name)] = {"metadata": {"name": name}}
    return client


# -- heartbeats -----------------------------------------------------------------------------

class TestHeartbeats:
    def test_renewals_are_spread_over_the_interval_with_bounded_concurrency(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            client = FakeClient(latency=0.001)
            settings = HollowNodeSettings(count=200, heartbeat_concurrency=4)
            beats = Heartbeats(client, settings, clock, lambda n: "")  # type: ignore[arg-type]
            names = [settings.node_name(i) for i in range(200)]
            with_nodes(client, *names)
            beats.add(names)
            task = asyncio.create_task(beats.run())
            per_step: list[int] = []
            seen = 0

            def count() -> None:
                nonlocal seen
                now = len(client.verbs("patch", "leases"))
                per_step.append(now - seen)
                seen = now

            for _ in range(100):  # one lease interval (10 s) in 0.1 s steps
                clock.advance(0.1)
                await asyncio.sleep(0.01)
                count()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            leases = Counter(client.verbs("patch", "leases"))
            assert set(leases) == set(names)
            assert max(leases.values()) <= 2  # once per interval (the first again at its end)
            assert max(per_step) <= 5  # 200 nodes / 10 s = 2 per 0.1 s, not a burst
            assert client.max_in_flight <= 4

        run(main())

    def test_renewals_due_within_a_tick_go_out_together(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            client = FakeClient()
            settings = HollowNodeSettings(count=300, tick=0.1)
            beats = Heartbeats(client, settings, clock, lambda n: "")  # type: ignore[arg-type]
            names = [settings.node_name(i) for i in range(300)]
            with_nodes(client, *names)
            beats.add(names)
            task = asyncio.create_task(beats.run())
            bursts: Counter[int] = Counter()
            seen = 0
            for step in range(1, 201):  # 2 s in 10 ms steps
                clock.advance(0.01)
                await asyncio.sleep(0.002)
                now = len(client.verbs("patch", "leases"))
                if now > seen:
                    bursts[step] = now - seen
                seen = now
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # 300 nodes / 10 s: one due every 33 ms, sent three at a time on the 0.1 s grid
            # (never late by more than a tick).
            assert 55 <= sum(bursts.values()) <= 65
            assert all(step % 10 in (0, 1) for step in bursts)
            assert max(bursts.values()) <= 4

        run(main())

    def test_heartbeats_wait_on_one_timer_and_stop_with_their_loop(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            client = FakeClient()
            settings = HollowNodeSettings(count=300)
            beats = Heartbeats(client, settings, clock, lambda n: "")  # type: ignore[arg-type]
            names = [settings.node_name(i) for i in range(300)]
            with_nodes(client, *names)
            beats.add(names)
            task = asyncio.create_task(beats.run())
            await advance(clock, 1, step=0.1)
            assert client.calls and beats.queue.waiting == 600  # each beat waits for its next
            assert clock.sleepers == 1, "not a timer per node"
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert beats.queue.waiting == 0 and clock.sleepers == 0
            sent = len(client.calls)
            await advance(clock, 20, step=1)
            assert len(client.calls) == sent

        run(main())

    def test_missing_lease_is_created_owned_by_the_node_then_patched(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            client = FakeClient()
            beats = Heartbeats(client, HollowNodeSettings(count=1), clock,  # type: ignore[arg-type]
                               lambda n: "node-uid")
            await beats.renew_lease("hollow-0")
            lease = client.objects[("leases", "kube-node-lease", "hollow-0")]
            assert lease["spec"]["holderIdentity"] == "hollow-0"
            assert lease["spec"]["leaseDurationSeconds"] == 40
            assert lease["metadata"]["ownerReferences"][0]["uid"] == "node-uid"
            clock.advance(10)
            await beats.renew_lease("hollow-0")
            assert client.verbs("patch", "leases") == ["hollow-0", "hollow-0"]
            assert lease["spec"]["renewTime"].startswith("2026-01-01T00:00:10")

        run(main())

    def test_a_stopped_node_falls_silent_and_resumes(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            client = with_nodes(FakeClient(), "hollow-0", "hollow-1")
            settings = HollowNodeSettings(count=2, status_update_interval=10.0)
            beats = Heartbeats(client, settings, clock, lambda n: "")  # type: ignore[arg-type]
            beats.add(["hollow-0", "hollow-1"])
            beats.stop("hollow-1")
            task = asyncio.create_task(beats.run())
            await advance(clock, 30, step=0.5)
            calls = Counter(name for _, _, _, name in client.calls)
            assert calls["hollow-1"] == 0 and calls["hollow-0"] >= 6
            beats.resume("hollow-1")
            await advance(clock, 10, step=0.5)
            calls = Counter(name for _, _, _, name in client.calls)
            # Back at the normal rate: 1 lease + 1 status at once, then one more lease.
            assert 2 <= calls["hollow-1"] <= 4
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_a_failed_renewal_is_retried_soon(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            client = with_nodes(FakeClient(), "hollow-0")
            failures = iter([True, True])
            client.fail = lambda verb, plural, name: (
                ApiError(503, "ServiceUnavailable", "down")
                if plural == "leases" and next(failures, False) else None)
            beats = Heartbeats(client, HollowNodeSettings(count=1), clock,  # type: ignore[arg-type]
                               lambda n: "")
            beats.add(["hollow-0"])
            task = asyncio.create_task(beats.run())
            await advance(clock, 2.5, step=0.25)
            assert beats.failures == 2 and beats.lease_renewals == 1
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())


# -- pods -----------------------------------------------------------------------------------

def simulator(clock: FakeClock, client: FakeClient, informer: FakeInformer,
              stopped: set[str] | None = None, **settings: Any) -> PodSimulator:
    nodes = {"hollow-0": 0, "hollow-1": 1}
    stopped = stopped if stopped is not None else set()
    return PodSimulator(client, HollowNodeSettings(count=2, seed=1, **settings), clock,  # type: ignore[arg-type]
                        nodes.get, lambda n: n in stopped, informer=informer)  # type: ignore[arg-type]


class TestPods:
    def test_a_bound_pod_is_reported_running_after_the_start_delay(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer)
            task = asyncio.create_task(sim.run())
            await settle()
            client.objects[("pods", "ns", "p")] = bound_pod("p", "hollow-1")
            informer.upsert(bound_pod("p", "hollow-1"))
            await advance(clock, 0.05, step=0.05)
            assert client.verbs("patch/status", "pods") == []
            await advance(clock, 0.3)
            assert client.verbs("patch/status", "pods") == ["p"]
            status = client.objects[("pods", "ns", "p")]["status"]
            assert status["phase"] == "Running" and status["hostIP"] == "100.64.0.2"
            assert status["podIP"].startswith("10.64.1.")
            # Its own MODIFIED event: already Running and Ready, nothing more to do.
            informer.upsert(client.objects[("pods", "ns", "p")])
            await advance(clock, 1)
            assert client.verbs("patch/status", "pods") == ["p"]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_pods_of_other_nodes_are_ignored(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer)
            task = asyncio.create_task(sim.run())
            await settle()
            informer.upsert(bound_pod("p", "real-node"))
            await advance(clock, 1)
            assert client.calls == []
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_a_deleted_pod_is_removed_for_good_after_the_termination_delay(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer, pod_termination_delay=0.5)
            task = asyncio.create_task(sim.run())
            await settle()
            client.objects[("pods", "ns", "p")] = bound_pod("p", "hollow-0")
            informer.upsert(bound_pod("p", "hollow-0", deletionTimestamp="2026-01-01T00:00:00Z",
                                      deletionGracePeriodSeconds=30))
            await advance(clock, 0.3)
            assert client.verbs("delete", "pods") == []
            await advance(clock, 0.3)
            assert client.verbs("delete", "pods") == ["p"]
            assert ("pods", "ns", "p") not in client.objects
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_a_zero_grace_deletion_is_finished_at_once(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer, pod_termination_delay=5.0)
            task = asyncio.create_task(sim.run())
            await settle()
            informer.upsert(bound_pod("p", "hollow-0", deletionTimestamp="t",
                                      deletionGracePeriodSeconds=0))
            await settle()
            assert client.verbs("delete", "pods") == ["p"]  # 404 from the fake: fine
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_a_stopped_node_neither_starts_nor_deletes_its_pods_until_it_resumes(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            stopped = {"hollow-0"}
            sim = simulator(clock, client, informer, stopped=stopped)
            task = asyncio.create_task(sim.run())
            await settle()
            client.objects[("pods", "ns", "p")] = bound_pod("p", "hollow-0")
            informer.upsert(bound_pod("p", "hollow-0"))
            await advance(clock, 2)
            assert client.calls == []
            stopped.clear()
            sim.requeue_node("hollow-0")
            await advance(clock, 0.5)
            assert client.verbs("patch/status", "pods") == ["p"]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())


    def test_events_that_change_nothing_cause_no_request_and_a_reset_is_reported_again(
            self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer)
            task = asyncio.create_task(sim.run())
            await settle()
            pod = bound_pod("p", "hollow-0", resourceVersion="1")
            client.objects[("pods", "ns", "p")] = copy.deepcopy(pod)
            informer.upsert(pod)
            await advance(clock, 0.5)
            assert client.verbs("patch/status", "pods") == ["p"]
            # Another writer's change, older than our report, arrives before its echo: the
            # cached pod still says Pending, but our report is on its way.
            informer.upsert(bound_pod("p", "hollow-0", resourceVersion="2",
                                      labels={"a": "b"}))
            await advance(clock, 1)
            # The echo (Running) and later changes that leave it Running: nothing to do.
            echo = copy.deepcopy(client.objects[("pods", "ns", "p")])
            informer.upsert(echo)
            informer.upsert({**echo, "metadata": {**echo["metadata"], "labels": {"x": "y"}}})
            await advance(clock, 1)
            assert client.verbs("patch/status", "pods") == ["p"]
            # Someone sets it back to Pending (a newer object): reported again.
            rv = int(echo["metadata"]["resourceVersion"]) + 5
            informer.upsert(bound_pod("p", "hollow-0", resourceVersion=str(rv)))
            await advance(clock, 1)
            assert client.verbs("patch/status", "pods") == ["p", "p"]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_waiting_pods_share_one_timer_and_each_slot_goes_out_as_one_burst(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer, pod_start_delay=(0.1, 0.5))
            task = asyncio.create_task(sim.run())
            await settle()
            for i in range(200):
                client.objects[("pods", "ns", f"p{i}")] = bound_pod(f"p{i}", f"hollow-{i % 2}")
                informer.upsert(bound_pod(f"p{i}", f"hollow-{i % 2}"))
            await settle()
            assert clock.sleepers <= 1  # not a timer per waiting pod
            bursts = []
            for _ in range(12):
                clock.advance(0.05)
                await settle(40)
                bursts.append(len(client.verbs("patch/status", "pods")))
            assert bursts[-1] == 200
            # Starts fall on the 0.1 s grid: nothing new at the half-ticks.
            assert all(bursts[i] == bursts[i - 1] for i in range(0, 12, 2) if i > 0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_a_failed_status_patch_is_retried_with_back_off(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            failures = iter([True, True])
            client.fail = lambda verb, plural, name: (
                ApiError(503, "ServiceUnavailable", "down")
                if verb == "patch/status" and next(failures, False) else None)
            sim = simulator(clock, client, informer)
            task = asyncio.create_task(sim.run())
            await settle()
            client.objects[("pods", "ns", "p")] = bound_pod("p", "hollow-0")
            informer.upsert(bound_pod("p", "hollow-0"))
            await advance(clock, 1)
            assert client.verbs("patch/status", "pods") == ["p", "p", "p"]
            assert sim.started == 1
            assert client.objects[("pods", "ns", "p")]["status"]["phase"] == "Running"
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())


    def test_a_pod_deleted_while_it_waits_to_start_is_removed_not_started(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer, pod_start_delay=(1.0, 1.0),
                            pod_termination_delay=0.2)
            task = asyncio.create_task(sim.run())
            await settle()
            client.objects[("pods", "ns", "p")] = bound_pod("p", "hollow-0")
            informer.upsert(bound_pod("p", "hollow-0"))
            await advance(clock, 0.3)
            informer.upsert(bound_pod("p", "hollow-0", deletionTimestamp="t",
                                      deletionGracePeriodSeconds=30))
            await advance(clock, 0.3)  # its deletion is due before its start
            assert client.verbs("delete", "pods") == ["p"]
            await advance(clock, 1)
            assert client.verbs("patch/status", "pods") == []
            assert client.verbs("delete", "pods") == ["p"], "deleted once"
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        run(main())

    def test_stopping_the_simulator_drops_waiting_pods_and_leaves_no_timer(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            sim = simulator(clock, client, informer)
            task = asyncio.create_task(sim.run())
            await settle()
            for i in range(50):
                informer.upsert(bound_pod(f"p{i}", "hollow-0"))
            await settle()
            assert sim.queue.waiting == 50 and clock.sleepers == 1
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert sim.queue.shutting_down and sim.queue.waiting == 0
            assert clock.sleepers == 0
            await advance(clock, 1)
            assert client.calls == []

        run(main())


# -- the whole ------------------------------------------------------------------------------

class TestHollowNodes:
    def test_registers_every_node_adopts_existing_ones_and_stops_cleanly(self) -> None:
        async def main() -> None:
            clock, client, informer = FakeClock(), FakeClient(), FakeInformer()
            client.objects[("nodes", None, "hollow-1")] = {
                "metadata": {"name": "hollow-1", "uid": "old"}, "spec": {"unschedulable": True}}
            hollow = HollowNodes(client, HollowNodeSettings(count=3), clock=clock)  # type: ignore[arg-type]
            hollow.pods.informer = informer  # type: ignore[assignment]
            task = asyncio.create_task(hollow.run())
            await asyncio.wait_for(hollow.registered.wait(), 5)
            assert sorted(client.verbs("create", "nodes")) == ["hollow-0", "hollow-1", "hollow-2"]
            adopted = client.objects[("nodes", None, "hollow-1")]
            assert adopted["metadata"]["labels"]["type"] == "hollow"
            assert adopted["spec"]["unschedulable"] is True  # a cordon survives a restart
            assert adopted["status"]["conditions"]
            # Each Lease is created with its Node, owned by it: no renewal finds it missing.
            assert sorted(client.verbs("create", "leases")) == ["hollow-0", "hollow-1", "hollow-2"]
            lease = client.objects[("leases", "kube-node-lease", "hollow-0")]
            assert lease["metadata"]["ownerReferences"][0]["uid"] == \
                client.objects[("nodes", None, "hollow-0")]["metadata"]["uid"]
            await advance(clock, 10.5, step=0.5)
            assert hollow.stats()["lease_renewals"] >= 3
            assert len(client.verbs("create", "leases")) == 3
            hollow.stop_node("hollow-2")
            assert hollow.stats()["stopped"] == 1
            with pytest.raises(KeyError):
                hollow.stop_node("nope")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()

        run(main())
