"""Expectations: what a controller has asked for and not yet seen in its caches.

After a ReplicaSet creates 3 pods, its pod informer shows them only when their watch events
arrive. A sync that ran in between would count too few pods and create 3 more. Upstream's
answer (``controller_utils.go``) is kept here: before writing, the controller records how many
creations and which deletions it expects; informer handlers lower the counts as the events
arrive; ``manageReplicas`` runs only once they are all observed, or after a timeout (5 minutes,
in case an event was lost), after which a full re-count is safe anyway.

Deletions are tracked by pod key (upstream's UIDTrackingControllerExpectations), so that a pod
deleted by someone else is not mistaken for one of ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyk8s.client.clock import SYSTEM_CLOCK, Clock

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expected:
    adds: int
    deletes: set[str] = field(default_factory=set)
    timestamp: float = 0.0


class Expectations:
    def __init__(self, clock: Clock = SYSTEM_CLOCK, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._clock = clock
        self._timeout = timeout
        self._items: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        """True when nothing is outstanding (or never recorded, or expired)."""
        exp = self._items.get(key)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deletes:
            return True
        return self._clock.monotonic() - exp.timestamp > self._timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._items[key] = _Expected(adds=count, timestamp=self._clock.monotonic())

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        self._items[key] = _Expected(adds=0, deletes=set(pod_keys),
                                     timestamp=self._clock.monotonic())

    def creation_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.adds -= 1

    def lower_creations(self, key: str, count: int) -> None:
        """Creations that will never be observed (they failed or were skipped)."""
        exp = self._items.get(key)
        if exp is not None:
            exp.adds -= count

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def forget(self, key: str) -> None:
        self._items.pop(key, None)
