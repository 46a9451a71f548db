"""The scheduling loop against a recording fake client: binding, assuming, failure reports
(event, condition, upstream's words), retries on cluster events, preemption."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from scheduler_fixtures import FakeClient, node, pod

from pyk8s.client.clock import FakeClock
from pyk8s.scheduler import Profile, Scheduler, SchedulerSettings

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def run(scenario: Callable[[Scheduler, FakeClient, FakeClock], Awaitable[Any]],
        settings: SchedulerSettings | None = None) -> Any:
    async def main() -> Any:
        client, clock = FakeClient(), FakeClock()
        sched = Scheduler(client, settings, clock=clock)  # type: ignore[arg-type]
        return await scenario(sched, client, clock)
    return asyncio.run(main())


async def cycle(sched: Scheduler, n: int = 1) -> None:
    for _ in range(n):
        qinfo = await asyncio.wait_for(sched.queue.pop(), 1)
        assert qinfo is not None
        await sched.schedule_one(qinfo)
    await sched.wait_idle()


def bound(p: dict, node_name: str) -> dict:
    return {**p, "spec": {**p["spec"], "nodeName": node_name}}


def test_pods_are_bound_and_assumed_resources_count() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "2"))
        pods = [pod(f"p{i}", "1") for i in range(3)]
        for p in pods:
            sched.on_pod_add(p)
        await cycle(sched, 3)
        assert client.bound == {"default/p0": "a", "default/p1": "a"}
        failed = client.events("FailedScheduling")
        assert [e["involvedObject"]["name"] for e in failed] == ["p2"]
        assert failed[0]["message"] == (
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
            "1 No preemption victims found for incoming pod.")
        assert failed[0]["type"] == "Warning" and failed[0]["source"] == {
            "component": "default-scheduler"}
        scheduled = client.events("Scheduled")
        assert scheduled[0]["message"] == "Successfully assigned default/p0 to a"
        assert sched.queue.where(pods[2]["metadata"]["uid"]) == "unschedulable"

    run(scenario)


def test_failure_message_condition_and_event_as_upstream() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "1"))
        sched.on_node_add(node("b", taints=[GPU_TAINT]))
        sched.on_node_add(node("c", taints=[GPU_TAINT]))
        sched.on_pod_add(pod("big", "2"))
        await cycle(sched)
        message = ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
                   "{dedicated: gpu}. preemption: 0/3 nodes are available: 3 Preemption is not "
                   "helpful for scheduling.")
        assert [e["message"] for e in client.events("FailedScheduling")] == [message]
        target, sub, body, patch_type = client.patches[0]
        assert (target, sub, patch_type) == ("pods/default/big", "status", "merge")
        (condition,) = body["status"]["conditions"]
        assert condition["type"] == "PodScheduled" and condition["status"] == "False"
        assert condition["reason"] == "Unschedulable" and condition["message"] == message

    run(scenario)


def test_repeated_failure_aggregates_the_event() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "1"))
        sched.on_pod_add(pod("big", "2"))
        await cycle(sched)
        clock.advance(400)
        sched.queue.flush_unschedulable_leftover()
        await cycle(sched)
        assert len(client.events("FailedScheduling")) == 1
        assert any(t.startswith("events/") and b["count"] == 2 for t, _, b, _ in client.patches)

    run(scenario)


def test_unschedulable_pod_is_placed_when_a_fitting_node_arrives() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("small", "1"))
        p = pod("p", "3")
        sched.on_pod_add(p)
        await cycle(sched)
        assert sched.queue.where(p["metadata"]["uid"]) == "unschedulable"
        clock.advance(2)
        sched.on_node_add(node("big", "4"))
        assert sched.queue.where(p["metadata"]["uid"]) == "active"
        await cycle(sched)
        assert client.bound == {"default/p": "big"}

    run(scenario)


def test_binding_failure_forgets_and_backs_off() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "1"))
        client.fail_binding = True
        p = pod("p", "1")
        sched.on_pod_add(p)
        await cycle(sched)
        assert sched.cache.node_info("a").requested.get("cpu", 0) == 0  # type: ignore[union-attr]
        assert sched.queue.where(p["metadata"]["uid"]) == "backoff"
        (event,) = client.events("FailedScheduling")
        assert event["message"].startswith("binding rejected:")
        (_, _, body, _) = client.patches[0]
        assert body["status"]["conditions"][0]["reason"] == "SchedulerError"
        client.fail_binding = False
        clock.advance(1.5)
        sched.queue.flush_backoff_completed()
        await cycle(sched)
        assert client.bound == {"default/p": "a"}

    run(scenario)


def test_bound_pod_event_confirms_assumption_and_leaves_queue() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "2"))
        p = pod("p", "1")
        sched.on_pod_add(p)
        await cycle(sched)
        assert sched.cache.is_assumed(p["metadata"]["uid"])
        sched.on_pod_update(p, bound(p, "a"))
        assert not sched.cache.is_assumed(p["metadata"]["uid"])
        assert sched.cache.node_info("a").requested["cpu"] == 1000  # type: ignore[union-attr]
        assert len(sched.queue) == 0

    run(scenario)


def test_deleting_a_bound_pod_wakes_pods_waiting_for_room() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "1"))
        holder = bound(pod("holder", "1"), "a")
        sched.on_pod_add(holder)
        p = pod("p", "1")
        sched.on_pod_add(p)
        await cycle(sched)
        assert sched.queue.where(p["metadata"]["uid"]) == "unschedulable"
        clock.advance(2)
        sched.on_pod_delete(holder)
        await cycle(sched)
        assert client.bound == {"default/p": "a"}

    run(scenario)


def test_other_schedulers_pods_and_bound_pods_are_not_queued() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_pod_add(pod("mine"))
        sched.on_pod_add(pod("theirs", spec={"schedulerName": "other"}))
        sched.on_pod_add(bound(pod("done"), "a"))
        assert len(sched.queue) == 1

    run(scenario)
    settings = SchedulerSettings(profiles=[Profile(), Profile(scheduler_name="other")])

    async def two_profiles(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_pod_add(pod("theirs", spec={"schedulerName": "other"}))
        assert len(sched.queue) == 1

    run(two_profiles, settings)


def test_preemption_evicts_lower_priority_and_nominates() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "2"))
        sched.on_node_add(node("b", "2"))
        sched.on_pod_add(bound(pod("low-a", "1500m", priority=1), "a"))
        sched.on_pod_add(bound(pod("mid-b", "1500m", priority=50), "b"))
        sched.on_pod_add(bound(pod("tiny-b", "100m", priority=0), "b"))
        vip = pod("vip", "1", priority=100)
        sched.on_pod_add(vip)
        await cycle(sched)
        # a's victim has the lowest priority; tiny-b alone would not make room on b
        assert client.deleted == [("default", "low-a")]
        (preempted,) = client.events("Preempted")
        assert preempted["involvedObject"]["name"] == "low-a"
        assert preempted["message"] == f"Preempted by pod {vip['metadata']['uid']} on node a"
        status_patch = next(b for t, s, b, _ in client.patches if s == "status")
        assert status_patch["status"]["nominatedNodeName"] == "a"
        assert [p.key for p in sched.queue.nominated_pods_for_node("a")] == ["default/vip"]
        (event,) = client.events("FailedScheduling")
        assert event["message"] == "0/2 nodes are available: 2 Insufficient cpu."

    run(scenario)


def test_preemption_policy_never() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a", "1"))
        sched.on_pod_add(bound(pod("low", "1", priority=1), "a"))
        sched.on_pod_add(pod("vip", "1", priority=100, spec={"preemptionPolicy": "Never"}))
        await cycle(sched)
        assert client.deleted == []
        assert client.events("FailedScheduling")[0]["message"] == (
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to "
            "preemptionPolicy=Never.")

    run(scenario)


def test_no_nodes_at_all() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        p = pod("p")
        sched.on_pod_add(p)
        await cycle(sched)
        assert client.events("FailedScheduling")[0]["message"] == (
            "no nodes available to schedule pods")
        assert sched.queue.where(p["metadata"]["uid"]) == "backoff"

    run(scenario)


def test_scheduling_gates_hold_the_pod_back() -> None:
    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        sched.on_node_add(node("a"))
        gated = pod("g", spec={"schedulingGates": [{"name": "example.com/wait"}]})
        sched.on_pod_add(gated)
        await sched.wait_idle()
        assert len(sched.queue) == 0
        (_, _, body, _) = client.patches[0]
        assert body["status"]["conditions"][0]["reason"] == "SchedulingGated"
        released = {**gated, "spec": {**gated["spec"], "schedulingGates": []}}
        sched.on_pod_update(gated, released)
        await cycle(sched)
        assert client.bound == {"default/g": "a"}

    run(scenario)


def test_events_are_sent_in_order_by_a_few_recorders() -> None:
    """Events go through at most EVENT_SENDERS recorder tasks (not a task each), all sent,
    in the order they were queued."""
    from pyk8s.scheduler import scheduler as scheduler_module

    async def scenario(sched: Scheduler, client: FakeClient, clock: FakeClock) -> None:
        in_flight = peak = 0
        create = client.create

        async def slow_create(res: Any, obj: dict, *, namespace: str | None = None) -> Any:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0)
            in_flight -= 1
            return await create(res, obj, namespace=namespace)

        client.create = slow_create  # type: ignore[method-assign]
        for i in range(20):
            sched._event_soon(pod(f"p{i}"), "Normal", "Scheduled", f"message {i}")
        assert len(sched._tasks) == scheduler_module.EVENT_SENDERS
        await sched.wait_idle()
        assert [e["message"] for e in client.events("Scheduled")] == [
            f"message {i}" for i in range(20)]
        assert peak == scheduler_module.EVENT_SENDERS and sched._recorders == 0
        sched._event_soon(pod("late"), "Normal", "Scheduled", "late")  # a recorder restarts
        await sched.wait_idle()
        assert client.events("Scheduled")[-1]["message"] == "late"

    run(scenario)
