"""Kubernetes protobuf request bodies decode to the object's JSON form.

The ``fixtures/*.pb`` files are the exact bytes the real kubectl v1.32 POSTed to a
recording server (``fixtures/capture_kubectl.py``); they are the ground truth. Expected
dicts follow the module's zero-value rule: non-pointer zero fields and empty non-pointer
structs (``strategy: {}``, ``status: {}``, ``resources: {}``) are dropped, explicitly
present Go-pointer fields are kept even when zero, and the top-level ``metadata`` is always
present.
"""

from __future__ import annotations

import base64
import re
import shutil
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from pyk8s.machinery.protobuf import (
    MAGIC,
    ProtobufError,
    _format_duration,
    decode,
    encode,
    is_protobuf,
)

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[3]


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _vi(number: int, value: int) -> bytes:
    """A varint field."""
    return _varint(number << 3) + _varint(value)


def _envelope(api_version: str, kind: str, raw: bytes, *, encoding: str = "") -> bytes:
    type_meta = _ld(1, api_version.encode()) + _ld(2, kind.encode())
    return MAGIC + _ld(1, type_meta) + _ld(2, raw) + _ld(3, encoding.encode()) + _ld(4, b"")


def _meta(name: str) -> bytes:
    return _ld(1, _ld(1, name.encode()))


# --------------------------------------------------------------------------- kubectl fixtures

KUBECTL_BODIES: dict[str, dict[str, Any]] = {
    "namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
    "deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "busybox",
                            "image": "busybox",
                            "command": ["sh", "-c", "sleep 1000"],
                        }
                    ]
                },
            },
        },
    },
    "deployment_zero": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "z", "namespace": "default", "labels": {"app": "z"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "z"}},
            "template": {
                "metadata": {"labels": {"app": "z"}},
                "spec": {"containers": [{"name": "x", "image": "x"}]},
            },
        },
    },
    "configmap": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"},
        "data": {"a": "b", "empty": ""},
    },
    "secret": {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default"},
        "data": {"k": "dg=="},
    },
    "service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "default", "labels": {"app": "s"}},
        "spec": {
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": "s"},
            "type": "ClusterIP",
        },
    },
    "service_named_port": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "np", "namespace": "default", "labels": {"app": "np"}},
        "spec": {
            "ports": [
                {
                    "name": "8443-https",
                    "protocol": "TCP",
                    "port": 8443,
                    "targetPort": "https",
                    "nodePort": 30080,
                }
            ],
            "selector": {"app": "np"},
            "type": "NodePort",
        },
    },
    "job": {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "default"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "j", "image": "busybox"}],
                    "restartPolicy": "Never",
                }
            }
        },
    },
    "cronjob": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj", "namespace": "default"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "metadata": {"name": "cj"},
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "cj", "image": "busybox"}],
                            "restartPolicy": "OnFailure",
                        }
                    }
                },
            },
        },
    },
    "serviceaccount": {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "sa", "namespace": "default"},
    },
    "quota": {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "default"},
        "spec": {"hard": {"pods": "10", "requests.cpu": "1500m"}},
    },
    "pdb": {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb", "namespace": "default"},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
    },
    "ssar": {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {
            "resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}
        },
    },
    "ssar_group": {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {
            "resourceAttributes": {
                "namespace": "kube-system",
                "verb": "get",
                "group": "apps",
                "resource": "deployments",
            }
        },
    },
}


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.pb")} == set(KUBECTL_BODIES)


@pytest.mark.parametrize("name", sorted(KUBECTL_BODIES))
def test_kubectl_body_decodes_to_its_json_form(name: str) -> None:
    assert decode((FIXTURES / f"{name}.pb").read_bytes()) == KUBECTL_BODIES[name]


@pytest.mark.parametrize("name", sorted(KUBECTL_BODIES))
def test_encoding_the_decoded_body_reproduces_kubectls_bytes(name: str) -> None:
    """Byte equality proves the field numbers and the pointer/non-pointer data on these paths:
    gogo writes every non-pointer field and only the present pointer fields."""
    body = (FIXTURES / f"{name}.pb").read_bytes()
    assert encode(decode(body)) == body


def test_explicit_zero_replicas_survive_but_absent_replicas_stay_absent() -> None:
    zero = decode((FIXTURES / "deployment_zero.pb").read_bytes())
    assert zero["spec"]["replicas"] == 0
    assert "revisionHistoryLimit" not in zero["spec"]
    assert "progressDeadlineSeconds" not in zero["spec"]


