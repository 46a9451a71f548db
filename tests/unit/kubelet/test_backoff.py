"""Restart back-off: upstream's schedule on a fake clock."""

from __future__ import annotations

from datetime import timedelta

from pyk8s.client.clock import FakeClock
from pyk8s.kubelet.backoff import Backoff, go_duration


def crash(clock: FakeClock, backoff: Backoff, key: str = "k") -> bool:
    """The container exits now; True if it may restart right away (and records it)."""
    finished = clock.now()
    if backoff.in_backoff_since(key, finished):
        return False
    backoff.next(key, finished)
    return True


def test_first_restart_is_immediate_then_ten_seconds() -> None:
    clock = FakeClock()
    backoff = Backoff(clock)
    assert crash(clock, backoff)
    assert backoff.get("k") == timedelta(seconds=10)
    assert not crash(clock, backoff)  # crashed again at once: must wait 10 s
    finished = clock.now()
    clock.advance(9.9)
    assert backoff.in_backoff_since("k", finished)
    assert 0 < backoff.remaining("k", finished) <= 0.11
    clock.advance(0.2)
    assert not backoff.in_backoff_since("k", finished)


def test_delay_doubles_up_to_five_minutes() -> None:
    clock = FakeClock()
    backoff = Backoff(clock)
    delays = []
    for _ in range(8):
        finished = clock.now()
        while backoff.in_backoff_since("k", finished):
            clock.advance(1)
        backoff.next("k", finished)
        delays.append(int(backoff.get("k").total_seconds()))
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_running_ten_minutes_resets_the_delay() -> None:
    clock = FakeClock()
    backoff = Backoff(clock)
    for _ in range(4):
        backoff.next("k", clock.now())
    assert backoff.get("k") == timedelta(seconds=80)
    clock.advance(601)  # ran for more than 2 x 5 min before crashing again
    assert not backoff.in_backoff_since("k", clock.now())
    backoff.next("k", clock.now())
    assert backoff.get("k") == timedelta(seconds=10)


def test_keys_are_independent_and_forgettable() -> None:
    clock = FakeClock()
    backoff = Backoff(clock)
    backoff.next("uid/a", clock.now())
    backoff.next("uid/a", clock.now())
    backoff.next("other/b", clock.now())
    assert backoff.get("uid/a") == timedelta(seconds=20)
    backoff.forget_prefix("uid/")
    assert backoff.get("uid/a") == timedelta(0)
    assert backoff.get("other/b") == timedelta(seconds=10)


def test_durations_read_like_go() -> None:
    assert [go_duration(timedelta(seconds=s)) for s in (10, 80, 160, 300, 3700)] == \
        ["10s", "1m20s", "2m40s", "5m0s", "1h1m40s"]
