"""The controller manager against a real API server, judged by the real kubectl.

The server runs as a child process (``tests/cluster.py``); the ``ControllerManager`` runs in
this process, in a thread with its own event loop, with its own client built from the
admin kubeconfig. There is no kubelet: a tiny fake kubelet (a thread) marks pods Running and
Ready so rollouts can progress, exactly as `kubectl rollout status` expects them to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from pyk8s.client import ApiClient
from pyk8s.controllers import ControllerManager, ControllerManagerSettings
from tests.cluster import Cluster

SETTINGS = ControllerManagerSettings(
    node_monitor_period=0.2, node_monitor_grace_period=1.5, node_startup_grace_period=1.5,
    pod_gc_period=0.3, retry_period=0.5, lease_duration=5.0, renew_deadline=4.0)


class ManagerThread:
    """A ControllerManager on its own event loop in a background thread."""

    def __init__(self, kubeconfig: str, settings: ControllerManagerSettings) -> None:
        self.kubeconfig = kubeconfig
        self.settings = settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self.manager: ControllerManager | None = None
        self.error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="controller-manager", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced by the fixture
            self.error = exc
            self._started.set()

    async def _run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        api = ApiClient.from_kubeconfig(self.kubeconfig, user_agent="kube-controller-manager")
        self.manager = ControllerManager(api, self.settings)
        task = asyncio.create_task(self.manager.run())
        self._started.set()
        await self._stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


class FakeKubelet:
    """Marks every pod of a namespace Running and Ready, the way a kubelet would report it."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(ApiException):
                self.tick()
            self._stop.wait(0.1)

    def tick(self) -> None:
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            if ready or pod.metadata.deletion_timestamp:
                continue
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = {"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}}
            with contextlib.suppress(ApiException):
                self.core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, body)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def ctl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = Cluster(tmp_path_factory.mktemp("controllers"))
    server.start()
    manager = ManagerThread(str(server.kubeconfig), SETTINGS)
    manager.start()
    if manager.error is not None:
        raise manager.error
    yield server
    manager.stop()
    server.stop()
    if manager.error is not None and not isinstance(manager.error, asyncio.CancelledError):
        raise manager.error


@pytest.fixture(scope="module")
def api(ctl_cluster: Cluster) -> Iterator[k8s.ApiClient]:
    client = ctl_cluster.api_client()
    yield client
    client.close()


