"""The official definitions, read back in OpenAPI's shape."""

from __future__ import annotations

from pyk8s.machinery.schema import definitions


def test_kinds_are_found_by_group_version_kind() -> None:
    defs = definitions.get()
    assert defs.by_gvk("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert defs.by_gvk("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert defs.by_gvk("example.com", "v1", "Widget") is None


def test_json_schema_spelling_is_undone() -> None:
    spec = definitions.get().schema("io.k8s.api.apps.v1.DeploymentSpec")
    replicas = spec["properties"]["replicas"]
    assert replicas["type"] == "integer" and replicas["format"] == "int32"
    strategy = spec["properties"]["strategy"]
    assert strategy["$ref"] == "io.k8s.api.apps.v1.DeploymentStrategy"
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"


def test_patch_extensions_are_kept() -> None:
    containers = definitions.get().schema("io.k8s.api.core.v1.PodSpec")["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]


def test_kind_enums_added_by_the_package_are_dropped() -> None:
    pod = definitions.get().schema("io.k8s.api.core.v1.Pod")
    assert "enum" not in pod["properties"]["kind"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]


def test_quantity_and_int_or_string_read_as_upstream_publishes_them() -> None:
    defs = definitions.get()
    assert defs.schema(definitions.QUANTITY)["type"] == "string"
    assert defs.schema(definitions.INT_OR_STRING)["format"] == "int-or-string"


def test_closure_includes_every_referenced_type() -> None:
    names = definitions.get().closure(["io.k8s.api.core.v1.Pod"])
    assert "io.k8s.api.core.v1.Container" in names
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in names
    assert "io.k8s.api.apps.v1.Deployment" not in names