def test_empty_non_pointer_structs_and_zero_scalars_are_dropped() -> None:
    obj = decode((FIXTURES / "deployment.pb").read_bytes())
    assert "strategy" not in obj["spec"]  # on the wire as `22 02 0a 00`
    assert "status" not in obj
    assert "resources" not in obj["spec"]["template"]["spec"]["containers"][0]
    assert "creationTimestamp" not in obj["metadata"]
    assert "generation" not in obj["metadata"]


# --------------------------------------------------------------------------- round trips

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "default",
        "uid": "0b8f6a52-8f0e-4c1a-9b1e-2f3c4d5e6f70",
        "creationTimestamp": "2024-01-02T03:04:05Z",
        "deletionGracePeriodSeconds": 0,
        "labels": {"app": "web"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": "u1",
                "controller": False,
            }
        ],
    },
    "spec": {
        "volumes": [
            {"name": "cache", "emptyDir": {}},
            {
                "name": "cfg",
                "configMap": {"name": "web-config", "defaultMode": 420, "optional": False},
            },
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
        "containers": [
            {
                "name": "web",
                "image": "nginx",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
                "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "periodSeconds": 10,
                },
                "readinessProbe": {"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 0},
                "securityContext": {
                    "runAsUser": 0,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "terminationGracePeriodSeconds": 0,
        "securityContext": {"supplementalGroups": [1000, 2000]},
        "tolerations": [
            {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}
        ],
        "priority": -5,
        "enableServiceLinks": False,
        "affinity": {},
    },
    "status": {
        "phase": "Running",
        "startTime": "2024-01-02T03:04:05Z",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-02T03:04:09Z"}
        ],
        "containerStatuses": [
            {
                "name": "web",
                "state": {"waiting": {}},
                "ready": True,
                "restartCount": 3,
                "started": False,
            }
        ],
    },
}

ROUND_TRIPS: dict[str, dict[str, Any]] = {
    "pod": POD,
    "deployment with rolling update": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 0,
            "progressDeadlineSeconds": 600,
            "selector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]
            },
            "template": {"spec": {"containers": [{"name": "c"}]}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
            "paused": True,
        },
        "status": {"observedGeneration": 4, "replicas": 3, "collisionCount": 0},
    },
    "job with pointers": {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "parallelism": 0,
            "completions": 1,
            "backoffLimit": 0,
            "suspend": False,
            "template": {
                "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}
            },
        },
    },
    "lease with micro times": {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 40,
            "renewTime": "2024-01-02T03:04:05.123456Z",
            "leaseTransitions": 0,
        },
    },
    "core event": {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "p.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u"},
        "reason": "Scheduled",
        "message": "Successfully assigned default/p to node-1",
        "source": {"component": "default-scheduler"},
        "firstTimestamp": "2024-01-02T03:04:05Z",
        "lastTimestamp": "2024-01-02T03:04:05Z",
        "count": 1,
        "type": "Normal",
        "eventTime": "2024-01-02T03:04:05.000001Z",
        "reportingComponent": "default-scheduler",
    },
    "events.k8s.io event": {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e"},
        "eventTime": "1999-12-31T23:59:59.500000Z",
        "series": {"count": 2, "lastObservedTime": "2000-01-01T00:00:00.000000Z"},
        "regarding": {"kind": "Node", "name": "n"},
        "note": "hi",
    },
    "endpoint slice": {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "s-abc", "labels": {"kubernetes.io/service-name": "s"}},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["10.0.0.1"],
                "conditions": {"ready": False, "serving": True},
                "nodeName": "",
            }
        ],
        "ports": [{"name": "", "protocol": "TCP", "port": 80}],
    },
    "endpoints": {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "s"},
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "p"}}],
                "ports": [{"port": 80}],
            }
        ],
    },
    "node": {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n"},
        "spec": {
            "taints": [{"key": "k", "effect": "NoSchedule", "timeAdded": "2024-01-02T03:04:05Z"}]
        },
        "status": {
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.32.4", "architecture": "amd64"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
        },
    },
    "controller revision with raw json": {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": "r",
            "managedFields": [
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {}},
                }
            ],
        },
        "data": {"spec": {"template": {"$patch": "replace"}}, "list": [1, 2.5, None, True]},
        "revision": 7,
    },
    "subject access review with extra": {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {},
        "spec": {
            "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
            "user": "alice",
            "groups": ["system:authenticated"],
            "extra": {"scopes": ["a", "b"], "none": []},
        },
        "status": {"allowed": True, "reason": "RBAC"},
    },
    "delete options": {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Background",
        "preconditions": {"uid": "u"},
        "dryRun": ["All"],
    },
    "meta delete options": {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "DeleteOptions",
        "orphanDependents": False,
    },
    "status": {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {"resourceVersion": "5"},
        "status": "Failure",
        "message": 'pods "p" not found',
        "reason": "NotFound",
        "details": {
            "name": "p",
            "kind": "pods",
            "causes": [{"reason": "FieldValueInvalid", "field": "x"}],
        },
        "code": 404,
    },
    "scale": {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3},
        "status": {"replicas": 2, "selector": "app=web"},
    },
    "binary configmap": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "b"},
        "immutable": False,
        "binaryData": {"blob": base64.b64encode(b"\x00\xff\x10 not utf-8 \xc3").decode()},
    },
    "limit range": {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "l"},
        "spec": {
            "limits": [{"type": "Container", "default": {"cpu": "1"}, "max": {"memory": "1Gi"}}]
        },
    },
    "stateful set": {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1,
            "selector": {},
            "serviceName": "db",
            "template": {"spec": {"containers": [{"name": "db"}]}},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"},
        },
    },
    "daemon set": {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "ds"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "c"}]}},
        },
    },
    "cron job": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj"},
        "spec": {
            "schedule": "@hourly",
            "startingDeadlineSeconds": 0,
            "successfulJobsHistoryLimit": 0,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}},
        },
        "status": {"lastScheduleTime": "2024-01-02T03:00:00Z"},
    },
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_canonical_objects_survive_encode_then_decode(name: str) -> None:
    obj = ROUND_TRIPS[name]
    assert decode(encode(obj)) == obj


