"""The real kubectl (v1.32) against a real pyk8s server: the commands users type."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.cluster import Cluster


def get_json(cluster: Cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_version_reports_1_32(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["major"] == "1"
    assert out["serverVersion"]["minor"] == "32"


def test_api_resources_lists_core_and_apps(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources").stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]
             if "metrics.k8s.io" not in line}
    assert "po" in lines["pods"].split()
    assert "deploy" in lines["deployments"].split()
    assert "apps/v1" in lines["deployments"]
    assert "leases" in lines and "endpointslices" in lines


def test_system_namespaces_exist(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "namespaces").stdout
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert any(line.split()[:2] == [name, "Active"] for line in out.splitlines()), out


def test_kubernetes_service_holds_first_ip(cluster: Cluster) -> None:
    svc = get_json(cluster, "service", "kubernetes", "-n", "default")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"


def test_typed_create_commands_send_protobuf(cluster: Cluster, namespace: str) -> None:
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=2", *ns,
                    "--", "sh", "-c", "sleep 1000")
    cluster.kubectl("create", "deployment", "zero", "--image=busybox", "--replicas=0", *ns)
    cluster.kubectl("create", "configmap", "cfg", "--from-literal=a=b", *ns)
    cluster.kubectl("create", "secret", "generic", "sec", "--from-literal=k=v", *ns)
    cluster.kubectl("create", "service", "clusterip", "svc", "--tcp=80:8080", *ns)
    cluster.kubectl("create", "job", "job", "--image=busybox", *ns)
    cluster.kubectl("create", "serviceaccount", "robot", *ns)

    web = get_json(cluster, "deployment", "web", *ns)
    assert web["spec"]["replicas"] == 2
    assert web["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "sleep 1000"]
    assert web["spec"]["strategy"]["type"] == "RollingUpdate"
    assert web["spec"]["revisionHistoryLimit"] == 10
    assert web["metadata"]["generation"] == 1
    assert get_json(cluster, "deployment", "zero", *ns)["spec"]["replicas"] == 0
    assert get_json(cluster, "configmap", "cfg", *ns)["data"] == {"a": "b"}
    assert get_json(cluster, "secret", "sec", *ns)["data"] == {"k": "dg=="}
    svc = get_json(cluster, "service", "svc", *ns)
    assert svc["spec"]["clusterIP"].startswith("10.")
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    assert get_json(cluster, "job", "job", *ns)["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert get_json(cluster, "serviceaccount", "robot", *ns)["metadata"]["name"] == "robot"


def test_run_and_get_pods_as_table(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("run", "p", "--image=busybox", "-n", namespace, "--labels=app=demo,tier=x")
    out = cluster.kubectl("get", "pods", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert out[1].split()[:4] == ["p", "0/1", "Pending", "0"]
    wide = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "NODE" in wide[0] and "IP" in wide[0]
    labels = cluster.kubectl("get", "pods", "-n", namespace, "--show-labels").stdout
    assert "app=demo,tier=x" in labels
    column = cluster.kubectl("get", "pods", "-n", namespace, "-L", "tier").stdout
    assert column.splitlines()[0].split()[-1] == "TIER"
    names = cluster.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()
    assert names == ["pod/p"]


def test_output_formats(cluster: Cluster, namespace: str) -> None:
    for name in ("b", "a", "c"):
        cluster.kubectl("create", "configmap", name, f"--from-literal=k={name}", "-n", namespace)
    out = cluster.kubectl("get", "cm", "-n", namespace, "--sort-by=.metadata.name",
                          "-o", "custom-columns=N:.metadata.name,V:.data.k").stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[0] for r in rows if r[0] in "abc"] == ["a", "b", "c"]
    yaml_out = cluster.kubectl("get", "cm", "a", "-n", namespace, "-o", "yaml").stdout
    assert "kind: ConfigMap" in yaml_out and "k: a" in yaml_out
    path = cluster.kubectl("get", "cm", "b", "-n", namespace, "-o", "jsonpath={.data.k}").stdout
    assert path == "b"
    listed = get_json(cluster, "cm", "-n", namespace)
    assert {item["metadata"]["name"] for item in listed["items"]} >= {"a", "b", "c"}


def test_get_all_uses_category(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "deployment", "d", "--image=nginx", "-n", namespace)
    out = cluster.kubectl("get", "all", "-n", namespace).stdout
    assert "deployment.apps/d" in out


def test_label_annotate_scale(cluster: Cluster, namespace: str) -> None:
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "web", "--image=nginx", *ns)
    cluster.kubectl("label", "deployment", "web", "team=blue", *ns)
    cluster.kubectl("annotate", "deployment", "web", "note=hello", *ns)
    cluster.kubectl("scale", "deployment", "web", "--replicas=4", *ns)
    web = get_json(cluster, "deployment", "web", *ns)
    assert web["metadata"]["labels"]["team"] == "blue"
    assert web["metadata"]["annotations"]["note"] == "hello"
    assert web["spec"]["replicas"] == 4
    assert web["metadata"]["generation"] == 2  # scale changes spec; labels do not
    cluster.kubectl("label", "deployment", "web", "team-", *ns)
    assert "team" not in get_json(cluster, "deployment", "web", *ns)["metadata"].get("labels", {})


def test_apply_creates_then_patches(cluster: Cluster, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "app.yaml"
    template = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: {ns}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: app}}
  template:
    metadata:
      labels: {{app: app}}
    spec:
      containers:
      - name: main
        image: {image}
        command: ["sleep", "1000"]
"""
    manifest.write_text(template.format(ns=namespace, replicas=1, image="busybox:1.36"))
    assert "created" in cluster.kubectl("apply", "-f", str(manifest)).stdout
    assert "unchanged" in cluster.kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(template.format(ns=namespace, replicas=3, image="busybox:1.37"))
    assert "configured" in cluster.kubectl("apply", "-f", str(manifest)).stdout
    app = get_json(cluster, "deployment", "app", "-n", namespace)
    container = app["spec"]["template"]["spec"]["containers"][0]
    assert app["spec"]["replicas"] == 3
    assert container["image"] == "busybox:1.37"
    assert container["command"] == ["sleep", "1000"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in app["metadata"]["annotations"]


def test_set_image_keeps_other_container_fields(cluster: Cluster, namespace: str) -> None:
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "web", "--image=busybox", *ns, "--", "sleep", "99")
    cluster.kubectl("set", "image", "deployment/web", "busybox=busybox:1.37", *ns)
    container = get_json(cluster, "deployment", "web", *ns)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "busybox:1.37"
    assert container["command"] == ["sleep", "99"]


