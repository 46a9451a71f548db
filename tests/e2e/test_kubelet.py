"""The kubelet with the process runtime against a real API server, judged by kubectl.

The kubelet runs in this test process, on its own event loop in a background thread (as
``pyk8s server`` would run it next to the control plane); the pods' containers run under
real supervisor processes, all of which are stopped and removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from pyk8s.client import ApiClient
from pyk8s.kubelet import Kubelet, KubeletSettings
from pyk8s.runtime import open_runtime, remove_everything
from tests.cluster import Cluster, free_port


def node_client_tls(cluster: Cluster) -> ssl.SSLContext:
    """A client of the node server: the admin's certificate (system:masters); the kubelet's
    own certificate is self-signed, so it is not verified (as the API server does not)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    pki = cluster.data_dir / "pki"
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return context


class KubeletThread:
    def __init__(self, cluster: Cluster, root: Path, node_name: str) -> None:
        self.cluster = cluster
        self.settings = KubeletSettings(node_name=node_name, root_dir=root, node_ip="127.0.0.1",
                                        pod_resync_interval=0.5, server_address="127.0.0.1",
                                        server_port=free_port(),
                                        client_ca_file=str(cluster.data_dir / "pki" / "ca.crt"))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[None] | None = None
        self.thread: threading.Thread | None = None
        self.kubelet: Kubelet | None = None

    def start(self) -> None:
        started = threading.Event()

        def main() -> None:
            self.loop = asyncio.new_event_loop()
            client = ApiClient.from_kubeconfig(self.cluster.kubeconfig)
            runtime = open_runtime("process", state_dir=self.settings.runtime_state_dir,
                                   host_ip="127.0.0.1")
            self.kubelet = Kubelet(client, self.settings, runtime)

            async def run() -> None:
                self.task = asyncio.current_task()  # type: ignore[assignment]
                started.set()
                try:
                    await self.kubelet.run()  # type: ignore[union-attr]
                finally:
                    await client.close()

            try:
                self.loop.run_until_complete(run())
            except asyncio.CancelledError:
                pass
            finally:
                self.loop.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        if self.thread is None or self.loop is None or self.task is None:
            return
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(15)
        self.thread = None


def cleanup_runtime(state_dir: Path) -> None:
    """Stop and remove every container the tests left (supervisors exit with them)."""
    asyncio.run(remove_everything(open_runtime("process", state_dir=state_dir)))


@pytest.fixture(scope="module")
def node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletThread]:
    root = tmp_path_factory.mktemp("kubelet")
    kubelet = KubeletThread(cluster, root, "node-" + uuid.uuid4().hex[:6])
    kubelet.start()
    yield kubelet
    kubelet.stop()
    cleanup_runtime(kubelet.settings.runtime_state_dir)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out; last value: {last!r}")


def get_pod(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out)  # type: ignore[no-any-return]


def pod_manifest(name: str, node: str, container: dict[str, Any], **spec: Any) -> str:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [container], **spec}}
    return json.dumps(body)