def test_pointer_structs_present_but_empty_are_kept() -> None:
    obj = decode(encode(POD))
    assert obj["spec"]["volumes"][0] == {"name": "cache", "emptyDir": {}}
    assert obj["spec"]["affinity"] == {}
    assert obj["status"]["containerStatuses"][0]["state"] == {"waiting": {}}


def test_non_pointer_zeros_written_by_the_encoder_decode_as_absent() -> None:
    pod = {
        **POD,
        "status": {"containerStatuses": [{"name": "web", "ready": False, "restartCount": 0}]},
    }
    assert decode(encode(pod))["status"] == {"containerStatuses": [{"name": "web"}]}


# --------------------------------------------------------------------------- wire details


def test_unknown_field_numbers_are_skipped() -> None:
    raw = (
        _meta("x")
        + _vi(90, 7)  # unknown varint
        + _ld(91, b"\x01\x02")  # unknown length-delimited
        + b"\xdd\x05\x00\x00\x80\x3f"  # unknown 32-bit (field 91, wire 5)
        + b"\xd9\x05"
        + bytes(8)  # unknown 64-bit (field 91, wire 1)
    )
    assert decode(_envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x"},
    }


def test_packed_repeated_integers_are_accepted() -> None:
    packed = _ld(4, _varint(1000) + _varint(2000))  # PodSecurityContext.supplementalGroups
    raw = _meta("p") + _ld(2, _ld(14, packed))
    assert decode(_envelope("v1", "Pod", raw))["spec"]["securityContext"] == {
        "supplementalGroups": [1000, 2000]
    }


def test_negative_int32_uses_ten_byte_varints() -> None:
    raw = _meta("p") + _ld(2, _vi(25, -5))  # PodSpec.priority (a pointer)
    assert decode(_envelope("v1", "Pod", raw))["spec"] == {"priority": -5}


