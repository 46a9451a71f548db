"""Server-side Table rendering: each printer against realistic objects, checked cell by cell
against what upstream's printers (and so ``kubectl get``) show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyk8s.machinery.tables import (
    PRINTERS,
    human_duration,
    table_columns,
    table_row_cells,
    table_row_conditions,
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp the given time before NOW."""
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, created: str | None = None, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "namespace": "default", **extra}
    if created is not None:
        m["creationTimestamp"] = created
    return m


def cells(group: str, resource: str, obj: dict[str, Any]) -> list[Any]:
    return table_row_cells(group, resource, obj, NOW)


def names(group: str, resource: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in table_columns(group, resource)]


# --- human_duration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (599, "9m59s"),
        (600, "10m"),
        (65 * 60, "65m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 30 * 60, "3h30m"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (800 * 86400, "2y70d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ],
)
def test_human_duration_follows_upstream_boundaries(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


@pytest.mark.parametrize(("seconds", "expected"), [(-0.5, "0s"), (-1.9, "0s"), (-2, "<invalid>")])
def test_human_duration_tolerates_one_second_of_clock_skew(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


# --- the catalogue as a whole ------------------------------------------------------------


def test_every_column_definition_carries_all_five_fields() -> None:
    for group, resource in [*PRINTERS, ("", "limitranges")]:
        for col in table_columns(group, resource):
            assert set(col) == {"name", "type", "format", "description", "priority"}
            assert col["type"] in {"string", "integer", "boolean", "date"}
            assert col["description"]


@pytest.mark.parametrize("key", sorted(PRINTERS))
def test_every_printer_renders_an_empty_object_with_one_cell_per_column(
    key: tuple[str, str],
) -> None:
    assert len(cells(*key, {})) == len(table_columns(*key))


@pytest.mark.parametrize("key", sorted(PRINTERS))
def test_every_printer_survives_fields_of_the_wrong_type(key: tuple[str, str]) -> None:
    junk = {
        "metadata": {"name": 7, "labels": "x", "ownerReferences": [None, 3]},
        "spec": {"containers": "c", "ports": [1], "selector": ["a"], "replicas": "3"},
        "status": {"conditions": [None], "containerStatuses": [{"state": "x"}], "hard": []},
        "subsets": {"a": 1},
        "series": {"count": "x"},
    }
    assert len(cells(*key, junk)) == len(table_columns(*key))
    assert len(cells(*key, {"metadata": None, "spec": None, "status": None})) == len(
        table_columns(*key)
    )


def test_table_columns_returns_copies_the_caller_may_change() -> None:
    table_columns("", "pods")[0]["name"] = "changed"
    assert table_columns("", "pods")[0]["name"] == "Name"


def test_age_is_unknown_without_a_creation_timestamp() -> None:
    assert cells("", "namespaces", {"metadata": {"name": "x"}}) == ["x", "", "<unknown>"]


def test_a_naive_clock_is_read_as_utc() -> None:
    ns = {"metadata": meta("x", ago(minutes=5))}
    naive = NOW.replace(tzinfo=None)
    assert table_row_cells("", "namespaces", ns, naive)[2] == "5m"


def test_timestamps_with_offsets_and_fractions_are_understood() -> None:
    ns = {"metadata": meta("x", "2024-06-01T13:54:59.5+02:00")}
    assert cells("", "namespaces", ns)[2] == "5m"


# --- default convertor -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "resource"),
    [
        ("", "limitranges"),
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("rbac.authorization.k8s.io", "roles"),
        ("example.com", "widgets"),
    ],
)
def test_resources_without_a_printer_get_name_and_created_at(group: str, resource: str) -> None:
    assert table_columns(group, resource) == [
        table_columns("", "pods")[0],
        {
            "name": "Created At",
            "type": "date",
            "format": "",
            "description": table_columns("", "pods")[4]["description"],
            "priority": 0,
        },
    ]
    obj = {"metadata": meta("limits", "2024-05-31T14:00:00.5+02:00")}
    assert cells(group, resource, obj) == ["limits", "2024-05-31T12:00:00Z"]


def test_default_created_at_is_go_zero_time_when_unset() -> None:
    assert cells("", "limitranges", {"metadata": {"name": "l"}}) == ["l", "0001-01-01T00:00:00Z"]


# --- pods --------------------------------------------------------------------------------


def pod(
    containers: list[dict[str, Any]],
    status: dict[str, Any],
    *,
    init: list[dict[str, Any]] | None = None,
    name: str = "web",
    **meta_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers, "nodeName": "node1"}
    if init is not None:
        spec["initContainers"] = init
    return {"metadata": meta(name, ago(minutes=10), **meta_extra), "spec": spec, "status": status}


def running(name: str, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": True,
        "started": True,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
        **extra,
    }


def waiting(name: str, reason: str, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
        **extra,
    }


def terminated(name: str, exit_code: int = 0, reason: str = "", **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "finishedAt": ago(minutes=1)}
    if reason:
        state["reason"] = reason
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": state},
        **extra,
    }