@pytest.fixture
def ns(ctl_cluster: Cluster) -> str:
    name = "c-" + uuid.uuid4().hex[:8]
    ctl_cluster.kubectl("create", "namespace", name)
    return name


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def get_json(cluster: Cluster, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def items(cluster: Cluster, kind: str, ns: str, *extra: str) -> list[dict[str, Any]]:
    return get_json(cluster, kind, "-n", ns, *extra)["items"]


def live_pods(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    return [p for p in items(cluster, "pods", ns) if not p["metadata"].get("deletionTimestamp")]


def n_pods(cluster: Cluster, ns: str, n: int) -> list[dict[str, Any]] | None:
    pods = live_pods(cluster, ns)
    return pods if len(pods) == n else None


def test_deployment_creates_one_replicaset_and_owned_pods(ctl_cluster: Cluster, ns: str) -> None:
    ctl_cluster.kubectl("create", "deployment", "web", "--image=x", "--replicas=3", "-n", ns)
    pods = wait_for("3 pods", lambda: n_pods(ctl_cluster, ns, 3))
    sets = items(ctl_cluster, "rs", ns)
    assert len(sets) == 1
    rs = sets[0]
    deploy = get_json(ctl_cluster, "deployment", "web", "-n", ns)
    ref = rs["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("Deployment", "web", deploy["metadata"]["uid"])
    assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    for pod in pods:
        pref = pod["metadata"]["ownerReferences"][0]
        assert (pref["kind"], pref["name"], pref["uid"]) == ("ReplicaSet", rs["metadata"]["name"],
                                                             rs["metadata"]["uid"])
        assert pref["controller"] is True and pref["blockOwnerDeletion"] is True
        assert pod["metadata"]["name"].startswith(rs["metadata"]["name"] + "-")
        assert len(pod["metadata"]["name"]) == len(rs["metadata"]["name"]) + 6
        assert pod["metadata"]["labels"]["pod-template-hash"] == pod_hash
    wait_for("deployment status", lambda: get_json(ctl_cluster, "deployment", "web", "-n", ns)
             ["status"].get("replicas") == 3)
    reasons = wait_for("events", lambda: (r := {e["reason"] for e in items(ctl_cluster, "events", ns)})
                       >= {"ScalingReplicaSet", "SuccessfulCreate"} and r)
    assert "ScalingReplicaSet" in reasons
    messages = [e["message"] for e in items(ctl_cluster, "events", ns)]
    assert f"Scaled up replica set {rs['metadata']['name']} from 0 to 3" in messages


def test_scale_up_and_down(ctl_cluster: Cluster, ns: str) -> None:
    ctl_cluster.kubectl("create", "deployment", "web", "--image=x", "--replicas=1", "-n", ns)
    wait_for("1 pod", lambda: len(live_pods(ctl_cluster, ns)) == 1)
    ctl_cluster.kubectl("scale", "deployment", "web", "--replicas=5", "-n", ns)
    wait_for("5 pods", lambda: len(live_pods(ctl_cluster, ns)) == 5)
    ctl_cluster.kubectl("scale", "deployment", "web", "--replicas=2", "-n", ns)
    wait_for("2 pods", lambda: len(live_pods(ctl_cluster, ns)) == 2)
    rs = items(ctl_cluster, "rs", ns)
    assert len(rs) == 1 and rs[0]["spec"]["replicas"] == 2
    wait_for("rs status", lambda: items(ctl_cluster, "rs", ns)[0]["status"]["replicas"] == 2)


def test_replicaset_replaces_a_deleted_pod(ctl_cluster: Cluster, ns: str) -> None:
    ctl_cluster.kubectl("create", "deployment", "web", "--image=x", "--replicas=2", "-n", ns)
    pods = wait_for("2 pods", lambda: n_pods(ctl_cluster, ns, 2))
    victim = pods[0]["metadata"]["name"]
    ctl_cluster.kubectl("delete", "pod", victim, "-n", ns)
    wait_for("replacement", lambda: len(p := live_pods(ctl_cluster, ns)) == 2
             and victim not in {x["metadata"]["name"] for x in p})


def test_replicaset_adopts_matching_orphans_and_releases_relabelled_pods(ctl_cluster: Cluster,
                                                                         ns: str) -> None:
    ctl_cluster.kubectl("run", "orphan", "--image=x", "--labels=app=r", "-n", ns)
    manifest = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "r", "namespace": ns},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "r"}},
                         "template": {"metadata": {"labels": {"app": "r"}},
                                      "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    ctl_cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    pods = wait_for("2 pods", lambda: n_pods(ctl_cluster, ns, 2))
    rs = get_json(ctl_cluster, "rs", "r", "-n", ns)
    orphan = next(p for p in pods if p["metadata"]["name"] == "orphan")
    assert orphan["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    ctl_cluster.kubectl("label", "pod", "orphan", "app=elsewhere", "--overwrite", "-n", ns)
    wait_for("released", lambda: not get_json(ctl_cluster, "pod", "orphan", "-n", ns)
             ["metadata"].get("ownerReferences"))
    wait_for("replacement", lambda: n_pods(ctl_cluster, ns, 3))
    ctl_cluster.kubectl("scale", "rs", "r", "--replicas=0", "-n", ns)
    wait_for("scaled to zero", lambda: n_pods(ctl_cluster, ns, 1))
    status = wait_for("status", lambda: (s := get_json(ctl_cluster, "rs", "r", "-n", ns)["status"])
                      ["replicas"] == 0 and s)
    assert status["observedGeneration"] == 2


def test_controller_manager_holds_the_leader_lease(ctl_cluster: Cluster) -> None:
    lease = get_json(ctl_cluster, "lease", "kube-controller-manager", "-n", "kube-system")
    assert lease["spec"]["holderIdentity"]


def test_rolling_update_status_history_and_undo(ctl_cluster: Cluster, api: k8s.ApiClient,
                                                ns: str) -> None:
    k = ctl_cluster.kubectl
    with FakeKubelet(api, ns):
        k("create", "deployment", "web", "--image=img:1", "--replicas=3", "-n", ns)
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
        k("annotate", "deployment", "web", "kubernetes.io/change-cause=to v2", "-n", ns)
        k("set", "image", "deployment/web", "*=img:2", "-n", ns)
        out = k("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s").stdout
        assert "successfully rolled out" in out
        sets = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
                for rs in items(ctl_cluster, "rs", ns)}
        assert set(sets) == {"1", "2"}
        assert sets["1"]["spec"]["replicas"] == 0 and sets["2"]["spec"]["replicas"] == 3
        assert sets["2"]["metadata"]["annotations"]["kubernetes.io/change-cause"] == "to v2"
        images = {p["spec"]["containers"][0]["image"] for p in live_pods(ctl_cluster, ns)}
        assert images == {"img:2"}
        history = k("rollout", "history", "deployment/web", "-n", ns).stdout
        assert "to v2" in history and "1 " in history

        k("rollout", "undo", "deployment/web", "-n", ns)
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
        wait_for("rollback", lambda: {p["spec"]["containers"][0]["image"]
                                      for p in live_pods(ctl_cluster, ns)} == {"img:1"})
        sets = items(ctl_cluster, "rs", ns)
        assert len(sets) == 2, "the old ReplicaSet is reused, not a third one"
        back = next(rs for rs in sets if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "img:1")
        ann = back["metadata"]["annotations"]
        assert ann["deployment.kubernetes.io/revision"] == "3"
        assert ann["deployment.kubernetes.io/revision-history"] == "1"
        d = get_json(ctl_cluster, "deployment", "web", "-n", ns)
        status = d["status"]
        assert status["observedGeneration"] == d["metadata"]["generation"]
        assert status["updatedReplicas"] == status["availableReplicas"] == 3
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


def test_recreate_strategy_replaces_all_pods(ctl_cluster: Cluster, api: k8s.ApiClient,
                                             ns: str) -> None:
    k = ctl_cluster.kubectl
    with FakeKubelet(api, ns):
        k("create", "deployment", "db", "--image=img:1", "--replicas=2", "-n", ns)
        k("patch", "deployment", "db", "-n", ns, "--type=merge",
          "-p", '{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}')
        k("rollout", "status", "deployment/db", "-n", ns, "--timeout=20s")
        k("set", "image", "deployment/db", "*=img:2", "-n", ns)
        k("rollout", "status", "deployment/db", "-n", ns, "--timeout=20s")
        images = {p["spec"]["containers"][0]["image"] for p in live_pods(ctl_cluster, ns)}
        assert images == {"img:2"}


def test_rollout_status_reports_an_exceeded_progress_deadline(ctl_cluster: Cluster, ns: str) -> None:
    k = ctl_cluster.kubectl
    k("create", "deployment", "stuck", "--image=x", "--replicas=1", "-n", ns)
    k("patch", "deployment", "stuck", "-n", ns, "--type=merge", "-p",
      '{"spec":{"progressDeadlineSeconds":1}}')
    result = k("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=15s", check=False)
    assert result.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in result.stderr
    cond = next(c for c in get_json(ctl_cluster, "deployment", "stuck", "-n", ns)["status"]["conditions"]
                if c["type"] == "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_pause_blocks_rollout_until_resume(ctl_cluster: Cluster, ns: str) -> None:
    k = ctl_cluster.kubectl
    k("create", "deployment", "web", "--image=img:1", "--replicas=1", "-n", ns)
    wait_for("1 rs", lambda: len(items(ctl_cluster, "rs", ns)) == 1)
    k("rollout", "pause", "deployment/web", "-n", ns)
    k("set", "image", "deployment/web", "*=img:2", "-n", ns)
    wait_for("paused condition", lambda: any(
        c["reason"] == "DeploymentPaused"
        for c in get_json(ctl_cluster, "deployment", "web", "-n", ns)["status"].get("conditions", [])))
    assert len(items(ctl_cluster, "rs", ns)) == 1
    k("rollout", "resume", "deployment/web", "-n", ns)
    wait_for("new rs", lambda: len(items(ctl_cluster, "rs", ns)) == 2)


def test_delete_deployment_background_removes_replicasets_and_pods(ctl_cluster: Cluster,
                                                                    ns: str) -> None:
    ctl_cluster.kubectl("create", "deployment", "web", "--image=x", "--replicas=2", "-n", ns)
    wait_for("2 pods", lambda: len(live_pods(ctl_cluster, ns)) == 2)
    ctl_cluster.kubectl("delete", "deployment", "web", "-n", ns)
    wait_for("rs gone", lambda: not items(ctl_cluster, "rs", ns))
    wait_for("pods gone", lambda: not items(ctl_cluster, "pods", ns))


def test_delete_deployment_orphan_keeps_replicasets_and_pods(ctl_cluster: Cluster, ns: str) -> None:
    ctl_cluster.kubectl("create", "deployment", "web", "--image=x", "--replicas=2", "-n", ns)
    wait_for("2 pods", lambda: len(live_pods(ctl_cluster, ns)) == 2)
    ctl_cluster.kubectl("delete", "deployment", "web", "--cascade=orphan", "-n", ns, timeout=30)
    assert ctl_cluster.kubectl("get", "deployment", "web", "-n", ns, check=False).returncode != 0
    rs = wait_for("rs orphaned", lambda: (s := items(ctl_cluster, "rs", ns))
                  and not s[0]["metadata"].get("ownerReferences") and s)
    assert len(rs) == 1
    time.sleep(0.5)
    assert len(live_pods(ctl_cluster, ns)) == 2


def test_delete_deployment_foreground_waits_for_dependents(ctl_cluster: Cluster, ns: str) -> None:
    ctl_cluster.kubectl("create", "deployment", "web", "--image=x", "--replicas=2", "-n", ns)
    wait_for("2 pods", lambda: len(live_pods(ctl_cluster, ns)) == 2)
    ctl_cluster.kubectl("delete", "deployment", "web", "--cascade=foreground", "-n", ns, timeout=30)
    assert not items(ctl_cluster, "deployments", ns)
    assert not items(ctl_cluster, "rs", ns)
    assert not items(ctl_cluster, "pods", ns)


def test_delete_namespace_completes(ctl_cluster: Cluster) -> None:
    name = "gone-" + uuid.uuid4().hex[:6]
    ctl_cluster.kubectl("create", "namespace", name)
    ctl_cluster.kubectl("create", "deployment", "web", "--image=x", "--replicas=2", "-n", name)
    ctl_cluster.kubectl("create", "configmap", "cfg", "--from-literal=a=b", "-n", name)
    wait_for("pods", lambda: len(live_pods(ctl_cluster, name)) == 2)
    ctl_cluster.kubectl("delete", "namespace", name, "--timeout=20s", timeout=30)
    result = ctl_cluster.kubectl("get", "namespace", name, check=False)
    assert result.returncode != 0 and "NotFound" in result.stderr


def test_default_service_account_is_created_and_recreated(ctl_cluster: Cluster, ns: str) -> None:
    wait_for("default sa", lambda: ctl_cluster.kubectl(
        "get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0)
    ctl_cluster.kubectl("delete", "serviceaccount", "default", "-n", ns)
    wait_for("default sa again", lambda: ctl_cluster.kubectl(
        "get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0)


def _node(name: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": now, "lastTransitionTime": now}]}}


def test_silent_node_is_tainted_and_its_pods_evicted(ctl_cluster: Cluster, api: k8s.ApiClient,
                                                     ns: str) -> None:
    core = k8s.CoreV1Api(api)
    node = "n-" + uuid.uuid4().hex[:6]
    core.create_node(_node(node))
    wait_for("pod CIDR", lambda: core.read_node(node).spec.pod_cidr)  # nodeipam writes the node
    core.replace_node_status(node, {**_node(node), "metadata": {
        "name": node, "resourceVersion": core.read_node(node).metadata.resource_version}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}],
                    "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 1}]}}
    core.create_namespaced_pod(ns, pod)
    stays = {**pod, "metadata": {"name": "stays"}, "spec": {**pod["spec"], "tolerations": [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]}}
    core.create_namespaced_pod(ns, stays)

    def taints() -> set[str]:
        return {f"{t.key}:{t.effect}" for t in core.read_node(node).spec.taints or []}

    wait_for("unreachable taints", lambda: taints() == {
        "node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"})
    ready = next(c for c in core.read_node(node).status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("Unknown", "NodeStatusUnknown")
    assert ready.message == "Kubelet stopped posting node status."
    wait_for("eviction", lambda: core.read_namespaced_pod("p", ns).metadata.deletion_timestamp)
    assert core.read_namespaced_pod("stays", ns).metadata.deletion_timestamp is None

    current = core.read_node(node)
    core.replace_node_status(node, {**_node(node), "metadata": {
        "name": node, "resourceVersion": current.metadata.resource_version}})
    wait_for("taints removed", lambda: not taints())


def test_pods_of_a_missing_node_are_garbage_collected(ctl_cluster: Cluster, api: k8s.ApiClient,
                                                      ns: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_pod(ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lost"},
                                    "spec": {"nodeName": "no-such-node",
                                             "containers": [{"name": "c", "image": "x"}]}})
    wait_for("pod gone", lambda: not items(ctl_cluster, "pods", ns))
