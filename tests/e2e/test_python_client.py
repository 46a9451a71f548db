"""The official ``kubernetes`` Python client against a real pyk8s server."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def _cm(name: str, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels={"app": "t"}), data=data)


def test_crud_round_trip(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, _cm("one", a="1"))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    got = core.read_namespaced_config_map("one", namespace)
    assert got.data == {"a": "1"}
    got.data["b"] = "2"
    updated = core.replace_namespaced_config_map("one", namespace, got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    patched = core.patch_namespaced_config_map("one", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels == {"app": "t", "x": "y"}
    core.delete_namespaced_config_map("one", namespace)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("one", namespace)
    assert err.value.status == 404


def test_update_with_stale_resource_version_is_409(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    first = core.create_namespaced_config_map(namespace, _cm("c", a="1"))
    core.patch_namespaced_config_map("c", namespace, {"data": {"a": "2"}})
    first.data = {"a": "3"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", namespace, first)
    assert err.value.status == 409
    assert "the object has been modified" in err.value.body
    assert core.read_namespaced_config_map("c", namespace).data == {"a": "2"}


def test_create_existing_is_409_already_exists(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, _cm("dup"))
    assert err.value.status == 409
    assert '"reason":"AlreadyExists"' in err.value.body.replace(" ", "")


def test_generate_name(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-"))
    names = {core.create_namespaced_config_map(namespace, body).metadata.name for _ in range(5)}
    assert len(names) == 5
    assert all(n.startswith("gen-") and len(n) == 9 for n in names)


def test_paging_with_continue(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    for i in range(25):
        core.create_namespaced_config_map(namespace, _cm(f"page-{i:02d}"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(namespace, limit=10, _continue=token)
        pages += 1
        seen += [item.metadata.name for item in page.items]
        token = page.metadata._continue
        if not token:
            break
        # A write between pages must not show up in the paged (consistent) list.
        if pages == 1:
            core.create_namespaced_config_map(namespace, _cm("page-99-late"))
    assert pages == 3
    assert seen == [f"page-{i:02d}" for i in range(25)]
    first = core.list_namespaced_config_map(namespace, limit=10)
    assert first.metadata.remaining_item_count == 16


def test_label_selector_list(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels={"tier": tier}))
        core.create_namespaced_config_map(namespace, body)
    web = core.list_namespaced_config_map(namespace, label_selector="tier=web")
    assert sorted(i.metadata.name for i in web.items) == ["a", "c"]
    not_web = core.list_namespaced_config_map(namespace, label_selector="tier notin (web)")
    assert [i.metadata.name for i in not_web.items] == ["b"]
    by_name = core.list_namespaced_config_map(namespace, field_selector="metadata.name=b")
    assert [i.metadata.name for i in by_name.items] == ["b"]


def test_watch_resumes_from_resource_version(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    listed = core.list_namespaced_config_map(namespace)
    rv = listed.metadata.resource_version
    core.create_namespaced_config_map(namespace, _cm("w1"))
    core.patch_namespaced_config_map("w1", namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w1", namespace)
    events = []
    for event in watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                      resource_version=rv, timeout_seconds=2):
        events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_sees_live_changes_and_selector_transitions(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("live"))
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    events: list[tuple[str, str]] = []

    def consume() -> None:
        for event in watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                          label_selector="phase=on", resource_version=rv,
                                          timeout_seconds=3):
            events.append((event["type"], event["object"].metadata.name))

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.5)
    core.patch_namespaced_config_map("live", namespace, {"metadata": {"labels": {"phase": "on"}}})
    core.patch_namespaced_config_map("live", namespace, {"metadata": {"labels": {"phase": "off"}}})
    thread.join()
    # Entering the selection is ADDED for this watcher, leaving it DELETED.
    assert events == [("ADDED", "live"), ("DELETED", "live")]


def test_watch_without_version_starts_with_current_state(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("existing"))
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, timeout_seconds=1)]
    assert events == [("ADDED", "existing")]


def test_deployment_generation_and_status_subresource(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    apps = client.AppsV1Api(api)
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="d"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "d"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "d"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]))))
    created = apps.create_namespaced_deployment(namespace, body)
    assert created.metadata.generation == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    # The main resource ignores status; /status changes only status.
    created.status = client.V1DeploymentStatus(replicas=7)
    created.metadata.labels = {"x": "y"}
    after = apps.replace_namespaced_deployment("d", namespace, created)
    assert after.status is None or after.status.replicas is None
    assert after.metadata.generation == 1  # labels are not spec
    after.status = client.V1DeploymentStatus(replicas=3, observed_generation=1)
    after.spec.replicas = 9
    status = apps.replace_namespaced_deployment_status("d", namespace, after)
    assert status.status.replicas == 3
    assert status.spec.replicas == 1
    scaled = apps.patch_namespaced_deployment_scale("d", namespace, {"spec": {"replicas": 5}})
    assert scaled.spec.replicas == 5
    assert scaled.status.selector == "app=d"
    final = apps.read_namespaced_deployment("d", namespace)
    assert final.spec.replicas == 5 and final.metadata.generation == 2


def test_selector_must_match_template(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    apps = client.AppsV1Api(api)
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="bad"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "x"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "y"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]))))
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(namespace, body)
    assert err.value.status == 422
    assert "`selector` does not match template `labels`" in err.value.body


def test_services_get_cluster_ips_and_node_ports(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    ports = [client.V1ServicePort(port=80, target_port=8080)]
    a = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="a"), spec=client.V1ServiceSpec(ports=ports)))
    b = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="b"), spec=client.V1ServiceSpec(ports=ports, type="NodePort")))
    assert a.spec.cluster_ip != b.spec.cluster_ip
    assert 30000 <= b.spec.ports[0].node_port <= 32767
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service(namespace, client.V1Service(
            metadata=client.V1ObjectMeta(name="c"),
            spec=client.V1ServiceSpec(ports=ports, cluster_ip=a.spec.cluster_ip)))
    assert err.value.status == 422
    assert "provided IP is already allocated" in err.value.body
    a.spec.cluster_ip = "10.96.0.200"
    a.spec.cluster_ips = ["10.96.0.200"]
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_service("a", namespace, a)
    assert err.value.status == 422


def test_secret_string_data_is_folded(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    secret = core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="s"), string_data={"password": "hunter2"}))
    assert secret.data == {"password": "aHVudGVyMg=="}
    assert secret.type == "Opaque"
    assert secret.string_data is None


def test_pod_binding_and_graceful_delete(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])))
    binding = client.V1Binding(metadata=client.V1ObjectMeta(name="p"),
                               target=client.V1ObjectReference(kind="Node", name="node-1"))
    core.create_namespaced_binding(namespace, binding, _preload_content=False)
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.spec.node_name == "node-1"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_binding(namespace, binding, _preload_content=False)
    assert err.value.status == 409
    # Bound pods are deleted gracefully: the kubelet finishes the deletion.
    core.delete_namespaced_pod("p", namespace)
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.metadata.deletion_timestamp is not None
    assert pod.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("p", namespace)
    assert err.value.status == 404


def test_finalizers_hold_deletion_until_removed(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["example.com/hold"]))
    core.create_namespaced_config_map(namespace, body)
    core.delete_namespaced_config_map("held", namespace)
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("held", namespace)
    assert err.value.status == 404


def test_foreground_propagation_is_recorded(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("fg"))
    core.delete_namespaced_config_map("fg", namespace, propagation_policy="Foreground")
    held = core.read_namespaced_config_map("fg", namespace)
    assert held.metadata.finalizers == ["foregroundDeletion"]
    assert held.metadata.deletion_timestamp is not None


def test_delete_collection(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    for i in range(3):
        core.create_namespaced_config_map(namespace, _cm(f"dc-{i}"))
    core.delete_collection_namespaced_config_map(namespace, label_selector="app=t")
    assert core.list_namespaced_config_map(namespace, label_selector="app=t").items == []


def test_namespace_delete_enters_terminating(api) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("doomed", _cm("late"))
    assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        core.delete_namespace("default")
    assert err.value.status == 403


def test_create_in_missing_namespace_is_404(api) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("no-such-namespace", _cm("x"))
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'namespaces "no-such-namespace" not found'


def test_events_field_selectors(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    for name, obj in (("e1", "pod-a"), ("e2", "pod-b")):
        core.create_namespaced_event(namespace, client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=name),
            involved_object=client.V1ObjectReference(kind="Pod", name=obj, namespace=namespace),
            reason="Test", message="hello", type="Normal"))
    found = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name=pod-b,involvedObject.namespace={namespace}")
    assert [e.metadata.name for e in found.items] == ["e2"]


def test_leases_and_endpointslices(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease(namespace, client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader"),
        spec=client.V1LeaseSpec(holder_identity="me", lease_duration_seconds=15)))
    assert lease.spec.holder_identity == "me"
    disc = client.DiscoveryV1Api(api)
    eps = disc.create_namespaced_endpoint_slice(namespace, client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name="s"), address_type="IPv4",
        endpoints=[client.V1Endpoint(addresses=["10.0.0.1"])]))
    assert eps.address_type == "IPv4"
    found = disc.list_namespaced_endpoint_slice(namespace, field_selector="addressType=IPv4")
    assert [e.metadata.name for e in found.items] == ["s"]


def test_job_template_is_immutable_and_probes_are_defaulted(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    batch = client.BatchV1Api(api)
    probe = client.V1Probe(http_get=client.V1HTTPGetAction(port=8080))
    job = batch.create_namespaced_job(namespace, client.V1Job(
        metadata=client.V1ObjectMeta(name="j"),
        spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="c", image="busybox", readiness_probe=probe)])))))
    defaulted = job.spec.template.spec.containers[0].readiness_probe
    assert (defaulted.timeout_seconds, defaulted.period_seconds, defaulted.failure_threshold,
            defaulted.success_threshold) == (1, 10, 3, 1)
    assert (defaulted.http_get.scheme, defaulted.http_get.path) == ("HTTP", "/")
    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_job("j", namespace, {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox:1.37"}]}}}})
    assert err.value.status == 422
    assert "spec.template" in json.loads(err.value.body)["message"]
