"""A manager's first write to fields nobody else owns (a kubelet's first status write) takes
a shortcut in record_update: the changed fields built as a tree in one walk. It must give
exactly what the general path (compare, then sets of paths, then encoding) gives, on any
pair of objects: checked here on generated pod statuses and specs."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from pyk8s.machinery.managedfields import fieldpath, typed, updater, values
from pyk8s.machinery.managedfields.updater import Scope

POD = typed.type_of_kind("v1", "Pod")
ROOTS = frozenset(("f:" + k,) for k in set(POD.field_names()) | {"metadata", "spec"}
                  if k not in ("status", "apiVersion", "kind"))
STATUS = Scope(POD, "v1", "status", ROOTS)
MAIN = Scope(POD, "v1", "", frozenset({("f:status",)}))
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def _maybe(rng: random.Random, value: Any) -> Any:
    return value if rng.random() < 0.6 else None


def status(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rng.random() < 0.8:
        out["phase"] = rng.choice(["Pending", "Running", "Succeeded"])
    conditions = []
    for kind in ("PodScheduled", "Initialized", "Ready", "ContainersReady"):
        if rng.random() < 0.6:
            condition = {"type": kind, "status": rng.choice(["True", "False"]),
                         "lastProbeTime": None,
                         "lastTransitionTime": rng.choice([T0, T1])}
            if rng.random() < 0.3:
                condition["reason"] = rng.choice(["A", "B"])
            conditions.append(condition)
    if conditions or rng.random() < 0.3:
        out["conditions"] = conditions
    if rng.random() < 0.5:
        ip = f"10.0.0.{rng.randrange(3)}"
        out["podIP"] = ip
        out["podIPs"] = [{"ip": ip}]
    if rng.random() < 0.5:
        out["containerStatuses"] = [{"name": "c", "ready": rng.random() < 0.5,
                                     "restartCount": rng.randrange(2), "image": "i",
                                     "imageID": "", "state": {"running": {"startedAt": T0}}}]
    if rng.random() < 0.3:
        out["hostIP"] = _maybe(rng, "192.168.0.1")
    return out


def pod(rng: random.Random, managers: int) -> dict[str, Any]:
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "ns", "labels": {"a": rng.choice("xy")}},
           "spec": {"containers": [{"name": "c", "image": rng.choice(["i:1", "i:2"])}]},
           "status": status(rng)}
    obj["metadata"]["managedFields"] = updater.record_update(None, obj, MAIN, "creator", T0)
    for i in range(managers):  # other status writers, owning some status fields
        new = copy.deepcopy(obj)
        new["status"] = status(rng)
        obj["metadata"]["managedFields"] = updater.record_update(
            obj, new, STATUS, f"other-{i}", T0) or obj["metadata"]["managedFields"]
        obj["status"] = new["status"]
    return obj


def general(live: dict[str, Any], new: dict[str, Any], scope: Scope,
            monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patched:
        patched.setattr(updater, "_first_update", lambda *_a, **_k: None)
        return updater.record_update(live, new, scope, "kubelet", T1)


@pytest.mark.parametrize("seed", range(300))
def test_first_update_is_the_general_answer(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    live = pod(rng, managers=rng.randrange(3))
    new = copy.deepcopy(live)
    scope = STATUS
    if rng.random() < 0.8:
        new["status"] = status(rng)
    else:  # a main-resource write by a newcomer: spec or labels change
        scope = MAIN
        new["spec"]["containers"][0]["image"] = rng.choice(["i:1", "i:3"])
        if rng.random() < 0.5:
            new["metadata"]["labels"]["b"] = "z"
    assert updater.record_update(live, new, scope, "kubelet", T1) == \
        general(live, new, scope, monkeypatch)


def test_changed_tree_is_the_encoding_of_the_compared_changes() -> None:
    rng = random.Random(7)
    for _ in range(200):
        old, new = {"status": status(rng)}, {"status": status(rng)}
        expected = fieldpath.encode(frozenset(values.compare(old, new, POD).changed))
        assert fieldpath.emit(values.changed_tree(old, new, POD)) == expected


def test_a_first_status_write_takes_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending"}}
    live["metadata"]["managedFields"] = updater.record_update(None, live, MAIN, "creator", T0)
    new = copy.deepcopy(live)
    new["status"] = {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}
    taken = []
    real = updater._first_update
    monkeypatch.setattr(updater, "_first_update", lambda *a: taken.append(1) or real(*a))
    managed = updater.record_update(live, new, STATUS, "kubelet", T1)
    assert taken and managed is not None
    kubelet = next(e for e in managed if e["manager"] == "kubelet")
    assert kubelet["fieldsV1"] == {"f:status": {
        "f:phase": {}, "f:podIPs": {'k:{"ip":"10.0.0.1"}': {".": {}, "f:ip": {}}}}}
    assert kubelet["subresource"] == "status" and kubelet["time"] == T1
