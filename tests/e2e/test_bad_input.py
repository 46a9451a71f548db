"""Bad input gets a Kubernetes Status with the right code and a message naming the problem,
never a 500, and nothing stored is lost."""

from __future__ import annotations

import json

import pytest
import urllib3

from tests.cluster import Cluster


class Http:
    def __init__(self, cluster: Cluster, *, authenticated: bool = True) -> None:
        pki = cluster.data_dir / "pki"
        kwargs = {"cert_file": str(pki / "admin.crt"), "key_file": str(pki / "admin.key")} if authenticated else {}
        self.pool = urllib3.PoolManager(ca_certs=str(pki / "ca.crt"), cert_reqs="CERT_REQUIRED", **kwargs)
        self.base = cluster.url

    def request(self, method: str, path: str, body: bytes | str | None = None,
                content_type: str = "application/json", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        all_headers = {"Content-Type": content_type, **(headers or {})}
        return self.pool.request(method, self.base + path, body=body, headers=all_headers,
                                 retries=False, timeout=10)


@pytest.fixture(scope="module")
def http(cluster: Cluster) -> Http:
    return Http(cluster)


def status_of(response) -> dict:  # type: ignore[no-untyped-def]
    body = json.loads(response.data)
    assert body["kind"] == "Status", body
    assert body["code"] == response.status
    return body


CM_PATH = "/api/v1/namespaces/{ns}/configmaps"


def test_malformed_json_is_400(http: Http, namespace: str) -> None:
    r = http.request("POST", CM_PATH.format(ns=namespace), b'{"metadata": {"name": ')
    assert r.status == 400
    assert "not valid JSON" in status_of(r)["message"]


def test_malformed_yaml_is_400(http: Http, namespace: str) -> None:
    r = http.request("POST", CM_PATH.format(ns=namespace), b"metadata: [unclosed",
                     content_type="application/yaml")
    assert r.status == 400
    assert status_of(r)["reason"] == "BadRequest"


def test_yaml_body_is_accepted(http: Http, namespace: str) -> None:
    r = http.request("POST", CM_PATH.format(ns=namespace),
                     b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n",
                     content_type="application/yaml")
    assert r.status == 201, r.data
    assert json.loads(r.data)["data"] == {"a": "b"}


def test_garbage_protobuf_is_400(http: Http, namespace: str) -> None:
    r = http.request("POST", CM_PATH.format(ns=namespace), b"k8s\x00\xff\xff\xff",
                     content_type="application/vnd.kubernetes.protobuf")
    assert r.status == 400
    r = http.request("POST", CM_PATH.format(ns=namespace), b"not protobuf",
                     content_type="application/vnd.kubernetes.protobuf")
    assert r.status == 400


def test_unknown_content_type_is_415(http: Http, namespace: str) -> None:
    r = http.request("POST", CM_PATH.format(ns=namespace), b"<xml/>", content_type="application/xml")
    assert r.status == 415
    assert status_of(r)["reason"] == "UnsupportedMediaType"


def test_kind_mismatch_is_400(http: Http, namespace: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    r = http.request("POST", CM_PATH.format(ns=namespace), body)
    assert r.status == 400
    assert "does not match the expected kind (ConfigMap)" in status_of(r)["message"]
    body = json.dumps({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    r = http.request("POST", CM_PATH.format(ns=namespace), body)
    assert r.status == 400


def test_namespace_mismatch_is_400(http: Http, namespace: str) -> None:
    body = json.dumps({"metadata": {"name": "x", "namespace": "kube-system"}})
    r = http.request("POST", CM_PATH.format(ns=namespace), body)
    assert r.status == 400
    assert "does not match the namespace sent on the request" in status_of(r)["message"]


def test_invalid_names_are_422_with_causes(http: Http, namespace: str) -> None:
    r = http.request("POST", CM_PATH.format(ns=namespace), json.dumps({"metadata": {"name": "Bad_Name"}}))
    assert r.status == 422
    status = status_of(r)
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert 'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in status["message"]
    r = http.request("POST", CM_PATH.format(ns=namespace), json.dumps({"metadata": {}}))
    assert r.status == 422
    assert "name or generateName is required" in status_of(r)["message"]
    r = http.request("POST", CM_PATH.format(ns=namespace),
                     json.dumps({"metadata": {"name": "ok", "labels": {"k": "bad value"}}}))
    assert r.status == 422


def test_non_object_bodies_are_400(http: Http, namespace: str) -> None:
    for body in (b"[]", b"42", b'"text"', b"null"):
        r = http.request("POST", CM_PATH.format(ns=namespace), body)
        assert r.status == 400, (body, r.status, r.data)


def test_body_over_3_mib_is_413(http: Http, namespace: str) -> None:
    big = json.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024 + 10)}})
    r = http.request("POST", CM_PATH.format(ns=namespace), big)
    assert r.status == 413
    assert status_of(r)["reason"] == "RequestEntityTooLarge"


