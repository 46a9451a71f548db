"""The scheduler against a real API server: pods created with kubectl get bound, and the
reasons a pod stays Pending are visible where users look (``kubectl describe pod``).

The module runs its own API server alone (``pyk8s apiserver``: nodes are cluster-wide, so
sharing the session server would let other tests' pending pods land on these nodes, and no
node lifecycle controller must taint these kubelet-less nodes) and the ``Scheduler`` in a
background thread with its own event loop, talking to the server over HTTPS like any
component. The last test checks the scheduler embedded in ``pyk8s server``. Nodes are created with their status (allocatable, Ready) in the body, as a kubelet
would report it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pyk8s.client import ApiClient
from pyk8s.scheduler import Scheduler, SchedulerSettings
from tests.cluster import Cluster

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


class SchedulerThread:
    """A Scheduler on its own event loop in a daemon thread."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._main, name="scheduler", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("scheduler thread did not start")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    async def _run(self) -> None:
        self.loop = asyncio.get_running_loop()
        api = ApiClient.from_kubeconfig(self.kubeconfig)
        scheduler = Scheduler(api, SchedulerSettings())
        self.task = asyncio.create_task(scheduler.run())
        self.ready.set()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        finally:
            await api.close()

    def stop(self) -> None:
        if self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


@pytest.fixture(scope="module")
def sched_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = Cluster(tmp_path_factory.mktemp("sched-cluster"), command="apiserver")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def core(sched_cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api = sched_cluster.api_client()
    yield client.CoreV1Api(api)
    api.close()


def _node(name: str, cpu: str, *, labels: dict[str, str] | None = None,
          taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    resources = {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {"capacity": resources, "allocatable": resources,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "message": "kubelet is posting ready status"}]},
    }


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def scheduler(sched_cluster: Cluster, core: client.CoreV1Api) -> Iterator[SchedulerThread]:
    core.create_node(_node("node-a", "4", labels={"disk": "ssd"}))
    core.create_node(_node("node-b", "4", taints=[GPU_TAINT]))
    warnings = _Collect()
    logging.getLogger("pyk8s").addHandler(warnings)
    thread = SchedulerThread(sched_cluster.kubeconfig)
    thread.start()
    yield thread
    thread.stop()
    logging.getLogger("pyk8s").removeHandler(warnings)
    assert thread.error is None, thread.error
    assert warnings.messages == [], warnings.messages  # no failed API writes, no crashes


@pytest.fixture
def ns(sched_cluster: Cluster, scheduler: SchedulerThread) -> str:
    name = "s-" + uuid.uuid4().hex[:8]
    sched_cluster.kubectl("create", "namespace", name)
    return name


def _pod(name: str, cpu: str = "", **spec: Any) -> dict[str, Any]:
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}],
                     **spec}}


def wait_for(what: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value {value!r}")
        time.sleep(0.05)


def node_of(core: client.CoreV1Api, ns: str, name: str) -> str:
    return wait_for(lambda: core.read_namespaced_pod(name, ns).spec.node_name)


def unschedulable_message(core: client.CoreV1Api, ns: str, name: str) -> str:
    def message() -> str:
        pod = core.read_namespaced_pod(name, ns)
        for c in pod.status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                return str(c.message)
        return ""
    return wait_for(message)


def test_kubectl_run_pod_is_bound(sched_cluster: Cluster, core: client.CoreV1Api, ns: str) -> None:
    sched_cluster.kubectl("run", "web", "--image=nginx", "-n", ns)
    assert node_of(core, ns, "web") == "node-a"  # node-b's taint is not tolerated
    pod = core.read_namespaced_pod("web", ns)
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    # The Scheduled event is recorded after the binding, so it may trail the pod's update.
    wait_for(lambda: any(
        e.reason == "Scheduled" and e.message == f"Successfully assigned {ns}/web to node-a"
        for e in core.list_namespaced_event(ns, field_selector="involvedObject.name=web").items))


def test_tolerations_and_node_selector(core: client.CoreV1Api, ns: str) -> None:
    pinned = {"nodeSelector": {"kubernetes.io/hostname": "node-b"}}
    core.create_namespaced_pod(ns, _pod("tolerant", tolerations=[
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        **pinned))
    core.create_namespaced_pod(ns, _pod("intolerant", **pinned))
    core.create_namespaced_pod(ns, _pod("ssd", nodeSelector={"disk": "ssd"}))
    assert node_of(core, ns, "tolerant") == "node-b"
    assert node_of(core, ns, "ssd") == "node-a"
    assert unschedulable_message(core, ns, "intolerant") == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are available: "
        "2 Preemption is not helpful for scheduling.")


def test_resources_are_respected_and_reasons_shown(sched_cluster: Cluster,
                                                   core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, _pod("first", "3"))
    assert node_of(core, ns, "first") == "node-a"
    core.create_namespaced_pod(ns, _pod("second", "3"))
    core.create_namespaced_pod(ns, _pod("huge", "64"))
    assert unschedulable_message(core, ns, "second") == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
        "{dedicated: gpu}. preemption: 0/2 nodes are available: 1 No preemption victims found "
        "for incoming pod, 1 Preemption is not helpful for scheduling.")
    huge = ("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{dedicated: gpu}. preemption: 0/2 nodes are available: 2 Preemption is not helpful "
            "for scheduling.")
    assert unschedulable_message(core, ns, "huge") == huge
    assert core.read_namespaced_pod("huge", ns).status.phase == "Pending"
    described = wait_for(lambda: (lambda out: out if "FailedScheduling" in out else "")(
        sched_cluster.kubectl("describe", "pod", "huge", "-n", ns).stdout))
    assert "Warning  FailedScheduling" in described and "default-scheduler" in described
    assert huge in " ".join(described.split())


def test_pending_pod_is_scheduled_when_a_fitting_node_joins(core: client.CoreV1Api,
                                                            ns: str) -> None:
    core.create_namespaced_pod(ns, _pod("waiting", "6"))
    unschedulable_message(core, ns, "waiting")
    core.create_node(_node("node-c", "16"))  # room for "second" (3) too
    assert node_of(core, ns, "waiting") == "node-c"


def test_preemption_evicts_a_lower_priority_pod(sched_cluster: Cluster, core: client.CoreV1Api,
                                                ns: str) -> None:
    core.create_node(_node("node-p", "1", labels={"pool": "p"}))
    pinned = {"nodeSelector": {"pool": "p"}}
    core.create_namespaced_pod(ns, _pod("low", "1", priority=0, **pinned))
    assert node_of(core, ns, "low") == "node-p"
    core.create_namespaced_pod(ns, _pod("vip", "1", priority=1000, **pinned))
    wait_for(lambda: core.read_namespaced_pod("low", ns).metadata.deletion_timestamp)
    assert wait_for(lambda: core.read_namespaced_pod("vip", ns).status.nominated_node_name) == (
        "node-p")
    wide = sched_cluster.kubectl("get", "pod", "vip", "-n", ns, "-o", "wide").stdout
    assert "node-p" in wide.splitlines()[1]  # the NOMINATED NODE column
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=low").items
    assert any(e.reason == "Preempted" for e in events)


def test_embedded_scheduler_of_pyk8s_server(tmp_path: Path) -> None:
    server = Cluster(tmp_path / "server", command="server",
                     extra_args=("--disable", "kubelet,controller-manager"))
    server.start()
    try:
        api = server.api_client()
        core = client.CoreV1Api(api)
        core.create_node(_node("only-node", "2"))
        server.kubectl("run", "hello", "--image=busybox")
        assert node_of(core, "default", "hello") == "only-node"
        api.close()
    finally:
        server.stop()
