"""Fuzzing every write endpoint: random and mutated requests never get a 5xx, the server keeps
answering, and nothing stored before the fuzzing changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.machinery.resources import CATALOGUE
from tests.cluster import Cluster

FUZZ_NS = "fuzz"
SENTINEL_NS = "kept"

# Every stored kind with a valid object to start mutations from.
TEMPLATES: dict[str, dict[str, Any]] = {
    "configmaps": {"data": {"a": "b"}},
    "secrets": {"stringData": {"k": "v"}, "type": "Opaque"},
    "pods": {"spec": {"containers": [{"name": "c", "image": "busybox",
                                      "command": ["sleep", "1"], "ports": [{"containerPort": 80}]}]}},
    "services": {"spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x"}}},
    "deployments": {"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
                             "template": {"metadata": {"labels": {"app": "x"}},
                                          "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}},
    "jobs": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                                             "containers": [{"name": "c", "image": "busybox"}]}}}},
    "leases": {"spec": {"holderIdentity": "me", "leaseDurationSeconds": 10}},
    "namespaces": {},
    "nodes": {"status": {"capacity": {"cpu": "2", "memory": "1Gi", "pods": "10"}}},
    "events": {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "message": "m"},
    "endpointslices": {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]},
}
RESOURCES = [r for r in CATALOGUE.stored() if r.plural in TEMPLATES]
CONTENT_TYPES = ["application/json", "application/yaml", "application/merge-patch+json",
                 "application/json-patch+json", "application/strategic-merge-patch+json",
                 "application/apply-patch+yaml", "application/vnd.kubernetes.protobuf",
                 "text/plain", "application/xml", ""]
QUERIES = ["", "dryRun=All", "fieldValidation=Strict", "fieldValidation=Warn",
           "fieldValidation=Bogus", "fieldManager=fz", "force=true&fieldManager=fz",
           "gracePeriodSeconds=0", "gracePeriodSeconds=x", "propagationPolicy=Foreground",
           "propagationPolicy=Nope", "dryRun=Nope"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, plural: str, name: str) -> Any:
    """A valid object of the kind with one part replaced by a random value (or removed)."""
    resource = CATALOGUE.resource("v1", plural) if plural in ("configmaps", "secrets", "pods",
                                                                "services", "namespaces", "nodes",
                                                                "events") else None
    obj: dict[str, Any] = {"metadata": {"name": name}, **json.loads(json.dumps(TEMPLATES[plural]))}
    if resource is not None:
        obj = {"apiVersion": "v1", "kind": resource.kind, **obj}
    paths = _paths(obj)[1:]
    if paths and draw(st.booleans()):
        path = draw(st.sampled_from(paths))
        parent: Any = obj
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(json_values)
    return obj


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, str]:
    res = draw(st.sampled_from(RESOURCES))
    name = "fz-" + draw(st.sampled_from(["a", "b", "Bad_Name", "x" * 70, "a.b", "-z", ""]))
    prefix = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    base = f"{prefix}/namespaces/{FUZZ_NS}/{res.plural}" if res.namespaced else f"{prefix}/{res.plural}"
    method = draw(st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]))
    item = f"{base}/{name}" if name != "fz-" else f"{base}/fz-empty"
    sub = draw(st.sampled_from(["", "", "", "/status", "/scale", "/binding"]))
    path = base if method == "POST" and not sub else item + sub
    query = draw(st.sampled_from(QUERIES))
    if query:
        path += "?" + query
    kind = draw(st.sampled_from(["mutated", "mutated", "random", "bytes", "patchops"]))
    if kind == "mutated":
        body = json.dumps(draw(mutated(res.plural, name))).encode()
    elif kind == "random":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "patchops":
        ops = draw(st.lists(st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
             "path": st.sampled_from(["/metadata/labels/a", "/spec", "/data/a", "/x/y/z", "", "/"]),
             "value": json_values}), max_size=3))
        body = json.dumps(ops).encode()
    else:
        body = draw(st.binary(max_size=64))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    return method, path, body, content_type


@pytest.fixture(scope="module")
def http(cluster: Cluster) -> Iterator[urllib3.PoolManager]:
    pki = cluster.data_dir / "pki"
    pool = urllib3.PoolManager(ca_certs=str(pki / "ca.crt"), cert_file=str(pki / "admin.crt"),
                               key_file=str(pki / "admin.key"), cert_reqs="CERT_REQUIRED", maxsize=2)
    yield pool
    pool.clear()


def _snapshot(http: urllib3.PoolManager, base: str) -> dict[str, Any]:
    out = {}
    for path in (f"/api/v1/namespaces/{SENTINEL_NS}/configmaps/keep",
                 f"/apis/apps/v1/namespaces/{SENTINEL_NS}/deployments/keep",
                 f"/api/v1/namespaces/{SENTINEL_NS}/services/keep",
                 f"/api/v1/namespaces/{SENTINEL_NS}", "/api/v1/namespaces/default"):
        r = http.request("GET", base + path)
        assert r.status == 200, (path, r.data)
        out[path] = json.loads(r.data)
    return out


def test_write_endpoints_survive_fuzzing(cluster: Cluster, http: urllib3.PoolManager) -> None:
    base = cluster.url
    for ns in (FUZZ_NS, SENTINEL_NS):
        cluster.kubectl("create", "namespace", ns, check=False)
    cluster.kubectl("create", "configmap", "keep", "--from-literal=a=b", "-n", SENTINEL_NS)
    cluster.kubectl("create", "deployment", "keep", "--image=nginx", "-n", SENTINEL_NS)
    cluster.kubectl("create", "service", "clusterip", "keep", "--tcp=80:80", "-n", SENTINEL_NS)
    before = _snapshot(http, base)
    failures: list[str] = []

    @settings(max_examples=3000, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests())
    def fuzz(request: tuple[str, str, bytes, str]) -> None:
        method, path, body, content_type = request
        headers = {"Content-Type": content_type} if content_type else {}
        r = http.request(method, base + path, body=body, headers=headers, retries=False,
                         timeout=10)
        if r.status >= 500:
            failures.append(f"{r.status} {method} {path} {content_type} {body[:200]!r} -> {r.data[:300]!r}")
        if r.status >= 400 and r.data:
            status = json.loads(r.data)
            assert status.get("kind") == "Status" and status.get("code") == r.status, r.data

    fuzz()
    assert not failures, "\n".join(failures[:20])
    assert http.request("GET", base + "/healthz").data == b"ok"
    assert _snapshot(http, base) == before
