"""Starting, stopping, restarting and killing a server: state survives, clients recover."""

from __future__ import annotations

import json
import signal

import pytest
import urllib3

from tests.cluster import Cluster


def _http(cluster: Cluster) -> urllib3.PoolManager:
    pki = cluster.data_dir / "pki"
    return urllib3.PoolManager(ca_certs=str(pki / "ca.crt"), cert_file=str(pki / "admin.crt"),
                               key_file=str(pki / "admin.key"), cert_reqs="CERT_REQUIRED")


@pytest.fixture
def own_cluster(tmp_path) -> Cluster:  # type: ignore[no-untyped-def]
    server = Cluster(tmp_path / "own")
    server.start()
    yield server
    server.stop()


def test_restart_keeps_state_and_certificates(own_cluster: Cluster) -> None:
    own_cluster.kubectl("create", "configmap", "keep", "--from-literal=a=b")
    ca_before = (own_cluster.data_dir / "pki" / "ca.crt").read_bytes()
    own_cluster.stop()
    own_cluster.start()
    assert (own_cluster.data_dir / "pki" / "ca.crt").read_bytes() == ca_before
    out = json.loads(own_cluster.kubectl("get", "configmap", "keep", "-o", "json").stdout)
    assert out["data"] == {"a": "b"}
    namespaces = own_cluster.kubectl("get", "ns", "-o", "name").stdout.split()
    assert namespaces.count("namespace/default") == 1


def test_acknowledged_writes_survive_kill_9(own_cluster: Cluster) -> None:
    http = _http(own_cluster)
    path = f"{own_cluster.url}/api/v1/namespaces/default/configmaps"
    for i in range(50):
        r = http.request("POST", path, body=json.dumps({"metadata": {"name": f"k{i}"}}),
                         headers={"Content-Type": "application/json"})
        assert r.status == 201
    own_cluster.kill()
    own_cluster.start()
    http = _http(own_cluster)
    listed = json.loads(http.request("GET", path).data)
    names = {item["metadata"]["name"] for item in listed["items"]}
    assert {f"k{i}" for i in range(50)} <= names


def test_sigterm_shuts_down_cleanly(own_cluster: Cluster) -> None:
    proc = own_cluster.proc
    assert proc is not None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    own_cluster.proc = None
    assert "shutting down" in own_cluster.log_path.read_text()


def test_watch_from_before_restart_gets_410(own_cluster: Cluster) -> None:
    """After a restart the watch cache starts at the current revision: older watches must
    re-list, told so by a 410 ERROR event, as upstream's cacher does."""
    own_cluster.kubectl("create", "configmap", "w", "--from-literal=a=b")
    own_cluster.stop()
    own_cluster.start()
    http = _http(own_cluster)
    r = http.request("GET", f"{own_cluster.url}/api/v1/namespaces/default/configmaps"
                            "?watch=1&resourceVersion=1&timeoutSeconds=2")
    assert r.status == 200
    first = json.loads(r.data.splitlines()[0])
    assert first["type"] == "ERROR"
    assert first["object"]["code"] == 410
    assert first["object"]["reason"] == "Expired"