def last_terminated(minutes_ago: float) -> dict[str, Any]:
    return {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=minutes_ago)}}


C = [{"name": "app", "image": "nginx"}]
C2 = [{"name": "app", "image": "nginx"}, {"name": "log", "image": "busybox"}]
READY = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]


def test_pod_columns_match_upstream() -> None:
    assert names("", "pods") == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert [c["type"] for c in table_columns("", "pods")] == ["string"] * 9
    assert table_columns("", "pods")[0]["format"] == "name"


def test_running_pod_with_restarts_says_when_it_last_restarted() -> None:
    p = pod(
        C2,
        {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "conditions": READY,
            "containerStatuses": [
                running("app", 3, lastState=last_terminated(5)),
                running("log", 0),
            ],
        },
    )
    assert cells("", "pods", p) == [
        "web",
        "2/2",
        "Running",
        "3 (5m ago)",
        "10m",
        "10.244.0.7",
        "node1",
        "<none>",
        "<none>",
    ]
    assert table_row_conditions("", "pods", p) == []


def test_restarts_without_a_termination_time_are_a_bare_count() -> None:
    p = pod(C, {"phase": "Running", "containerStatuses": [running("app", 2)]})
    assert cells("", "pods", p)[3] == "2"


def test_pending_pod_creating_its_containers() -> None:
    p = pod(C, {"phase": "Pending", "containerStatuses": [waiting("app", "ContainerCreating")]})
    assert cells("", "pods", p)[:6] == ["web", "0/1", "ContainerCreating", "0", "10m", "<none>"]


def test_unscheduled_pod_is_pending_with_no_node() -> None:
    p = {
        "metadata": meta("web", ago(seconds=30)),
        "spec": {"containers": C},
        "status": {"phase": "Pending"},
    }
    assert cells("", "pods", p) == [
        "web",
        "0/1",
        "Pending",
        "0",
        "30s",
        "<none>",
        "<none>",
        "<none>",
        "<none>",
    ]


def test_scheduling_gated_pod() -> None:
    status = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    }
    assert cells("", "pods", pod(C, status))[2] == "SchedulingGated"


def test_crash_looping_container() -> None:
    status = {
        "phase": "Running",
        "containerStatuses": [waiting("app", "CrashLoopBackOff", 5, lastState=last_terminated(2))],
    }
    assert cells("", "pods", pod(C, status))[1:4] == ["0/1", "CrashLoopBackOff", "5 (2m ago)"]


def test_the_first_containers_reason_wins() -> None:
    status = {
        "phase": "Running",
        "containerStatuses": [waiting("app", "ImagePullBackOff"), waiting("log", "ErrImagePull")],
    }
    assert cells("", "pods", pod(C2, status))[2] == "ImagePullBackOff"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"exitCode": 137, "signal": 9}, "Signal:9"),
        ({"exitCode": 2}, "ExitCode:2"),
        ({"exitCode": 137, "reason": "OOMKilled"}, "OOMKilled"),
    ],
)
def test_terminated_container_reason(state: dict[str, Any], expected: str) -> None:
    status = {
        "phase": "Running",
        "containerStatuses": [{"name": "app", "state": {"terminated": state}}],
    }
    assert cells("", "pods", pod(C, status))[2] == expected


def test_completed_pod_and_its_row_condition() -> None:
    p = pod(C, {"phase": "Succeeded", "containerStatuses": [terminated("app", 0, "Completed")]})
    assert cells("", "pods", p)[1:4] == ["0/1", "Completed", "0"]
    assert table_row_conditions("", "pods", p) == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_failed_pod_row_condition() -> None:
    p = pod(C, {"phase": "Failed", "reason": "Evicted"})
    assert cells("", "pods", p)[2] == "Evicted"
    assert table_row_conditions("", "pods", p)[0]["reason"] == "Failed"
    assert table_row_conditions("", "services", p) == []


