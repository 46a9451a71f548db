"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

Several replicas of a component (two schedulers, two controller managers) compete for one
Lease; the holder renews it every ``retry_period`` and the others take it over once it has not
been renewed for ``lease_duration``. Work runs only while leading: when renewal fails for
``renew_deadline`` the work is cancelled before another replica can have taken over.
Updates are conditional on the Lease's resourceVersion, so two candidates never both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.client.rest import ApiClient
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE

log = logging.getLogger("pyk8s.client.leaderelection")

LEASES = CATALOGUE.resource("coordination.k8s.io/v1", "leases")


def micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElector:
    def __init__(self, client: ApiClient, *, name: str, identity: str,
                 namespace: str = "kube-system", lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.is_leader = False

    async def try_acquire_or_renew(self) -> bool:
        now = self.clock.now()
        spec_now = micro_time(now)
        try:
            lease = await self.client.get(LEASES, self.namespace, self.name)
        except ApiError as err:
            if err.code != 404:
                return False
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity,
                             "leaseDurationSeconds": int(self.lease_duration),
                             "acquireTime": spec_now, "renewTime": spec_now,
                             "leaseTransitions": 0}}
            try:
                await self.client.create(LEASES, body)
                return True
            except ApiError:
                return False
        spec: dict[str, Any] = lease.setdefault("spec", {})
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and renewed is not None \
                and renewed + timedelta(seconds=duration) > now:
            return False
        if holder != self.identity:
            spec["acquireTime"] = spec_now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = int(self.lease_duration)
        spec["renewTime"] = spec_now
        try:
            await self.client.update(LEASES, lease)
            return True
        except ApiError:
            return False

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            while not await self.try_acquire_or_renew():
                await self.clock.sleep(self.retry_period)
            self.is_leader = True
            log.info("%s: became leader as %s", self.name, self.identity)
            task = asyncio.ensure_future(work())
            try:
                last_renew = self.clock.monotonic()
                while not task.done():
                    sleeper = asyncio.ensure_future(self.clock.sleep(self.retry_period))
                    await asyncio.wait([task, sleeper], return_when=asyncio.FIRST_COMPLETED)
                    sleeper.cancel()
                    if task.done():
                        break
                    if await self.try_acquire_or_renew():
                        last_renew = self.clock.monotonic()
                    elif self.clock.monotonic() - last_renew > self.renew_deadline:
                        log.warning("%s: lost leadership", self.name)
                        break
            finally:
                self.is_leader = False
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if task.done() and not task.cancelled() and task.exception() is None:
                return
