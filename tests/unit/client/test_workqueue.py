"""The work queue's contract: de-duplication, no concurrent processing of a key, back-off."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pyk8s.client import FakeClock, WorkQueue


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def drain(queue: WorkQueue) -> list[str]:
    """Every key queued now, each marked done."""
    out = []
    while len(queue):
        key = await queue.get()
        assert key is not None
        out.append(key)
        queue.done(key)
    return out


def test_duplicates_collapse_while_waiting() -> None:
    async def scenario() -> list[str]:
        queue = WorkQueue()
        for key in ("a", "b", "a", "a"):
            queue.add(key)
        return await drain(queue)

    assert run(scenario()) == ["a", "b"]


def test_key_added_while_processing_is_requeued_after_done() -> None:
    async def scenario() -> list[str]:
        queue = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")  # a change arrives while "a" is processed
        assert len(queue) == 0, "never handed to a second worker concurrently"
        queue.done(key)  # type: ignore[arg-type]
        assert len(queue) == 1
        return [await queue.get()]  # type: ignore[list-item]

    assert run(scenario()) == ["a"]


def test_rate_limited_back_off_doubles_and_forget_resets() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = WorkQueue(base_delay=1.0, max_delay=4.0, clock=clock)
        queue.add_rate_limited("k")
        await asyncio.sleep(0)
        clock.advance(0.9)
        await asyncio.sleep(0)
        assert len(queue) == 0
        clock.advance(0.2)
        await asyncio.sleep(0)
        assert len(queue) == 1
        assert queue.num_requeues("k") == 1
        key = await queue.get()
        queue.done(key)  # type: ignore[arg-type]
        queue.add_rate_limited("k")  # second failure: 2 s
        queue.add_rate_limited("k")  # third: 4 s (capped)
        assert queue.num_requeues("k") == 3
        queue.forget("k")
        assert queue.num_requeues("k") == 0
        queue.shutdown()

    run(scenario())


def test_shutdown_wakes_getters() -> None:
    async def scenario() -> object:
        queue = WorkQueue()
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.shutdown()
        return await asyncio.wait_for(getter, 1)

    assert run(scenario()) is None


# -- delayed keys: one waiter over a heap, as client-go's delaying queue ----------------------

async def step(clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    for _ in range(3):
        await asyncio.sleep(0)


def on_fake_clock(body: Callable[[WorkQueue, FakeClock], Awaitable[None]],
                  **options: float) -> None:
    """Run ``body(queue, clock)`` with a queue on a fake clock."""
    async def scenario() -> None:
        clock = FakeClock()
        await body(WorkQueue(clock=clock, **options), clock)

    run(scenario())


def test_many_delayed_keys_share_one_timer_and_come_out_in_ready_order() -> None:
    async def body(queue: WorkQueue, clock: FakeClock) -> None:
        # 1,000 keys, added in scrambled order, ready at 0.01 .. 10.0 s.
        for i in sorted(range(1, 1001), key=lambda i: (i * 7919) % 1000):
            queue.add_after(f"k{i}", i / 100)
        await asyncio.sleep(0)
        assert queue.waiting == 1000 and len(queue) == 0
        assert clock.sleepers == 1, "one timer, not one per key"
        seen: list[str] = []
        for tick in range(1, 1001):
            await step(clock, 0.01)
            seen += await drain(queue)
            assert len(seen) == tick, f"at {tick / 100:.2f} s"
            assert clock.sleepers <= 1
        assert seen == [f"k{i}" for i in range(1, 1001)]
        assert queue.waiting == 0 and clock.sleepers == 0, "the waiter ends when idle"

    on_fake_clock(body)


def test_a_waiting_key_keeps_the_earlier_of_its_ready_times() -> None:
    async def body(queue: WorkQueue, clock: FakeClock) -> None:
        queue.add_after("earlier", 5.0)
        queue.add_after("earlier", 1.0)  # sooner: replaces the wait
        queue.add_after("later", 1.0)
        queue.add_after("later", 5.0)  # not sooner: ignored
        assert queue.waiting == 2
        await asyncio.sleep(0)
        await step(clock, 0.9)
        assert len(queue) == 0
        await step(clock, 0.2)
        assert sorted(await drain(queue)) == ["earlier", "later"]
        assert queue.waiting == 0
        await step(clock, 10)
        assert len(queue) == 0, "the replaced wait does not add the key a second time"

    on_fake_clock(body)


def test_an_earlier_key_wakes_the_waiter_sooner() -> None:
    async def body(queue: WorkQueue, clock: FakeClock) -> None:
        queue.add_after("slow", 10.0)
        await asyncio.sleep(0)
        await step(clock, 1.0)
        queue.add_after("fast", 0.5)  # ready before what the waiter sleeps until
        await asyncio.sleep(0)
        await step(clock, 0.5)
        assert await drain(queue) == ["fast"]
        await step(clock, 8.4)
        assert len(queue) == 0
        await step(clock, 0.2)
        assert await drain(queue) == ["slow"]
        assert clock.sleepers == 0

    on_fake_clock(body)


def test_a_key_added_directly_while_waiting_is_added_again_when_ready() -> None:
    async def body(queue: WorkQueue, clock: FakeClock) -> None:
        queue.add_after("k", 1.0)
        queue.add("k")
        queue.add_after("k", 0.0)  # no delay: a plain add, absorbed
        await asyncio.sleep(0)
        assert await drain(queue) == ["k"]
        await step(clock, 1.0)
        assert await drain(queue) == ["k"], "as client-go: the wait still adds it"
        # Still queued when it comes due: one entry, not two.
        queue.add_after("k", 1.0)
        queue.add("k")
        await asyncio.sleep(0)
        await step(clock, 1.0)
        assert await drain(queue) == ["k"]

    on_fake_clock(body)


def test_a_delayed_key_being_processed_is_queued_again_after_done() -> None:
    async def body(queue: WorkQueue, clock: FakeClock) -> None:
        queue.add("k")
        key = await queue.get()
        queue.add_after("k", 0.5)
        await asyncio.sleep(0)
        await step(clock, 0.5)
        assert len(queue) == 0, "never handed to a second worker concurrently"
        queue.done(key)  # type: ignore[arg-type]
        assert await drain(queue) == ["k"]

    on_fake_clock(body)


def test_rate_limited_and_delayed_adds_of_one_key_share_its_wait() -> None:
    async def body(queue: WorkQueue, clock: FakeClock) -> None:
        queue.add_after("k", 30.0)  # e.g. a progress-deadline re-check
        queue.add_rate_limited("k")  # a failure: back-off 1 s, sooner
        queue.add_rate_limited("k")  # a second one: 2 s, later than the wait
        assert queue.waiting == 1 and queue.num_requeues("k") == 2
        await asyncio.sleep(0)
        await step(clock, 1.0)
        assert await drain(queue) == ["k"]
        await step(clock, 40)
        assert len(queue) == 0
        assert clock.sleepers == 0

    on_fake_clock(body, base_delay=1.0, max_delay=8.0)


def test_shutdown_drops_waiting_keys_and_stops_the_waiter() -> None:
    async def body(queue: WorkQueue, clock: FakeClock) -> None:
        for i in range(100):
            queue.add_after(f"k{i}", 1.0 + i / 10)
        queue.add_rate_limited("r")
        queue.add("ready")
        await asyncio.sleep(0)
        assert clock.sleepers == 1
        queue.shutdown()
        await asyncio.sleep(0)
        assert clock.sleepers == 0 and queue.waiting == 0
        queue.add_after("late", 1.0)
        queue.add_rate_limited("late")
        assert queue.waiting == 0 and clock.sleepers == 0
        await step(clock, 100)
        # What was queued before shutdown is still handed out, then None.
        assert await queue.get() == "ready"
        assert await queue.get() is None

    on_fake_clock(body, base_delay=1.0)


def test_a_queued_key_wakes_one_idle_getter_not_all() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        woken: list[str] = []

        async def worker() -> None:
            while (key := await queue.get()) is not None:
                woken.append(key)
                queue.done(key)

        workers = [asyncio.create_task(worker()) for _ in range(8)]
        await asyncio.sleep(0)
        idle = list(queue._getters)
        assert len(idle) == 8
        queue.add("a")
        await asyncio.sleep(0)
        assert woken == ["a"]
        assert sum(not g.done() for g in idle) == 7, "the others sleep on, not woken"
        # A getter woken for a key but cancelled before it ran passes the key on.
        queue.add("b")
        victim = next(t for t in workers if not t.done())
        victim.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert woken == ["a", "b"]
        queue.shutdown()
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 1)

    run(scenario())


def test_delayed_keys_survive_a_waiter_cancelled_with_its_loop() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)

    async def first() -> None:
        queue.add_after("a", 1.0)
        await asyncio.sleep(0)

    async def second() -> list[str]:
        queue.add_after("b", 5.0)  # later than the dead waiter's time: must still be served
        await asyncio.sleep(0)
        await step(clock, 5.0)
        return await drain(queue)

    run(first())  # asyncio.run cancels the waiter as the loop closes
    assert sorted(run(second())) == ["a", "b"]