@pytest.mark.parametrize(("conditions", "expected"), [(READY, "Running"), ([], "NotReady")])
def test_completed_container_beside_a_running_one(
    conditions: list[dict[str, str]], expected: str
) -> None:
    status = {
        "phase": "Running",
        "conditions": conditions,
        "containerStatuses": [terminated("app", 0, "Completed"), running("log")],
    }
    assert cells("", "pods", pod(C2, status))[1:3] == ["1/2", expected]


def test_pod_waiting_for_its_second_init_container() -> None:
    init = [{"name": "migrate", "image": "m"}, {"name": "seed", "image": "s"}]
    status = {
        "phase": "Pending",
        "initContainerStatuses": [
            terminated("migrate", 0, "Completed"),
            running("seed"),
        ],
        "containerStatuses": [waiting("app", "PodInitializing")],
    }
    assert cells("", "pods", pod(C, status, init=init))[1:4] == ["0/1", "Init:1/2", "0"]


def test_init_container_that_has_not_started() -> None:
    init = [{"name": "migrate", "image": "m"}]
    status = {"phase": "Pending", "initContainerStatuses": [waiting("migrate", "PodInitializing")]}
    assert cells("", "pods", pod(C, status, init=init))[2] == "Init:0/1"


def test_crash_looping_init_container_counts_init_restarts() -> None:
    init = [{"name": "migrate", "image": "m"}]
    status = {
        "phase": "Pending",
        "initContainerStatuses": [
            waiting("migrate", "CrashLoopBackOff", 4, lastState=last_terminated(1))
        ],
        "containerStatuses": [waiting("app", "PodInitializing")],
    }
    assert cells("", "pods", pod(C, status, init=init))[2:4] == [
        "Init:CrashLoopBackOff",
        "4 (60s ago)",
    ]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"exitCode": 1}, "Init:ExitCode:1"),
        ({"exitCode": 1, "signal": 15}, "Init:Signal:15"),
        ({"exitCode": 1, "reason": "Error"}, "Init:Error"),
    ],
)
def test_failed_init_container(state: dict[str, Any], expected: str) -> None:
    init = [{"name": "migrate", "image": "m"}]
    status = {
        "phase": "Pending",
        "initContainerStatuses": [{"name": "migrate", "state": {"terminated": state}}],
    }
    assert cells("", "pods", pod(C, status, init=init))[2] == expected


def test_started_sidecar_counts_as_a_container() -> None:
    init = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    status = {
        "phase": "Running",
        "conditions": READY,
        "initContainerStatuses": [running("proxy", 2, lastState=last_terminated(7))],
        "containerStatuses": [running("app", 1, lastState=last_terminated(3))],
    }
    assert cells("", "pods", pod(C, status, init=init))[1:4] == ["2/2", "Running", "3 (3m ago)"]


def test_terminating_pod() -> None:
    p = pod(
        C,
        {"phase": "Running", "containerStatuses": [running("app")]},
        deletionTimestamp=ago(seconds=5),
    )
    assert cells("", "pods", p)[2] == "Terminating"


def test_a_finished_pod_being_deleted_keeps_its_status() -> None:
    status = {"phase": "Succeeded", "containerStatuses": [terminated("app", 0, "Completed")]}
    p = pod(C, status, deletionTimestamp=ago(seconds=5))
    assert cells("", "pods", p)[2] == "Completed"


def test_pod_on_a_lost_node_being_deleted_is_unknown() -> None:
    p = pod(C, {"phase": "Running", "reason": "NodeLost"}, deletionTimestamp=ago(seconds=5))
    assert cells("", "pods", p)[2] == "Unknown"


def test_wide_pod_cells() -> None:
    p = pod(
        C,
        {
            "phase": "Pending",
            "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
            "nominatedNodeName": "node2",
            "conditions": [
                {"type": "example.com/lb", "status": "True"},
                {"type": "example.com/dns", "status": "False"},
            ],
        },
    )
    p["spec"]["readinessGates"] = [
        {"conditionType": "example.com/lb"},
        {"conditionType": "example.com/dns"},
        {"conditionType": "example.com/absent"},
    ]
    assert cells("", "pods", p)[5:] == ["fd00::5", "node1", "node2", "1/3"]


