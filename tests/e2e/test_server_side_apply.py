"""Server-side apply judged by the real kubectl: field ownership, conflicts and their
forcing, field removal, and how it meets ``kubectl create``, ``scale`` and client-side apply."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster

CONFLICT_HELP = "--force-conflicts"


def manifest(name: str, *, replicas: int = 2, image: str = "busybox:1.36",
             port: bool = True, labels: str = "") -> str:
    ports = "        ports:\n        - containerPort: 80\n" if port else ""
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{labels}"
            f"spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n"
            f"  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n"
            f"      containers:\n      - name: main\n        image: {image}\n{ports}")


def apply(cluster: Cluster, namespace: str, text: str, *flags: str,
          check: bool = True) -> Any:
    return cluster.kubectl("-n", namespace, "apply", "--server-side", *flags, "-f", "-",
                           input=text, check=check)


def get(cluster: Cluster, namespace: str, name: str, *flags: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("-n", namespace, "get", "deployment", name, "-o", "json",
                                      *flags).stdout)


def owners(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"]["managedFields"]}


class TestApply:
    def test_creates_and_records_the_applied_fields(self, cluster: Cluster, namespace: str) -> None:
        out = apply(cluster, namespace, manifest("web"))
        assert out.stdout.strip() == "deployment.apps/web serverside-applied"
        obj = get(cluster, namespace, "web", "--show-managed-fields")
        (entry,) = obj["metadata"]["managedFields"]
        assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["fieldsType"]) == \
            ("kubectl", "Apply", "apps/v1", "FieldsV1")
        assert entry["time"].endswith("Z")
        container = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}']
        assert container == {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
            'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}
        assert entry["fieldsV1"]["f:spec"]["f:selector"] == {}
        # defaults are applied, and owned by nobody
        assert obj["spec"]["revisionHistoryLimit"] == 10
        assert "f:revisionHistoryLimit" not in entry["fieldsV1"]["f:spec"]

    def test_managed_fields_are_hidden_unless_asked_for(self, cluster: Cluster, namespace: str) -> None:
        apply(cluster, namespace, manifest("web"))
        shown = cluster.kubectl("-n", namespace, "get", "deploy", "web", "-o", "yaml").stdout
        assert "managedFields" not in shown
        shown = cluster.kubectl("-n", namespace, "get", "deploy", "web", "-o", "yaml",
                                "--show-managed-fields").stdout
        assert "managedFields:" in shown and "manager: kubectl" in shown

    def test_reapplying_updates_and_a_dropped_field_is_removed(self, cluster: Cluster,
                                                               namespace: str) -> None:
        apply(cluster, namespace, manifest("web"))
        apply(cluster, namespace, manifest("web", image="busybox:1.37", port=False))
        obj = get(cluster, namespace, "web", "--show-managed-fields")
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "busybox:1.37"
        assert "ports" not in container
        assert obj["metadata"]["generation"] == 2
        assert "f:ports" not in json.dumps(obj["metadata"]["managedFields"])

    def test_an_unchanged_apply_writes_nothing(self, cluster: Cluster, namespace: str) -> None:
        apply(cluster, namespace, manifest("web"))
        before = get(cluster, namespace, "web")["metadata"]["resourceVersion"]
        apply(cluster, namespace, manifest("web"))
        assert get(cluster, namespace, "web")["metadata"]["resourceVersion"] == before

    def test_dry_run_stores_nothing(self, cluster: Cluster, namespace: str) -> None:
        apply(cluster, namespace, manifest("web"), "--dry-run=server")
        missing = cluster.kubectl("-n", namespace, "get", "deploy", "web", check=False)
        assert "NotFound" in missing.stderr
        apply(cluster, namespace, manifest("web"))
        apply(cluster, namespace, manifest("web", replicas=7), "--dry-run=server")
        assert get(cluster, namespace, "web")["spec"]["replicas"] == 2


class TestConflicts:
    def test_two_managers_conflict_and_force_takes_over(self, cluster: Cluster,
                                                        namespace: str) -> None:
        apply(cluster, namespace, manifest("web"), "--field-manager=a")
        clash = apply(cluster, namespace, manifest("web", replicas=5), "--field-manager=b",
                      check=False)
        assert clash.returncode != 0
        assert 'Apply failed with 1 conflict: conflict with "a": .spec.replicas' in clash.stderr
        assert CONFLICT_HELP in clash.stderr
        apply(cluster, namespace, manifest("web", replicas=5), "--field-manager=b",
              "--force-conflicts")
        obj = get(cluster, namespace, "web", "--show-managed-fields")
        assert obj["spec"]["replicas"] == 5
        got = owners(obj)
        assert "f:replicas" in got[("b", "Apply", "")]["f:spec"]
        assert "f:replicas" not in got[("a", "Apply", "")]["f:spec"]

    def test_the_same_value_is_co_owned(self, cluster: Cluster, namespace: str) -> None:
        apply(cluster, namespace, manifest("web"), "--field-manager=a")
        apply(cluster, namespace, manifest("web"), "--field-manager=b")
        apply(cluster, namespace, manifest("web", port=False), "--field-manager=a")
        # b still applies the port, so a dropping it leaves it in place
        obj = get(cluster, namespace, "web")
        assert obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 80

    def test_scale_then_apply_conflicts_with_the_scale_subresource(self, cluster: Cluster,
                                                                   namespace: str) -> None:
        apply(cluster, namespace, manifest("web"))
        cluster.kubectl("-n", namespace, "scale", "deployment", "web", "--replicas=4")
        got = owners(get(cluster, namespace, "web", "--show-managed-fields"))
        assert got[("kubectl", "Update", "scale")] == {"f:spec": {"f:replicas": {}}}
        clash = apply(cluster, namespace, manifest("web", replicas=3), check=False)
        assert ('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
                "using apps/v1: .spec.replicas") in clash.stderr
        apply(cluster, namespace, manifest("web", replicas=3), "--force-conflicts")
        assert get(cluster, namespace, "web")["spec"]["replicas"] == 3

    def test_apply_after_create_conflicts_with_kubectl_create(self, cluster: Cluster,
                                                              namespace: str) -> None:
        cluster.kubectl("-n", namespace, "create", "-f", "-", input=manifest("web"))
        got = owners(get(cluster, namespace, "web", "--show-managed-fields"))
        spec = got[("kubectl-create", "Update", "")]["f:spec"]
        assert "f:revisionHistoryLimit" in spec  # creates own the defaults too
        clash = apply(cluster, namespace, manifest("web", replicas=3), check=False)
        assert ('conflict with "kubectl-create" using apps/v1: .spec.replicas') in clash.stderr
        apply(cluster, namespace, manifest("web", replicas=3), "--force-conflicts")
        assert get(cluster, namespace, "web")["spec"]["replicas"] == 3

    def test_after_client_side_apply(self, cluster: Cluster, namespace: str) -> None:
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=manifest("web"))
        clash = apply(cluster, namespace, manifest("web", replicas=3), "--field-manager=other",
                      check=False)
        assert 'conflict with "kubectl-client-side-apply" using apps/v1' in clash.stderr
        # kubectl itself migrates its client-side ownership and may change what it applied
        apply(cluster, namespace, manifest("web", replicas=3))
        obj = get(cluster, namespace, "web", "--show-managed-fields")
        assert obj["spec"]["replicas"] == 3
        got = owners(obj)
        assert ("kubectl-client-side-apply", "Update", "") not in got
        assert ("kubectl-last-applied", "Apply", "") in got
        last = json.loads(obj["metadata"]["annotations"][
            "kubectl.kubernetes.io/last-applied-configuration"])
        assert last["spec"]["replicas"] == 3

    def test_conflict_status_as_upstream(self, cluster: Cluster, namespace: str, api: Any) -> None:
        apply(cluster, namespace, manifest("web"), "--field-manager=a")
        apps = client.AppsV1Api(api)
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 9}}
        with pytest.raises(ApiException) as info:
            apps.patch_namespaced_deployment("web", namespace, body, field_manager="b",
                                             _content_type="application/apply-patch+yaml")
        status = json.loads(info.value.body)
        assert (status["code"], status["reason"]) == (409, "Conflict")
        assert status["details"]["causes"] == [{"reason": "FieldManagerConflict",
                                                "message": 'conflict with "a"',
                                                "field": ".spec.replicas"}]


class TestUpdatesRecordManagers:
    def test_writers_are_named_by_field_manager_or_user_agent(self, cluster: Cluster,
                                                              namespace: str, api: Any) -> None:
        cluster.kubectl("-n", namespace, "create", "-f", "-", input=manifest("web"))
        cluster.kubectl("-n", namespace, "label", "deployment", "web", "tier=x")
        apps = client.AppsV1Api(api)
        apps.patch_namespaced_deployment("web", namespace, {"spec": {"paused": True}})
        got = owners(get(cluster, namespace, "web", "--show-managed-fields"))
        assert got[("kubectl-label", "Update", "")] == {
            "f:metadata": {"f:labels": {".": {}, "f:tier": {}}}}
        python = [k for k in got if k[0] not in ("kubectl-create", "kubectl-label")]
        assert python == [("OpenAPI-Generator", "Update", "")]

    def test_apply_requires_a_field_manager(self, cluster: Cluster, namespace: str,
                                            api: Any) -> None:
        apps = client.AppsV1Api(api)
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
        with pytest.raises(ApiException) as info:
            apps.patch_namespaced_deployment("web", namespace, body,
                                             _content_type="application/apply-patch+yaml")
        status = json.loads(info.value.body)
        assert status["code"] == 422
        assert status["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                                     "Required value: is required for apply patch")

    def test_clearing_managed_fields(self, cluster: Cluster, namespace: str) -> None:
        cluster.kubectl("-n", namespace, "create", "-f", "-", input=manifest("web"))
        cluster.kubectl("-n", namespace, "patch", "deployment", "web", "--type=merge",
                        "-p", '{"metadata":{"managedFields":[{}]}}')
        obj = get(cluster, namespace, "web", "--show-managed-fields")
        assert "managedFields" not in obj["metadata"]


class TestStatus:
    def test_status_is_applied_and_owned_through_its_subresource(self, cluster: Cluster,
                                                                 namespace: str) -> None:
        pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: busybox}]\n"
        status = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus:\n  conditions:\n"
                  "  - {type: Ready, status: 'False'}\n  message: hi\n")
        cluster.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=pod)
        # status in a main-resource apply is owned by nobody and ignored
        cluster.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=pod + status.split("\n", 3)[3])
        for text in (status, status.replace("  message: hi\n", "")):
            cluster.kubectl("-n", namespace, "apply", "--server-side", "--subresource=status",
                            "--field-manager=ctl", "-f", "-", input=text)
        obj = json.loads(cluster.kubectl("-n", namespace, "get", "pod", "p", "-o", "json",
                                         "--show-managed-fields").stdout)
        assert obj["status"]["conditions"][0]["type"] == "Ready"
        assert "message" not in obj["status"]
        got = {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
               for e in obj["metadata"]["managedFields"]}
        assert list(got[("ctl", "Apply", "status")]) == ["f:status"]
        assert "f:status" not in got[("kubectl", "Apply", "")]
