"""The definitions as OpenAPI v3 ``components.schemas`` and OpenAPI v2 ``definitions``.

Both keep upstream's spelling, because kubectl reads them: ``kubectl explain`` walks the v3
schemas (following ``$ref`` and single-element ``allOf``), and client-side ``kubectl apply``
builds strategic merge patches from the ``x-kubernetes-patch-*`` extensions it finds there.
A field that refers to another type and carries its own description is written as upstream
writes it in v3 (``{"allOf": [{"$ref": ...}], "description": ...}``), since siblings of a
``$ref`` are ignored by OpenAPI 3.0; v2 keeps the siblings next to the ``$ref``.
"""

from __future__ import annotations

from typing import Any

from pyk8s.machinery.schema.definitions import Definitions

V3_REF = "#/components/schemas/"
V2_REF = "#/definitions/"


def _convert(schema: Any, prefix: str, wrap: bool) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: _convert(prop, prefix, wrap) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _convert(value, prefix, wrap)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [_convert(v, prefix, wrap) for v in value]
        elif key != "$ref":
            out[key] = value
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = {"$ref": prefix + ref}
        if wrap and out:
            out["allOf"] = [target]
        else:
            out = {**target, **out}
    return out


def v3_schemas(definitions: Definitions, names: list[str]) -> dict[str, Any]:
    """``components.schemas`` for the given definitions (see :meth:`Definitions.closure`)."""
    return {name: _convert(definitions.schema(name), V3_REF, True) for name in names}


def v2_definitions(definitions: Definitions, names: list[str]) -> dict[str, Any]:
    """Swagger 2.0 ``definitions`` for the given definitions."""
    return {name: _convert(definitions.schema(name), V2_REF, False) for name in names}