# --- nodes -------------------------------------------------------------------------------


def node(**overrides: Any) -> dict[str, Any]:
    n: dict[str, Any] = {
        "metadata": meta(
            "cp1",
            ago(days=5),
            labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"},
        ),
        "spec": {},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "Hostname", "address": "cp1"},
                {"type": "InternalIP", "address": "10.0.0.1"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.4",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-18-amd64",
                "containerRuntimeVersion": "containerd://1.7.13",
            },
        },
    }
    n.update(overrides)
    return n


def test_node_columns_match_upstream() -> None:
    assert names("", "nodes") == [
        ("Name", 0),
        ("Status", 0),
        ("Roles", 0),
        ("Age", 0),
        ("Version", 0),
        ("Internal-IP", 1),
        ("External-IP", 1),
        ("OS-Image", 1),
        ("Kernel-Version", 1),
        ("Container-Runtime", 1),
    ]


def test_ready_control_plane_node() -> None:
    assert cells("", "nodes", node()) == [
        "cp1",
        "Ready",
        "control-plane",
        "5d",
        "v1.32.4",
        "10.0.0.1",
        "<none>",
        "Debian GNU/Linux 12 (bookworm)",
        "6.1.0-18-amd64",
        "containerd://1.7.13",
    ]


def test_not_ready_cordoned_node() -> None:
    n = node(spec={"unschedulable": True})
    n["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    assert cells("", "nodes", n)[1] == "NotReady,SchedulingDisabled"


def test_node_without_a_ready_condition_is_unknown() -> None:
    n = node(status={"conditions": [{"type": "Ready", "status": "Unknown"}]})
    assert cells("", "nodes", n)[1] == "NotReady"
    bare = {"metadata": meta("w1", ago(hours=1))}
    assert cells("", "nodes", bare) == [
        "w1",
        "Unknown",
        "<none>",
        "60m",
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]


def test_node_roles_come_from_role_labels_sorted() -> None:
    n = node()
    n["metadata"]["labels"] = {
        "node-role.kubernetes.io/worker": "",
        "node-role.kubernetes.io/": "",
        "kubernetes.io/role": "gpu",
        "node-role.kubernetes.io/infra": "true",
    }
    n["status"]["addresses"].append({"type": "ExternalIP", "address": "203.0.113.4"})
    row = cells("", "nodes", n)
    assert row[2] == "gpu,infra,worker"
    assert row[6] == "203.0.113.4"


# --- namespaces, config objects, quotas, leases ------------------------------------------


def test_namespace() -> None:
    ns = {"metadata": meta("kube-system", ago(days=10)), "status": {"phase": "Active"}}
    assert names("", "namespaces") == [("Name", 0), ("Status", 0), ("Age", 0)]
    assert cells("", "namespaces", ns) == ["kube-system", "Active", "10d"]
    ns["status"]["phase"] = "Terminating"
    assert cells("", "namespaces", ns)[1] == "Terminating"


def test_configmap_counts_text_and_binary_keys() -> None:
    cm = {
        "metadata": meta("settings", ago(hours=2)),
        "data": {"a": "1", "b": "2"},
        "binaryData": {"c": "AAE="},
    }
    assert names("", "configmaps") == [("Name", 0), ("Data", 0), ("Age", 0)]
    assert cells("", "configmaps", cm) == ["settings", 3, "120m"]


def test_secret() -> None:
    secret = {
        "metadata": meta("tls", ago(minutes=3)),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    assert names("", "secrets") == [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]
    assert cells("", "secrets", secret) == ["tls", "kubernetes.io/tls", 2, "3m"]
    assert cells("", "secrets", {"metadata": meta("s", ago(minutes=3))}) == ["s", "Opaque", 0, "3m"]


def test_service_account() -> None:
    sa = {"metadata": meta("default", ago(days=3)), "secrets": [{"name": "t"}]}
    assert names("", "serviceaccounts") == [("Name", 0), ("Secrets", 0), ("Age", 0)]
    assert cells("", "serviceaccounts", sa) == ["default", 1, "3d"]
    assert cells("", "serviceaccounts", {"metadata": meta("b", ago(days=3))})[1] == 0


def test_resource_quota_splits_requests_from_limits() -> None:
    quota = {
        "metadata": meta("compute", ago(minutes=1)),
        "status": {
            "hard": {
                "requests.cpu": "1",
                "pods": "10",
                "limits.cpu": "2",
                "limits.memory": "2Gi",
            },
            "used": {"requests.cpu": "500m", "pods": "3", "limits.cpu": "1"},
        },
    }
    assert names("", "resourcequotas") == [("Name", 0), ("Request", 0), ("Limit", 0), ("Age", 0)]
    assert cells("", "resourcequotas", quota) == [
        "compute",
        "pods: 3/10, requests.cpu: 500m/1",
        "limits.cpu: 1/2, limits.memory: 0/2Gi",
        "60s",
    ]


def test_lease() -> None:
    lease = {
        "metadata": meta("kube-scheduler", ago(minutes=20)),
        "spec": {"holderIdentity": "cp1_4a2c"},
    }
    assert names("coordination.k8s.io", "leases") == [("Name", 0), ("Holder", 0), ("Age", 0)]
    assert cells("coordination.k8s.io", "leases", lease) == ["kube-scheduler", "cp1_4a2c", "20m"]
    assert cells("coordination.k8s.io", "leases", {"metadata": meta("l", ago(minutes=20))})[1] == ""


# --- services, endpoints, endpoint slices ------------------------------------------------


def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": meta("web", ago(days=10)), "spec": spec, "status": status or {}}


def test_service_columns_match_upstream() -> None:
    assert names("", "services") == [
        ("Name", 0),
        ("Type", 0),
        ("Cluster-IP", 0),
        ("External-IP", 0),
        ("Port(s)", 0),
        ("Age", 0),
        ("Selector", 1),
    ]


def test_cluster_ip_service() -> None:
    svc = service(
        {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
            "selector": {"k8s-app": "kube-dns", "app": "dns"},
        }
    )
    assert cells("", "services", svc) == [
        "web",
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "53/UDP,53/TCP",
        "10d",
        "app=dns,k8s-app=kube-dns",
    ]


def test_node_port_service() -> None:
    svc = service(
        {
            "type": "NodePort",
            "clusterIP": "10.96.5.5",
            "externalIPs": ["192.0.2.1"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
        }
    )
    assert cells("", "services", svc)[1:5] == ["NodePort", "10.96.5.5", "192.0.2.1", "80:30080/TCP"]


def test_load_balancer_pending_and_assigned() -> None:
    spec = {
        "type": "LoadBalancer",
        "clusterIP": "10.96.1.1",
        "ports": [{"port": 443, "nodePort": 31443}],
    }
    assert cells("", "services", service(spec))[3:5] == ["<pending>", "443:31443/TCP"]
    status = {
        "loadBalancer": {
            "ingress": [
                {"hostname": "a-very-long-load-balancer-name.example.com"},
                {"ip": "198.51.100.7"},
                {"ip": "198.51.100.7"},
            ]
        }
    }
    # Server-side rows are wide, so the address list is not clipped to 16 characters.
    assert cells("", "services", service(spec, status))[3] == (
        "198.51.100.7,a-very-long-load-balancer-name.example.com"
    )
    spec["externalIPs"] = ["192.0.2.9"]
    assert cells("", "services", service(spec, status))[3] == (
        "198.51.100.7,a-very-long-load-balancer-name.example.com,192.0.2.9"
    )


def test_headless_external_name_and_sparse_services() -> None:
    headless = service({"clusterIP": "None", "ports": [{"port": 5432}]})
    assert cells("", "services", headless)[1:5] == ["ClusterIP", "None", "<none>", "5432/TCP"]
    external = service({"type": "ExternalName", "externalName": "db.example.com"})
    assert cells("", "services", external)[1:5] == [
        "ExternalName",
        "<none>",
        "db.example.com",
        "<none>",
    ]
    only_ips = service({"clusterIPs": ["10.96.9.9", "fd00::9"]})
    assert cells("", "services", only_ips)[2] == "10.96.9.9"


def test_endpoints_lists_three_addresses_then_counts_the_rest() -> None:
    ep = {
        "metadata": meta("web", ago(minutes=9)),
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                "ports": [{"port": 80}, {"port": 443}],
            }
        ],
    }
    assert names("", "endpoints") == [("Name", 0), ("Endpoints", 0), ("Age", 0)]
    assert cells("", "endpoints", ep) == [
        "web",
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...",
        "9m",
    ]


def test_endpoints_edge_cases() -> None:
    assert cells("", "endpoints", {"metadata": meta("e", ago(minutes=1))})[1] == "<none>"
    v6 = {"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]}
    assert cells("", "endpoints", v6)[1] == "[fd00::1]:8080"
    headless = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}]}
    assert cells("", "endpoints", headless)[1] == "10.0.0.1,10.0.0.2"
    not_ready = {"subsets": [{"notReadyAddresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 80}]}]}
    assert cells("", "endpoints", not_ready)[1] == ""


def test_endpoint_slice() -> None:
    es = {
        "metadata": meta("web-7xk2p", ago(minutes=4)),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}],
        "endpoints": [
            {"addresses": ["10.0.0.1"]},
            {"addresses": ["10.0.0.2"]},
            {"addresses": ["10.0.0.3"]},
            {"addresses": ["10.0.0.4"]},
        ],
    }
    assert names("discovery.k8s.io", "endpointslices") == [
        ("Name", 0),
        ("AddressType", 0),
        ("Ports", 0),
        ("Endpoints", 0),
        ("Age", 0),
    ]
    assert cells("discovery.k8s.io", "endpointslices", es) == [
        "web-7xk2p",
        "IPv4",
        "80,metrics",
        "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
        "4m",
    ]
    empty = {"metadata": meta("e", ago(minutes=4)), "addressType": "IPv6", "ports": [{}]}
    assert cells("discovery.k8s.io", "endpointslices", empty)[1:4] == ["IPv6", "*", "<unset>"]
    assert cells("discovery.k8s.io", "endpointslices", {})[2:4] == ["<unset>", "<unset>"]


# --- events ------------------------------------------------------------------------------

EVENT_COLUMNS = [
    ("Last Seen", 0),
    ("Type", 0),
    ("Reason", 0),
    ("Object", 0),
    ("Subobject", 1),
    ("Source", 1),
    ("Message", 0),
    ("First Seen", 1),
    ("Count", 1),
    ("Name", 1),
]


@pytest.mark.parametrize("group", ["", "events.k8s.io"])
def test_both_event_apis_print_the_same_columns(group: str) -> None:
    assert names(group, "events") == EVENT_COLUMNS
    assert table_columns(group, "events")[9]["format"] == "name"


def test_core_event() -> None:
    event = {
        "metadata": meta("web.17d5c2f1a", ago(hours=1)),
        "involvedObject": {
            "kind": "Pod",
            "name": "web",
            "namespace": "default",
            "fieldPath": "spec.containers{app}",
        },
        "reason": "BackOff",
        "message": "Back-off restarting failed container app\n",
        "source": {"component": "kubelet", "host": "node1"},
        "firstTimestamp": ago(hours=1),
        "lastTimestamp": ago(minutes=5),
        "count": 12,
        "type": "Warning",
    }
    assert cells("", "events", event) == [
        "5m",
        "Warning",
        "BackOff",
        "pod/web",
        "spec.containers{app}",
        "kubelet, node1",
        "Back-off restarting failed container app",
        "60m",
        12,
        "web.17d5c2f1a",
    ]


def test_new_style_core_event_with_only_event_time() -> None:
    event = {
        "metadata": meta("n.1", ago(minutes=2)),
        "involvedObject": {"kind": "Node", "name": "node1"},
        "reason": "RegisteredNode",
        "message": "Node node1 event: Registered Node node1 in Controller",
        "eventTime": "2024-06-01T11:57:59.5Z",
        "reportingComponent": "node-controller",
        "type": "Normal",
    }
    row = cells("", "events", event)
    assert row[0] == "2m"
    assert row[3] == "node/node1"
    assert row[5] == "node-controller"
    assert row[7:9] == ["2m", 1]


def test_events_api_event_with_a_series() -> None:
    event = {
        "metadata": meta("web.2", ago(minutes=30)),
        "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "reason": "ScalingReplicaSet",
        "note": "Scaled up replica set web-5d9c to 3",
        "eventTime": ago(minutes=30),
        "series": {"count": 4, "lastObservedTime": "2024-06-01T11:59:30.000000Z"},
        "reportingController": "deployment-controller",
        "reportingInstance": "cp1",
        "type": "Normal",
    }
    assert cells("events.k8s.io", "events", event) == [
        "30s",
        "Normal",
        "ScalingReplicaSet",
        "deployment/web",
        "",
        "deployment-controller, cp1",
        "Scaled up replica set web-5d9c to 3",
        "30m",
        4,
        "web.2",
    ]


def test_event_about_an_unnamed_object_and_without_times() -> None:
    event = {"involvedObject": {"kind": "Cluster"}, "reason": "Audit"}
    row = cells("", "events", event)
    assert row[0] == "<unknown>"
    assert row[3] == "cluster"
    assert row[7:9] == ["<unknown>", 1]


# --- apps --------------------------------------------------------------------------------


def template(*containers: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": n, "image": i} for n, i in containers]},
    }


def test_deployment() -> None:
    deploy = {
        "metadata": meta("web", ago(minutes=5)),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(("nginx", "nginx:1.27"), ("sidecar", "busybox")),
        },
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert names("apps", "deployments") == [
        ("Name", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    assert cells("apps", "deployments", deploy) == [
        "web",
        "2/3",
        3,
        2,
        "5m",
        "nginx,sidecar",
        "nginx:1.27,busybox",
        "app=web",
    ]


def test_new_deployment_without_status_defaults_to_one_replica() -> None:
    deploy = {"metadata": meta("web", ago(seconds=3)), "spec": {"template": template(("a", "b"))}}
    assert cells("apps", "deployments", deploy) == ["web", "0/1", 0, 0, "3s", "a", "b", ""]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (
            {
                "matchLabels": {"tier": "web", "app": "shop"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "canary"]},
                    {"key": "debug", "operator": "DoesNotExist"},
                    {"key": "zone", "operator": "NotIn", "values": ["b"]},
                    {"key": "gpu", "operator": "Exists"},
                ],
            },
            "app=shop,!debug,env in (canary,prod),gpu,tier=web,zone notin (b)",
        ),
        ({}, ""),
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, "<invalid>"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "<invalid>"),
    ],
)
def test_deployment_selector(selector: dict[str, Any], expected: str) -> None:
    deploy = {"metadata": meta("web", ago(seconds=3)), "spec": {"selector": selector}}
    assert cells("apps", "deployments", deploy)[7] == expected