def test_patch_types(cluster: Cluster, namespace: str) -> None:
    ns = ["-n", namespace]
    cluster.kubectl("create", "configmap", "c", "--from-literal=a=1", *ns)
    cluster.kubectl("patch", "configmap", "c", *ns, "--type=merge", "-p", '{"data":{"b":"2"}}')
    cluster.kubectl("patch", "configmap", "c", *ns, "--type=json",
                    "-p", '[{"op":"remove","path":"/data/a"}]')
    assert get_json(cluster, "configmap", "c", *ns)["data"] == {"b": "2"}
    failed = cluster.kubectl("patch", "configmap", "c", *ns, "--type=json",
                             "-p", '[{"op":"test","path":"/data/b","value":"3"}]', check=False)
    assert failed.returncode != 0
    assert get_json(cluster, "configmap", "c", *ns)["data"] == {"b": "2"}


def test_replace_with_stale_version_conflicts(cluster: Cluster, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ns = ["-n", namespace]
    cluster.kubectl("create", "configmap", "c", "--from-literal=a=1", *ns)
    stale = get_json(cluster, "configmap", "c", *ns)
    cluster.kubectl("patch", "configmap", "c", *ns, "--type=merge", "-p", '{"data":{"a":"2"}}')
    stale["data"]["a"] = "3"
    path = tmp_path / "stale.json"
    path.write_text(json.dumps(stale))
    result = cluster.kubectl("replace", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "the object has been modified" in result.stderr
    assert get_json(cluster, "configmap", "c", *ns)["data"]["a"] == "2"


def test_create_from_file_and_delete(cluster: Cluster, namespace: str) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "from-file", "namespace": namespace},
                           "data": {"x": "y"}})
    assert "created" in cluster.kubectl("create", "-f", "-", input=manifest).stdout
    again = cluster.kubectl("create", "-f", "-", input=manifest, check=False)
    assert "AlreadyExists" in again.stderr
    assert "deleted" in cluster.kubectl("delete", "configmap", "from-file", "-n", namespace).stdout
    missing = cluster.kubectl("get", "configmap", "from-file", "-n", namespace, check=False)
    assert 'configmaps "from-file" not found' in missing.stderr


