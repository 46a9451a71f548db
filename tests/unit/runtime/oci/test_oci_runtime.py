"""The ``oci`` runtime with real runc containers from a locally built busybox image.

Needs root, runc and overlayfs (CI has them: Debian packages runc and busybox-static).
Every test removes what it created; the fixture checks that no mount, runc container or
cgroup is left behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
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
    remove_everything,
)
from pyk8s.runtime.images import ImageStore, import_archive
from pyk8s.runtime.logs import parse_record
from pyk8s.runtime.oci import OciRuntime
from tests.make_test_image import busybox_layer, image, write_docker_archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runc containers, overlayfs and "
                                "namespaces need root; CI runs these as root")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    root = tmp_path_factory.mktemp("oci-images")
    store = ImageStore(root / "store")
    bb = busybox_layer()
    write_docker_archive(image([bb], cmd=["sh"]), root / "busybox.tar", ["busybox:latest"])
    write_docker_archive(image([bb], entrypoint=["/bin/echo", "entry"], cmd=["from-cmd"],
                               env=["PATH=/bin", "FOO=image", "KEEP=kept"],
                               working_dir="/tmp"),
                         root / "echo.tar", ["example.com/echo:1"])
    import_archive(store, root / "busybox.tar")
    import_archive(store, root / "echo.tar")
    return store


def _leftovers(tmp_path: Path, pod_uids: list[str]) -> list[str]:
    found = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if str(tmp_path) in line.split()[4]]
    for uid in pod_uids:
        for base in Path("/sys/fs/cgroup").iterdir():
            for candidate in (base / "pyk8s" / f"pod{uid}", base / "unified"):
                if candidate.name.startswith("pod") and candidate.exists():
                    found.append(str(candidate))
    return found


@pytest.fixture
def rt(tmp_path: Path, images: ImageStore) -> Iterator[OciRuntime]:
    runtime = OciRuntime(tmp_path / "state", images=images)
    runtime.pod_uids = []  # type: ignore[attr-defined]
    yield runtime
    run(remove_everything(runtime))
    assert _leftovers(tmp_path, runtime.pod_uids) == []  # type: ignore[attr-defined]
    assert not any((tmp_path / "state" / "runc").iterdir()), "runc containers left behind"


def sandbox(rt: OciRuntime, tmp_path: Path, hostname: str = "pod-a") -> str:
    uid = uuid.uuid4().hex[:8]
    rt.pod_uids.append(uid)  # type: ignore[attr-defined]
    return run(rt.run_pod_sandbox(PodSandboxConfig(  # type: ignore[no-any-return]
        uid, hostname, "ns", hostname=hostname, log_directory=str(tmp_path / "logs"))))


def start(rt: OciRuntime, sb: str, image_name: str = "busybox", **kw: Any) -> str:
    async def go() -> str:
        assert await rt.image_status(image_name)  # imported: pull_image would go online
        cid = await rt.create_container(sb, ContainerConfig(kw.pop("name", "c"), image_name,
                                                            **kw))
        await rt.start_container(cid)
        return cid
    return run(go())  # type: ignore[no-any-return]


def wait_exited(rt: OciRuntime, cid: str, timeout: float = 10) -> ContainerStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(rt.container_status(cid))
        if status.state == ContainerState.EXITED:
            return status  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("container did not exit")


def log_lines(status: ContainerStatus) -> list[str]:
    records = [parse_record(line) for line in Path(status.log_path).read_bytes().splitlines()]
    return [r.content.decode() for r in records if r is not None]


def test_registered_as_oci(tmp_path: Path, images: ImageStore) -> None:
    assert "oci" in names()
    runtime = open_runtime("oci", state_dir=tmp_path / "s", images=images, host_ip="10.0.0.1")
    assert runtime.info().version == "oci://0.1"


class TestRunning:
    def test_echo_hello_in_its_own_pid_namespace_and_rootfs(self, rt: OciRuntime,
                                                            tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        cid = start(rt, sb, command=["sh", "-c", "echo hello; echo pid=$$; hostname; "
                                                 "ls /bin/busybox; test -e /work && echo HOST; true"])
        status = wait_exited(rt, cid)
        assert (status.exit_code, status.reason) == (0, "Completed")
        assert log_lines(status) == ["hello", "pid=1", "pod-a", "/bin/busybox"]
        assert status.image_ref.startswith("docker.io/library/busybox@sha256:")

    def test_the_images_entrypoint_env_and_working_dir(self, rt: OciRuntime,
                                                       tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        default = start(rt, sb, "example.com/echo:1", name="default")
        override = start(rt, sb, "example.com/echo:1", name="args", args=["from-pod"])
        shell = start(rt, sb, "example.com/echo:1", name="sh",
                      command=["sh", "-c", "echo $FOO $KEEP $(pwd)"], env={"FOO": "pod"})
        assert log_lines(wait_exited(rt, default)) == ["entry from-cmd"]
        assert log_lines(wait_exited(rt, override)) == ["entry from-pod"]
        assert log_lines(wait_exited(rt, shell)) == ["pod kept /tmp"]

    def test_exit_codes_and_a_missing_executable(self, rt: OciRuntime, tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        assert wait_exited(rt, start(rt, sb, command=["sh", "-c", "exit 3"])).exit_code == 3
        with pytest.raises(RuntimeOperationError, match=r"nope.*no such file") as info:
            start(rt, sb, name="bad", command=["/nope"])
        assert info.value.reason == "RunContainerError"

    def test_volumes_are_bind_mounted(self, rt: OciRuntime, tmp_path: Path) -> None:
        vol = tmp_path / "vol"
        vol.mkdir()
        (vol / "in").write_text("from host")
        sb = sandbox(rt, tmp_path)
        cid = start(rt, sb, command=["sh", "-c", "cat /data/in; echo out > /data/out"],
                    mounts=[Mount("/data", str(vol))])
        assert log_lines(wait_exited(rt, cid)) == ["from host"]
        assert (vol / "out").read_text() == "out\n"

    def test_a_memory_limit_gives_oomkilled(self, rt: OciRuntime, tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        cid = start(rt, sb, command=["sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a)"],
                    resources=Resources(memory_limit_bytes=16 << 20))
        status = wait_exited(rt, cid, 20)
        assert (status.reason, status.exit_code) == ("OOMKilled", 137)


class TestStopping:
    def test_sigterm_first(self, rt: OciRuntime, tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        cid = start(rt, sb, command=["sh", "-c", "trap 'echo bye; exit 0' TERM; "
                                                 "while true; do sleep 0.1; done"])
        time.sleep(0.3)
        started = time.monotonic()
        run(rt.stop_container(cid, 10))
        status = run(rt.container_status(cid))
        assert time.monotonic() - started < 5
        assert status.exit_code == 0 and "bye" in log_lines(status)

    def test_then_sigkill_after_the_grace_period(self, rt: OciRuntime, tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        cid = start(rt, sb, command=["sleep", "1000"])  # PID 1 ignores an unhandled SIGTERM
        started = time.monotonic()
        run(rt.stop_container(cid, 0.5))
        status = run(rt.container_status(cid))
        assert time.monotonic() - started >= 0.5
        assert (status.state, status.exit_code) == (ContainerState.EXITED, 137)


class TestSupervision:
    def test_containers_survive_a_new_runtime_instance(self, rt: OciRuntime,
                                                       tmp_path: Path, images: ImageStore
                                                       ) -> None:
        sb = sandbox(rt, tmp_path)
        cid = start(rt, sb, command=["sleep", "1000"])
        again = OciRuntime(rt.state_dir, images=images)
        status = run(again.container_status(cid))
        assert status.state == ContainerState.RUNNING
        assert [s.id for s in run(again.list_pod_sandboxes())] == [sb]
        run(again.stop_container(cid, 0))
        assert run(rt.container_status(cid)).exit_code == 137


    def test_containers_outlive_the_process_that_started_them(
            self, rt: OciRuntime, tmp_path: Path, images: ImageStore) -> None:
        script = f"""