def test_timestamps_render_like_go() -> None:
    time_msg = _vi(1, 1704164645) + _vi(2, 987654321)
    # metadata.creationTimestamp (Time) and eventTime (MicroTime)
    raw = _ld(1, _ld(1, b"e") + _ld(8, time_msg)) + _ld(10, time_msg)
    obj = decode(_envelope("v1", "Event", raw))
    assert obj["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"
    assert obj["eventTime"] == "2024-01-02T03:04:05.987654Z"


def test_epoch_time_is_not_the_zero_time() -> None:
    raw = _ld(1, _ld(1, b"e") + _ld(8, _vi(1, 0) + _vi(2, 0)))
    assert (
        decode(_envelope("v1", "Event", raw))["metadata"]["creationTimestamp"]
        == "1970-01-01T00:00:00Z"
    )


def test_pointer_absent_and_pointer_zero_differ() -> None:
    spec = _ld(2, _ld(1, _ld(1, b"c")))  # template.spec.containers[0].name = "c"
    absent = decode(_envelope("apps/v1", "Deployment", _meta("d") + _ld(2, spec)))
    zero = decode(
        _envelope("apps/v1", "Deployment", _meta("d") + _ld(2, _vi(1, 0) + _vi(6, 0) + spec))
    )
    assert "replicas" not in absent["spec"]
    assert zero["spec"]["replicas"] == 0 and zero["spec"]["revisionHistoryLimit"] == 0


def test_last_occurrence_of_a_scalar_wins() -> None:
    raw = _ld(1, _ld(1, b"first") + _ld(1, b"second"))
    assert decode(_envelope("v1", "Namespace", raw))["metadata"] == {"name": "second"}


def test_invalid_utf8_in_strings_is_replaced_not_fatal() -> None:
    raw = _ld(1, _ld(1, b"bad\xff"))
    assert decode(_envelope("v1", "Namespace", raw))["metadata"]["name"] == "bad\ufffd"


def test_raw_extension_may_hold_a_nested_protobuf_object() -> None:
    inner = encode({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    raw = _meta("r") + _ld(2, _ld(1, inner)) + _vi(3, 1)
    obj = decode(_envelope("apps/v1", "ControllerRevision", raw))
    assert obj["data"] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}


def test_decode_accepts_bytearray_and_memoryview() -> None:
    body = (FIXTURES / "namespace.pb").read_bytes()
    assert decode(bytearray(body)) == decode(memoryview(body)) == KUBECTL_BODIES["namespace"]


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (10**9, "1s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (-(5 * 10**9 + 10**8), "-5.1s"),
    ],
)
def test_durations_format_like_go(nanos: int, text: str) -> None:
    assert _format_duration(nanos) == text


# --------------------------------------------------------------------------- errors


def _error(body: bytes) -> str:
    with pytest.raises(ProtobufError) as info:
        decode(body)
    return str(info.value)


def test_protobuf_error_is_a_value_error() -> None:
    assert issubclass(ProtobufError, ValueError)


def test_missing_magic_is_rejected() -> None:
    assert "magic" in _error(b'{"kind": "Namespace"}')
    assert "magic" in _error(b"")


def test_truncated_varint_is_reported_with_its_offset() -> None:
    assert _error(MAGIC + b"\x0a\xff") == "truncated varint at byte 5"


def test_length_overrunning_the_body_is_reported() -> None:
    body = (FIXTURES / "deployment.pb").read_bytes()
    assert "overruns the enclosing message" in _error(body[:-10])


def test_truncated_fixed_width_value_is_reported() -> None:
    body = _envelope("v1", "Namespace", _meta("x") + b"\xdd\x05\x00\x00")
    assert "truncated 32-bit value" in _error(body)


def test_wrong_wire_type_names_the_field() -> None:
    body = _envelope("v1", "Namespace", _vi(1, 5))  # metadata sent as a varint
    assert _error(body) == (
        "field 1 (metadata) of k8s.io.api.core.v1.Namespace has wire type varint at byte 23, "
        "expected length-delimited"
    )


def test_unknown_kind_is_worded_like_the_apiserver() -> None:
    assert _error(_envelope("v1", "Foo", b"")) == 'no kind "Foo" is registered for version "v1"'
    assert (
        _error(_envelope("apps/v1", "Pod", b""))
        == 'no kind "Pod" is registered for version "apps/v1"'
    )
    assert "is registered" in _error(_envelope("nope/v1", "DeleteOptions", b""))


def test_missing_kind_is_rejected() -> None:
    assert "'Kind' is missing" in _error(MAGIC + _ld(2, b""))


def test_groups_and_invalid_wire_types_are_rejected() -> None:
    assert "unsupported wire type 3" in _error(_envelope("v1", "Namespace", b"\xd3\x05"))
    assert "unsupported wire type 7 at byte 5 in runtime.Unknown" in _error(MAGIC + b"\x4f")


def test_field_number_zero_is_rejected() -> None:
    assert "field number 0" in _error(_envelope("v1", "Namespace", b"\x02\x00"))


def test_garbage_after_the_magic_is_rejected() -> None:
    with pytest.raises(ProtobufError):
        decode(MAGIC + bytes(range(200, 256)) * 3)


def test_timestamps_out_of_range_are_rejected() -> None:
    raw = _ld(1, _ld(1, b"e") + _ld(8, _vi(1, 1 << 62)))
    assert "out of range" in _error(_envelope("v1", "Event", raw))


def test_compressed_content_encoding_is_refused() -> None:
    assert "contentEncoding 'gzip'" in _error(_envelope("v1", "Namespace", b"", encoding="gzip"))


def test_raw_extension_that_is_not_json_is_rejected() -> None:
    raw = _meta("r") + _ld(2, _ld(1, b"{not json"))
    assert "does not hold JSON" in _error(_envelope("apps/v1", "ControllerRevision", raw))


def test_absurd_nesting_is_rejected_not_a_recursion_error() -> None:
    body = _envelope("v1", "Namespace", _meta("n"))
    for _ in range(100):  # a ControllerRevision whose data holds a ControllerRevision whose data...
        body = _envelope("apps/v1", "ControllerRevision", _meta("r") + _ld(2, _ld(1, body)))
    assert "nested deeper than" in _error(body)


def test_encode_rejects_values_of_the_wrong_type() -> None:
    with pytest.raises(ProtobufError, match=r"Namespace\.metadata\.name: expected a string"):
        encode({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": 5}})
    with pytest.raises(ProtobufError, match="no kind"):
        encode({"apiVersion": "v1", "kind": "Nope"})


# --------------------------------------------------------------------------- content type, data, speed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/vnd.kubernetes.protobuf", True),
        ("Application/VND.Kubernetes.Protobuf; charset=utf-8", True),
        ("application/vnd.kubernetes.protobuf;stream=watch", True),
        ("application/json", False),
        ("application/vnd.kubernetes.protobuf+json", False),
        ("", False),
        (None, False),
    ],
)
def test_is_protobuf(header: str | None, expected: bool) -> None:
    assert is_protobuf(header) is expected


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("v1", "Namespace"), ("v1", "Pod"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"),
        ("v1", "ServiceAccount"), ("v1", "Endpoints"), ("v1", "Event"), ("v1", "Node"),
        ("v1", "LimitRange"), ("v1", "ResourceQuota"), ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"),
        ("apps/v1", "ControllerRevision"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
        ("coordination.k8s.io/v1", "Lease"), ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"), ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authorization.k8s.io/v1", "SubjectAccessReview"), ("meta.k8s.io/v1", "DeleteOptions"),
        ("apps/v1", "DeleteOptions"), ("autoscaling/v1", "Scale"), ("v1", "Status"),
        ("policy/v1", "Eviction"),
    ],
)  # fmt: skip
def test_required_kinds_are_registered(api_version: str, kind: str) -> None:
    body = encode({"apiVersion": api_version, "kind": kind})
    assert decode(body)["kind"] == kind