def test_delete_unscheduled_pod_is_immediate(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("run", "gone", "--image=busybox", "-n", namespace)
    out = cluster.kubectl("delete", "pod", "gone", "-n", namespace, timeout=20).stdout
    assert 'pod "gone" deleted' in out


def test_field_and_label_selectors(cluster: Cluster, namespace: str) -> None:
    ns = ["-n", namespace]
    cluster.kubectl("run", "a", "--image=busybox", "--labels=tier=front", *ns)
    cluster.kubectl("run", "b", "--image=busybox", "--labels=tier=back", *ns)
    names = cluster.kubectl("get", "pods", *ns, "-l", "tier in (front)", "-o", "name").stdout.split()
    assert names == ["pod/a"]
    pending = cluster.kubectl("get", "pods", *ns, "--field-selector", "status.phase=Pending",
                              "-o", "name").stdout.split()
    assert sorted(pending) == ["pod/a", "pod/b"]
    bad = cluster.kubectl("get", "pods", *ns, "--field-selector", "spec.bogus=1", check=False)
    assert "field label not supported: spec.bogus" in bad.stderr


def test_auth_can_i(cluster: Cluster) -> None:
    assert cluster.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "get", "deployments.apps", "-n", "kube-system").stdout.strip() == "yes"


def test_get_watch_streams_changes(cluster: Cluster, namespace: str) -> None:
    import os

    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    watcher = subprocess.Popen(
        ["kubectl", f"--cache-dir={cluster.cache_dir}", "get", "configmaps", "-n", namespace, "-w"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.5)
        cluster.kubectl("create", "configmap", "seen", "--from-literal=a=b", "-n", namespace)
        time.sleep(1.5)
        assert watcher.poll() is None, "kubectl get -w must keep running"
    finally:
        watcher.send_signal(signal.SIGINT)
        out, _ = watcher.communicate(timeout=10)
    assert "seen" in out


def test_rollout_status_reads_generation(cluster: Cluster, namespace: str) -> None:
    """With no controller yet, a new deployment has not been observed: rollout status waits."""
    cluster.kubectl("create", "deployment", "r", "--image=nginx", "-n", namespace)
    out = cluster.kubectl("rollout", "status", "deployment/r", "-n", namespace,
                          "--timeout=2s", check=False)
    assert out.returncode != 0
    assert "Waiting for deployment spec update to be observed" in out.stdout + out.stderr


def test_cluster_info(cluster: Cluster) -> None:
    out = cluster.kubectl("cluster-info").stdout
    assert "is running at" in out and str(cluster.port) in out


def test_not_found_error_is_upstream_worded(cluster: Cluster) -> None:
    result = cluster.kubectl("get", "pod", "nope", "-n", "default", check=False)
    assert result.returncode == 1
    assert 'Error from server (NotFound): pods "nope" not found' in result.stderr


def test_invalid_name_is_rejected(cluster: Cluster) -> None:
    result = cluster.kubectl("create", "configmap", "Bad_Name", check=False)
    assert result.returncode == 1
    assert "Invalid" in result.stderr
    assert "a lowercase RFC 1123 subdomain" in result.stderr
