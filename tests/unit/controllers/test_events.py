"""The controllers' EventRecorder: upstream's EventCorrelator (aggregation, counting, spam
filter) on an injectable clock."""

from __future__ import annotations

import asyncio
from typing import Any

from controller_fakes import FakeApi

from pyk8s.client import FakeClock
from pyk8s.controllers.events import (
    COMBINED_PREFIX,
    EVENTS,
    Aggregator,
    EventRecorder,
    SpamFilter,
)
from pyk8s.machinery.resources import CATALOGUE

REPLICASETS = CATALOGUE.resource("apps/v1", "replicasets")
RS = {"metadata": {"name": "web-1", "namespace": "d", "uid": "u1"}}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def record(clock: FakeClock, events: list[tuple[Any, str, str]],
                 steps: dict[int, float] | None = None) -> FakeApi:
    """Record ``events`` (object, reason, message), advancing the clock before the i-th one
    by ``steps[i]`` seconds; returns the API with the Events written."""
    api = FakeApi(clock)
    rec = EventRecorder(api, "replicaset-controller", clock=clock)  # type: ignore[arg-type]
    for i, (obj, reason, message) in enumerate(events):
        if steps and i in steps:
            clock.advance(steps[i])
        rec.event(obj, REPLICASETS, "Normal", reason, message)
    await rec.flush()
    await rec.close()
    return api


class TestSpamFilter:
    def test_burst_of_25_then_one_per_five_minutes(self) -> None:
        clock = FakeClock()
        spam = SpamFilter(clock)
        key = ("c", "", "ReplicaSet", "d", "web", "u1", "apps/v1")
        assert all(spam.allow(key) for _ in range(25))
        assert not spam.allow(key)
        clock.advance(299)
        assert not spam.allow(key), "less than one token refilled"
        clock.advance(1)
        assert spam.allow(key)
        assert not spam.allow(key)
        assert spam.allow(("c", "", "ReplicaSet", "d", "other", "u2", "apps/v1")), \
            "each object has its own bucket"

    def test_bucket_refills_only_up_to_the_burst(self) -> None:
        clock = FakeClock()
        spam = SpamFilter(clock, burst=2, qps=1.0)
        assert spam.allow(("k",)) and spam.allow(("k",)) and not spam.allow(("k",))
        clock.advance(100)
        assert [spam.allow(("k",)) for _ in range(3)] == [True, True, False]


class TestAggregator:
    def test_tenth_different_message_is_combined(self) -> None:
        clock = FakeClock()
        agg = Aggregator(clock)
        group = ("obj", "Normal", "SuccessfulCreate")
        assert [agg.aggregate(group, f"m{i}") for i in range(9)] == [None] * 9
        assert agg.aggregate(group, "m9") == COMBINED_PREFIX + "m9"
        assert agg.aggregate(group, "m10") == COMBINED_PREFIX + "m10"
        assert agg.aggregate(("obj", "Normal", "Other"), "m0") is None, "grouped by reason"

    def test_a_quiet_interval_starts_over(self) -> None:
        clock = FakeClock()
        agg = Aggregator(clock)
        for i in range(9):
            agg.aggregate(("g",), f"m{i}")
        clock.advance(601)
        assert agg.aggregate(("g",), "m9") is None


class TestEventRecorder:
    def test_repeats_patch_the_count_and_the_message(self) -> None:
        clock = FakeClock()
        api = run(record(clock, [(RS, "SuccessfulDelete", "Deleted pod: a")] * 3))
        [event] = api.objects(EVENTS)
        assert event["count"] == 3 and event["message"] == "Deleted pod: a"
        assert [c[0] for c in api.calls if c[1] == "events"] == ["create", "patch", "patch"]

    def test_a_replicaset_creating_3000_pods_writes_25_events(self) -> None:
        """Upstream: 9 plain events, then one combined Event counted up, and nothing after
        the spam filter's burst of 25 writes."""
        clock = FakeClock()
        api = run(record(clock, [(RS, "SuccessfulCreate", f"Created pod: web-1-{i}")
                                 for i in range(3000)]))
        writes = [c for c in api.calls if c[1] == "events"]
        assert len(writes) == 25
        events = sorted(api.objects(EVENTS), key=lambda e: e["firstTimestamp"] + e["message"])
        plain = [e for e in events if not e["message"].startswith(COMBINED_PREFIX)]
        [combined] = [e for e in events if e["message"].startswith(COMBINED_PREFIX)]
        assert sorted(e["message"] for e in plain) == sorted(f"Created pod: web-1-{i}" for i in range(9))
        assert all(e["count"] == 1 for e in plain)
        assert combined["count"] == 16
        assert combined["message"] == COMBINED_PREFIX + "Created pod: web-1-24"

    def test_filtered_object_writes_again_after_the_refill(self) -> None:
        clock = FakeClock()
        same = [(RS, "SuccessfulDelete", "Deleted pod: a")] * 30
        api = run(record(clock, [*same, (RS, "SuccessfulDelete", "Deleted pod: a")],
                         steps={30: 300.0}))
        [event] = api.objects(EVENTS)
        assert event["count"] == 31, "dropped repeats are still counted, as upstream"
        assert len([c for c in api.calls if c[1] == "events"]) == 26

    def test_other_objects_are_not_throttled(self) -> None:
        clock = FakeClock()
        others = [({"metadata": {"name": f"rs{i}", "namespace": "d", "uid": f"u{i}"}},
                    "SuccessfulCreate", "Created pod: x") for i in range(40)]
        api = run(record(clock, [*[(RS, "SuccessfulDelete", f"m{i}") for i in range(30)], *others]))
        assert len([e for e in api.objects(EVENTS)
                    if e["involvedObject"]["name"].startswith("rs")]) == 40

    def test_a_deleted_event_is_created_again_with_its_count(self) -> None:
        async def scenario() -> FakeApi:
            clock = FakeClock()
            api = FakeApi(clock)
            rec = EventRecorder(api, "replicaset-controller", clock=clock)  # type: ignore[arg-type]
            rec.event(RS, REPLICASETS, "Warning", "FailedCreate", "quota")
            await rec.flush()
            [event] = api.objects(EVENTS)
            await api.delete(EVENTS, "d", event["metadata"]["name"])
            rec.event(RS, REPLICASETS, "Warning", "FailedCreate", "quota")
            await rec.flush()
            await rec.close()
            return api

        api = run(scenario())
        [event] = api.objects(EVENTS)
        assert event["count"] == 2 and event["type"] == "Warning"