def test_unknown_resources_and_verbs(http: Http, namespace: str) -> None:
    r = http.request("GET", f"/api/v1/namespaces/{namespace}/widgets")
    assert r.status == 404
    assert status_of(r)["reason"] == "NotFound"
    r = http.request("GET", "/apis/nope.example.com/v1/things")
    assert r.status == 404
    r = http.request("POST", f"/api/v1/namespaces/{namespace}/configmaps/x", b"{}")
    assert r.status == 405
    r = http.request("PUT", f"/api/v1/namespaces/{namespace}/configmaps", b"{}")
    assert r.status == 405
    r = http.request("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert r.status == 405


def test_stale_resource_version_is_409(http: Http, namespace: str) -> None:
    path = CM_PATH.format(ns=namespace)
    created = json.loads(http.request("POST", path, json.dumps({"metadata": {"name": "rv"}, "data": {"a": "1"}})).data)
    stale = created["metadata"]["resourceVersion"]
    assert http.request("PATCH", f"{path}/rv", json.dumps({"data": {"a": "2"}}),
                        content_type="application/merge-patch+json").status == 200
    created["data"]["a"] = "3"
    r = http.request("PUT", f"{path}/rv", json.dumps(created))
    assert r.status == 409
    status = status_of(r)
    assert status["reason"] == "Conflict"
    assert status["message"] == ('Operation cannot be fulfilled on configmaps "rv": the object has '
                                 "been modified; please apply your changes to the latest version and try again")
    r = http.request("DELETE", f"{path}/rv", json.dumps({"preconditions": {"resourceVersion": stale}}))
    assert r.status == 409
    assert json.loads(http.request("GET", f"{path}/rv").data)["data"] == {"a": "2"}


def test_bad_patches(http: Http, namespace: str) -> None:
    path = CM_PATH.format(ns=namespace)
    http.request("POST", path, json.dumps({"metadata": {"name": "p"}, "data": {"a": "1"}}))
    r = http.request("PATCH", f"{path}/p", b'[{"op":"test","path":"/data/a","value":"2"}]',
                     content_type="application/json-patch+json")
    assert r.status in (409, 422), r.data
    status_of(r)
    r = http.request("PATCH", f"{path}/p", b'{"not": "a list"}', content_type="application/json-patch+json")
    assert r.status in (400, 422)
    r = http.request("PATCH", f"{path}/p", b'{"data": {"a": "2"}}', content_type="text/plain")
    assert r.status == 415
    r = http.request("PATCH", f"{path}/p", b'{"metadata": {"name": "other"}}',
                     content_type="application/merge-patch+json")
    assert r.status in (400, 422)
    assert json.loads(http.request("GET", f"{path}/p").data)["data"] == {"a": "1"}


def test_bad_query_parameters(http: Http, namespace: str) -> None:
    path = CM_PATH.format(ns=namespace)
    for query in ("limit=abc", "labelSelector=a%20in%20(", "fieldSelector=x", "continue=garbage",
                  "resourceVersion=abc", "resourceVersionMatch=Sometimes&resourceVersion=1"):
        r = http.request("GET", f"{path}?{query}")
        assert r.status == 400, (query, r.status, r.data)
        status_of(r)


def test_anonymous_requests(cluster: Cluster) -> None:
    anon = Http(cluster, authenticated=False)
    assert anon.request("GET", "/healthz").data == b"ok"
    assert json.loads(anon.request("GET", "/version").data)["minor"] == "32"
    r = anon.request("GET", "/api/v1/namespaces")
    assert r.status == 401
    assert status_of(r)["reason"] == "Unauthorized"


def test_server_still_serves_after_bad_input(http: Http) -> None:
    r = http.request("GET", "/api/v1/namespaces/default")
    assert r.status == 200
    assert json.loads(r.data)["metadata"]["name"] == "default"
