"""Container restart back-off, as upstream's kubelet (client-go ``flowcontrol.Backoff`` with
initial 10 s, max 5 min, no jitter, used by ``doBackOff`` in kuberuntime).

The schedule a crash-looping container sees: the first restart is immediate, then 10 s,
20 s, 40 s, ... capped at 5 min. The delay is measured from the container's *finish* time;
an entry whose last update is more than 2 x max (10 min) older than the new finish time
starts again at 10 s -- so a container that ran fine for ten minutes is forgiven.

Keyed by pod UID and container name. Pure logic on timestamps passed in or read from an
injected clock: no sleeping here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pyk8s.client.clock import Clock

INITIAL = timedelta(seconds=10)
MAXIMUM = timedelta(minutes=5)


@dataclass
class _Entry:
    backoff: timedelta
    last_update: datetime


class Backoff:
    def __init__(self, clock: Clock, initial: timedelta = INITIAL,
                 maximum: timedelta = MAXIMUM) -> None:
        self.clock = clock
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, _Entry] = {}

    def _expired(self, event_time: datetime, last_update: datetime) -> bool:
        return event_time - last_update > 2 * self.maximum

    def get(self, key: str) -> timedelta:
        entry = self._entries.get(key)
        return entry.backoff if entry else timedelta(0)

    def in_backoff_since(self, key: str, event_time: datetime) -> bool:
        """True while ``now - event_time`` is shorter than the key's current delay."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        now = self.clock.now()
        if self._expired(now, entry.last_update):
            return False
        return now - event_time < entry.backoff

    def remaining(self, key: str, event_time: datetime) -> float:
        """Seconds until ``in_backoff_since`` turns False (0 when not backing off)."""
        if not self.in_backoff_since(key, event_time):
            return 0.0
        entry = self._entries[key]
        return max((event_time + entry.backoff - self.clock.now()).total_seconds(), 0.0)

    def next(self, key: str, event_time: datetime) -> None:
        """Record a restart: start at ``initial`` or double, capped at ``maximum``."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry.last_update):
            self._entries[key] = _Entry(self.initial, self.clock.now())
        else:
            entry.backoff = min(entry.backoff * 2, self.maximum)
            entry.last_update = self.clock.now()

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]


def go_duration(delta: timedelta) -> str:
    """Go's ``time.Duration.String()`` for whole seconds: ``10s``, ``1m20s``, ``5m0s``."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"
