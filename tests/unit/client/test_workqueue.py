"""The work queue's contract: de-duplication, no concurrent processing of a key, back-off."""

from __future__ import annotations

import asyncio

from pyk8s.client import FakeClock, WorkQueue


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_duplicates_collapse_while_waiting() -> None:
    async def scenario() -> list[str]:
        queue = WorkQueue()
        for key in ("a", "b", "a", "a"):
            queue.add(key)
        out = []
        while len(queue):
            key = await queue.get()
            assert key is not None
            out.append(key)
            queue.done(key)
        return out

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