def test_node_registers_ready_with_capacity_and_lease(cluster: Cluster, node: KubeletThread) -> None:
    name = node.settings.node_name
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=20s")
    table = cluster.kubectl("get", "nodes").stdout
    assert any(line.split()[:2] == [name, "Ready"] for line in table.splitlines())
    obj = json.loads(cluster.kubectl("get", "node", name, "-o", "json").stdout)
    status = obj["status"]
    assert status["capacity"]["pods"] == "110"
    assert int(status["capacity"]["cpu"]) >= 1
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.4"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "process://0.1"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False",
        "Ready": "True"}
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    lease = json.loads(cluster.kubectl("get", "lease", name, "-n", "kube-node-lease",
                                       "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == name
    assert lease["spec"]["leaseDurationSeconds"] == 40


def test_pod_runs_survives_kubelet_restart_and_deletes_gracefully(
        cluster: Cluster, node: KubeletThread, namespace: str) -> None:
    nodename = node.settings.node_name
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest(
        "p", nodename, {"name": "c", "image": "busybox",
                        "command": ["sh", "-c", "echo hello; sleep 30"]}))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/p", "-n", namespace, "--timeout=20s")
    pod = get_pod(cluster, namespace, "p")
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"] == "127.0.0.1"
    cs = pod["status"]["containerStatuses"][0]
    assert cs["containerID"].startswith("process://")
    assert cs["restartCount"] == 0 and cs["ready"] and cs["started"]
    uid = pod["metadata"]["uid"]
    log = node.settings.pods_log_dir / f"{namespace}_p_{uid}" / "c" / "0.log"
    wait_for(lambda: log.exists() and " stdout F hello" in log.read_text())

    events = cluster.kubectl("get", "events", "-n", namespace).stdout
    for reason in ("Pulled", "Created", "Started"):
        assert reason in events

    # The node server serves the container's log as kubectl logs would show it.
    base = f"https://127.0.0.1:{node.settings.server_port}/containerLogs/{namespace}/p/c"
    tls = node_client_tls(cluster)
    assert urlopen(base, timeout=5, context=tls).read() == b"hello\n"
    stamped = urlopen(base + "?timestamps=true&tailLines=1", timeout=5,
                      context=tls).read().decode()
    assert stamped.endswith("Z hello\n") and stamped.startswith("20")
    # ... and kubectl logs reaches it through the API server's pods/log proxy.
    assert cluster.kubectl("logs", "p", "-n", namespace).stdout == "hello\n"

    # A kubelet restart re-adopts the container instead of restarting it.
    started_at = cs["state"]["running"]["startedAt"]
    node.stop()
    node.start()
    time.sleep(2)
    pod = get_pod(cluster, namespace, "p")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["state"]["running"]["startedAt"] == started_at
    assert cs["restartCount"] == 0 and cs["ready"]

    # Graceful deletion: the kubelet stops the container, then the pod goes.
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "p", "-n", namespace, "--timeout=30s")
    assert time.monotonic() - started < 15
    assert "Killing" in cluster.kubectl("get", "events", "-n", namespace).stdout


