"""The OpenAPI documents kubectl reads: operations, tags and complete schemas."""

from __future__ import annotations

from typing import Any

import orjson

from pyk8s.apiserver.openapi import OpenAPI
from pyk8s.machinery.resources import CATALOGUE

OPENAPI = OpenAPI(CATALOGUE)


def v3(key: str) -> dict[str, Any]:
    body = OPENAPI.document_for(key)
    assert body is not None
    return orjson.loads(body)


def test_the_index_lists_every_group_version_with_a_hash() -> None:
    paths = OPENAPI._index["paths"]
    assert paths["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")
    assert "api/v1" in paths


def test_patch_operations_carry_field_validation_and_the_kind() -> None:
    doc = v3("apis/apps/v1")
    op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1",
                                                     "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in op["parameters"]}


def _refs(value: Any, out: list[str]) -> list[str]:
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            out.append(value["$ref"])
        for v in value.values():
            _refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _refs(v, out)
    return out


def test_every_reference_resolves_inside_the_document() -> None:
    for key in ("api/v1", "apis/apps/v1", "apis/batch/v1"):
        doc = v3(key)
        schemas = doc["components"]["schemas"]
        refs = _refs(doc, [])
        assert refs
        for ref in refs:
            assert ref.startswith("#/components/schemas/")
            assert ref.removeprefix("#/components/schemas/") in schemas, (key, ref)


def test_kind_schemas_carry_their_group_version_kind() -> None:
    schemas = v3("apis/apps/v1")["components"]["schemas"]
    assert schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert "io.k8s.api.core.v1.PodSpec" in schemas


def test_v2_has_definitions_and_paths() -> None:
    doc = orjson.loads(OPENAPI.v2_document())
    assert doc["swagger"] == "2.0"
    assert "io.k8s.api.core.v1.Pod" in doc["definitions"]
    get_pod = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["get"]
    assert get_pod["responses"]["200"]["schema"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}
