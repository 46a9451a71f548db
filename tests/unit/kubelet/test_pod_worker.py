"""The pod worker's decisions, on a fake clock with an in-memory runtime and API."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client.clock import FakeClock
from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.podworker import PodWorker, WorkerContext
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.volumes import VolumeManager
from pyk8s.machinery.errors import ApiError
from pyk8s.runtime import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    ExecResult,
    PodSandbox,
    PodSandboxConfig,
    RuntimeInfo,
    RuntimeOperationError,
    SandboxState,
)


class FakeRuntime:
    """Containers that run until the test says they exit."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sandboxes: dict[str, PodSandbox] = {}
        self.containers: dict[str, ContainerStatus] = {}
        self.stops: list[tuple[str, float]] = []
        self.execs: list[list[str]] = []
        self.exec_code = 0
        self.missing_images: set[str] = set()
        self.pull_errors: dict[str, str] = {}
        self.pulls: list[str] = []
        self.configs: dict[str, ContainerConfig] = {}
        self.log_dir = Path(tempfile.mkdtemp())

    def info(self) -> RuntimeInfo:
        return RuntimeInfo("fake", "fake://1", "none")

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sid = uuid.uuid4().hex
        self.sandboxes[sid] = PodSandbox(sid, config, SandboxState.READY, self.clock.now(), "1.2.3.4")
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        pass

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.sandboxes.pop(sandbox_id, None)
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            del self.containers[cid]

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        return self.sandboxes[sandbox_id]

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return list(self.sandboxes.values())

    async def image_status(self, image: str) -> str | None:
        return f"{image}@sha256:1" if image not in self.missing_images else None

    async def pull_image(self, image: str) -> str:
        self.pulls.append(image)
        if image in self.pull_errors:
            raise RuntimeOperationError("ErrImagePull", self.pull_errors[image])
        self.missing_images.discard(image)
        return f"{image}@sha256:1"

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        if not config.command:
            raise RuntimeOperationError("CreateContainerError", "no command")
        cid = uuid.uuid4().hex
        self.configs[cid] = config
        self.containers[cid] = ContainerStatus(
            cid, sandbox_id, config.name, config.attempt, ContainerState.CREATED, config.image,
            config.image, self.clock.now(), labels=dict(config.labels),
            log_path=str(self.log_dir / f"{cid}.log"),
            annotations={**config.annotations, "env": repr(sorted(config.env.items()))})
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self.containers[container_id]
        self.containers[container_id] = dataclasses.replace(
            c, state=ContainerState.RUNNING, started_at=self.clock.now())

    def exit(self, name: str, code: int) -> None:
        c = self.latest(name)
        self.containers[c.id] = dataclasses.replace(
            c, state=ContainerState.EXITED, exit_code=code, finished_at=self.clock.now(),
            reason="Completed" if code == 0 else "Error")

    def latest(self, name: str) -> ContainerStatus:
        return max((c for c in self.containers.values() if c.name == name),
                   key=lambda c: c.attempt)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        self.stops.append((container_id, timeout))
        c = self.containers[container_id]
        if c.state == ContainerState.RUNNING:
            self.containers[container_id] = dataclasses.replace(
                c, state=ContainerState.EXITED, exit_code=143, reason="Error",
                finished_at=self.clock.now())

    async def remove_container(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self.containers[container_id]

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [c for c in self.containers.values()
                if sandbox_id is None or c.sandbox_id == sandbox_id]

    async def exec(self, container_id: str, command: Sequence[str], *, stdin: bool = False) -> Any:
        raise NotImplementedError

    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult:
        self.execs.append(list(command))
        self.clock.advance(3)  # the hook takes three seconds
        return ExecResult(self.exec_code, b"", b"hook said no" if self.exec_code else b"")

    async def container_stats(self, container_id: str) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class FakeApi:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.deletes: list[dict[str, Any]] = []

    async def get(self, res: Any, namespace: str, name: str) -> dict[str, Any]:
        raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')

    async def list(self, res: Any, namespace: str) -> dict[str, Any]:
        assert res.plural == "services"
        return {"items": [{"metadata": {"name": "web-api"},
                           "spec": {"clusterIP": "10.96.0.7",
                                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}]}

    async def patch(self, res: Any, namespace: str, name: str, body: Any, **kw: Any) -> Any:
        assert kw == {"patch_type": "merge", "subresource": "status"}
        self.statuses.append(body["status"])
        return {}

    async def delete(self, res: Any, namespace: str, name: str, **kw: Any) -> Any:
        self.deletes.append(kw)
        return {}


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, obj: Any, reason: str, message: str, type_: str = "Normal",
               field_path: str = "") -> None:
        self.events.append((reason, message, type_))

    def reasons(self) -> list[str]:
        return [e[0] for e in self.events]


class Harness:
    def __init__(self, tmp_path: Path, **spec: Any) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime(self.clock)
        self.api = FakeApi()
        self.recorder = FakeRecorder()
        ctx = WorkerContext(
            client=self.api, runtime=self.runtime,  # type: ignore[arg-type]
            settings=KubeletSettings(node_name="n1", root_dir=tmp_path, node_ip="1.2.3.4"),
            clock=self.clock, recorder=self.recorder,  # type: ignore[arg-type]
            backoff=Backoff(self.clock), volumes=VolumeManager(tmp_path, self.api.get),
            node_ip="1.2.3.4")
        self.pod: dict[str, Any] = {
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1", "command": ["run"]}],
                     **spec},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}}
        self.worker = PodWorker(ctx, self.pod)

    def sync(self) -> dict[str, Any]:
        asyncio.run(self.worker.sync())
        return self.api.statuses[-1] if self.api.statuses else {}

    def container(self, status: dict[str, Any], key: str = "containerStatuses") -> dict[str, Any]:
        return status[key][0]  # type: ignore[no-any-return]


