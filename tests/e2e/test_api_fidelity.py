"""API fidelity judged by the real kubectl and the official client: OpenAPI schemas that
``kubectl explain`` and client-side apply read, and field validation as upstream answers it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster


def deployment(name: str, *, image: str = "busybox:1.36", replicas: int = 1,
               extra_spec: str = "", extra_container: str = "",
               containers: tuple[str, ...] = ("main",)) -> str:
    listed = "".join(
        f"      - name: {c}\n        image: {image}\n        command: [sleep, '1000']\n"
        + (extra_container if i == 0 else "")
        for i, c in enumerate(containers))
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n"
            f"  replicas: {replicas}\n{extra_spec}  selector:\n    matchLabels: {{app: {name}}}\n"
            f"  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n"
            f"      containers:\n{listed}")


def get(cluster: Cluster, namespace: str, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("-n", namespace, "get", *args, "-o", "json").stdout)


class TestExplain:
    def test_prints_field_docs_from_the_schemas(self, cluster: Cluster) -> None:
        out = cluster.kubectl("explain", "pods.spec.containers").stdout
        assert "FIELD: containers <[]Container>" in out
        assert "A single application container" in out
        assert "image\t<string>" in out

    def test_recursive(self, cluster: Cluster) -> None:
        out = cluster.kubectl("explain", "deployment.spec.strategy", "--recursive").stdout
        assert "GROUP:      apps" in out
        assert "rollingUpdate\t<RollingUpdateDeployment>" in out
        assert "maxSurge" in out and "type\t<string>" in out


class TestClientSideApply:
    def test_apply_twice_merges_lists_by_key_without_warnings(self, cluster: Cluster,
                                                               namespace: str) -> None:
        first = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=deployment("web"))
        assert "created" in first.stdout
        again = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=deployment("web"))
        assert "unchanged" in again.stdout
        changed = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=deployment(
            "web", image="busybox:1.37", replicas=2, containers=("main", "side")))
        assert "configured" in changed.stdout
        assert "warning" not in changed.stderr.lower()
        obj = get(cluster, namespace, "deployment", "web")
        assert obj["spec"]["replicas"] == 2
        containers = obj["spec"]["template"]["spec"]["containers"]
        assert [(c["name"], c["image"]) for c in containers] == [
            ("main", "busybox:1.37"), ("side", "busybox:1.37")]
        # The defaulted fields of the kept container survive the merge.
        assert containers[0]["terminationMessagePath"] == "/dev/termination-log"
        dropped = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=deployment(
            "web", image="busybox:1.37", replicas=2, containers=("side",)))
        assert "warning" not in dropped.stderr.lower()
        obj = get(cluster, namespace, "deployment", "web")
        assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["side"]


UNKNOWN = deployment("bad", extra_spec="  foo: bar\n", extra_container="        bogus: 1\n")


class TestFieldValidation:
    def test_strict_by_default_rejects_unknown_fields(self, cluster: Cluster,
                                                      namespace: str) -> None:
        result = cluster.kubectl("-n", namespace, "create", "-f", "-", input=UNKNOWN, check=False)
        assert result.returncode == 1
        assert ('Error from server (BadRequest): error when creating "STDIN": Deployment in '
                'version "v1" cannot be handled as a Deployment: strict decoding error: '
                'unknown field "spec.foo", unknown field '
                '"spec.template.spec.containers[0].bogus"') in result.stderr

    def test_warn_stores_the_object_without_them(self, cluster: Cluster, namespace: str) -> None:
        result = cluster.kubectl("-n", namespace, "create", "-f", "-", "--validate=warn",
                                 input=UNKNOWN)
        assert 'Warning: unknown field "spec.foo"' in result.stderr
        assert 'Warning: unknown field "spec.template.spec.containers[0].bogus"' in result.stderr
        obj = get(cluster, namespace, "deployment", "bad")
        assert "foo" not in obj["spec"]
        assert "bogus" not in obj["spec"]["template"]["spec"]["containers"][0]

    def test_validate_false_drops_them_silently(self, cluster: Cluster, namespace: str) -> None:
        result = cluster.kubectl("-n", namespace, "create", "-f", "-", "--validate=false",
                                 input=UNKNOWN)
        assert "deployment.apps/bad created" in result.stdout
        assert "Warning" not in result.stderr
        assert "foo" not in get(cluster, namespace, "deployment", "bad")["spec"]

    def test_replace_and_apply_are_strict_too(self, cluster: Cluster, namespace: str) -> None:
        cluster.kubectl("-n", namespace, "create", "-f", "-", input=deployment("bad"))
        replaced = cluster.kubectl("-n", namespace, "replace", "-f", "-", input=UNKNOWN,
                                   check=False)
        assert replaced.returncode == 1 and 'unknown field "spec.foo"' in replaced.stderr
        cluster.kubectl("-n", namespace, "replace", "-f", "-",
                        input=deployment("bad", replicas=3))
        applied = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=UNKNOWN, check=False)
        assert applied.returncode == 1 and "strict decoding error" in applied.stderr

    def test_a_string_for_an_integer_is_a_decoding_error(self, cluster: Cluster,
                                                         namespace: str) -> None:
        body = deployment("typed").replace("replicas: 1", "replicas: '2'")
        result = cluster.kubectl("-n", namespace, "create", "-f", "-", input=body, check=False)
        assert ('Deployment in version "v1" cannot be handled as a Deployment: json: cannot '
                'unmarshal string into Go struct field DeploymentSpec.spec.replicas of type '
                'int32') in result.stderr

    def test_a_bad_quantity(self, cluster: Cluster, namespace: str) -> None:
        body = deployment("quantity", extra_container="        resources: {limits: {cpu: abc}}\n")
        result = cluster.kubectl("-n", namespace, "create", "-f", "-", input=body, check=False)
        assert "quantities must match the regular expression" in result.stderr


    def test_requests_above_limits_are_invalid(self, cluster: Cluster, namespace: str) -> None:
        pod = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: greedy\nspec:\n  containers:\n"
               "  - name: c\n    image: busybox\n    resources:\n"
               "      limits: {cpu: 500m}\n      requests: {cpu: '1', memory: '-1'}\n")
        result = cluster.kubectl("-n", namespace, "create", "-f", "-", input=pod, check=False)
        assert ('The Pod "greedy" is invalid: \n'
                '* spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be '
                'greater than or equal to 0\n'
                '* spec.containers[0].resources.requests: Invalid value: "1": must be less than '
                'or equal to cpu limit of 500m') in result.stderr


def raw_request(api: client.ApiClient, method: str, path: str, body: Any,
                query: list[tuple[str, str]]) -> tuple[int, dict[str, Any], list[str]]:
    """The official client's transport, with a body its models would refuse (unknown
    fields); returns the status, the decoded body and the Warning headers."""
    prepared = api.param_serialize(method, path, query_params=query, body=body, header_params={
        "Content-Type": "application/json", "Accept": "application/json"})
    response = api.call_api(*prepared)
    response.read()
    warnings = response.response.headers.getlist("Warning")
    return response.status, json.loads(response.data), warnings


class TestOfficialClient:
    def test_strict_create_is_a_400(self, api: client.ApiClient, namespace: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        body = {"metadata": {"name": "cm"}, "data": {"a": "b"}, "extra": 1}
        status, answer, _ = raw_request(api, "POST", path, body, [("fieldValidation", "Strict")])
        assert status == 400
        assert answer["message"] == ('ConfigMap in version "v1" cannot be handled as a '
                                     'ConfigMap: strict decoding error: unknown field "extra"')

    def test_no_directive_means_warn(self, api: client.ApiClient, namespace: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        body = {"metadata": {"name": "cm"}, "data": {"a": "b"}, "extra": 1}
        status, answer, warnings = raw_request(api, "POST", path, body, [])
        assert status == 201 and "extra" not in answer
        assert warnings == ['299 - "unknown field \\"extra\\""']
        cm = client.CoreV1Api(api).read_namespaced_config_map("cm", namespace)
        assert cm.data == {"a": "b"}

    def test_unknown_directive_is_invalid(self, api: client.ApiClient, namespace: str) -> None:
        core = client.CoreV1Api(api)
        with pytest.raises(ApiException) as failure:
            core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}},
                                              field_validation="Loose")
        assert failure.value.status == 422

    def test_openapi_v2_is_served_as_json(self, cluster: Cluster) -> None:
        doc = json.loads(cluster.kubectl("get", "--raw", "/openapi/v2").stdout)
        assert doc["swagger"] == "2.0"
        assert "io.k8s.api.apps.v1.Deployment" in doc["definitions"]
