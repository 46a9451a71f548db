"""The control loops at work on hollow nodes, judged by the real kubectl.

``pyk8s server --disable kubelet,controller-manager`` runs the API server and the scheduler
in a child process. This process runs, on one event loop in a background thread, the
controller manager (with node-lifecycle periods shortened so a silent node is noticed in
seconds rather than 40 s) and four hollow nodes (``pyk8s.hollow``) that report bound pods
Running and finish their deletion. Tests use their own namespaces; a test that cordons,
taints or silences a node puts it back.

Leader election has its own cluster: two ``pyk8s scheduler --leader-elect`` processes and
``pyk8s hollow-nodes`` as subprocesses, the leader killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client import ApiClient
from pyk8s.controllers import ControllerManager, ControllerManagerSettings
from pyk8s.hollow import HollowNodes, HollowNodeSettings
from pyk8s.machinery.resources import CATALOGUE
from tests.cluster import Cluster

PODS = CATALOGUE.resource("v1", "pods")
REPLICASETS = CATALOGUE.resource("apps/v1", "replicasets")
NODES = [f"hollow-{i}" for i in range(4)]
SURGE_SETTLE = 1.0
Obj = dict[str, Any]


class Components:
    """The controller manager and the hollow nodes on one event loop in a thread."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.loop: asyncio.AbstractEventLoop | None = None
        self.hollow: HollowNodes | None = None
        self.error: BaseException | None = None
        self._main: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="components", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
        finally:
            self._ready.set()

    async def _amain(self) -> None:
        self.loop = asyncio.get_running_loop()
        manager_client = ApiClient.from_kubeconfig(self.kubeconfig, user_agent="test-cm")
        hollow_client = ApiClient.from_kubeconfig(self.kubeconfig, user_agent="test-hollow")
        manager = ControllerManager(manager_client, ControllerManagerSettings(
            leader_elect=False, node_monitor_period=1.0, node_monitor_grace_period=4.0,
            node_startup_grace_period=4.0, pod_gc_period=1.0))
        self.hollow = HollowNodes(hollow_client, HollowNodeSettings(
            count=len(NODES), cpu="4", memory="8Gi", lease_duration=4,
            status_update_interval=2.0, pod_start_delay=(0.05, 0.15),
            pod_termination_delay=0.1))
        self._main = asyncio.current_task()
        tasks = [asyncio.create_task(manager.run()), asyncio.create_task(self.hollow.run())]
        try:
            await self.hollow.registered.wait()
            self._ready.set()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await manager_client.close()
            await hollow_client.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self.loop is not None and self._main is not None:
            self.loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(15)

    def call(self, fn: Callable[[], Any]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


@pytest.fixture(scope="module")
def hollow_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Components]]:
    cluster = Cluster(tmp_path_factory.mktemp("hollow"), command="server",
                      extra_args=("--disable", "kubelet,controller-manager"))
    cluster.start()
    components = Components(cluster.kubeconfig)
    try:
        components.start()
        yield cluster, components
    finally:
        components.stop()
        cluster.stop()


@pytest.fixture
def kc(hollow_cluster: tuple[Cluster, Components]) -> Cluster:
    return hollow_cluster[0]


@pytest.fixture
def components(hollow_cluster: tuple[Cluster, Components]) -> Components:
    return hollow_cluster[1]


@pytest.fixture
def ns(kc: Cluster) -> str:
    name = "h-" + uuid.uuid4().hex[:8]
    kc.kubectl("create", "namespace", name)
    return name


# -- helpers --------------------------------------------------------------------------------

def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def get_json(kc: Cluster, *args: str) -> Any:
    return json.loads(kc.kubectl("get", *args, "-o", "json").stdout)


def pods(kc: Cluster, ns: str) -> list[Obj]:
    items: list[Obj] = get_json(kc, "pods", "-n", ns)["items"]
    return items


def is_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or [])


def running(kc: Cluster, ns: str, n: int) -> list[Obj] | None:
    """Exactly n live pods, all Running and Ready on hollow nodes (else None)."""
    live = [p for p in pods(kc, ns) if not p["metadata"].get("deletionTimestamp")]
    if len(live) == n and all(is_ready(p) and p["spec"].get("nodeName") in NODES for p in live):
        return live
    return None