def test_committed_schema_matches_the_generator() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gen_proto_schema", ROOT / "tools" / "gen_proto_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    assert module.main(["--check"]) == 0


# Fields in the schema's (newer) apps/v1 .proto that kubectl 1.32 does not know yet.
NEWER_THAN_KUBECTL = {
    ("k8s.io.api.apps.v1.DeploymentSpec", "podReplacementPolicy"),
    ("k8s.io.api.apps.v1.DeploymentStatus", "terminatingReplicas"),
    ("k8s.io.api.apps.v1.ReplicaSetStatus", "terminatingReplicas"),
}
_DESCRIPTOR_TYPES = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 11: "message", 12: "bytes", 13: "uint32", 15: "sfixed32",
    16: "sfixed64", 17: "sint32", 18: "sint64",
}  # fmt: skip
_GOGO_NULLABLE = 65001


def _wire_fields(data: bytes) -> list[tuple[int, Any]]:
    out, pos = [], 0
    while pos < len(data):
        key = 0
        for shift in range(0, 70, 7):
            b = data[pos]
            pos += 1
            key |= (b & 0x7F) << shift
            if b < 0x80:
                break
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = 0
            for shift in range(0, 70, 7):
                b = data[pos]
                pos += 1
                value |= (b & 0x7F) << shift
                if b < 0x80:
                    break
        elif wire == 2:
            size, start = _wire_fields_len(data, pos)
            value, pos = data[start : start + size], start + size
        else:
            width = 8 if wire == 1 else 4
            value, pos = data[pos : pos + width], pos + width
        out.append((number, value))
    return out


