"""hostPort through the CNI portmap plugin: a pod's port is reachable at the node's
``127.0.0.1:hostPort`` and at the bridge address, and stopping the sandbox -- even from a
new runtime instance, from what ``sandbox.json`` kept -- removes the pod's rules.

Needs root, runc and Debian's containernetworking-plugins (portmap writes iptables-nft
rules here). Each test uses its own bridge, subnet and a free host port, without
masquerading. Afterwards the bridge goes, ``net.ipv4.ip_forward`` is restored, and the
chains portmap shares between pods (``CNI-HOSTPORT-*``, which its DEL leaves behind, as
upstream) are removed with the nat tables, unless they were there before the test."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime import ContainerConfig, PodSandboxConfig, PortMapping, remove_everything
from pyk8s.runtime.images import ImageStore, import_archive
from pyk8s.runtime.oci import OciRuntime
from pyk8s.runtime.oci.cni import CniConfig
from tests.hostnet import HostNetworkGuard, nat_rules
from tests.make_test_image import busybox_image, write_docker_archive

CNI_BIN = Path("/usr/lib/cni")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces, bridges, iptables "
                       "and runc need root; CI runs these as root"),
    pytest.mark.skipif(not (CNI_BIN / "portmap").exists() or not shutil.which("iptables"),
                       reason="needs containernetworking-plugins (portmap) and iptables"),
]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    root = tmp_path_factory.mktemp("hostport-images")
    write_docker_archive(busybox_image(), root / "busybox.tar", ["busybox:latest"])
    store = ImageStore(root / "store")
    import_archive(store, root / "busybox.tar")
    return store


def free_port() -> int:
    for _ in range(50):
        port = random.randrange(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        if not any(f"--dport {port} " in rule for rule in nat_rules()):
            return port
    raise AssertionError("no free port")


@pytest.fixture
def rt(tmp_path: Path, images: ImageStore) -> Iterator[OciRuntime]:
    bridge = f"pyk8sh{uuid.uuid4().hex[:6]}"
    subnet = f"10.252.{random.randrange(1, 250)}.0/24"
    runtime = OciRuntime(tmp_path / "state", images=images, network="cni",
                         cni=CniConfig(subnet=subnet, bridge=bridge, ip_masq=False))
    with HostNetworkGuard([bridge]):
        yield runtime
        run(remove_everything(runtime))


def http_get(host: str, port: int, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                chunks = []
                while chunk := conn.recv(4096):
                    chunks.append(chunk)
                body = b"".join(chunks)
                if body:
                    return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answered at {host}:{port}")
        time.sleep(0.1)


def serve(rt: OciRuntime, tmp_path: Path, host_port: int) -> str:
    async def go() -> str:
        sb = await rt.run_pod_sandbox(PodSandboxConfig(
            uuid.uuid4().hex[:8], "web", "ns", hostname="web",
            log_directory=str(tmp_path / "logs"),
            port_mappings=[PortMapping(container_port=8080, host_port=host_port)]))
        cid = await rt.create_container(sb, ContainerConfig("c", "busybox", command=[
            "sh", "-c", "echo hello-from-the-pod > /var/www/index.html; "
                        "exec httpd -f -p 8080 -h /var/www"]))
        await rt.start_container(cid)
        return sb
    return run(go())  # type: ignore[no-any-return]


def pod_rules(port: int) -> list[str]:
    return [r for r in nat_rules() if f"--dport {port} " in r or r.endswith(f"--dport {port}")]


def test_a_host_port_reaches_the_pod_from_the_node(rt: OciRuntime, tmp_path: Path) -> None:
    port = free_port()
    sb = serve(rt, tmp_path, port)
    assert rt._cni is not None
    gateway = str(next(ipaddress.ip_network(rt._cni.config.subnet).hosts()))
    assert b"hello-from-the-pod" in http_get("127.0.0.1", port)  # route_localnet + SNAT
    assert b"hello-from-the-pod" in http_get(gateway, port)
    assert pod_rules(port), "portmap wrote no DNAT rule"
    assert [r for r in nat_rules() if r.startswith("-N CNI-DN-")], "no per-pod chain"
    status = run(rt.pod_sandbox_status(sb))
    assert list(status.config.port_mappings) == [PortMapping(8080, port)]
    run(rt.stop_pod_sandbox(sb))
    assert pod_rules(port) == []
    assert not [r for r in nat_rules() if r.startswith("-N CNI-DN-")]


def test_a_new_runtime_instance_removes_the_rules_from_what_sandbox_json_kept(
        rt: OciRuntime, tmp_path: Path, images: ImageStore) -> None:
    port = free_port()
    sb = serve(rt, tmp_path, port)
    assert pod_rules(port)
    assert rt._cni is not None
    again = OciRuntime(rt.state_dir, images=images, network="cni", cni=rt._cni.config)
    run(again.remove_pod_sandbox(sb))
    assert pod_rules(port) == []
    assert run(again.list_pod_sandboxes()) == []
