"""Definitions as OpenAPI v3 components and v2 definitions."""

from __future__ import annotations

from pyk8s.machinery.schema import definitions
from pyk8s.machinery.schema.openapi import v2_definitions, v3_schemas

SPEC = "io.k8s.api.apps.v1.DeploymentSpec"


def test_v3_wraps_described_references_in_all_of() -> None:
    schema = v3_schemas(definitions.get(), [SPEC])[SPEC]
    strategy = schema["properties"]["strategy"]
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert "$ref" not in strategy


def test_v2_keeps_siblings_next_to_the_reference() -> None:
    schema = v2_definitions(definitions.get(), [SPEC])[SPEC]
    strategy = schema["properties"]["strategy"]
    assert strategy["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentStrategy"
    assert strategy["description"]


def test_list_items_are_plain_references() -> None:
    name = "io.k8s.api.core.v1.PodSpec"
    containers = v3_schemas(definitions.get(), [name])[name]["properties"]["containers"]
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
