"""The Node the kubelet reports, and its Lease heartbeat on a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pyk8s.client.clock import FakeClock
from pyk8s.kubelet.lease import NodeLease
from pyk8s.kubelet.nodestatus import capacity, machine_info, node_conditions, node_object
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.machinery.errors import ApiError


def test_node_object_from_the_machine(tmp_path: Path) -> None:
    settings = KubeletSettings(node_name="n1", root_dir=tmp_path, node_labels={"role": "x"})
    info = machine_info(tmp_path)
    clock = FakeClock()
    node = node_object(info, settings, "10.0.0.1", "process://0.1", clock.now())
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert node["metadata"]["labels"]["role"] == "x"
    status = node["status"]
    assert status["capacity"]["pods"] == "110"
    assert status["capacity"]["memory"].endswith("Ki")
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.0.0.1"},
                                   {"type": "Hostname", "address": "n1"}]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.4"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "process://0.1"
    cap, alloc = capacity(info, settings)
    assert int(alloc["memory"][:-2]) == int(cap["memory"][:-2]) - 100 * 1024


def test_condition_transition_times_move_only_on_change() -> None:
    clock = FakeClock()
    first = node_conditions([], clock.now())
    assert [(c["type"], c["status"], c["reason"]) for c in first] == [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady")]
    clock.advance(60)
    second = node_conditions(first, clock.now())
    ready = second[-1]
    assert ready["lastHeartbeatTime"] == "2026-01-01T00:01:00Z"
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    flipped = node_conditions([{**first[-1], "status": "Unknown"}], clock.now())
    assert flipped[-1]["lastTransitionTime"] == "2026-01-01T00:01:00Z"


class LeaseApi:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.writes = 0

    async def get(self, res: Any, namespace: str, name: str) -> dict[str, Any]:
        if self.lease is None:
            raise ApiError(404, "NotFound", "not found")
        return {**self.lease, "spec": dict(self.lease["spec"])}

    async def create(self, res: Any, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        self.lease = obj
        self.writes += 1
        return obj

    async def update(self, res: Any, obj: dict[str, Any]) -> dict[str, Any]:
        self.lease = obj
        self.writes += 1
        return obj


def test_lease_is_created_owned_by_the_node_and_renewed_every_quarter_duration() -> None:
    async def go() -> None:
        api = LeaseApi()
        clock = FakeClock()
        lease = NodeLease(api, "n1", 40, clock, node_uid="uid-n1")  # type: ignore[arg-type]
        task = asyncio.create_task(lease.run())
        await asyncio.sleep(0)
        assert api.lease is not None
        assert api.lease["metadata"]["namespace"] == "kube-node-lease"
        assert api.lease["metadata"]["ownerReferences"][0]["uid"] == "uid-n1"
        assert api.lease["spec"]["holderIdentity"] == "n1"
        assert api.lease["spec"]["leaseDurationSeconds"] == 40
        assert api.lease["spec"]["renewTime"] == "2026-01-01T00:00:00.000000Z"
        clock.advance(9.9)
        await asyncio.sleep(0)
        assert api.writes == 1
        clock.advance(0.1)
        for _ in range(3):
            await asyncio.sleep(0)
        assert api.writes == 2
        assert api.lease["spec"]["renewTime"] == "2026-01-01T00:00:10.000000Z"
        task.cancel()
    asyncio.run(go())