def test_a_pod_starts_and_reports_running(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    status = h.sync()
    assert status["phase"] == "Running"
    assert status["podIP"] == "1.2.3.4" and status["hostIP"] == "1.2.3.4"
    cs = h.container(status)
    assert "running" in cs["state"] and cs["ready"] and cs["restartCount"] == 0
    assert h.recorder.reasons() == ["Pulled", "Created", "Started"]
    writes = len(h.api.statuses)
    h.sync()
    assert len(h.api.statuses) == writes  # nothing changed: nothing written


def test_crash_loop_follows_the_backoff_schedule(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sync()
    h.runtime.exit("c", 1)
    h.sync()  # first restart is immediate
    assert h.runtime.latest("c").attempt == 1
    for expected in (10, 20, 40):
        h.runtime.exit("c", 1)
        cs = h.container(h.sync())
        assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert cs["state"]["waiting"]["message"].startswith(f"back-off {expected}s restarting")
        assert cs["lastState"]["terminated"]["exitCode"] == 1
        h.clock.advance(expected - 1)
        h.sync()
        assert h.runtime.latest("c").state == ContainerState.EXITED
        h.clock.advance(1)
        cs = h.container(h.sync())
        assert "running" in cs["state"]
    assert cs["restartCount"] == 4
    assert h.recorder.reasons().count("BackOff") == 3
    # Only the newest and the previous container are kept.
    assert len(h.runtime.containers) == 2


@pytest.mark.parametrize(("policy", "code", "phase", "restarts"), [
    ("Never", 1, "Failed", 0), ("Never", 0, "Succeeded", 0), ("OnFailure", 0, "Succeeded", 0),
    ("OnFailure", 2, "Running", 1), ("Always", 0, "Running", 1)])
def test_restart_policy(tmp_path: Path, policy: str, code: int, phase: str, restarts: int) -> None:
    h = Harness(tmp_path, restartPolicy=policy)
    h.sync()
    h.runtime.exit("c", code)
    status = h.sync()
    assert status["phase"] == phase
    assert h.runtime.latest("c").attempt == restarts


def test_init_containers_run_in_order_before_app_containers(tmp_path: Path) -> None:
    h = Harness(tmp_path, initContainers=[{"name": "i1", "image": "x", "command": ["a"]},
                                          {"name": "i2", "image": "x", "command": ["b"]}])
    status = h.sync()
    assert status["phase"] == "Pending"
    assert [c.name for c in h.runtime.containers.values()] == ["i1"]
    assert h.container(status)["state"]["waiting"]["reason"] == "PodInitializing"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Initialized"]["message"] == "containers with incomplete status: [i1 i2]"
    h.runtime.exit("i1", 0)
    h.sync()
    assert sorted(c.name for c in h.runtime.containers.values()) == ["i1", "i2"]
    h.runtime.exit("i2", 0)
    status = h.sync()
    assert status["phase"] == "Running"
    assert [s["state"]["terminated"]["reason"] for s in status["initContainerStatuses"]] == \
        ["Completed", "Completed"]


def test_missing_config_map_is_create_container_config_error(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.pod["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]
    cs = h.container(h.sync())
    assert cs["state"]["waiting"] == {"reason": "CreateContainerConfigError",
                                      "message": 'configmap "cm" not found'}
    assert ("Failed", 'Error: configmap "cm" not found', "Warning") in h.recorder.events


def test_runtime_create_errors_become_the_waiting_reason(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.pod["spec"]["containers"][0].pop("command")
    cs = h.container(h.sync())
    assert cs["state"]["waiting"]["reason"] == "CreateContainerError"
    assert h.sync() and h.recorder.reasons().count("Failed") == 1  # retried on back-off


def test_deletion_stops_with_the_grace_period_then_deletes_with_zero(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sync()
    cid = h.runtime.latest("c").id
    h.pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:30Z"
    h.pod["metadata"]["deletionGracePeriodSeconds"] = 7
    h.worker.update(h.pod)
    status = h.sync()
    assert h.runtime.stops == [(cid, 7)]
    assert ("Killing", "Stopping container c", "Normal") in h.recorder.events
    assert h.container(status)["state"]["terminated"]["exitCode"] == 143
    assert status["phase"] == "Failed"
    assert h.api.deletes == [{"grace_period_seconds": 0, "preconditions": {"uid": "uid-1"}}]
    h.worker.update(None)  # the API server removed it
    h.sync()
    assert h.worker.finished and not h.runtime.sandboxes and not h.runtime.containers


def test_pre_stop_hook_runs_first_and_eats_into_the_grace_period(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["drain"]}}}
    h.sync()
    cid = h.runtime.latest("c").id
    h.pod["metadata"].update(deletionTimestamp="2026-01-01T00:00:30Z",
                             deletionGracePeriodSeconds=10)
    h.sync()
    assert h.runtime.execs == [["drain"]]
    assert h.runtime.stops == [(cid, 7)]  # 10 s grace - 3 s of hook


def test_failed_post_start_hook_kills_the_container(tmp_path: Path) -> None:
    h = Harness(tmp_path, terminationGracePeriodSeconds=5)
    h.pod["spec"]["containers"][0]["lifecycle"] = {"postStart": {"exec": {"command": ["x"]}}}
    h.runtime.exec_code = 1
    h.sync()
    reasons = h.recorder.reasons()
    assert reasons[:4] == ["Pulled", "Created", "Started", "FailedPostStartHook"]
    assert ("Killing", "FailedPostStartHook", "Normal") in h.recorder.events
    assert "hook said no" in h.recorder.events[3][1]
    assert h.runtime.latest("c").state == ContainerState.EXITED


def test_active_deadline_fails_the_pod(tmp_path: Path) -> None:
    h = Harness(tmp_path, activeDeadlineSeconds=30)
    h.pod["status"]["startTime"] = "2026-01-01T00:00:00Z"
    assert h.sync()["phase"] == "Running"
    h.clock.advance(30)
    status = h.sync()
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert h.runtime.latest("c").state == ContainerState.EXITED
    assert "DeadlineExceeded" in h.recorder.reasons()


def test_config_map_volumes_follow_their_source(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    data = {"k": "v1"}

    async def get(res: Any, namespace: str, name: str) -> dict[str, Any]:
        return {"data": dict(data)}

    h.worker.ctx.volumes.get = get
    h.pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "cm"}}]
    h.sync()
    file = tmp_path / "pods" / "uid-1" / "volumes" / "kubernetes.io~configmap" / "cfg" / "k"
    assert file.read_text() == "v1"
    data["k"] = "v2"
    h.clock.advance(30)
    h.sync()
    assert file.read_text() == "v1"
    h.clock.advance(31)
    h.sync()
    assert file.read_text() == "v2"


def test_containers_get_service_variables_and_their_pod_ip(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.pod["spec"]["containers"][0]["env"] = [
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "WEB_API_SERVICE_PORT", "value": "override"}]
    h.sync()
    env = dict(ast.literal_eval(h.runtime.latest("c").annotations["env"]))
    assert env["MY_IP"] == "1.2.3.4"
    assert env["WEB_API_SERVICE_HOST"] == "10.96.0.7"
    assert env["WEB_API_SERVICE_PORT"] == "override"
    assert env["WEB_API_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_API_PORT_80_TCP"] == "tcp://10.96.0.7:80"
    assert env["WEB_API_PORT_80_TCP_ADDR"] == "10.96.0.7"


def test_a_new_worker_adopts_the_running_container(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    first = h.sync()
    cid = h.runtime.latest("c").id
    h.pod["status"] = first
    again = PodWorker(h.worker.ctx, h.pod)  # a kubelet restart: same runtime, new worker
    h.api.statuses.clear()
    asyncio.run(again.sync())
    assert [c.id for c in h.runtime.containers.values()] == [cid]
    assert h.api.statuses == []  # nothing changed, nothing written


def test_a_finished_pod_keeps_its_statuses_after_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path, restartPolicy="Never")
    h.sync()
    h.runtime.exit("c", 0)
    done = h.sync()
    assert done["phase"] == "Succeeded"
    h.pod["status"] = done
    settled = h.sync()  # finished: the sandbox is no longer ready to start containers
    assert {c["type"]: c["status"] for c in settled["conditions"]}[
        "PodReadyToStartContainers"] == "False"
    h.pod["status"] = settled
    h.api.statuses.clear()
    asyncio.run(PodWorker(h.worker.ctx, h.pod).sync())
    assert h.api.statuses == []
    assert len(h.runtime.containers) == 1


def test_an_image_change_replaces_the_running_container(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sync()
    old = h.runtime.latest("c")
    h.pod["spec"]["containers"][0]["image"] = "busybox:2"
    h.sync()  # killed: definition changed
    assert ("Killing", "Container c definition changed, will be restarted",
            "Normal") in h.recorder.events
    cs = h.container(h.sync())  # and restarted with the new image
    new = h.runtime.latest("c")
    assert new.id != old.id and new.image == "busybox:2"
    assert "running" in cs["state"] and cs["restartCount"] == 1


def test_pull_policy_always_pulls_a_present_image(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.pod["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    h.sync()
    assert h.runtime.pulls == ["busybox:1"]
    assert h.recorder.reasons()[:2] == ["Pulling", "Pulled"]
    assert h.recorder.events[1][1].startswith('Successfully pulled image "busybox:1" in ')


def test_if_not_present_uses_the_cached_image(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.pod["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    h.sync()
    assert h.runtime.pulls == []
    assert h.recorder.events[0] == (
        "Pulled", 'Container image "busybox:1" already present on machine', "Normal")


def test_a_failed_pull_backs_off_then_retries(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.runtime.missing_images.add("busybox:1")
    h.runtime.pull_errors["busybox:1"] = "manifest unknown"
    cs = h.container(h.sync())
    assert cs["state"]["waiting"] == {"reason": "ErrImagePull", "message": "manifest unknown"}
    assert ("Failed", 'Failed to pull image "busybox:1": manifest unknown', "Warning") \
        in h.recorder.events
    assert ("Failed", "Error: ErrImagePull", "Warning") in h.recorder.events
    h.clock.advance(1)
    cs = h.container(h.sync())
    assert cs["state"]["waiting"] == {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "busybox:1": ErrImagePull: manifest unknown'}
    assert h.runtime.pulls == ["busybox:1"]  # no pull while backing off
    assert ("BackOff", 'Back-off pulling image "busybox:1"', "Normal") in h.recorder.events
    events = len(h.recorder.events)
    h.clock.advance(1)
    h.sync()
    assert len(h.recorder.events) == events  # one report per back-off, not per sync
    h.clock.advance(10)  # the first back-off is 10 s
    del h.runtime.pull_errors["busybox:1"]
    cs = h.container(h.sync())
    assert h.runtime.pulls == ["busybox:1", "busybox:1"]
    assert "running" in cs["state"]


def test_never_with_a_missing_image_waits_without_pulling(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.runtime.missing_images.add("busybox:1")
    h.pod["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    cs = h.container(h.sync())
    assert cs["state"]["waiting"] == {
        "reason": "ErrImageNeverPull",
        "message": 'Container image "busybox:1" is not present with pull policy of Never'}
    h.sync()
    assert h.runtime.pulls == []
    assert h.recorder.reasons().count("ErrImageNeverPull") == 1


def test_a_sandbox_waits_for_the_network(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    real = h.runtime.run_pod_sandbox
    ready = False

    async def run_pod_sandbox(config: PodSandboxConfig) -> str:
        if not ready:
            raise RuntimeOperationError("NetworkNotReady", "network is not ready: no CIDR")
        return await real(config)

    h.runtime.run_pod_sandbox = run_pod_sandbox  # type: ignore[method-assign]
    h.sync()
    h.sync()
    assert h.recorder.events == [("NetworkNotReady", "network is not ready: no CIDR",
                                  "Warning")]
    assert not h.runtime.sandboxes
    ready = True
    status = h.sync()
    assert status["phase"] == "Running" and status["podIP"] == "1.2.3.4"


def test_the_termination_message_comes_from_the_mounted_file(tmp_path: Path) -> None:
    h = Harness(tmp_path, restartPolicy="Never")
    h.sync()
    c = h.runtime.latest("c")
    [mount] = [m for m in h.runtime.configs[c.id].mounts
               if m.container_path == "/dev/termination-log"]
    Path(mount.host_path).write_text("the reason I stopped")
    h.runtime.exit("c", 3)
    h.clock.advance(1)
    state = h.container(h.sync())["state"]["terminated"]
    assert (state["exitCode"], state["message"]) == (3, "the reason I stopped")


def test_fallback_to_logs_on_error_uses_the_end_of_the_log(tmp_path: Path) -> None:
    h = Harness(tmp_path, restartPolicy="Never")
    h.pod["spec"]["containers"][0].update(terminationMessagePolicy="FallbackToLogsOnError",
                                          terminationMessagePath="/tmp/msg")
    h.sync()
    c = h.runtime.latest("c")
    assert [m.container_path for m in h.runtime.configs[c.id].mounts] == ["/tmp/msg"]
    lines = b"".join(b"2026-01-01T00:00:00.000000000Z stderr F line %d\n" % i
                     for i in range(100))
    Path(c.log_path).write_bytes(lines)
    h.runtime.exit("c", 1)
    h.clock.advance(1)
    message = h.container(h.sync())["state"]["terminated"]["message"]
    assert message.startswith("line 20\n") and message.endswith("line 99\n")