def test_replica_set() -> None:
    rs = {
        "metadata": meta("web-5d9c", ago(minutes=5)),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9c"}},
            "template": template(("nginx", "nginx:1.27")),
        },
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    assert names("apps", "replicasets") == [
        ("Name", 0),
        ("Desired", 0),
        ("Current", 0),
        ("Ready", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    assert [c["type"] for c in table_columns("apps", "replicasets")][1:4] == ["integer"] * 3
    assert cells("apps", "replicasets", rs) == [
        "web-5d9c",
        3,
        3,
        1,
        "5m",
        "nginx",
        "nginx:1.27",
        "app=web,pod-template-hash=5d9c",
    ]
    assert cells("apps", "replicasets", {})[1:4] == [1, 0, 0]
    assert cells("apps", "replicasets", {})[7] == "<none>"
    bad = {"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}}
    assert cells("apps", "replicasets", bad)[7] == "<error>"


def test_daemon_set() -> None:
    ds = {
        "metadata": meta("fluentd", ago(days=2, hours=3)),
        "spec": {
            "selector": {"matchLabels": {"name": "fluentd"}},
            "template": {
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "fluentd", "image": "fluentd:v1.16"}],
                }
            },
        },
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert names("apps", "daemonsets") == [
        ("Name", 0),
        ("Desired", 0),
        ("Current", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Node Selector", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    assert cells("apps", "daemonsets", ds) == [
        "fluentd",
        3,
        3,
        2,
        3,
        2,
        "kubernetes.io/os=linux",
        "2d3h",
        "fluentd",
        "fluentd:v1.16",
        "name=fluentd",
    ]
    assert cells("apps", "daemonsets", {})[6] == "<none>"


def test_stateful_set() -> None:
    sts = {
        "metadata": meta("db", ago(hours=3)),
        "spec": {"replicas": 3, "template": template(("postgres", "postgres:16"))},
        "status": {"readyReplicas": 1},
    }
    assert names("apps", "statefulsets") == [
        ("Name", 0),
        ("Ready", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
    ]
    assert cells("apps", "statefulsets", sts) == ["db", "1/3", "3h", "postgres", "postgres:16"]
    assert cells("apps", "statefulsets", {"spec": {"replicas": 0}})[1] == "0/0"


def test_controller_revision() -> None:
    rev = {
        "metadata": meta(
            "fluentd-6d8f7",
            ago(days=1),
            ownerReferences=[
                {"apiVersion": "v1", "kind": "Pod", "name": "other"},
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "FluentD",
                    "controller": True,
                },
            ],
        ),
        "revision": 2,
    }
    assert names("apps", "controllerrevisions") == [
        ("Name", 0),
        ("Controller", 0),
        ("Revision", 0),
        ("Age", 0),
    ]
    assert cells("apps", "controllerrevisions", rev) == [
        "fluentd-6d8f7",
        "daemonset.apps/FluentD",
        2,
        "24h",
    ]
    core_owner = {
        "metadata": {
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Widget", "name": "w", "controller": True}
            ]
        }
    }
    assert cells("apps", "controllerrevisions", core_owner)[1] == "widget/w"
    assert cells("apps", "controllerrevisions", {})[1:3] == ["<none>", 0]


# --- batch -------------------------------------------------------------------------------


def job(spec: dict[str, Any], status: dict[str, Any], **meta_extra: Any) -> dict[str, Any]:
    spec = {"template": template(("pi", "perl:5.34")), **spec}
    return {"metadata": meta("pi", ago(minutes=12), **meta_extra), "spec": spec, "status": status}


def test_job_columns_match_upstream() -> None:
    assert names("batch", "jobs") == [
        ("Name", 0),
        ("Status", 0),
        ("Completions", 0),
        ("Duration", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]


def test_completed_job() -> None:
    j = job(
        {"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/job-name": "pi"}}},
        {
            "succeeded": 1,
            "startTime": ago(minutes=10),
            "completionTime": ago(minutes=7),
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        },
    )
    assert cells("batch", "jobs", j) == [
        "pi",
        "Complete",
        "1/1",
        "3m",
        "12m",
        "pi",
        "perl:5.34",
        "batch.kubernetes.io/job-name=pi",
    ]


