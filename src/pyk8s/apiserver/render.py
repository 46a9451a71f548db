"""Response bodies: plain objects and lists as JSON or YAML, or ``meta.k8s.io/v1`` Tables.

Lists are assembled from the watch cache's serialized objects without parsing them again;
only Tables (``kubectl get``) need the parsed objects, to compute their cells.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from pyk8s.apiserver import codec
from pyk8s.apiserver.listing import ListPage
from pyk8s.machinery import errors, tables
from pyk8s.machinery.resources import Resource

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def include_mode(include_object: str | None) -> str:
    value = include_object or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise errors.bad_request(
            f'includeObject: Unsupported value: "{value}": supported values: "None", "Metadata", "Object"')
    return value


def table_row(res: Resource, obj: dict[str, Any], include: str, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": tables.table_row_cells(res.group, res.plural, obj, now)}
    conditions = tables.table_row_conditions(res.group, res.plural, obj)
    if conditions:
        row["conditions"] = conditions
    if include == "Object":
        row["object"] = obj
    elif include == "Metadata":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata", {})}
    return row


def table(res: Resource, objs: list[dict[str, Any]], resource_version: str, include: str,
          *, continue_token: str = "", remaining: int | None = None,
          with_columns: bool = True) -> dict[str, Any]:
    now = datetime.now(UTC)
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    body: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    body["columnDefinitions"] = tables.table_columns(res.group, res.plural) if with_columns else []
    body["rows"] = [table_row(res, obj, include, now) for obj in objs]
    return body


def object_body(res: Resource, obj: dict[str, Any], negotiated: codec.Negotiated,
                include_object: str | None) -> tuple[bytes, str]:
    if negotiated.table:
        rv = obj.get("metadata", {}).get("resourceVersion", "")
        return orjson.dumps(table(res, [obj], rv, include_mode(include_object))), TABLE_CONTENT_TYPE
    if negotiated.yaml:
        return codec.dump_yaml(obj), codec.YAML
    return orjson.dumps(obj), codec.JSON


def list_body(res: Resource, page: ListPage, negotiated: codec.Negotiated,
              include_object: str | None) -> tuple[bytes, str]:
    rv = str(page.revision)
    if negotiated.table:
        objs = [item.load() for item in page.items]
        body = table(res, objs, rv, include_mode(include_object), continue_token=page.continue_token,
                     remaining=page.remaining)
        return orjson.dumps(body), TABLE_CONTENT_TYPE
    meta: dict[str, Any] = {"resourceVersion": rv}
    if page.continue_token:
        meta["continue"] = page.continue_token
    if page.remaining is not None:
        meta["remainingItemCount"] = page.remaining
    if negotiated.yaml:
        value = {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta,
                 "items": [item.load() for item in page.items]}
        return codec.dump_yaml(value), codec.YAML
    head = orjson.dumps({"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta})
    # Splice the cached item bytes into the list without re-serializing them.
    body = b"".join((head[:-1], b',"items":[', b",".join(item.raw for item in page.items), b"]}"))
    return body, codec.JSON