def test_crashing_container_goes_into_crash_loop_backoff(
        cluster: Cluster, node: KubeletThread, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest(
        "crash", node.settings.node_name,
        {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo bye; exit 3"]}))

    def backing_off() -> dict[str, Any] | None:
        cs = (get_pod(cluster, namespace, "crash")["status"].get("containerStatuses") or [{}])[0]
        waiting = (cs.get("state") or {}).get("waiting") or {}
        return cs if waiting.get("reason") == "CrashLoopBackOff" else None

    cs = wait_for(backing_off)
    previous = cluster.kubectl("logs", "crash", "-n", namespace, "--previous").stdout
    assert previous == "bye\n"
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert "back-off 10s restarting failed container=c pod=crash_" in \
        cs["state"]["waiting"]["message"]
    table = cluster.kubectl("get", "pod", "crash", "-n", namespace).stdout
    assert "CrashLoopBackOff" in table
    assert "BackOff" in cluster.kubectl("get", "events", "-n", namespace).stdout


def test_failing_readiness_probe_keeps_pod_unready(
        cluster: Cluster, node: KubeletThread, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest(
        "unready", node.settings.node_name,
        {"name": "c", "image": "busybox", "command": ["sleep", "30"],
         "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1}}))

    def running() -> dict[str, Any] | None:
        pod = get_pod(cluster, namespace, "unready")
        return pod if pod["status"].get("phase") == "Running" else None

    wait_for(running)
    time.sleep(2.5)  # several probe periods
    pod = get_pod(cluster, namespace, "unready")
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"
    assert pod["status"]["containerStatuses"][0]["ready"] is False
    assert "Readiness probe failed" in cluster.kubectl("get", "events", "-n", namespace).stdout


def test_container_without_command_is_a_create_error(
        cluster: Cluster, node: KubeletThread, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest(
        "nocmd", node.settings.node_name, {"name": "c", "image": "nginx"}))

    def waiting() -> dict[str, Any] | None:
        cs = (get_pod(cluster, namespace, "nocmd")["status"].get("containerStatuses") or [{}])[0]
        w = (cs.get("state") or {}).get("waiting") or {}
        return w if w.get("reason") == "CreateContainerError" else None

    w = wait_for(waiting)
    assert "process runtime" in w["message"] and "command" in w["message"]


@pytest.fixture
def mount_root() -> Iterator[str]:
    """Mount points are created on the host (empty: the binds live in the containers' own
    mount namespaces); remove them afterwards."""
    root = Path(f"/tmp/pyk8s-e2e-{uuid.uuid4().hex[:8]}")
    yield str(root)
    if root.exists():
        for sub in sorted(root.rglob("*"), reverse=True):
            sub.rmdir() if sub.is_dir() else sub.unlink()
        root.rmdir()


def test_env_volumes_and_init_containers(cluster: Cluster, node: KubeletThread, namespace: str,
                                         tmp_path: Path, mount_root: str) -> None:
    cluster.kubectl("create", "configmap", "cfg", "-n", namespace, "--from-literal=greeting=hi")
    mount = mount_root
    out = tmp_path / "out"
    body = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols", "labels": {"a": "b"}},
        "spec": {
            "nodeName": node.settings.node_name, "restartPolicy": "Never",
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "scratch", "emptyDir": {}},
                        {"name": "out", "hostPath": {"path": str(out),
                                                     "type": "DirectoryOrCreate"}}],
            "initContainers": [{
                "name": "init", "image": "busybox",
                "command": ["sh", "-c", f"echo from-init > {mount}/scratch/x"],
                "volumeMounts": [{"name": "scratch", "mountPath": f"{mount}/scratch"}]}],
            "containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c",
                            f"cat {mount}/cfg/greeting {mount}/scratch/x > {mount}/out/result;"
                            f" echo $POD_NAME $GREETING >> {mount}/out/result"],
                "env": [{"name": "POD_NAME",
                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {
                            "name": "cfg", "key": "greeting"}}}],
                "volumeMounts": [{"name": "cfg", "mountPath": f"{mount}/cfg", "readOnly": True},
                                 {"name": "scratch", "mountPath": f"{mount}/scratch"},
                                 {"name": "out", "mountPath": f"{mount}/out"}]}]}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))

    def succeeded() -> dict[str, Any] | None:
        pod = get_pod(cluster, namespace, "vols")
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    pod = wait_for(succeeded)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert (out / "result").read_text().split("\n")[:3] == ["hifrom-init", "vols hi", ""]
    init = pod["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["reason"] == "Completed"
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["Ready"]["reason"] == "PodCompleted"


def test_failing_liveness_probe_restarts_the_container(
        cluster: Cluster, node: KubeletThread, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest(
        "live", node.settings.node_name,
        {"name": "c", "image": "busybox", "command": ["sleep", "30"],
         "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1,
                           "failureThreshold": 2}},
        terminationGracePeriodSeconds=1))

    def restarted() -> dict[str, Any] | None:
        cs = (get_pod(cluster, namespace, "live")["status"].get("containerStatuses") or [{}])[0]
        return cs if cs.get("restartCount", 0) >= 1 else None

    cs = wait_for(restarted)
    assert cs["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM
    events = cluster.kubectl("get", "events", "-n", namespace).stdout
    assert "failed liveness probe, will be restarted" in events
    assert "Liveness probe failed" in events


def test_exec_over_websocket_on_the_node_server(
        cluster: Cluster, node: KubeletThread, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest(
        "sh", node.settings.node_name,
        {"name": "c", "image": "busybox", "command": ["sleep", "30"],
         "env": [{"name": "WHO", "value": "pod"}]}))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/sh", "-n", namespace, "--timeout=20s")
    query = "&".join(["command=sh", "command=-c",
                      "command=read+x%3B+echo+$WHO+$x%3B+echo+err+>%262%3B+exit+3",
                      "input=1", "output=1", "error=1"])
    url = (f"wss://127.0.0.1:{node.settings.server_port}/exec/{namespace}/sh/c?{query}")

    async def session() -> tuple[str, dict[int, bytes]]:
        import aiohttp

        got: dict[int, bytes] = {}
        connector = aiohttp.TCPConnector(ssl=node_client_tls(cluster))
        async with aiohttp.ClientSession(connector=connector) as http, \
                http.ws_connect(url, protocols=("v5.channel.k8s.io",)) as ws:
            await ws.send_bytes(b"\x00hello\n")
            await ws.send_bytes(b"\xff\x00")  # v5: stdin closed
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
            return ws.protocol or "", got

    protocol, got = asyncio.run(session())
    assert protocol == "v5.channel.k8s.io"
    assert got[1] == b"pod hello\n" and got[2] == b"err\n"
    status = json.loads(got[3])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
