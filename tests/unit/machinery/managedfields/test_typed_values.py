"""Field sets, comparison, merge and removal by the official schemas' list and map types."""

from __future__ import annotations

from typing import Any

from pyk8s.machinery.managedfields import typed, values

DEPLOYMENT = typed.type_of_kind("apps/v1", "Deployment")
POD = typed.type_of_kind("v1", "Pod")
CUSTOM = typed.type_of_kind("example.com/v1", "Widget")
C = 'k:{"name":"c"}'
CONTAINERS = ("f:spec", "f:containers")


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": {"containers": list(containers), **spec}}


class TestTypes:
    def test_list_types_come_from_the_definitions(self) -> None:
        spec = POD.field("spec")
        assert spec is not None
        containers, tolerations = spec.field("containers"), spec.field("tolerations")
        assert containers is not None and tolerations is not None
        assert (containers.list_type, containers.keys) == ("map", ("name",))
        assert tolerations.list_type == "atomic"

    def test_atomic_maps_and_structs(self) -> None:
        spec = DEPLOYMENT.field("spec")
        assert spec is not None
        assert spec.field("selector") is typed.ATOMIC_NODE
        pod_spec = POD.field("spec")
        assert pod_spec is not None and pod_spec.field("nodeSelector") is typed.ATOMIC_NODE

    def test_kinds_without_definitions_are_deduced(self) -> None:
        assert CUSTOM is typed.DEDUCED_NODE


class TestFieldSet:
    def test_items_of_associative_lists_by_key(self) -> None:
        fields = values.field_set(pod({"name": "c", "image": "i"}), POD)
        assert fields == {(*CONTAINERS, C), (*CONTAINERS, C, "f:name"), (*CONTAINERS, C, "f:image")}

    def test_atomic_values_are_one_field(self) -> None:
        fields = values.field_set({"spec": {"selector": {"matchLabels": {"a": "b"}}}}, DEPLOYMENT)
        assert fields == {("f:spec", "f:selector")}

    def test_set_items_by_value(self) -> None:
        fields = values.field_set({"metadata": {"finalizers": ["a", "b"]}}, POD)
        assert ("f:metadata", "f:finalizers", 'v:"a"') in fields

    def test_map_keys_and_empty_structs_are_members(self) -> None:
        fields = values.field_set({"metadata": {"labels": {"a": "1"}}, "spec": {"securityContext": {}}}, POD)
        assert fields == {("f:metadata", "f:labels", "f:a"), ("f:spec", "f:securityContext")}

    def test_key_fields_take_their_defaults(self) -> None:
        fields = values.field_set(pod({"name": "c", "ports": [{"containerPort": 80}]}), POD)
        assert (*CONTAINERS, C, "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}') in fields


class TestCompare:
    def test_created_pointers_and_maps_are_added_but_zero_structs_are_not(self) -> None:
        new = {"metadata": {"labels": {"a": "1"}}, "spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}
        added = values.compare(values.MISSING, new, DEPLOYMENT).added
        assert ("f:metadata", "f:labels") in added
        assert ("f:spec", "f:strategy", "f:rollingUpdate") in added
        assert ("f:metadata",) not in added and ("f:spec", "f:strategy") not in added

    def test_modified_and_removed(self) -> None:
        old = pod({"name": "c", "image": "a"}, {"name": "d", "image": "a"})
        new = pod({"name": "c", "image": "b"})
        result = values.compare(old, new, POD)
        assert result.modified == {(*CONTAINERS, C, "f:image")}
        assert (*CONTAINERS, 'k:{"name":"d"}') in result.removed
        assert not result.added

    def test_reordering_an_associative_list_changes_nothing(self) -> None:
        a, b = {"name": "a"}, {"name": "b"}
        result = values.compare(pod(a, b), pod(b, a), POD)
        assert not (result.added or result.modified or result.removed)

    def test_atomic_lists_change_as_a_whole(self) -> None:
        old = pod(tolerations=[{"key": "a"}])
        new = pod(tolerations=[{"key": "a"}, {"key": "b"}])
        assert values.compare(old, new, POD).modified == {("f:spec", "f:tolerations")}


class TestMerge:
    def test_associative_lists_merge_by_key_keeping_live_order(self) -> None:
        live = pod({"name": "a", "image": "1", "imagePullPolicy": "Always"}, {"name": "b", "image": "1"})
        merged = values.merge(live, pod({"name": "b", "image": "2"}, {"name": "c", "image": "3"}), POD)
        assert merged["spec"]["containers"] == [
            {"name": "a", "image": "1", "imagePullPolicy": "Always"},
            {"name": "b", "image": "2"}, {"name": "c", "image": "3"}]

    def test_atomic_values_are_replaced(self) -> None:
        live = {"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}}
        merged = values.merge(live, {"spec": {"selector": {"matchLabels": {"a": "1"}}}}, DEPLOYMENT)
        assert merged["spec"]["selector"] == {"matchLabels": {"a": "1"}}

    def test_sets_are_unions(self) -> None:
        merged = values.merge({"metadata": {"finalizers": ["a"]}},
                              {"metadata": {"finalizers": ["b", "a"]}}, POD)
        assert merged["metadata"]["finalizers"] == ["a", "b"]

    def test_null_removes(self) -> None:
        merged = values.merge({"spec": {"replicas": 2, "paused": True}}, {"spec": {"paused": None}}, DEPLOYMENT)
        assert merged == {"spec": {"replicas": 2}}

    def test_the_live_value_is_not_modified(self) -> None:
        live = {"spec": {"replicas": 2}}
        values.merge(live, {"spec": {"replicas": 3}}, DEPLOYMENT)
        assert live == {"spec": {"replicas": 2}}


class TestRemove:
    def test_removing_an_item_removes_it_whole(self) -> None:
        live = pod({"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]})
        port = (*CONTAINERS, C, "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')
        out = values.remove(live, frozenset({port, (*port, "f:containerPort")}), POD)
        assert out == pod({"name": "c"})

    def test_maps_emptied_by_removal_go(self) -> None:
        out = values.remove({"metadata": {"labels": {"a": "1"}, "name": "x"}},
                            frozenset({("f:metadata", "f:labels", "f:a")}), POD)
        assert out == {"metadata": {"name": "x"}}