def _wire_fields_len(data: bytes, pos: int) -> tuple[int, int]:
    size = 0
    for shift in range(0, 70, 7):
        b = data[pos]
        pos += 1
        size |= (b & 0x7F) << shift
        if b < 0x80:
            return size, pos
    raise AssertionError("bad length")


def _kubectl_descriptors() -> dict[tuple[str, str], dict[str, Any]]:
    """Field descriptors of the k8s generated.proto files compiled into kubectl 1.32.

    gogo-protobuf embeds each file's gzipped FileDescriptorProto in the binary, including
    the ``(gogoproto.nullable) = false`` option that go-to-protobuf sets on every
    non-pointer Go field: an independent witness for both field numbers and pointer-ness.
    """
    found = shutil.which("kubectl")
    binary = Path(found).resolve().with_name("kubectl.1.32") if found else None
    if binary is None or not binary.exists():
        pytest.skip("the kubectl 1.32 binary is not installed")
    data = binary.read_bytes()
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for match in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(
                data[match.start() : match.start() + (1 << 20)]
            )
            top = _wire_fields(raw)
        except (zlib.error, IndexError):
            continue
        head = dict(f for f in top if f[0] in (1, 2))
        path, package_bytes = head.get(1, b""), head.get(2, b"")
        if not path.endswith(b"generated.proto") or not package_bytes.startswith(b"k8s.io"):
            continue
        package = package_bytes.decode()
        for number, message in top:
            if number != 4:
                continue
            parts = _wire_fields(message)
            name = dict(parts)[1].decode()
            for tag, field_bytes in parts:
                if tag != 2:
                    continue
                desc = dict(_wire_fields(field_bytes))
                options = dict(_wire_fields(desc[8])) if 8 in desc else {}
                result[(f"{package}.{name}", desc[1].decode())] = {
                    "number": desc[3],
                    "repeated": desc[4] == 3,
                    "type": _DESCRIPTOR_TYPES[desc[5]],
                    "type_name": desc.get(6, b"").decode().lstrip("."),
                    "pointer": options.get(_GOGO_NULLABLE, 1) != 0,
                }
    return result


def test_schema_agrees_with_the_descriptors_compiled_into_kubectl() -> None:
    descriptors = _kubectl_descriptors()
    schema = orjson.loads((ROOT / "src/pyk8s/machinery/proto_schema.json").read_bytes())
    pointers, slices = set(schema["pointers"]), set(schema["slices"])
    problems, checked = [], 0
    for message, fields in schema["messages"].items():
        for number, (name, ftype, label) in fields.items():
            desc = descriptors.get((message, name))
            if desc is None:
                if (message, name) not in NEWER_THAN_KUBECTL:
                    problems.append(f"{message}.{name}: not in kubectl")
                continue
            checked += 1
            if desc["number"] != int(number):
                problems.append(f"{message}.{name}: number {number} != {desc['number']}")
            if label == "map":
                continue  # a repeated *Entry message in descriptors
            wanted = desc["type_name"] if desc["type"] == "message" else desc["type"]
            if (wanted, desc["repeated"]) != (ftype, label == "repeated"):
                problems.append(f"{message}.{name}: {label} {ftype} != {wanted}")
            # bytes fields, named slices and Quantity's custom string are not Go pointers
            goes_by_value = ftype == "bytes" or ftype in slices or message.endswith(".Quantity")
            is_pointer = f"{message}.{name}" in pointers
            if label == "optional" and not goes_by_value and desc["pointer"] != is_pointer:
                problems.append(f"{message}.{name}: pointer should be {desc['pointer']}")
    assert problems == []
    assert checked > 1400


def test_a_typical_body_decodes_well_under_a_millisecond() -> None:
    body = encode(POD)
    assert len(body) < 2048
    decode(body)
    samples = []
    for _ in range(30):
        start = time.perf_counter()
        decode(body)
        samples.append(time.perf_counter() - start)
    assert statistics.median(samples) < 0.005  # generous for loaded CI; typically ~0.2 ms
