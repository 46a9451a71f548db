"""securityContext on real runc containers: the user, a read-only root, capabilities,
privileged, seccomp, and runAsNonRoot refusing before anything runs.

Needs root and runc (CI runs these as root). Every test removes what it created; the
fixture checks that no mount, runc container or pod cgroup is left behind."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime import (
    ContainerConfig,
    PodSandboxConfig,
    RuntimeOperationError,
    SecurityContext,
    remove_everything,
)
from pyk8s.runtime.images import ImageStore, import_archive
from pyk8s.runtime.oci import OciRuntime
from pyk8s.runtime.oci.spec import host_capabilities
from tests.make_test_image import busybox_image, write_docker_archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runc containers, overlayfs and "
                                "namespaces need root; CI runs these as root")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    root = tmp_path_factory.mktemp("sec-images")
    write_docker_archive(busybox_image(), root / "busybox.tar", ["busybox:latest"])
    store = ImageStore(root / "store")
    import_archive(store, root / "busybox.tar")
    return store


@pytest.fixture
def rt(tmp_path: Path, images: ImageStore) -> Iterator[OciRuntime]:
    runtime = OciRuntime(tmp_path / "state", images=images)
    uid = uuid.uuid4().hex[:8]
    runtime.sandbox_id = run(runtime.run_pod_sandbox(PodSandboxConfig(  # type: ignore[attr-defined]
        uid, "sec", "ns", hostname="sec", log_directory=str(tmp_path / "logs"))))
    yield runtime
    run(remove_everything(runtime))
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(tmp_path) in line.split()[4]]
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/pyk8s/pod{uid}")]
    assert (mounts, cgroups) == ([], [])
    assert not any((tmp_path / "state" / "runc").iterdir()), "runc containers left behind"


def start(rt: OciRuntime, security: SecurityContext, name: str = "c") -> str:
    async def go() -> str:
        cid = await rt.create_container(rt.sandbox_id, ContainerConfig(  # type: ignore[attr-defined]
            name, "busybox", command=["sleep", "1000"], security=security))
        await rt.start_container(cid)
        return cid
    return run(go())  # type: ignore[no-any-return]


def sh(rt: OciRuntime, cid: str, script: str) -> tuple[int, str]:
    result = run(rt.exec_sync(cid, ["sh", "-c", script], 10))
    return result.exit_code, (result.stdout + result.stderr).decode().strip()


def status_field(rt: OciRuntime, cid: str, name: str) -> str:
    code, out = sh(rt, cid, f"grep '^{name}:' /proc/self/status")
    assert code == 0, out
    return out.split()[1]


def test_run_as_user_and_groups(rt: OciRuntime) -> None:
    cid = start(rt, SecurityContext(run_as_user=1000, supplemental_groups=(3000,)))
    assert sh(rt, cid, "id -u; id -g; id -G") == (0, "1000\n0\n0 3000")
    grouped = start(rt, SecurityContext(run_as_user=1000, run_as_group=2000), "g")
    assert sh(rt, grouped, "id -u; id -g") == (0, "1000\n2000")


def test_a_read_only_root_filesystem(rt: OciRuntime) -> None:
    cid = start(rt, SecurityContext(read_only_root_filesystem=True))
    code, out = sh(rt, cid, "touch /x")
    assert code != 0 and "Read-only file system" in out
    assert sh(rt, cid, "echo ok > /dev/shm/y && cat /dev/shm/y") == (0, "ok")


def test_drop_all_capabilities(rt: OciRuntime) -> None:
    cid = start(rt, SecurityContext(capabilities_drop=("ALL",)))
    assert status_field(rt, cid, "CapEff") == "0000000000000000"
    assert status_field(rt, cid, "CapBnd") == "0000000000000000"
    default = start(rt, SecurityContext(), "d")
    assert int(status_field(rt, default, "CapEff"), 16) == 0xa80425fb  # containerd's 14


def test_privileged_gets_the_hosts_capabilities_and_a_writable_sys(rt: OciRuntime) -> None:
    cid = start(rt, SecurityContext(privileged=True))
    host = Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0]
    assert status_field(rt, cid, "CapEff") == host
    assert len(host_capabilities()) == bin(int(host, 16)).count("1")
    assert sh(rt, cid, "grep ' /sys sysfs' /proc/mounts | grep -c rw,")[1] == "1"
    assert status_field(rt, cid, "Seccomp") == "0"


def test_runtime_default_seccomp_and_no_new_privileges(rt: OciRuntime) -> None:
    cid = start(rt, SecurityContext(seccomp="RuntimeDefault", no_new_privileges=True))
    assert status_field(rt, cid, "Seccomp") == "2"
    assert status_field(rt, cid, "NoNewPrivs") == "1"
    assert sh(rt, cid, "ls / >/dev/null && (echo sub) && echo ok")[1] == "sub\nok"
    # A user namespace needs no capability; the profile refuses it (unshare without
    # CAP_SYS_ADMIN), where the same container unconfined may make one.
    code, out = sh(rt, cid, "unshare -U true")
    assert code != 0 and "Operation not permitted" in out
    unconfined = start(rt, SecurityContext(), "u")
    assert status_field(rt, unconfined, "Seccomp") == "0"
    assert sh(rt, unconfined, "unshare -U true") == (0, "")
    # Without no_new_privs runc installs the filter while it still holds CAP_SYS_ADMIN.
    escalating = start(rt, SecurityContext(seccomp="RuntimeDefault"), "e")
    assert (status_field(rt, escalating, "Seccomp"),
            status_field(rt, escalating, "NoNewPrivs")) == ("2", "0")


def test_run_as_non_root_refuses_a_root_image(rt: OciRuntime) -> None:
    with pytest.raises(RuntimeOperationError, match="image will run as root") as info:
        start(rt, SecurityContext(run_as_non_root=True))
    assert info.value.reason == "CreateContainerConfigError"
    assert "(pod: \"sec_ns(" in info.value.message
    assert run(rt.list_containers()) == []
    cid = start(rt, SecurityContext(run_as_non_root=True, run_as_user=65534), "ok")
    assert sh(rt, cid, "id -un") == (0, "nobody")
