"""The process runtime with real supervisor processes (each test cleans up what it started)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    Mount,
    PodSandboxConfig,
    Resources,
    RuntimeOperationError,
    names,
    open_runtime,
)
from pyk8s.runtime.logs import parse_record
from pyk8s.runtime.process import ProcessRuntime
from pyk8s.runtime.process.cgroups import v1_mounts

ROOT = os.geteuid() == 0


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(tmp_path / "state")
    yield runtime

    async def clean() -> None:
        for sb in await runtime.list_pod_sandboxes():
            await runtime.remove_pod_sandbox(sb.id)
    run(clean())


@pytest.fixture
def sandbox(rt: ProcessRuntime, tmp_path: Path) -> str:
    return run(rt.run_pod_sandbox(PodSandboxConfig(
        "uid-1", "p", "ns", hostname="p", log_directory=str(tmp_path / "logs"))))  # type: ignore[no-any-return]


def start(rt: ProcessRuntime, sandbox: str, script: str, **kw: Any) -> str:
    async def go() -> str:
        cid = await rt.create_container(sandbox, ContainerConfig(
            kw.pop("name", "c"), "busybox", command=["sh", "-c", script], **kw))
        await rt.start_container(cid)
        return cid
    return run(go())  # type: ignore[no-any-return]


def wait_exited(rt: ProcessRuntime, cid: str, timeout: float = 10) -> ContainerStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(rt.container_status(cid))
        if status.state == ContainerState.EXITED:
            return status  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("container did not exit")


class TestRegistry:
    def test_process_runtime_is_registered_by_name(self, tmp_path: Path) -> None:
        assert "process" in names()
        runtime = open_runtime("process", state_dir=tmp_path)
        assert runtime.info().version == "process://0.1"
        assert "no isolation" in runtime.info().isolation

    def test_unknown_runtime_is_a_clear_error(self) -> None:
        with pytest.raises(ValueError, match="unknown runtime 'nope'"):
            open_runtime("nope")


class TestLifecycle:
    def test_output_goes_to_a_cri_format_log_and_exit_code_is_recorded(
            self, rt: ProcessRuntime, sandbox: str) -> None:
        cid = start(rt, sandbox, "echo out; echo err >&2; printf partial; exit 3")
        status = wait_exited(rt, cid)
        assert (status.exit_code, status.reason) == (3, "Error")
        assert status.started_at and status.finished_at and status.finished_at >= status.started_at
        records = [parse_record(line) for line in Path(status.log_path).read_bytes().splitlines()]
        assert Path(status.log_path).name == "0.log"
        got = {(r.stream, r.content) for r in records if r}
        assert got == {("stdout", b"out"), ("stderr", b"err"), ("stdout", b"partial")}

    def test_success_is_completed(self, rt: ProcessRuntime, sandbox: str) -> None:
        status = wait_exited(rt, start(rt, sandbox, "true"))
        assert (status.exit_code, status.reason) == (0, "Completed")

    def test_a_container_without_command_cannot_be_created(self, rt: ProcessRuntime,
                                                           sandbox: str) -> None:
        with pytest.raises(RuntimeOperationError) as err:
            run(rt.create_container(sandbox, ContainerConfig("web", "nginx")))
        assert err.value.reason == "CreateContainerError"
        assert "process runtime" in err.value.message and "command" in err.value.message

    def test_a_missing_executable_is_a_start_error(self, rt: ProcessRuntime,
                                                   sandbox: str) -> None:
        async def go() -> str:
            cid = await rt.create_container(sandbox, ContainerConfig(
                "c", "x", command=["/no/such/binary"]))
            await rt.start_container(cid)
            return cid
        status = wait_exited(rt, run(go()))
        assert (status.exit_code, status.reason) == (128, "StartError")
        assert "/no/such/binary" in status.message

    def test_env_and_working_dir_are_the_containers_own(self, rt: ProcessRuntime,
                                                        sandbox: str, tmp_path: Path) -> None:
        work = tmp_path / "work"
        cid = start(rt, sandbox, 'echo "$GREETING $(pwd) $HOSTNAME $KUBELET_SECRET"',
                    env={"GREETING": "hi"}, working_dir=str(work))
        os.environ["KUBELET_SECRET"] = "leak"
        try:
            status = wait_exited(rt, cid)
        finally:
            del os.environ["KUBELET_SECRET"]
        line = parse_record(Path(status.log_path).read_bytes().splitlines()[0])
        assert line is not None and line.content.decode().split() == ["hi", str(work), "p"]


@pytest.mark.skipif(not ROOT, reason="a UTS namespace needs root")
def test_the_container_sees_the_pods_hostname(rt: ProcessRuntime, sandbox: str) -> None:
    cid = start(rt, sandbox, "hostname; sleep 30")
    time.sleep(0.3)
    assert run(rt.exec_sync(cid, ["hostname"], 5)).stdout == b"p\n"
    status = run(rt.container_status(cid))
    assert "stdout F p" in Path(status.log_path).read_text()


class TestStop:
    def test_sigterm_lets_the_container_exit_cleanly(self, rt: ProcessRuntime,
                                                     sandbox: str) -> None:
        cid = start(rt, sandbox, "trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done")
        time.sleep(0.2)
        started = time.monotonic()
        run(rt.stop_container(cid, 5))
        assert time.monotonic() - started < 2
        assert run(rt.container_status(cid)).exit_code == 0

    def test_sigkill_after_the_grace_period_for_the_whole_group(self, rt: ProcessRuntime,
                                                                sandbox: str) -> None:
        cid = start(rt, sandbox, "trap '' TERM; sleep 30 & sleep 30")
        time.sleep(0.2)
        started = time.monotonic()
        run(rt.stop_container(cid, 0.5))
        assert 0.4 < time.monotonic() - started < 3
        status = run(rt.container_status(cid))
        assert (status.exit_code, status.reason) == (137, "Error")


class TestReadoption:
    def test_a_new_runtime_instance_sees_and_controls_running_containers(
            self, rt: ProcessRuntime, sandbox: str) -> None:
        cid = start(rt, sandbox, "sleep 30")
        before = run(rt.container_status(cid))
        again = ProcessRuntime(rt.state_dir)
        [adopted] = run(again.list_containers(sandbox))
        assert adopted.id == cid and adopted.state == ContainerState.RUNNING
        assert adopted.started_at == before.started_at
        assert [s.id for s in run(again.list_pod_sandboxes())] == [sandbox]
        run(again.stop_container(cid, 1))
        assert run(rt.container_status(cid)).state == ContainerState.EXITED

    def test_the_supervisor_is_not_a_child_of_the_runtime(self, rt: ProcessRuntime,
                                                          sandbox: str) -> None:
        cid = start(rt, sandbox, "sleep 30")
        shim = int((rt.state_dir / "containers" / cid / "shim.pid").read_text())
        stat = Path(f"/proc/{shim}/stat").read_text()
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        assert ppid != os.getpid()


    def test_a_container_does_not_outlive_its_supervisor(self, rt: ProcessRuntime,
                                                         sandbox: str) -> None:
        cid = start(rt, sandbox, "sleep 30 & sleep 30")
        cdir = rt.state_dir / "containers" / cid
        shim = int((cdir / "shim.pid").read_text())
        main = json.loads((cdir / "state.json").read_text())["pid"]
        os.kill(shim, signal.SIGKILL)
        time.sleep(0.3)
        status = run(rt.container_status(cid))
        assert (status.state, status.exit_code, status.reason) == \
            (ContainerState.EXITED, 255, "Unknown")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(main):
            time.sleep(0.05)
        assert not _alive(main)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class TestExecAndStats:
    def test_exec_runs_in_the_containers_context(self, rt: ProcessRuntime,
                                                 sandbox: str) -> None:
        cid = start(rt, sandbox, "sleep 30", env={"X": "42"})
        result = run(rt.exec_sync(cid, ["sh", "-c", "echo $X; echo e >&2; exit 4"], 5))
        assert (result.exit_code, result.stdout, result.stderr) == (4, b"42\n", b"e\n")
        timed_out = run(rt.exec_sync(cid, ["sleep", "5"], 0.2))
        assert timed_out.timed_out

    def test_streaming_exec_with_stdin(self, rt: ProcessRuntime, sandbox: str) -> None:
        cid = start(rt, sandbox, "sleep 30")

        async def go() -> tuple[bytes, int]:
            proc = await rt.exec(cid, ["sh", "-c", "read x; echo got $x; exit 5"], stdin=True)
            await proc.write_stdin(b"hello\n")
            proc.close_stdin()
            out = await proc.stdout.read()
            return out, await proc.wait()
        assert run(go()) == (b"got hello\n", 5)

    def test_exec_with_a_terminal(self, rt: ProcessRuntime, sandbox: str) -> None:
        cid = start(rt, sandbox, "sleep 30")

        async def go() -> tuple[bytes, int]:
            proc = await rt.exec(cid, ["sh", "-c", "read x; tty >/dev/null && stty size; "
                                                   "echo got $x"], stdin=True, tty=True)
            proc.resize(100, 40)
            await proc.write_stdin(b"there\n")
            code = await proc.wait()
            return await proc.stdout.read(), code
        out, code = run(go())
        assert code == 0
        assert b"40 100" in out and b"got there" in out and b"\r\n" in out

    def test_stats_report_cpu_and_memory(self, rt: ProcessRuntime, sandbox: str) -> None:
        cid = start(rt, sandbox, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30")
        time.sleep(0.5)
        stats = run(rt.container_stats(cid))
        assert stats.cpu_usage_core_nanoseconds > 0
        assert stats.memory_usage_bytes > 0


def test_without_namespaces_a_container_with_volumes_is_refused(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path / "state", namespaces=False)
    sandbox = run(runtime.run_pod_sandbox(PodSandboxConfig("u", "p", "ns")))
    with pytest.raises(RuntimeOperationError) as err:
        run(runtime.create_container(sandbox, ContainerConfig(
            "c", "x", command=["true"], mounts=[Mount("/data", str(tmp_path))])))
    assert err.value.reason == "CreateContainerError"
    assert "only" in err.value.message and "root" in err.value.message
    assert run(runtime.list_containers(sandbox)) == []


@pytest.mark.skipif(not ROOT, reason="mount namespaces need root")
class TestVolumes:
    def test_volumes_are_bind_mounted_privately_and_read_only_is_enforced(
            self, rt: ProcessRuntime, sandbox: str, tmp_path: Path) -> None:
        vol = tmp_path / "vol"
        vol.mkdir()
        (vol / "f").write_text("data")
        target = tmp_path / "mnt" / "v"
        cid = start(rt, sandbox, f"cat {target}/f; echo; touch {target}/g; sleep 30",
                    mounts=[Mount(str(target), str(vol), read_only=True)])
        time.sleep(0.3)
        assert target.is_dir() and not (target / "f").exists()  # the host sees no mount
        result = run(rt.exec_sync(cid, ["cat", f"{target}/f"], 5))
        assert result.stdout == b"data"  # exec joins the container's mount namespace
        status = run(rt.container_status(cid))
        text = Path(status.log_path).read_text()
        assert "stdout F data" in text
        assert "Read-only file system" in text


@pytest.mark.skipif(not ROOT or "memory" not in v1_mounts(), reason="needs cgroup v1 memory")
def test_memory_limit_is_enforced_and_reported_as_oomkilled(rt: ProcessRuntime,
                                                            sandbox: str) -> None:
    cid = start(rt, sandbox, "head -c 200M /dev/zero | tail",
                resources=Resources(memory_limit_bytes=32 << 20))
    status = wait_exited(rt, cid)
    assert (status.exit_code, status.reason) == (137, "OOMKilled")


@pytest.mark.skipif(not ROOT or "pids" not in v1_mounts(), reason="needs cgroup v1 pids")
def test_a_pids_limit_stops_a_fork_bomb_at_the_limit(rt: ProcessRuntime, sandbox: str) -> None:
    cid = start(rt, sandbox, "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait",
                resources=Resources(pids_limit=4))
    status = wait_exited(rt, cid)
    log = Path(status.log_path).read_text()
    assert "fork" in log.lower() or "resource temporarily unavailable" in log.lower(), log