def deployment_yaml(name: str, replicas: int, image: str = "app:1", *, surge: int = 1,
                    unavailable: int = 1, tolerations: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {image}
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
{tolerations}
"""


# -- deployments ----------------------------------------------------------------------------

def test_deployment_scales_up_and_down_and_rollout_status_returns(kc: Cluster, ns: str) -> None:
    kc.kubectl("create", "deployment", "web", "--image=app:1", "--replicas=3", "-n", ns)
    kc.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=30s")
    live = wait_for("3 running pods", lambda: running(kc, ns, 3))
    for pod in live:
        status = pod["status"]
        assert status["podIP"].startswith("10.") and status["hostIP"].startswith("100.64.")
        assert status["containerStatuses"][0]["containerID"].startswith("hollow://")
    kc.kubectl("scale", "deployment/web", "--replicas=7", "-n", ns)
    wait_for("7 running pods", lambda: running(kc, ns, 7))
    kc.kubectl("scale", "deployment/web", "--replicas=2", "-n", ns)
    wait_for("2 pods, the others gone for good", lambda: len(pods(kc, ns)) == 2
             and running(kc, ns, 2))
    out = kc.kubectl("get", "deployment", "web", "-n", ns).stdout
    assert re.search(r"web\s+2/2\s+2\s+2", out), out


async def _watch_bounds(client: ApiClient, ns: str, replicas: int, surge: int,
                        unavailable: int, pod_list: Obj, rs_list: Obj,
                        violations: list[str], seen: list[int]) -> None:
    """Follow pods and ReplicaSets on from the given lists, recording every moment the
    rollout's bounds are broken (pods: live <= replicas + surge, ready live >= replicas -
    unavailable; ReplicaSets: the sum of spec.replicas <= replicas + surge).

    The Deployment controller bounds the sum of its ReplicaSets' sizes, as upstream does; the
    pods follow through two ReplicaSet syncs that run concurrently, so the new set's create
    can land a few milliseconds before the old set's delete. An excess of live pods is
    therefore a violation only when it outlasts ``SURGE_SETTLE`` seconds."""
    pod_state = {p["metadata"]["name"]: p for p in pod_list["items"]}
    over_since: list[float] = []
    rs_state = {r["metadata"]["name"]: r for r in rs_list["items"]}
    rv_pods = pod_list["metadata"]["resourceVersion"]
    rv_rs = rs_list["metadata"]["resourceVersion"]

    async def follow_pods() -> None:
        async for event in client.watch(PODS, ns, resource_version=rv_pods):
            obj = event["object"]
            if event["type"] == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            if event["type"] == "DELETED":
                pod_state.pop(name, None)
            else:
                pod_state[name] = obj
            live = [p for p in pod_state.values() if not p["metadata"].get("deletionTimestamp")]
            ready = sum(1 for p in live if is_ready(p))
            seen[0] += 1
            now = time.monotonic()
            if len(live) <= replicas + surge:
                over_since.clear()
            elif not over_since:
                over_since.append(now)
            elif now - over_since[0] > SURGE_SETTLE:
                violations.append(f"{len(live)} live pods for {now - over_since[0]:.1f}s")
            if ready < replicas - unavailable:
                violations.append(f"only {ready} ready pods")

    async def follow_sets() -> None:
        async for event in client.watch(REPLICASETS, ns, resource_version=rv_rs):
            obj = event["object"]
            if event["type"] == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            if event["type"] == "DELETED":
                rs_state.pop(name, None)
            else:
                rs_state[name] = obj
            total = sum(r["spec"].get("replicas", 0) for r in rs_state.values())
            if total > replicas + surge:
                violations.append(f"replica sets want {total}")

    await asyncio.gather(follow_pods(), follow_sets())


def test_set_image_rolls_out_within_bounds_and_undo_restores(
        kc: Cluster, components: Components, ns: str) -> None:
    replicas, surge, unavailable = 5, 1, 1
    kc.kubectl("apply", "-n", ns, "-f", "-", input=deployment_yaml("roll", replicas))
    kc.kubectl("rollout", "status", "deployment/roll", "-n", ns, "--timeout=30s")
    wait_for("5 running pods", lambda: running(kc, ns, replicas))
    pod_list, rs_list = get_json(kc, "pods", "-n", ns), get_json(kc, "rs", "-n", ns)
    violations: list[str] = []
    seen = [0]

    async def watch() -> None:
        client = ApiClient.from_kubeconfig(kc.kubeconfig)
        try:
            await _watch_bounds(client, ns, replicas, surge, unavailable, pod_list,
                                rs_list, violations, seen)
        finally:
            await client.close()

    watching = components.submit(watch())
    try:
        kc.kubectl("set", "image", "deployment/roll", "app=app:2", "-n", ns)
        out = kc.kubectl("rollout", "status", "deployment/roll", "-n", ns,
                         "--timeout=45s").stdout
        assert 'deployment "roll" successfully rolled out' in out
        live = wait_for("5 new pods", lambda: (r := running(kc, ns, replicas)) and all(
            p["spec"]["containers"][0]["image"] == "app:2" for p in r) and r)
        assert len(live) == replicas
    finally:
        watching.cancel()
    assert seen[0] >= 2 * replicas, "the watch saw the rollout"
    assert violations == []

    kc.kubectl("rollout", "undo", "deployment/roll", "-n", ns)
    kc.kubectl("rollout", "status", "deployment/roll", "-n", ns, "--timeout=45s")
    deploy = get_json(kc, "deployment", "roll", "-n", ns)
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    wait_for("old template running again", lambda: (r := running(kc, ns, replicas)) and all(
        p["spec"]["containers"][0]["image"] == "app:1" for p in r))


def test_a_deleted_pod_is_replaced(kc: Cluster, ns: str) -> None:
    kc.kubectl("create", "deployment", "web", "--image=app:1", "--replicas=3", "-n", ns)
    live = wait_for("3 running pods", lambda: running(kc, ns, 3))
    victim = live[0]["metadata"]["name"]
    kc.kubectl("delete", "pod", victim, "-n", ns, "--wait=true", timeout=20)
    fresh = wait_for("a replacement", lambda: running(kc, ns, 3))
    names = {p["metadata"]["name"] for p in fresh}
    assert victim not in names


def test_cordoned_and_tainted_nodes_receive_no_new_pods(kc: Cluster, ns: str) -> None:
    kc.kubectl("cordon", "hollow-0")
    kc.kubectl("taint", "nodes", "hollow-1", "dedicated=special:NoSchedule")
    try:
        kc.kubectl("create", "deployment", "web", "--image=app:1", "--replicas=8", "-n", ns)
        live = wait_for("8 running pods", lambda: running(kc, ns, 8))
        assert {p["spec"]["nodeName"] for p in live} <= {"hollow-2", "hollow-3"}
    finally:
        kc.kubectl("uncordon", "hollow-0")
        kc.kubectl("taint", "nodes", "hollow-1", "dedicated=special:NoSchedule-")
        # Node lifecycle mirrors the cordon as a taint, and lifts it on its next pass.
        wait_for("no taints left", lambda: not any(
            get_json(kc, "node", n)["spec"].get("taints") for n in ("hollow-0", "hollow-1")))


def test_a_pod_that_fits_nowhere_stays_pending_with_the_upstream_message(
        kc: Cluster, ns: str) -> None:
    kc.kubectl("run", "huge", "--image=app:1", "-n", ns, "--restart=Never",
               '--overrides={"spec":{"containers":[{"name":"huge","image":"app:1",'
               '"resources":{"requests":{"cpu":"64"}}}]}}')
    message = "0/4 nodes are available: 4 Insufficient cpu."
    described = wait_for("FailedScheduling", lambda: (
        d := kc.kubectl("describe", "pod", "huge", "-n", ns).stdout) and "FailedScheduling" in d
        and d)
    assert re.search(r"Status:\s+Pending", described)
    assert message in described, described
    pod = get_json(kc, "pod", "huge", "-n", ns)
    assert not pod["spec"].get("nodeName")
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"].startswith(message)


# -- a node that dies -----------------------------------------------------------------------

TOLERATE_2S = """      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute,
         tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute,
         tolerationSeconds: 2}"""


def node_ready(kc: Cluster, node: str) -> str:
    conditions = get_json(kc, "node", node)["status"]["conditions"]
    return next(c["status"] for c in conditions if c["type"] == "Ready")


def test_a_silent_node_goes_unknown_and_its_pods_are_rescheduled(
        kc: Cluster, components: Components, ns: str) -> None:
    kc.kubectl("apply", "-n", ns, "-f", "-",
               input=deployment_yaml("web", 6, tolerations=TOLERATE_2S))
    live = wait_for("6 running pods", lambda: running(kc, ns, 6))
    counts: dict[str, int] = {}
    for pod in live:
        counts[pod["spec"]["nodeName"]] = counts.get(pod["spec"]["nodeName"], 0) + 1
    dead = max(counts, key=lambda n: counts[n])
    doomed = {p["metadata"]["name"] for p in live if p["spec"]["nodeName"] == dead}
    assert components.hollow is not None
    hollow = components.hollow
    components.call(lambda: hollow.stop_node(dead))
    try:
        wait_for("Ready=Unknown", lambda: node_ready(kc, dead) == "Unknown", timeout=15)
        taints = get_json(kc, "node", dead)["spec"].get("taints") or []
        assert {"node.kubernetes.io/unreachable"} <= {t["key"] for t in taints}
        out = kc.kubectl("get", "node", dead).stdout
        assert "NotReady" in out

        def rescheduled() -> list[Obj] | None:
            everything = pods(kc, ns)
            gone = all(p["metadata"].get("deletionTimestamp") for p in everything
                       if p["metadata"]["name"] in doomed)
            live = [p for p in everything if not p["metadata"].get("deletionTimestamp")]
            ok = gone and len(live) == 6 and all(
                is_ready(p) and p["spec"]["nodeName"] != dead for p in live)
            return live if ok else None

        wait_for("pods evicted and rescheduled elsewhere", rescheduled, timeout=20)
    finally:
        components.call(lambda: hollow.resume_node(dead))
    wait_for("back Ready", lambda: node_ready(kc, dead) == "True", timeout=15)
    wait_for("evicted pods gone for good", lambda: not any(
        p["metadata"]["name"] in doomed for p in pods(kc, ns)), timeout=15)


# -- deletion -------------------------------------------------------------------------------

def test_deleting_a_deployment_removes_its_replicasets_and_pods(kc: Cluster, ns: str) -> None:
    kc.kubectl("create", "deployment", "web", "--image=app:1", "--replicas=4", "-n", ns)
    wait_for("4 running pods", lambda: running(kc, ns, 4))
    kc.kubectl("set", "image", "deployment/web", "app=app:2", "-n", ns)
    kc.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=30s")
    assert len(get_json(kc, "rs", "-n", ns)["items"]) == 2
    kc.kubectl("delete", "deployment", "web", "-n", ns)
    wait_for("everything gone", lambda: not get_json(kc, "rs", "-n", ns)["items"]
             and not pods(kc, ns))


def test_deleting_a_namespace_empties_it(kc: Cluster) -> None:
    ns = "h-" + uuid.uuid4().hex[:8]
    kc.kubectl("create", "namespace", ns)
    kc.kubectl("create", "deployment", "web", "--image=app:1", "--replicas=3", "-n", ns)
    kc.kubectl("create", "configmap", "cfg", "--from-literal=a=b", "-n", ns)
    wait_for("3 running pods", lambda: running(kc, ns, 3))
    kc.kubectl("delete", "namespace", ns, "--wait=true", timeout=40)
    result = kc.kubectl("get", "namespace", ns, check=False)
    assert result.returncode != 0 and "NotFound" in result.stderr
    leftovers = get_json(kc, "pods", "-A")["items"]
    assert not [p for p in leftovers if p["metadata"]["namespace"] == ns]


# -- leader election ------------------------------------------------------------------------

def _spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", *args],
                            stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bound(kc: Cluster, ns: str, name: str) -> str:
    with contextlib.suppress(AssertionError):
        pod = get_json(kc, "pod", name, "-n", ns)
        return str(pod["spec"].get("nodeName") or "")
    return ""


def test_leader_election_a_second_scheduler_takes_over(tmp_path: Path) -> None:
    kc = Cluster(tmp_path / "le", command="server",
                 extra_args=("--disable", "kubelet,scheduler"))
    kc.start()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        kubeconfig = str(kc.kubeconfig)
        procs["nodes"] = _spawn("hollow-nodes", "--kubeconfig", kubeconfig, "--count", "2",
                                log=tmp_path / "hollow.log")
        for ident in ("sched-a", "sched-b"):
            procs[ident] = _spawn("scheduler", "--kubeconfig", kubeconfig, "--leader-elect",
                                  "--identity", ident, log=tmp_path / f"{ident}.log")
        wait_for("2 nodes", lambda: len(get_json(kc, "nodes")["items"]) == 2)

        def holder() -> str:
            with contextlib.suppress(AssertionError):
                lease = get_json(kc, "lease", "kube-scheduler", "-n", "kube-system")
                return str(lease["spec"].get("holderIdentity") or "")
            return ""

        first = wait_for("a leader", holder)
        assert first in ("sched-a", "sched-b")
        kc.kubectl("run", "one", "--image=app:1", "--restart=Never", "-n", "default")
        assert wait_for("pod one bound", lambda: _bound(kc, "default", "one")).startswith("hollow-")

        procs[first].send_signal(signal.SIGKILL)
        procs[first].wait(5)
        other = "sched-b" if first == "sched-a" else "sched-a"
        wait_for("the other scheduler leads", lambda: holder() == other, timeout=30)
        kc.kubectl("run", "two", "--image=app:1", "--restart=Never", "-n", "default")
        assert wait_for("pod two bound", lambda: _bound(kc, "default", "two")).startswith("hollow-")
        assert procs[other].poll() is None
    finally:
        for proc in procs.values():
            _stop(proc)
        kc.stop()

