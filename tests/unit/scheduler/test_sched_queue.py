"""The scheduling queue on a fake clock: order, backoff, parking and waking unschedulable pods."""

from __future__ import annotations

import asyncio

from scheduler_fixtures import pod

from pyk8s.client.clock import FakeClock
from pyk8s.scheduler.framework import ASSIGNED_POD_DELETE, NODE_ADD, NODE_UPDATE
from pyk8s.scheduler.queue import SchedulingQueue

EVENTS = {"NodeResourcesFit": [NODE_ADD, ASSIGNED_POD_DELETE], "TaintToleration": [NODE_ADD,
                                                                                   NODE_UPDATE]}


def make(clock: FakeClock | None = None) -> tuple[SchedulingQueue, FakeClock]:
    clock = clock or FakeClock()
    return SchedulingQueue(clock, plugin_events=EVENTS), clock


def pop(q: SchedulingQueue):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(q.pop(), 1))


def fail(q: SchedulingQueue, qinfo, *plugins: str, error: bool = False) -> None:  # type: ignore[no-untyped-def]
    qinfo.unschedulable_plugins = set(plugins)
    q.add_unschedulable(qinfo, q.scheduling_cycle, error=error)


def test_higher_priority_first_then_arrival() -> None:
    q, clock = make()
    q.add(pod("low", priority=1))
    clock.advance(1)
    q.add(pod("high", priority=100))
    q.add(pod("low2", priority=1))
    names = [pop(q).pod["metadata"]["name"] for _ in range(3)]
    assert names == ["high", "low", "low2"]


def test_backoff_doubles_to_the_cap() -> None:
    q, _ = make()
    assert [q.backoff_duration(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_error_goes_to_backoff_and_returns_when_due() -> None:
    q, clock = make()
    q.add(pod("p"))
    qinfo = pop(q)
    fail(q, qinfo, error=True)
    assert q.where(qinfo.uid) == "backoff"
    clock.advance(0.5)
    assert q.flush_backoff_completed() == 0
    clock.advance(0.6)
    assert q.flush_backoff_completed() == 1 and q.where(qinfo.uid) == "active"
    assert pop(q).attempts == 2


def test_unschedulable_waits_for_a_relevant_event() -> None:
    q, clock = make()
    q.add(pod("p"))
    qinfo = pop(q)
    fail(q, qinfo, "TaintToleration")
    assert q.where(qinfo.uid) == "unschedulable"
    assert q.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE) == 0  # taints don't care
    clock.advance(5)
    assert q.move_all_to_active_or_backoff(NODE_UPDATE) == 1
    assert q.where(qinfo.uid) == "active"


def test_moved_pod_still_backing_off_goes_to_backoff() -> None:
    q, clock = make()
    q.add(pod("p"))
    qinfo = pop(q)
    fail(q, qinfo, "NodeResourcesFit")
    clock.advance(0.2)
    q.move_all_to_active_or_backoff(NODE_ADD)
    assert q.where(qinfo.uid) == "backoff"


def test_event_during_the_cycle_is_not_lost() -> None:
    q, _ = make()
    q.add(pod("p"))
    qinfo = pop(q)
    cycle = q.scheduling_cycle
    q.move_all_to_active_or_backoff(NODE_ADD)  # arrives while the pod is being scheduled
    qinfo.unschedulable_plugins = {"NodeResourcesFit"}
    q.add_unschedulable(qinfo, cycle)
    assert q.where(qinfo.uid) == "backoff"


def test_unschedulable_leftovers_are_retried_after_five_minutes() -> None:
    q, clock = make()
    q.add(pod("p"))
    qinfo = pop(q)
    fail(q, qinfo, "TaintToleration")
    clock.advance(299)
    assert q.flush_unschedulable_leftover() == 0
    clock.advance(2)
    assert q.flush_unschedulable_leftover() == 1 and q.where(qinfo.uid) == "active"


def test_status_only_update_does_not_retry_but_spec_change_does() -> None:
    q, clock = make()
    p = pod("p")
    q.add(p)
    qinfo = pop(q)
    fail(q, qinfo, "TaintToleration")
    clock.advance(20)
    with_condition = {**p, "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    q.update(p, with_condition)
    assert q.where(qinfo.uid) == "unschedulable"
    tolerating = {**with_condition, "spec": {**p["spec"], "tolerations": [{"operator": "Exists"}]}}
    q.update(with_condition, tolerating)
    assert q.where(qinfo.uid) == "active"
    assert pop(q).pod["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_deleted_while_in_flight_is_dropped() -> None:
    q, _ = make()
    p = pod("p")
    q.add(p)
    qinfo = pop(q)
    q.delete(p)
    fail(q, qinfo, "TaintToleration")
    assert q.where(qinfo.uid) == "" and len(q) == 0


def test_pop_waits_for_an_add_and_close_releases() -> None:
    async def scenario() -> tuple[str, object]:
        q = SchedulingQueue(FakeClock())
        waiter = asyncio.create_task(q.pop())
        await asyncio.sleep(0)
        q.add(pod("late"))
        first = await asyncio.wait_for(waiter, 1)
        closer = asyncio.create_task(q.pop())
        await asyncio.sleep(0)
        q.close()
        return first.pod["metadata"]["name"], await asyncio.wait_for(closer, 1)

    assert asyncio.run(scenario()) == ("late", None)


def test_run_flushes_on_the_clock() -> None:
    async def scenario() -> str:
        clock = FakeClock()
        q = SchedulingQueue(clock)
        q.add(pod("p"))
        qinfo = await q.pop()
        assert qinfo is not None
        q.add_unschedulable(qinfo, q.scheduling_cycle, error=True)
        runner = asyncio.create_task(q.run())
        await asyncio.sleep(0)
        for _ in range(2):
            clock.advance(1)
            await asyncio.sleep(0)
        where = q.where(qinfo.uid)
        q.close()
        clock.advance(1)
        await asyncio.wait_for(runner, 1)
        return where

    assert asyncio.run(scenario()) == "active"


def test_nominator() -> None:
    q, _ = make()
    p = pod("p", priority=5)
    p["status"]["nominatedNodeName"] = "n1"
    q.add(pod("p0"))
    q.update(p, p)
    assert [x.key for x in q.nominated_pods_for_node("n1")] == ["default/p"]
    q.delete(p)
    assert q.nominated_pods_for_node("n1") == []