def test_running_parallel_job_measures_duration_to_now() -> None:
    j = job({"parallelism": 3}, {"startTime": ago(minutes=11), "active": 3})
    assert cells("batch", "jobs", j)[1:4] == ["Running", "0/1 of 3", "11m"]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([{"type": "Failed", "status": "True"}], "Failed"),
        ([{"type": "Suspended", "status": "True"}], "Suspended"),
        ([{"type": "FailureTarget", "status": "True"}], "FailureTarget"),
        ([{"type": "Complete", "status": "False"}], "Running"),
    ],
)
def test_job_status_from_conditions(conditions: list[dict[str, str]], expected: str) -> None:
    assert (
        cells("batch", "jobs", job({"completions": 5}, {"conditions": conditions}))[1] == expected
    )


def test_job_being_deleted_and_not_started() -> None:
    j = job({"completions": 5}, {"succeeded": 2}, deletionTimestamp=ago(seconds=1))
    assert cells("batch", "jobs", j)[1:4] == ["Terminating", "2/5", ""]
    assert cells("batch", "jobs", {})[2] == "0/1"
    assert cells("batch", "jobs", {})[7] == "<none>"


def test_cron_job() -> None:
    cj = {
        "metadata": meta("backup", ago(hours=1)),
        "spec": {
            "schedule": "*/5 * * * *",
            "suspend": False,
            "jobTemplate": {"spec": {"template": template(("backup", "restic:0.16"))}},
        },
        "status": {"active": [{"name": "backup-28620"}], "lastScheduleTime": ago(minutes=2)},
    }
    assert names("batch", "cronjobs") == [
        ("Name", 0),
        ("Schedule", 0),
        ("Timezone", 0),
        ("Suspend", 0),
        ("Active", 0),
        ("Last Schedule", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    assert cells("batch", "cronjobs", cj) == [
        "backup",
        "*/5 * * * *",
        "<none>",
        "False",
        1,
        "2m",
        "60m",
        "backup",
        "restic:0.16",
        "<none>",
    ]


def test_suspended_cron_job_in_a_time_zone_never_scheduled() -> None:
    cj = {
        "metadata": meta("report", ago(days=9)),
        "spec": {"schedule": "0 6 * * 1", "timeZone": "Europe/Paris", "suspend": True},
    }
    assert cells("batch", "cronjobs", cj)[:7] == [
        "report",
        "0 6 * * 1",
        "Europe/Paris",
        "True",
        0,
        "<none>",
        "9d",
    ]
