"""Node IPAM end to end: ``pyk8s apiserver`` and ``pyk8s controller-manager`` (only the
nodeipam controller, with the --cluster-cidr and --node-cidr-mask-size flags) as child
processes, nodes registered with the real kubectl, pod CIDRs read back with its jsonpath.

The tests share one cluster and run in order; each names its own nodes and checks what holds
across all of them (every block distinct), so they do not depend on one another's nodes.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster

CLUSTER_CIDR = ipaddress.ip_network("10.244.0.0/16")
FORBIDDEN = ('spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" '
             'to valid')


class ControllerManager:
    """``pyk8s controller-manager`` as a child process, as a user starts it."""

    def __init__(self, kubeconfig: Path, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        offset = log.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", "controller-manager",
             "--kubeconfig", str(self.kubeconfig), "--no-leader-elect",
             "--controllers", "nodeipam", "--allocate-node-cidrs",
             "--cluster-cidr", str(CLUSTER_CIDR), "--node-cidr-mask-size", "24"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller-manager exited: {self.log_path.read_text()[-3000:]}")
            if b"running against" in self.log_path.read_bytes()[offset:]:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"controller-manager not running: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def ipam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, ControllerManager]]:
    data_dir = tmp_path_factory.mktemp("nodeipam")
    server = Cluster(data_dir)
    server.start()
    manager = ControllerManager(server.kubeconfig, data_dir / "controller-manager.log")
    try:
        manager.start()
        yield server, manager
    finally:
        manager.stop()
        server.stop()


def register(cluster: Cluster, *names: str, pod_cidr: str = "",
             check: bool = True) -> subprocess.CompletedProcess[str]:
    spec = f"spec: {{podCIDR: {pod_cidr}}}\n" if pod_cidr else ""
    docs = "".join(f"---\napiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n{spec}"
                   for n in names)
    return cluster.kubectl("create", "-f", "-", input=docs, check=check)


def pod_cidrs(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """Node name → (spec.podCIDR, spec.podCIDRs[0]), as kubectl's jsonpath prints them."""
    out = cluster.kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}"
                          "{\" \"}{.spec.podCIDR}{\" \"}{.spec.podCIDRs[0]}{\"\\n\"}{end}").stdout
    result = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" ")
        single, _, first = rest.partition(" ")
        result[name] = (single, first)
    return result


def wait_for(cluster: Cluster, names: tuple[str, ...],
             done: Callable[[dict[str, tuple[str, str]]], bool] | None = None,
             timeout: float = 20.0) -> dict[str, str]:
    """Wait until every node in ``names`` has a pod CIDR; every node's CIDR by name."""
    deadline = time.monotonic() + timeout
    while True:
        current = pod_cidrs(cluster)
        if all(current.get(n, ("", ""))[0] for n in names) and (done is None or done(current)):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no pod CIDR for some of {names}: {current}")
        time.sleep(0.1)
    for name, (single, first) in current.items():
        assert single == first, f"{name}: podCIDR {single} but podCIDRs[0] {first}"
    return {name: single for name, (single, _) in current.items()}


def assert_distinct_blocks(cidrs: dict[str, str]) -> None:
    inside = [c for c in cidrs.values() if c and ipaddress.ip_network(c).subnet_of(CLUSTER_CIDR)]  # type: ignore[arg-type]
    assert len(inside) == len(set(inside)), f"a block handed out twice: {cidrs}"
    for cidr in inside:
        assert ipaddress.ip_network(cidr).prefixlen == 24


def test_each_node_gets_its_own_24_inside_the_cluster_cidr(ipam: tuple[Cluster, ControllerManager]) -> None:
    cluster, _ = ipam
    names = ("node-a", "node-b", "node-c")
    register(cluster, *names)
    cidrs = wait_for(cluster, names)
    for name in names:
        net = ipaddress.ip_network(cidrs[name])
        assert net.subnet_of(CLUSTER_CIDR) and net.prefixlen == 24, cidrs  # type: ignore[arg-type]
    assert len({cidrs[n] for n in names}) == 3
    assert_distinct_blocks(cidrs)


def test_a_deleted_nodes_block_is_reused(ipam: tuple[Cluster, ControllerManager]) -> None:
    cluster, _ = ipam
    register(cluster, "reuse-1", "reuse-2")
    before = wait_for(cluster, ("reuse-1", "reuse-2"))
    freed = before["reuse-1"]
    cluster.kubectl("delete", "node", "reuse-1")
    register(cluster, "reuse-3")
    after = wait_for(cluster, ("reuse-3",))
    assert "reuse-1" not in after
    assert after["reuse-3"] == freed, "the lowest free block is the one just freed"
    assert after["reuse-2"] == before["reuse-2"]
    assert_distinct_blocks(after)


def test_pod_cidr_may_not_be_changed_once_set(ipam: tuple[Cluster, ControllerManager]) -> None:
    cluster, _ = ipam
    register(cluster, "fixed")
    cidr = wait_for(cluster, ("fixed",))["fixed"]
    result = cluster.kubectl(
        "patch", "node", "fixed", "--type", "merge", "-v=6", "-p",
        '{"spec":{"podCIDR":"10.244.250.0/24","podCIDRs":["10.244.250.0/24"]}}', check=False)
    assert result.returncode != 0
    assert f'The Node "fixed" is invalid: {FORBIDDEN}' in result.stderr
    assert "422 Unprocessable Entity" in result.stderr
    cleared = cluster.kubectl("patch", "node", "fixed", "--type", "json", "-p",
                              '[{"op":"remove","path":"/spec/podCIDRs"},'
                              '{"op":"remove","path":"/spec/podCIDR"}]', check=False)
    assert FORBIDDEN in cleared.stderr
    same = cluster.kubectl("patch", "node", "fixed", "--type", "merge", "-p",
                           f'{{"spec":{{"podCIDR":"{cidr}"}}}}')
    assert same.returncode == 0, "setting the value it has is no change"
    assert pod_cidrs(cluster)["fixed"] == (cidr, cidr)


def test_pod_cidr_must_be_a_cidr(ipam: tuple[Cluster, ControllerManager]) -> None:
    cluster, _ = ipam
    result = register(cluster, "bad-cidr", pod_cidr="10.244.1.0/33", check=False)
    assert result.returncode != 0
    assert ('The Node "bad-cidr" is invalid: spec.podCIDRs[0]: Invalid value: '
            '[]string{"10.244.1.0/33"}: must be valid CIDR') in result.stderr


def test_a_pod_cidr_outside_the_cluster_cidr_is_left_alone(
        ipam: tuple[Cluster, ControllerManager]) -> None:
    cluster, _ = ipam
    register(cluster, "own-range", pod_cidr="192.168.7.0/24")
    register(cluster, "after-own-range")
    cidrs = wait_for(cluster, ("after-own-range",))  # the controller has seen both
    assert cidrs["own-range"] == "192.168.7.0/24"
    assert_distinct_blocks(cidrs)


def test_restart_allocates_no_block_twice(ipam: tuple[Cluster, ControllerManager]) -> None:
    cluster, manager = ipam
    manager.stop()
    register(cluster, "while-down")
    assert pod_cidrs(cluster)["while-down"] == ("", "")
    manager.start()
    cidrs = wait_for(cluster, ("while-down",))
    register(cluster, "after-restart")
    cidrs = wait_for(cluster, ("after-restart",))
    assert_distinct_blocks(cidrs)
    assert all(cidrs.values()), cidrs
