"""Pod networking with the CNI bridge plugin: pods get their own IPs from the node's pod
CIDR, reach each other and are reached from the node; removing a pod frees its IP.

Needs root, runc and Debian's containernetworking-plugins. Each test uses its own bridge
and subnet, without masquerading (no iptables rules), and deletes the bridge afterwards;
``net.ipv4.ip_forward`` (which the plugin turns on) is restored."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime import ContainerConfig, ContainerState, PodSandboxConfig, remove_everything
from pyk8s.runtime.images import ImageStore, import_archive
from pyk8s.runtime.logs import parse_record
from pyk8s.runtime.oci import OciRuntime
from pyk8s.runtime.oci.cni import CniConfig
from tests.make_test_image import busybox_image, write_docker_archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces, bridges and "
                                "runc need root; CI runs these as root")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    root = tmp_path_factory.mktemp("net-images")
    write_docker_archive(busybox_image(), root / "busybox.tar", ["busybox:latest"])
    store = ImageStore(root / "store")
    import_archive(store, root / "busybox.tar")
    return store


@pytest.fixture
def rt(tmp_path: Path, images: ImageStore) -> Iterator[OciRuntime]:
    bridge = f"pyk8st{uuid.uuid4().hex[:6]}"
    subnet = f"10.251.{random.randrange(1, 250)}.0/24"
    forward = IP_FORWARD.read_text()
    runtime = OciRuntime(tmp_path / "state", images=images, network="cni",
                         cni=CniConfig(subnet=subnet, bridge=bridge, ip_masq=False))
    try:
        yield runtime
        run(remove_everything(runtime))
        reserved = [p.name for p in (tmp_path / "state/cni/pyk8s").iterdir()
                    if p.name[0].isdigit() and not p.name.startswith("last_reserved")]
        assert reserved == [], "IP reservations left behind"
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        IP_FORWARD.write_text(forward)


def pod(rt: OciRuntime, tmp_path: Path, name: str, command: list[str]) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        sb = await rt.run_pod_sandbox(PodSandboxConfig(
            uuid.uuid4().hex[:8], name, "ns", hostname=name,
            log_directory=str(tmp_path / "logs" / name)))
        cid = await rt.create_container(sb, ContainerConfig("c", "busybox", command=command))
        await rt.start_container(cid)
        return sb, cid
    return run(go())  # type: ignore[no-any-return]


def test_pods_get_ips_and_reach_each_other_and_the_node_reaches_them(
        rt: OciRuntime, tmp_path: Path) -> None:
    serve = ["sh", "-c", "echo from-$(hostname) > /var/www/index.html; grep a$ /etc/hosts; "
                         "exec httpd -f -p 8080 -h /var/www"]
    sb_a, _ = pod(rt, tmp_path, "a", serve)
    ip_a = run(rt.pod_sandbox_status(sb_a)).ip
    assert rt._cni is not None
    assert ipaddress.ip_address(ip_a) in ipaddress.ip_network(rt._cni.config.subnet)
    _, client = pod(rt, tmp_path, "b", ["sh", "-c", f"for i in 1 2 3 4 5 6 7 8 9 10; do "
                                                   f"wget -qO- http://{ip_a}:8080/ && exit 0; "
                                                   "sleep 0.2; done; exit 1"])
    deadline = time.monotonic() + 15
    while (status := run(rt.container_status(client))).state != ContainerState.EXITED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lines = [r.content for r in map(parse_record, Path(status.log_path).read_bytes()
                                    .splitlines()) if r]
    assert (status.exit_code, lines) == (0, [b"from-a"])
    with urllib.request.urlopen(f"http://{ip_a}:8080/", timeout=5) as resp:
        assert resp.read() == b"from-a\n"
    server_log = (tmp_path / "logs" / "a" / "c" / "0.log").read_bytes()
    assert f"{ip_a}\ta".encode() in server_log  # the pod's IP is in its /etc/hosts


def test_removing_a_pod_frees_its_ip(rt: OciRuntime, tmp_path: Path) -> None:
    sb, _ = pod(rt, tmp_path, "solo", ["sleep", "1000"])
    ip = run(rt.pod_sandbox_status(sb)).ip
    assert (tmp_path / "state/cni/pyk8s" / ip).exists()
    run(rt.remove_pod_sandbox(sb))
    assert not (tmp_path / "state/cni/pyk8s" / ip).exists()
    assert run(rt.list_pod_sandboxes()) == []