import asyncio, os
from pyk8s.runtime import ContainerConfig, PodSandboxConfig
from pyk8s.runtime.images import ImageStore
from pyk8s.runtime.oci import OciRuntime

async def main():
    rt = OciRuntime({str(rt.state_dir)!r}, images=ImageStore({str(images.root)!r}))
    sb = await rt.run_pod_sandbox(PodSandboxConfig("k1", "p", "ns", hostname="p",
                                                   log_directory={str(tmp_path / "logs")!r}))
    cid = await rt.create_container(sb, ContainerConfig("c", "busybox",
                                                        command=["sleep", "1000"]))
    await rt.start_container(cid)
    print(cid, flush=True)
    os._exit(0)  # like a kubelet killed -9

asyncio.run(main())
"""
        rt.pod_uids.append("k1")  # type: ignore[attr-defined]
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=30, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  p for p in sys.path if p)})
        cid = proc.stdout.strip()
        assert proc.returncode == 0, proc.stderr
        time.sleep(0.2)
        status = run(rt.container_status(cid))
        assert status.state == ContainerState.RUNNING
        assert run(rt.exec_sync(cid, ["true"], 5)).exit_code == 0


class TestExecStatsPortForward:
    def test_exec_runs_in_the_container(self, rt: OciRuntime, tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path, hostname="exec-pod")
        cid = start(rt, sb, command=["sleep", "1000"])
        result = run(rt.exec_sync(cid, ["sh", "-c", "hostname; cat /proc/1/cmdline; exit 4"],
                                  5))
        assert result.exit_code == 4
        assert result.stdout.decode().split("\n")[0] == "exec-pod"
        assert result.stdout.decode().split("\n")[1].startswith("sleep")

    def test_stats_come_from_the_containers_cgroups(self, rt: OciRuntime,
                                                    tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        cid = start(rt, sb, command=["sh", "-c", "i=0; while [ $i -lt 30000 ]; do "
                                                 "i=$((i+1)); done; sleep 1000"])
        time.sleep(0.5)
        stats = run(rt.container_stats(cid))
        assert stats.cpu_usage_core_nanoseconds > 1_000_000
        assert stats.memory_usage_bytes > 0

    def test_port_forward_reaches_the_pods_loopback(self, rt: OciRuntime,
                                                    tmp_path: Path) -> None:
        sb = sandbox(rt, tmp_path)
        start(rt, sb, command=["sh", "-c", "echo hi-from-pod > /var/www/index.html; "
                                           "exec httpd -f -p 127.0.0.1:8080 -h /var/www"])

        async def get() -> bytes:
            for _ in range(50):
                try:
                    reader, writer = await rt.port_forward(sb, 8080)
                    break
                except RuntimeOperationError:
                    await asyncio.sleep(0.05)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            body = await reader.read()
            writer.close()
            return body
        assert b"hi-from-pod" in run(get())
        with pytest.raises(RuntimeOperationError, match="failed to connect to localhost:9"):
            run(rt.port_forward(sb, 9))
