"""Editing objects the ways users do: kubectl edit (with a scripted editor), kubectl diff, and the
official Python client's patch calls of every content type."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster


def _deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": "nginx:1.25",
                                                           "ports": [{"containerPort": 80}]}]}}}}


def test_kubectl_edit_with_a_scripted_editor(cluster: Cluster, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cluster.kubectl("create", "configmap", "cfg", "--from-literal=mode=old", "-n", namespace)
    editor = tmp_path / "editor.py"
    editor.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "path = sys.argv[-1]\n"
        "text = open(path).read().replace('mode: old', 'mode: new')\n"
        "open(path, 'w').write(text)\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KUBE_EDITOR": str(editor)}
    out = subprocess.run(["kubectl", f"--cache-dir={cluster.cache_dir}", "edit", "configmap", "cfg",
                          "-n", namespace], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "configmap/cfg edited" in out.stdout
    data = json.loads(cluster.kubectl("get", "configmap", "cfg", "-n", namespace, "-o", "json").stdout)
    assert data["data"] == {"mode": "new"}


def test_kubectl_diff_shows_changes_without_storing_them(cluster: Cluster, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "d.json"
    obj = _deployment("web")
    obj["metadata"]["namespace"] = namespace
    manifest.write_text(json.dumps(obj))
    cluster.kubectl("apply", "-f", str(manifest))
    obj["spec"]["replicas"] = 4
    manifest.write_text(json.dumps(obj))
    diff = cluster.kubectl("diff", "-f", str(manifest), check=False)
    assert diff.returncode == 1, diff.stderr  # 1: differences found
    assert "-  replicas: 1" in diff.stdout and "+  replicas: 4" in diff.stdout
    live = json.loads(cluster.kubectl("get", "deployment", "web", "-n", namespace, "-o", "json").stdout)
    assert live["spec"]["replicas"] == 1


@pytest.mark.parametrize("content_type, body, expect", [
    ("application/json-patch+json", [{"op": "replace", "path": "/spec/replicas", "value": 3}],
     lambda d: d.spec.replicas == 3),
    ("application/merge-patch+json", {"metadata": {"labels": {"team": "a"}}},
     lambda d: d.metadata.labels == {"team": "a"}),
    ("application/strategic-merge-patch+json",
     {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}},
     lambda d: d.spec.template.spec.containers[0].image == "nginx:1.27"
     and d.spec.template.spec.containers[0].ports[0].container_port == 80),
    ("application/apply-patch+yaml",
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p"},
      "spec": {"replicas": 5}},
     lambda d: d.spec.replicas == 5),
])
def test_python_client_patch_types(api, namespace: str, content_type: str, body, expect) -> None:  # type: ignore[no-untyped-def]
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("p"))
    patched = apps.patch_namespaced_deployment("p", namespace, body, field_manager="test",
                                               force=content_type.startswith("application/apply") or None,
                                               _content_type=content_type)
    assert expect(patched)
    assert expect(apps.read_namespaced_deployment("p", namespace))


def test_python_client_failed_json_patch_is_422(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="c"), data={"a": "1"}))
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("c", namespace, [
            {"op": "test", "path": "/data/a", "value": "2"}],
            _content_type="application/json-patch+json")
    assert err.value.status == 422
    assert core.read_namespaced_config_map("c", namespace).data == {"a": "1"}
