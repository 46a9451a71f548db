"""Pod status from container states: upstream's getPhase, conditions and container statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyk8s.kubelet.status import (
    ContainerView,
    container_status,
    get_phase,
    merge_conditions,
    pod_conditions,
    restart_needed,
)
from pyk8s.runtime import ContainerState, ContainerStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def running(name: str = "c") -> dict[str, Any]:
    return {"name": name, "ready": True, "state": {"running": {"startedAt": "x"}}}


def terminated(name: str = "c", code: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": False, "state": {"terminated": {"exitCode": code}}}


def waiting(name: str = "c", last_code: int | None = None) -> dict[str, Any]:
    last = {"terminated": {"exitCode": last_code}} if last_code is not None else {}
    return {"name": name, "ready": False, "state": {"waiting": {"reason": "X"}},
            "lastState": last}


def spec(policy: str = "Always", containers: tuple[str, ...] = ("c",),
         init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"restartPolicy": policy, "containers": [{"name": n} for n in containers],
            "initContainers": [{"name": n} for n in init]}


class TestPhase:
    @pytest.mark.parametrize(("policy", "statuses", "terminal", "phase"), [
        ("Always", [], False, "Pending"),
        ("Always", [waiting()], False, "Pending"),
        ("Always", [running()], False, "Running"),
        ("Always", [terminated(code=1)], False, "Running"),  # about to restart
        ("Always", [waiting(last_code=1)], False, "Running"),  # CrashLoopBackOff
        ("OnFailure", [terminated(code=0)], False, "Succeeded"),
        ("OnFailure", [terminated(code=2)], False, "Running"),
        ("Never", [terminated(code=2)], False, "Failed"),
        ("Never", [terminated(code=0)], False, "Succeeded"),
        ("Always", [terminated(code=143)], True, "Failed"),  # deleted pod, killed
        ("Always", [terminated(code=0)], True, "Succeeded"),
    ])
    def test_single_container(self, policy: str, statuses: list[dict[str, Any]],
                              terminal: bool, phase: str) -> None:
        assert get_phase(spec(policy), [], statuses, terminal) == phase

    def test_running_and_one_unknown_is_pending(self) -> None:
        assert get_phase(spec(containers=("a", "b")), [], [running("a")], False) == "Pending"

    def test_init_containers_pending_then_failed_with_never(self) -> None:
        s = spec("Never", init=("i",))
        assert get_phase(s, [running("i")], [waiting()], False) == "Pending"
        assert get_phase(s, [terminated("i", 1)], [waiting()], False) == "Failed"
        assert get_phase(spec("Always", init=("i",)), [waiting("i", 1)], [waiting()],
                         False) == "Pending"


class TestConditions:
    def test_ready_when_all_containers_ready(self) -> None:
        conds = {c["type"]: c for c in pod_conditions(spec(), "Running", [], [running()], True)}
        assert conds["Ready"]["status"] == "True"
        assert conds["ContainersReady"]["status"] == "True"
        assert conds["Initialized"]["status"] == "True"
        assert conds["PodReadyToStartContainers"]["status"] == "True"

    def test_unready_container_named_in_the_message(self) -> None:
        s = spec(containers=("a", "b"))
        conds = {c["type"]: c for c in pod_conditions(
            s, "Running", [], [running("a"), {**running("b"), "ready": False}], True)}
        assert conds["Ready"] == {"type": "Ready", "status": "False",
                                  "reason": "ContainersNotReady",
                                  "message": "containers with unready status: [b]"}

    def test_incomplete_init_containers(self) -> None:
        conds = {c["type"]: c for c in pod_conditions(
            spec(init=("i1", "i2")), "Pending", [terminated("i1"), running("i2")], [waiting()],
            True)}
        assert conds["Initialized"]["reason"] == "ContainersNotInitialized"
        assert conds["Initialized"]["message"] == "containers with incomplete status: [i2]"

    def test_succeeded_pod_is_not_ready_because_completed(self) -> None:
        conds = {c["type"]: c for c in pod_conditions(spec("Never"), "Succeeded", [],
                                                      [terminated()], False)}
        assert conds["Ready"]["reason"] == "PodCompleted"

    def test_transition_time_moves_only_on_change_and_others_conditions_stay(self) -> None:
        old = [{"type": "Ready", "status": "False", "lastTransitionTime": "old"},
               {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": "d"}]
        new = merge_conditions(old, [{"type": "Ready", "status": "False"}], T0)
        by = {c["type"]: c for c in new}
        assert by["Ready"]["lastTransitionTime"] == "old"
        assert by["DisruptionTarget"]["lastTransitionTime"] == "d"
        assert by["PodScheduled"]["status"] == "True"
        moved = merge_conditions(old, [{"type": "Ready", "status": "True"}], T0)
        assert {c["type"]: c for c in moved}["Ready"]["lastTransitionTime"] == \
            "2026-01-01T00:00:00Z"


def rc(state: ContainerState, attempt: int = 0, code: int = 0, reason: str = "") -> ContainerStatus:
    return ContainerStatus(
        id=f"id{attempt}", sandbox_id="s", name="c", attempt=attempt, state=state,
        image="busybox", image_ref="busybox", created_at=T0, started_at=T0,
        finished_at=T0 + timedelta(seconds=1) if state == ContainerState.EXITED else None,
        exit_code=code, reason=reason)


class TestContainerStatus:
    def test_running(self) -> None:
        out = container_status(ContainerView("c", "busybox", rc(ContainerState.RUNNING),
                                             ready=True, started=True))
        assert out["state"] == {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        assert out["containerID"] == "process://id0"
        assert out["ready"] and out["started"] and out["restartCount"] == 0

    def test_crash_loop_shows_waiting_with_last_termination(self) -> None:
        latest = rc(ContainerState.EXITED, attempt=2, code=1, reason="Error")
        out = container_status(ContainerView("c", "busybox", latest,
                                             waiting=("CrashLoopBackOff", "back-off 20s ..."),
                                             restart_count=2))
        assert out["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                            "message": "back-off 20s ..."}}
        assert out["lastState"]["terminated"]["exitCode"] == 1
        assert out["lastState"]["terminated"]["reason"] == "Error"
        assert out["restartCount"] == 2

    def test_restarted_container_keeps_previous_as_last_state(self) -> None:
        out = container_status(ContainerView(
            "c", "busybox", rc(ContainerState.RUNNING, 1),
            previous=rc(ContainerState.EXITED, 0, 137, "OOMKilled"), restart_count=1))
        assert out["lastState"]["terminated"]["reason"] == "OOMKilled"

    def test_not_created_yet(self) -> None:
        out = container_status(ContainerView("c", "busybox"), "PodInitializing")
        assert out["state"] == {"waiting": {"reason": "PodInitializing"}}
        assert "containerID" not in out


@pytest.mark.parametrize(("policy", "code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False),
    ("OnFailure", 1, True), ("Never", 1, False)])
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert restart_needed(policy, code) is restart
