"""The release flow of a whole one-node cluster (``pyk8s server``), judged by kubectl:
kubectl → API server → controller creates pods → scheduler binds them → kubelet runs them
→ status back through the API server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, free_port


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = Cluster(tmp_path_factory.mktemp("node-cluster"), command="server",
                     extra_args=("--kubelet-port", str(free_port()), "--node-name", "node-1"))
    server.start()
    yield server
    server.stop()
    server.kill_workloads()


@pytest.fixture
def ns(node_cluster: Cluster) -> str:
    name = "flow-" + uuid.uuid4().hex[:6]
    node_cluster.kubectl("create", "namespace", name)
    return name


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.3):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def pods(cluster: Cluster, ns: str, selector: str = "") -> list[dict]:
    args = ["get", "pods", "-n", ns, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(cluster.kubectl(*args).stdout)["items"]


def test_node_registers_ready(node_cluster: Cluster) -> None:
    def ready() -> bool:
        out = node_cluster.kubectl("get", "nodes", "--no-headers").stdout.split()
        return out[:2] == ["node-1", "Ready"]

    wait_for(ready)
    assert "leases" not in node_cluster.kubectl("get", "lease", "node-1", "-n", "kube-node-lease",
                                                check=False).stderr


def test_deployment_runs_pods_and_logs_flow_back(node_cluster: Cluster, ns: str) -> None:
    node_cluster.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=2", "-n", ns,
                         "--", "sh", "-c", "echo hello from $HOSTNAME; sleep 600")
    node_cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=90)
    running = pods(node_cluster, ns, "app=web")
    assert len(running) == 2
    for pod in running:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == "node-1"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    name = running[0]["metadata"]["name"]
    logs = wait_for(lambda: node_cluster.kubectl("logs", name, "-n", ns).stdout)
    assert f"hello from {name}" in logs


def test_scale_rollout_and_undo(node_cluster: Cluster, ns: str) -> None:
    k = node_cluster.kubectl
    k("create", "deployment", "app", "--image=busybox", "-n", ns, "--", "sleep", "600")
    k("rollout", "status", "deployment/app", "-n", ns, "--timeout=60s", timeout=90)
    k("scale", "deployment", "app", "--replicas=3", "-n", ns)
    k("rollout", "status", "deployment/app", "-n", ns, "--timeout=60s", timeout=90)
    assert len(pods(node_cluster, ns, "app=app")) == 3
    k("set", "image", "deployment/app", "busybox=busybox:1.37", "-n", ns)
    k("rollout", "status", "deployment/app", "-n", ns, "--timeout=90s", timeout=120)
    images = {p["spec"]["containers"][0]["image"] for p in pods(node_cluster, ns, "app=app")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"busybox:1.37"}
    history = k("rollout", "history", "deployment/app", "-n", ns).stdout
    assert "1 " in history and "2 " in history
    k("rollout", "undo", "deployment/app", "-n", ns)
    k("rollout", "status", "deployment/app", "-n", ns, "--timeout=90s", timeout=120)
    deploy = json.loads(k("get", "deployment", "app", "-n", ns, "-o", "json").stdout)
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"


def test_delete_deployment_collects_its_pods(node_cluster: Cluster, ns: str) -> None:
    k = node_cluster.kubectl
    k("create", "deployment", "gone", "--image=busybox", "--replicas=2", "-n", ns, "--", "sleep", "600")
    k("rollout", "status", "deployment/gone", "-n", ns, "--timeout=60s", timeout=90)
    k("delete", "deployment", "gone", "-n", ns, timeout=60)
    wait_for(lambda: not pods(node_cluster, ns, "app=gone")
             and not json.loads(k("get", "rs", "-n", ns, "-o", "json").stdout)["items"], timeout=60)


def test_crashing_container_backs_off(node_cluster: Cluster, ns: str) -> None:
    k = node_cluster.kubectl
    k("run", "crash", "--image=busybox", "-n", ns, "--command", "--", "sh", "-c", "exit 3")

    def crashed() -> dict | None:
        pod = json.loads(k("get", "pod", "crash", "-n", ns, "-o", "json").stdout)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if statuses and statuses[0].get("restartCount", 0) >= 1:
            return statuses[0]
        return None

    status = wait_for(crashed, timeout=40)
    last = status.get("lastState", {}).get("terminated", {})
    assert last.get("exitCode") == 3
    assert status["state"].get("waiting", {}).get("reason") in (None, "CrashLoopBackOff")


def test_namespace_deletion_completes(node_cluster: Cluster) -> None:
    k = node_cluster.kubectl
    k("create", "namespace", "short-lived")
    k("create", "configmap", "c", "--from-literal=a=b", "-n", "short-lived")
    k("run", "p", "--image=busybox", "-n", "short-lived", "--command", "--", "sleep", "600")
    k("delete", "namespace", "short-lived", "--timeout=60s", timeout=90)
    assert "NotFound" in k("get", "namespace", "short-lived", check=False).stderr


def test_exec_streams_and_reports_exit_codes(node_cluster: Cluster, ns: str) -> None:
    k = node_cluster.kubectl
    k("run", "box", "--image=busybox", "-n", ns, "--command", "--", "sleep", "600")
    k("wait", "--for=condition=Ready", "pod/box", "-n", ns, "--timeout=60s", timeout=90)
    assert k("exec", "box", "-n", ns, "--", "echo", "hi there").stdout == "hi there\n"
    failed = k("exec", "box", "-n", ns, "--", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert failed.returncode == 3
    assert "oops" in failed.stderr
    assert "command terminated with exit code 3" in failed.stderr
    echoed = k("exec", "-i", "box", "-n", ns, "--", "cat", input="from stdin\n")
    assert echoed.stdout == "from stdin\n"


def test_logs_follow_tail_and_previous(node_cluster: Cluster, ns: str) -> None:
    k = node_cluster.kubectl
    k("run", "talker", "--image=busybox", "-n", ns, "--command", "--",
      "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; sleep 600")
    k("wait", "--for=condition=Ready", "pod/talker", "-n", ns, "--timeout=60s", timeout=90)
    wait_for(lambda: "line 5" in k("logs", "talker", "-n", ns).stdout)
    assert k("logs", "talker", "-n", ns, "--tail=2").stdout == "line 4\nline 5\n"
    stamped = k("logs", "talker", "-n", ns, "--timestamps", "--tail=1").stdout
    assert stamped.endswith(" line 5\n") and stamped[:4].isdigit()
    missing = k("logs", "talker", "-n", ns, "-c", "nope", check=False)
    assert "container nope is not valid for pod talker" in missing.stderr
