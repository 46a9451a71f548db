"""Endpoints and EndpointSlices against a real server, judged by the real kubectl.

The server runs without its kubelet and controller manager; the ``ControllerManager`` runs in
this process (as in ``test_controllers.py``) and a fake kubelet reports pods Running and Ready
with a pod IP, or not ready when the test asks for it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster
from tests.e2e.test_controllers import SETTINGS, ManagerThread, wait_for

NS = "default"


class IpKubelet:
    """Marks pods Running and Ready with a pod IP; pods named in ``not_ready`` go not ready."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.core = k8s.CoreV1Api(api)
        self.not_ready: set[str] = set()
        self.ips: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(ApiException):
                self.tick()
            self._stop.wait(0.1)

    def tick(self) -> None:
        for pod in self.core.list_namespaced_pod(NS).items:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp:
                continue
            want = "False" if name in self.not_ready else "True"
            ready = next((c.status for c in pod.status.conditions or [] if c.type == "Ready"), None)
            if ready == want and pod.status.pod_ip:
                continue
            ip = self.ips.setdefault(name, f"10.244.0.{len(self.ips) + 2}")
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                               "conditions": [{"type": "Ready", "status": want,
                                               "lastTransitionTime": now}]}}
            with contextlib.suppress(ApiException):
                self.core.patch_namespaced_pod_status(name, NS, body)

    def __enter__(self) -> IpKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = Cluster(tmp_path_factory.mktemp("endpoints"), command="server",
                     extra_args=("--disable", "kubelet,controller-manager"))
    server.start()
    manager = ManagerThread(str(server.kubeconfig), replace(SETTINGS, leader_elect=False))
    manager.start()
    if manager.error is not None:
        raise manager.error
    yield server
    manager.stop()
    server.stop()


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-n", NS, "-o", "json").stdout)


def endpoint_addresses(cluster: Cluster) -> tuple[set[str], set[str]]:
    """(ready ip:port, not-ready ip:port) of ``endpoints/web``."""
    ready: set[str] = set()
    not_ready: set[str] = set()
    result = cluster.kubectl("get", "endpoints", "web", "-n", NS, "-o", "json", check=False)
    if result.returncode != 0:
        return ready, not_ready
    for subset in json.loads(result.stdout).get("subsets") or []:
        ports = [p["port"] for p in subset.get("ports") or []]
        for field, into in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for address in subset.get(field) or []:
                into.update(f"{address['ip']}:{port}" for port in ports)
    return ready, not_ready


def slice_endpoints(cluster: Cluster) -> dict[str, bool]:
    """ip:port → ready, across the Service's slices."""
    found: dict[str, bool] = {}
    for eps in get_json(cluster, "endpointslices", "-l", "kubernetes.io/service-name=web")["items"]:
        ports = [p["port"] for p in eps.get("ports") or []]
        for endpoint in eps.get("endpoints") or []:
            for port in ports:
                found[f"{endpoint['addresses'][0]}:{port}"] = endpoint["conditions"]["ready"]
    return found


def pod_ips(cluster: Cluster) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"].get("podIP", "")
            for p in get_json(cluster, "pods", "-l", "app=web")["items"]
            if not p["metadata"].get("deletionTimestamp")}


def test_endpoints_and_slices_follow_the_deployment(cluster: Cluster) -> None:
    client = cluster.api_client()
    with IpKubelet(client) as kubelet:
        cluster.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", NS)
        cluster.kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080", "-n", NS)

        def all_ready(n: int) -> dict[str, str] | None:
            ips = pod_ips(cluster)
            if len(ips) != n or not all(ips.values()):
                return None
            want = {f"{ip}:8080" for ip in ips.values()}
            ready, not_ready = endpoint_addresses(cluster)
            return ips if ready == want and not not_ready and \
                slice_endpoints(cluster) == dict.fromkeys(want, True) else None

        ips = wait_for("3 ready endpoints", lambda: all_ready(3))
        eps = get_json(cluster, "endpointslices", "-l", "kubernetes.io/service-name=web")["items"]
        assert len(eps) == 1 and eps[0]["addressType"] == "IPv4"
        assert eps[0]["metadata"]["ownerReferences"][0]["kind"] == "Service"
        assert "web" in cluster.kubectl("get", "endpoints", "web", "-n", NS).stdout

        # A pod going not ready moves to notReadyAddresses (and ready:false in its slice).
        victim = sorted(ips)[0]
        kubelet.not_ready.add(victim)
        moved = f"{ips[victim]}:8080"

        def demoted() -> bool:
            ready, not_ready = endpoint_addresses(cluster)
            return not_ready == {moved} and len(ready) == 2 and \
                slice_endpoints(cluster).get(moved) is False

        wait_for("not-ready pod in notReadyAddresses", demoted)
        kubelet.not_ready.clear()
        wait_for("pod ready again", lambda: all_ready(3))

        # Scaling down removes addresses.
        cluster.kubectl("scale", "deployment", "web", "--replicas=1", "-n", NS)
        wait_for("1 ready endpoint", lambda: all_ready(1))

        # Deleting the Service deletes its Endpoints (and the GC its slices).
        cluster.kubectl("delete", "service", "web", "-n", NS)
        wait_for("endpoints gone", lambda: cluster.kubectl(
            "get", "endpoints", "web", "-n", NS, check=False).returncode != 0)
        wait_for("slices gone", lambda: not get_json(
            cluster, "endpointslices", "-l", "kubernetes.io/service-name=web")["items"])
    client.close()
