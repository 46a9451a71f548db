"""The three PATCH bodies the API server accepts, applied to plain JSON values.

* :func:`json_merge_patch` — RFC 7386 (``application/merge-patch+json``);
  :func:`create_merge_patch` is its inverse, for clients and tests.
* :func:`json_patch` — RFC 6902 (``application/json-patch+json``), with the behaviour and the
  error wording of ``gopkg.in/evanphx/json-patch.v4``, the library kube-apiserver uses
  (negative array indices allowed, ``test`` of a missing member against ``null`` passes).
* :func:`strategic_merge_patch` — Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``), a port of the *apply* half of apimachinery's
  ``pkg/util/strategicpatch``: ``$patch`` (replace/delete), ``$setElementOrder/<list>``,
  ``$retainKeys``, ``$deleteFromPrimitiveList/<list>``, merge-by-key lists and the exact element
  order upstream produces (including where that order depends on Go slice aliasing).

Which lists merge, and by which key, comes from a :class:`MergeSchema`: a small Protocol
(``name``, ``lookup``) answering "for this field of this type, what are ``x-kubernetes-patch-strategy`` and
``x-kubernetes-patch-merge-key``, and what is the field's type". :class:`TableSchema` answers
from a table in OpenAPI's shape (definition name -> field -> (type, strategy, merge key)); the
built-in table :data:`BUILTIN_PATCH_META` covers the fields of built-in kinds that carry patch
metadata. Swapping that table for the OpenAPI definitions of ``kubernetes-validate`` changes
only where the table comes from. Custom resources get no strategic merge patch at all
(:func:`supports_strategic_merge`): upstream answers 415.

Errors are :class:`PatchError` carrying the HTTP status kube-apiserver answers with, found in
``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go``:

========================================  ====  ==============================================
failure                                   code  upstream path
========================================  ====  ==============================================
JSON patch document not a list of objects 400   ``jsonpatch.DecodePatch`` -> ``NewBadRequest``
more than 10000 JSON patch operations     413   ``NewRequestEntityTooLargeError``
JSON patch operation fails (incl. test)   422   ``patchObj.Apply`` -> ``StatusUnprocessableEntity``
merge patch not an object or array        400   ``jsonpatch.ErrBadJSONPatch`` -> ``NewBadRequest``
SMP body not an object; bad ``$retainKeys``/
``$setElementOrder``/``$deleteFromPrimitiveList``
format                                    400   ``interpretStrategicMergePatchError``
SMP list of lists                         422   ``interpretStrategicMergePatchError``
any other SMP failure (missing merge key,  500   plain error -> ``ErrorToAPIStatus``: code 500,
unknown ``$patch`` value, mixed lists)          empty reason (``Error from server: <msg>``)
SMP on a custom resource                  415   content type not among the CR's patch types
========================================  ====  ==============================================

The 422s are built by ``NewGenericServerResponse``, whose ``Status`` carries reason ``Invalid``
and a generic message rather than the library's (:attr:`PatchError.status_message`).

Inputs are never mutated; results share nothing with them. The functions are pure and
thread-safe. Deliberately absent: computing strategic merge patches (the client's half), and
server-side apply (a different algorithm built on managed fields).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, overload

__all__ = [
    "BUILTIN_PATCH_META",
    "EMPTY_SCHEMA",
    "MAX_JSON_PATCH_OPERATIONS",
    "MergeSchema",
    "PatchError",
    "PatchMeta",
    "TableSchema",
    "create_merge_patch",
    "json_merge_patch",
    "json_merge_patch_shared",
    "json_patch",
    "schema_for_kind",
    "strategic_merge_patch",
    "supports_strategic_merge",
    "validate_merge_patch",
]

BAD_REQUEST = 400
REQUEST_ENTITY_TOO_LARGE = 413
UNSUPPORTED_MEDIA_TYPE = 415
UNPROCESSABLE_ENTITY = 422
INTERNAL_SERVER_ERROR = 500

MAX_JSON_PATCH_OPERATIONS = 10000


_REASONS = {
    BAD_REQUEST: "BadRequest",
    REQUEST_ENTITY_TOO_LARGE: "RequestEntityTooLarge",
    UNSUPPORTED_MEDIA_TYPE: "UnsupportedMediaType",
    UNPROCESSABLE_ENTITY: "Invalid",
}


class PatchError(ValueError):
    """A patch that cannot be applied.

    ``message`` is the failure worded as upstream's library words it; ``code`` is the HTTP
    status kube-apiserver answers with (400 malformed document, 413 too many operations,
    422 does not apply, 500 upstream's unclassified strategic-merge failures). ``reason`` and
    ``status_message`` are the ``Status`` fields it sends: a 422 built by
    ``NewGenericServerResponse`` hides the library's message behind a generic one (kubectl
    prints ``The request is invalid: the server rejected our request due to an error in our
    request``), a 413 prefixes ``Request entity too large:``, a 500 has an empty reason."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def reason(self) -> str:
        return _REASONS.get(self.code, "")

    @property
    def status_message(self) -> str:
        if self.code == UNPROCESSABLE_ENTITY:
            return "the server rejected our request due to an error in our request"
        if self.code == REQUEST_ENTITY_TOO_LARGE:
            return f"Request entity too large: {self.message}"
        return self.message


# --------------------------------------------------------------------------------------------
# JSON values as Go's encoding/json sees them


def copy_json(value: Any) -> Any:
    """Deep copy of a JSON value (much faster than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def _kind(value: Any) -> str:
    """The Go dynamic type a decoded JSON value would have."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def _go_eq(a: Any, b: Any) -> bool:
    """Go's ``==`` on two ``interface{}`` values: same dynamic type and equal value."""
    return _kind(a) == _kind(b) and a == b


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but booleans are not numbers."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _go_fmt(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value, for messages that quote one."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_fmt(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_fmt(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _json_type(value: Any) -> str:
    """encoding/json's name for a JSON value's type, as used in unmarshal errors."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


# --------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def json_merge_patch(target: Any, patch: Any, *, in_place: bool = False) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` removes a member,
    anything else replaces. A non-object patch replaces the whole target. ``target`` is left
    alone unless ``in_place`` (for a caller that owns it: no copy of the whole document).

    This is the RFC to the letter. kube-apiserver's library differs only on documents no
    valid object produces: it also drops ``null`` elements from arrays it inserts, and it
    refuses non-object, non-array patches (see :func:`validate_merge_patch`)."""
    if not isinstance(patch, dict):
        return copy_json(patch)
    if isinstance(target, dict):
        result = target if in_place else copy_json(target)
    else:
        result = {}
    _merge_into(result, patch)
    return result


def json_merge_patch_shared(target: Any, patch: dict[str, Any]) -> dict[str, Any]:
    """:func:`json_merge_patch` of an object patch that copies only the objects the patch
    goes into: the result shares every other value with ``target``, and takes the patch's
    arrays and scalars themselves. For a caller that changes neither afterwards."""
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = json_merge_patch_shared(result.get(key), value)
        else:
            result[key] = value
    return result


def _merge_into(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = target[key] = {}
            _merge_into(current, value)
        else:
            target[key] = copy_json(value)


def validate_merge_patch(patch: Any) -> None:
    """Reject what kube-apiserver rejects before merging: a patch that is not a JSON object
    or array (``jsonpatch.ErrBadJSONPatch``, 400)."""
    if not isinstance(patch, dict | list):
        raise PatchError("Invalid JSON Patch", BAD_REQUEST)


def create_merge_patch(original: Any, modified: Any) -> Any:
    """The merge patch that turns ``original`` into ``modified`` (nulls in ``modified``
    cannot be expressed by a merge patch and come out as removals)."""
    if not isinstance(original, dict) or not isinstance(modified, dict):
        return copy_json(modified)
    patch: dict[str, Any] = {}
    for key, new in modified.items():
        if key not in original:
            patch[key] = copy_json(new)
        elif isinstance(new, dict) and isinstance(original[key], dict):
            sub = create_merge_patch(original[key], new)
            if sub:
                patch[key] = sub
        elif not _json_equal(original[key], new):
            patch[key] = copy_json(new)
    for key in original:
        if key not in modified:
            patch[key] = None
    return patch


# --------------------------------------------------------------------------------------------
# RFC 6902 JSON patch, as evanphx/json-patch v4 applies it


class _OpFailed(Exception):
    """One JSON patch operation did not apply; becomes a 422."""


_INVALID_INDEX = "invalid index referenced"
_MISSING = "missing value"
_ATOI = re.compile(r"[+-]?[0-9]+")


def _decode_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _atoi(key: str) -> int:
    if not _ATOI.fullmatch(key):
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": invalid syntax')
    number = int(key)
    if not -(2**63) <= number < 2**63:
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": value out of range')
    return number


def _bad_index(idx: int) -> _OpFailed:
    return _OpFailed(f"Unable to access invalid index: {idx}: {_INVALID_INDEX}")


def _list_index(items: list[Any], key: str, size: int) -> int:
    """A (possibly negative) index valid for a list of ``size`` slots."""
    idx = _atoi(key)
    if idx >= size:
        raise _bad_index(idx)
    if idx < 0:
        if idx < -size:
            raise _bad_index(idx)
        idx += size
    return idx


def _get(container: dict[str, Any] | list[Any], key: str) -> Any:
    if isinstance(container, dict):
        if key not in container:
            raise _OpFailed(f"unable to get nonexistent key: {key}: {_MISSING}")
        return container[key]
    return container[_list_index(container, key, len(container))]


def _get_soft(container: Any, key: str) -> Any:
    try:
        return _get(container, key) if isinstance(container, dict | list) else None
    except _OpFailed:
        return None


def _add(container: dict[str, Any] | list[Any], key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
    elif key == "-":
        container.append(value)
    else:
        try:
            idx = _atoi(key)
        except _OpFailed as err:
            raise _OpFailed(f"value was not a proper array index: '{key}': {err}") from None
        size = len(container) + 1
        if idx >= size or idx < -size:
            raise _bad_index(idx)
        container.insert(idx + size if idx < 0 else idx, value)


def _remove(container: dict[str, Any] | list[Any], key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _OpFailed(f"Unable to remove nonexistent key: {key}: {_MISSING}")
        del container[key]
    else:
        del container[_list_index(container, key, len(container))]


def _find(doc: Any, path: str) -> tuple[dict[str, Any] | list[Any], str] | None:
    """The container holding ``path``'s last token, and that token; None if it is missing."""
    tokens = path.split("/")
    if len(tokens) < 2 or tokens[0] != "":
        return None
    current = doc
    for token in tokens[1:-1]:
        current = _get_soft(current, _decode_token(token))
        if not isinstance(current, dict | list):
            return None
    if not isinstance(current, dict | list):
        return None
    return current, _decode_token(tokens[-1])


def _string_member(op: dict[str, Any], name: str) -> str | None:
    value = op.get(name)
    return value if isinstance(value, str) else None


class _Document:
    """The document being patched; ``replace`` at ``""`` swaps it wholesale."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _apply_add(doc: _Document, op: dict[str, Any]) -> None:
    path = _string_member(op, "path")
    if path is None:
        raise _OpFailed(f"add operation failed to decode path: {_MISSING}")
    found = _find(doc.value, path)
    if found is None:
        raise _OpFailed(f'add operation does not apply: doc is missing path: "{path}": {_MISSING}')
    try:
        _add(*found, copy_json(op.get("value")))
    except _OpFailed as err:
        raise _OpFailed(f"error in add for path: '{path}': {err}") from None


def _apply_remove(doc: _Document, op: dict[str, Any]) -> None:
    path = _string_member(op, "path")
    if path is None:
        raise _OpFailed(f"remove operation failed to decode path: {_MISSING}")
    found = _find(doc.value, path)
    if found is None:
        raise _OpFailed(
            f'remove operation does not apply: doc is missing path: "{path}": {_MISSING}'
        )
    try:
        _remove(*found)
    except _OpFailed as err:
        raise _OpFailed(f"error in remove for path: '{path}': {err}") from None


def _apply_replace(doc: _Document, op: dict[str, Any]) -> None:
    path = _string_member(op, "path")
    if path is None:
        raise _OpFailed(
            f"replace operation failed to decode path: operation missing path field: {_MISSING}"
        )
    value = copy_json(op.get("value"))
    if path == "":
        if not isinstance(value, dict | list):
            raise _OpFailed("replace operation value must be object or array")
        doc.value = value
        return
    found = _find(doc.value, path)
    if found is None:
        raise _OpFailed(
            f"replace operation does not apply: doc is missing path: {path}: {_MISSING}"
        )
    container, key = found
    try:
        _get(container, key)
    except _OpFailed:
        raise _OpFailed(
            f"replace operation does not apply: doc is missing key: {path}: {_MISSING}"
        ) from None
    if isinstance(container, dict):
        container[key] = value
    else:
        container[_list_index(container, key, len(container))] = value


def _apply_move(doc: _Document, op: dict[str, Any]) -> None:
    source = _string_member(op, "from")
    if source is None:
        raise _OpFailed(
            f"move operation failed to decode from: operation, missing from field: {_MISSING}"
        )
    found = _find(doc.value, source)
    if found is None:
        raise _OpFailed(
            f"move operation does not apply: doc is missing from path: {source}: {_MISSING}"
        )
    container, key = found
    try:
        value = _get(container, key)
        _remove(container, key)
    except _OpFailed as err:
        raise _OpFailed(f"error in move for path: '{key}': {err}") from None
    path = _string_member(op, "path")
    if path is None:
        raise _OpFailed(
            f"move operation failed to decode path: operation missing path field: {_MISSING}"
        )
    target = _find(doc.value, path)
    if target is None:
        raise _OpFailed(
            f"move operation does not apply: doc is missing destination path: {path}: {_MISSING}"
        )
    try:
        _add(*target, value)
    except _OpFailed as err:
        raise _OpFailed(f"error in move for path: '{path}': {err}") from None


def _apply_copy(doc: _Document, op: dict[str, Any]) -> None:
    source = _string_member(op, "from")
    if source is None:
        raise _OpFailed(
            f"copy operation failed to decode from: operation, missing from field: {_MISSING}"
        )
    found = _find(doc.value, source)
    if found is None:
        raise _OpFailed(
            f"copy operation does not apply: doc is missing from path: {source}: {_MISSING}"
        )
    try:
        value = _get(*found)
    except _OpFailed as err:
        raise _OpFailed(f"error in copy for from: '{source}': {err}") from None
    path = _string_member(op, "path")
    if path is None:
        raise _OpFailed(f"copy operation failed to decode path: {_MISSING}")
    target = _find(doc.value, path)
    if target is None:
        raise _OpFailed(
            f"copy operation does not apply: doc is missing destination path: {path}: {_MISSING}"
        )
    try:
        _add(*target, copy_json(value))
    except _OpFailed as err:
        raise _OpFailed(f"error while adding value during copy: {err}") from None


def _apply_test(doc: _Document, op: dict[str, Any]) -> None:
    path = _string_member(op, "path")
    if path is None:
        raise _OpFailed(
            f"test operation failed to decode path: operation missing path field: {_MISSING}"
        )
    failed = _OpFailed(f"testing value {path} failed: test failed")
    if path == "":
        if "value" not in op or not _json_equal(doc.value, op["value"]):
            raise failed
        return
    found = _find(doc.value, path)
    if found is None:
        raise _OpFailed(f"test operation does not apply: is missing path: {path}: {_MISSING}")
    container, key = found
    if isinstance(container, dict):
        actual = container.get(key)
    else:
        try:
            actual = _get(container, key)
        except _OpFailed as err:
            raise _OpFailed(f"error in test for path: '{path}': {err}") from None
    if actual is None:
        # a missing member and a null one both equal a null (or absent) value
        if op.get("value") is not None:
            raise failed
    elif "value" not in op or not _json_equal(actual, op["value"]):
        raise failed


_OPERATIONS: dict[str, Callable[[_Document, dict[str, Any]], None]] = {
    "add": _apply_add,
    "remove": _apply_remove,
    "replace": _apply_replace,
    "move": _apply_move,
    "copy": _apply_copy,
    "test": _apply_test,
}


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 patch document (a list of operation objects) to ``target``.

    All operations apply or none do (the target is never touched; the result is new)."""
    if operations is None:  # a JSON ``null`` document decodes to an empty patch upstream
        operations = []
    if not isinstance(operations, list):
        raise PatchError(
            f"json: cannot unmarshal {_json_type(operations)} into Go value of type"
            " jsonpatch.Patch",
            BAD_REQUEST,
        )
    for op in operations:
        if op is not None and not isinstance(op, dict):
            raise PatchError(
                f"json: cannot unmarshal {_json_type(op)} into Go value of type"
                " jsonpatch.Operation",
                BAD_REQUEST,
            )
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS},"
            f" got {len(operations)}",
            REQUEST_ENTITY_TOO_LARGE,
        )
    doc = _Document(copy_json(target))
    for op in operations:
        kind = (op or {}).get("op")
        apply = _OPERATIONS.get(kind) if isinstance(kind, str) else None
        try:
            if apply is None:
                raise _OpFailed(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
            apply(doc, op)
        except _OpFailed as err:
            raise PatchError(str(err), UNPROCESSABLE_ENTITY) from None
    return doc.value


# --------------------------------------------------------------------------------------------
# Patch metadata: which lists merge, by which key


@dataclass(frozen=True, slots=True)
class PatchMeta:
    """A field's ``x-kubernetes-patch-strategy`` (e.g. ``"merge"``, ``"retainKeys"``,
    ``"merge,retainKeys"``, ``"replace"``; empty for the default) and
    ``x-kubernetes-patch-merge-key``."""

    strategy: str = ""
    merge_key: str = ""

    @property
    def strategies(self) -> list[str]:
        return [s for s in self.strategy.split(",") if s]


class MergeSchema(Protocol):
    """What strategic merge patch needs to know about one type of a kind's object tree."""

    @property
    def name(self) -> str:
        """The type's name, for messages."""
        ...

    def lookup(self, field: str) -> tuple[PatchMeta, MergeSchema]:
        """Patch metadata of ``field`` and the schema of its value (of its elements, for a
        list). Unknown fields answer ``PatchMeta()`` and a schema that knows nothing."""
        ...


# One field: (type of the value or of list elements, patch strategy, merge key).
FieldMeta = tuple[str | None, str, str]


class TableSchema:
    """A :class:`MergeSchema` read from a table shaped like OpenAPI definitions:
    definition name -> field name -> :data:`FieldMeta`."""

    __slots__ = ("_definitions", "_type")

    def __init__(self, definitions: Mapping[str, Mapping[str, FieldMeta]], type_name: str | None):
        self._definitions = definitions
        self._type = type_name

    @property
    def name(self) -> str:
        return (self._type or "").rsplit(".", 1)[-1]

    def lookup(self, field: str) -> tuple[PatchMeta, MergeSchema]:
        meta = self._definitions.get(self._type or "", {}).get(field)
        if meta is None:
            return PatchMeta(), TableSchema(self._definitions, None)
        type_name, strategy, merge_key = meta
        return PatchMeta(strategy, merge_key), TableSchema(self._definitions, type_name)


_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."
_BATCH = "io.k8s.api.batch.v1."
_OBJECT_META = (_META + "ObjectMeta", "", "")
_POD_TEMPLATE = (_CORE + "PodTemplateSpec", "", "")
_CONDITIONS = (None, "merge", "type")


def _object(spec: str | None = None, status: str | None = None) -> dict[str, FieldMeta]:
    fields: dict[str, FieldMeta] = {"metadata": _OBJECT_META}
    if spec:
        fields["spec"] = (spec, "", "")
    if status:
        fields["status"] = (status, "", "")
    return fields


_CONTAINER_FIELDS: dict[str, FieldMeta] = {
    "ports": (None, "merge", "containerPort"),
    "env": (None, "merge", "name"),
    "volumeMounts": (None, "merge", "mountPath"),
    "volumeDevices": (None, "merge", "devicePath"),
}

# Fields of built-in types with patch metadata (from the k8s.io/api struct tags), and the
# fields leading to them. Data, not code: a later change reads it from OpenAPI instead.
BUILTIN_PATCH_META: dict[str, dict[str, FieldMeta]] = {
    _META + "ObjectMeta": {
        "finalizers": (None, "merge", ""),
        "ownerReferences": (None, "merge", "uid"),
    },
    _CORE + "PodTemplateSpec": {"metadata": _OBJECT_META, "spec": (_CORE + "PodSpec", "", "")},
    _CORE + "PodSpec": {
        "volumes": (None, "merge,retainKeys", "name"),
        "initContainers": (_CORE + "Container", "merge", "name"),
        "containers": (_CORE + "Container", "merge", "name"),
        "ephemeralContainers": (_CORE + "EphemeralContainer", "merge", "name"),
        "imagePullSecrets": (None, "merge", "name"),
        "hostAliases": (None, "merge", "ip"),
        "topologySpreadConstraints": (None, "merge", "topologyKey"),
        "schedulingGates": (None, "merge", "name"),
        "resourceClaims": (None, "merge,retainKeys", "name"),
    },
    _CORE + "Container": _CONTAINER_FIELDS,
    _CORE + "EphemeralContainer": _CONTAINER_FIELDS,
    _CORE + "PodStatus": {
        "conditions": _CONDITIONS,
        "podIPs": (None, "merge", "ip"),
        "hostIPs": (None, "merge", "ip"),
        "resourceClaimStatuses": (None, "merge,retainKeys", "name"),
    },
    _CORE + "Pod": _object(_CORE + "PodSpec", _CORE + "PodStatus"),
    _CORE + "PodTemplate": {"metadata": _OBJECT_META, "template": _POD_TEMPLATE},
    _CORE + "ReplicationController": _object(
        _CORE + "ReplicationControllerSpec", _CORE + "ReplicationControllerStatus"
    ),
    _CORE + "ReplicationControllerSpec": {"template": _POD_TEMPLATE},
    _CORE + "ReplicationControllerStatus": {"conditions": _CONDITIONS},
    _CORE + "Service": _object(_CORE + "ServiceSpec", _CORE + "ServiceStatus"),
    _CORE + "ServiceSpec": {"ports": (None, "merge", "port")},
    _CORE + "ServiceStatus": {"conditions": _CONDITIONS},
    _CORE + "Node": _object(_CORE + "NodeSpec", _CORE + "NodeStatus"),
    _CORE + "NodeSpec": {"podCIDRs": (None, "merge", "")},
    _CORE + "NodeStatus": {"conditions": _CONDITIONS, "addresses": (None, "merge", "type")},
    _CORE + "Namespace": _object(None, _CORE + "NamespaceStatus"),
    _CORE + "NamespaceStatus": {"conditions": _CONDITIONS},
    _CORE + "PersistentVolumeClaim": _object(None, _CORE + "PersistentVolumeClaimStatus"),
    _CORE + "PersistentVolumeClaimStatus": {"conditions": _CONDITIONS},
    _CORE + "ServiceAccount": {
        "metadata": _OBJECT_META,
        "secrets": (None, "merge", "name"),
    },
    _CORE + "ComponentStatus": {"metadata": _OBJECT_META, "conditions": _CONDITIONS},
    _APPS + "Deployment": _object(_APPS + "DeploymentSpec", _APPS + "DeploymentStatus"),
    _APPS + "DeploymentSpec": {"template": _POD_TEMPLATE, "strategy": (None, "retainKeys", "")},
    _APPS + "DeploymentStatus": {"conditions": _CONDITIONS},
    _APPS + "ReplicaSet": _object(_APPS + "ReplicaSetSpec", _APPS + "ReplicaSetStatus"),
    _APPS + "ReplicaSetSpec": {"template": _POD_TEMPLATE},
    _APPS + "ReplicaSetStatus": {"conditions": _CONDITIONS},
    _APPS + "StatefulSet": _object(_APPS + "StatefulSetSpec", _APPS + "StatefulSetStatus"),
    _APPS + "StatefulSetSpec": {"template": _POD_TEMPLATE},
    _APPS + "StatefulSetStatus": {"conditions": _CONDITIONS},
    _APPS + "DaemonSet": _object(_APPS + "DaemonSetSpec", _APPS + "DaemonSetStatus"),
    _APPS + "DaemonSetSpec": {"template": _POD_TEMPLATE},
    _APPS + "DaemonSetStatus": {"conditions": _CONDITIONS},
    _BATCH + "Job": _object(_BATCH + "JobSpec", _BATCH + "JobStatus"),
    _BATCH + "JobSpec": {"template": _POD_TEMPLATE},
    _BATCH + "JobStatus": {"conditions": _CONDITIONS},
    _BATCH + "CronJob": _object(_BATCH + "CronJobSpec"),
    _BATCH + "CronJobSpec": {"jobTemplate": (_BATCH + "JobTemplateSpec", "", "")},
    _BATCH + "JobTemplateSpec": {"metadata": _OBJECT_META, "spec": (_BATCH + "JobSpec", "", "")},
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler": _object(
        None, "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus"
    ),
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus": {"conditions": _CONDITIONS},
    "io.k8s.api.policy.v1.PodDisruptionBudget": _object(
        None, "io.k8s.api.policy.v1.PodDisruptionBudgetStatus"
    ),
    "io.k8s.api.policy.v1.PodDisruptionBudgetStatus": {"conditions": _CONDITIONS},
    "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration": {
        "metadata": _OBJECT_META,
        "webhooks": (None, "merge", "name"),
    },
    "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration": {
        "metadata": _OBJECT_META,
        "webhooks": (None, "merge", "name"),
    },
    "io.k8s.api.flowcontrol.v1.FlowSchema": _object(
        None, "io.k8s.api.flowcontrol.v1.FlowSchemaStatus"
    ),
    "io.k8s.api.flowcontrol.v1.FlowSchemaStatus": {"conditions": _CONDITIONS},
    "io.k8s.api.flowcontrol.v1.PriorityLevelConfiguration": _object(
        None, "io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus"
    ),
    "io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus": {"conditions": _CONDITIONS},
    "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService": _object(
        None, "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus"
    ),
    "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus": {
        "conditions": _CONDITIONS
    },
    # Any other built-in object: only its metadata carries patch metadata.
    "": {"metadata": _OBJECT_META},
}

# Built-in kinds: API group -> (OpenAPI package of its types, its kinds). Anything else is a
# custom resource, which gets no strategic merge patch.
_BUILTIN_GROUPS: dict[str, tuple[str, str]] = {
    "": (
        _CORE,
        "Binding ComponentStatus ConfigMap Endpoints Event LimitRange Namespace Node"
        " PersistentVolume PersistentVolumeClaim Pod PodTemplate ReplicationController"
        " ResourceQuota Secret Service ServiceAccount",
    ),
    "apps": (_APPS, "ControllerRevision DaemonSet Deployment ReplicaSet StatefulSet"),
    "batch": (_BATCH, "CronJob Job"),
    "autoscaling": ("io.k8s.api.autoscaling.v2.", "HorizontalPodAutoscaler Scale"),
    "policy": ("io.k8s.api.policy.v1.", "Eviction PodDisruptionBudget"),
    "networking.k8s.io": (
        "io.k8s.api.networking.v1.",
        "IPAddress Ingress IngressClass NetworkPolicy ServiceCIDR",
    ),
    "rbac.authorization.k8s.io": (
        "io.k8s.api.rbac.v1.",
        "ClusterRole ClusterRoleBinding Role RoleBinding",
    ),
    "storage.k8s.io": (
        "io.k8s.api.storage.v1.",
        "CSIDriver CSINode CSIStorageCapacity StorageClass VolumeAttachment VolumeAttributesClass",
    ),
    "coordination.k8s.io": ("io.k8s.api.coordination.v1.", "Lease"),
    "discovery.k8s.io": ("io.k8s.api.discovery.v1.", "EndpointSlice"),
    "events.k8s.io": ("io.k8s.api.events.v1.", "Event"),
    "scheduling.k8s.io": ("io.k8s.api.scheduling.v1.", "PriorityClass"),
    "node.k8s.io": ("io.k8s.api.node.v1.", "RuntimeClass"),
    "certificates.k8s.io": ("io.k8s.api.certificates.v1.", "CertificateSigningRequest"),
    "admissionregistration.k8s.io": (
        "io.k8s.api.admissionregistration.v1.",
        "MutatingWebhookConfiguration ValidatingAdmissionPolicy"
        " ValidatingAdmissionPolicyBinding ValidatingWebhookConfiguration",
    ),
    "apiextensions.k8s.io": (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.",
        "CustomResourceDefinition",
    ),
    "apiregistration.k8s.io": (
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.",
        "APIService",
    ),
    "flowcontrol.apiserver.k8s.io": (
        "io.k8s.api.flowcontrol.v1.",
        "FlowSchema PriorityLevelConfiguration",
    ),
}

# (group, kind) -> OpenAPI definition name of the kind's object.
_BUILTIN_KINDS: dict[tuple[str, str], str] = {
    (group, kind): package + kind
    for group, (package, kinds) in _BUILTIN_GROUPS.items()
    for kind in kinds.split()
}

EMPTY_SCHEMA: MergeSchema = TableSchema({}, None)
"""Knows no patch metadata: every list is replaced, every map merged."""


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def supports_strategic_merge(api_version: str, kind: str) -> bool:
    """Whether the kind is built in. Custom resources have no Go types to carry patch
    metadata, so upstream answers a strategic merge patch on them with 415
    (``the body of the request was in an unknown format - accepted media types include:
    application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml``)."""
    return (_group(api_version), kind) in _BUILTIN_KINDS


def schema_for_kind(
    api_version: str,
    kind: str,
    definitions: Mapping[str, Mapping[str, FieldMeta]] = BUILTIN_PATCH_META,
) -> MergeSchema | None:
    """The schema of a built-in kind's objects; None for custom resources. Kinds whose
    definition the table lacks get the generic one (only ``metadata`` has patch metadata)."""
    root = _BUILTIN_KINDS.get((_group(api_version), kind))
    if root is None:
        return None
    return TableSchema(definitions, root if root in definitions else "")


# --------------------------------------------------------------------------------------------
# Strategic merge patch (apimachinery pkg/util/strategicpatch, apply half)

_DIRECTIVE = "$patch"
_REPLACE = "replace"
_DELETE = "delete"
_MERGE = "merge"
_RETAIN_KEYS_STRATEGY = "retainKeys"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

_ERR_BAD_JSON_DOC = "invalid JSON document"
_ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"
_ERR_PRIMITIVE_LIST_FORMAT = "invalid patch format of primitive list"
_ERR_RETAIN_KEYS_FORMAT = "invalid patch format of retainKeys"
_ERR_SET_ELEMENT_ORDER_FORMAT = "invalid patch format of setElementOrder list"

_MAP_TYPE = "map[string]interface {}"
_LIST_TYPE = "[]interface {}"


def _failure(message: str) -> PatchError:
    """An error upstream does not classify: kube-apiserver answers it as an internal error."""
    return PatchError(message, INTERNAL_SERVER_ERROR)


def _no_merge_key(item: dict[str, Any], key: str) -> PatchError:
    return _failure(f"map: {_go_fmt(item)} does not contain declared merge key: {key}")


def _bad_arg_type(expected: str, actual: Any) -> PatchError:
    return _failure(f"expected a {expected}, but received a {_kind(actual)}")


def _is_parallel_directive(key: str) -> bool:
    return key == _RETAIN_KEYS or key.startswith(
        (_SET_ELEMENT_ORDER + "/", _DELETE_FROM_PRIMITIVE_LIST + "/")
    )


def _clean_new(value: Any) -> tuple[Any, bool]:
    """A patch value taken whole because the original lacks it (upstream's
    ``discardNullValuesFromPatch`` then ``removeDirectives``: maps carrying ``$patch`` are
    dropped). Leftover parallel-list directives are dropped too, as decoding into a Go
    struct drops them."""
    if isinstance(value, dict):
        if value.get(_DIRECTIVE) is not None:
            return None, False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or key == _DIRECTIVE or _is_parallel_directive(key):
                continue
            cleaned, keep = _clean_new(item)
            if keep:
                out[key] = cleaned
        return out, True
    if isinstance(value, list):
        kept = [_clean_new(item) for item in value]
        return [item for item, keep in kept if keep], True
    return value, True


@overload
def _clean_replacing(value: dict[str, Any]) -> dict[str, Any]: ...
@overload
def _clean_replacing(value: list[Any]) -> list[Any]: ...
@overload
def _clean_replacing(value: Any) -> Any: ...


def _clean_replacing(value: Any) -> Any:
    """A patch value that replaces what was there (replace strategy, ``$patch: replace``, a
    new list element). Upstream keeps it raw and decoding into Go structs then drops unknown
    directive keys and null members; we do the same to the plain JSON."""
    if isinstance(value, dict):
        return {
            key: _clean_replacing(item)
            for key, item in value.items()
            if item is not None and key != _DIRECTIVE and not _is_parallel_directive(key)
        }
    if isinstance(value, list):
        return [_clean_replacing(item) for item in value]
    return value


def strategic_merge_patch(original: Any, patch: Any, schema: MergeSchema) -> dict[str, Any]:
    """Apply a strategic merge patch to ``original`` (an object), as kube-apiserver does for
    ``application/strategic-merge-patch+json``. ``schema`` describes the object's kind
    (:func:`schema_for_kind`). Raises :class:`PatchError`."""
    if not isinstance(patch, dict):
        raise PatchError(
            f"json: cannot unmarshal {_json_type(patch)} into Go value of type"
            " map[string]interface {}",
            BAD_REQUEST,
        )
    if not isinstance(original, dict):
        raise PatchError(_ERR_BAD_JSON_DOC, BAD_REQUEST)
    return _merge_map(copy_json(original), copy_json(patch), schema)


def _retain_keys_strategy(meta: PatchMeta) -> str:
    """``extractRetainKeysPatchStrategy``: the strategy once ``retainKeys`` is set aside (the
    server only honours ``retainKeys`` through the ``$retainKeys`` directive)."""
    strategies = meta.strategies
    if len(strategies) <= 1:
        return "" if not strategies or strategies[0] == _RETAIN_KEYS_STRATEGY else strategies[0]
    if len(strategies) == 2 and _RETAIN_KEYS_STRATEGY in strategies:
        return strategies[1] if strategies[0] == _RETAIN_KEYS_STRATEGY else strategies[0]
    raise _failure(f"unexpected patch strategy: [{' '.join(strategies)}]")


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], schema: MergeSchema
) -> dict[str, Any]:
    """``mergeMap`` with the server's options (merge parallel lists, ignore unmatched nulls).
    Both arguments are private copies and are consumed."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == _REPLACE:
            del patch[_DIRECTIVE]
            replaced: dict[str, Any] = _clean_replacing(patch)
            return replaced
        if directive == _DELETE:
            return {}
        raise _failure(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(patch)}")

    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)

    for key, patch_value in list(patch.items()):
        is_delete_list = key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
        if is_delete_list:
            key = _strip_prefix(key, _DELETE_FROM_PRIMITIVE_LIST, _ERR_PRIMITIVE_LIST_FORMAT)
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(patch_value):
            if not is_delete_list:
                cleaned, keep = _clean_new(patch_value)
                if keep:
                    original[key] = cleaned
                else:
                    original.pop(key, None)
            continue
        current = original[key]
        if isinstance(current, dict):
            meta, sub = schema.lookup(key)
            if _retain_keys_strategy(meta) == _REPLACE:
                original[key] = _clean_replacing(patch_value)
            else:
                original[key] = _merge_map(current, patch_value, sub)
        elif isinstance(current, list):
            meta, sub = schema.lookup(key)
            original[key] = _merge_list_field(
                current,
                patch_value,
                sub,
                _retain_keys_strategy(meta),
                meta.merge_key,
                is_delete_list,
            )
        else:
            original[key] = patch_value
    return original


def _strip_prefix(key: str, prefix: str, error: str) -> str:
    """``extractKey``: ``<prefix>/<field>`` -> ``<field>``."""
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise PatchError(error, BAD_REQUEST)
    return rest


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """``$retainKeys``: clear original fields not listed; every field the patch sets must
    be listed."""
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise PatchError(_ERR_RETAIN_KEYS_FORMAT, BAD_REQUEST)
    listed = [k for k in retain if isinstance(k, str)]
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in listed:
            raise PatchError(_ERR_RETAIN_KEYS_FORMAT, BAD_REQUEST)
    for key in [k for k in original if k not in listed]:
        del original[key]


def _merge_ordered_lists(
    original: dict[str, Any], patch: dict[str, Any], schema: MergeSchema
) -> None:
    """``mergePatchIntoOriginal``: merge each list that has a ``$setElementOrder`` and put
    its elements in that order (``$setElementOrder`` > patch order > live order)."""
    for directive_key, order in list(patch.items()):
        if not directive_key.startswith(_SET_ELEMENT_ORDER):
            continue
        del patch[directive_key]
        if not isinstance(order, list):
            raise _bad_arg_type(_LIST_TYPE, order)
        key = _strip_prefix(directive_key, _SET_ELEMENT_ORDER, _ERR_SET_ELEMENT_ORDER_FORMAT)
        found_original, found_patch = key in original, key in patch
        original_list: list[Any] = []
        patch_list: list[Any] = []
        if found_original:
            if not isinstance(original[key], list):
                raise _bad_arg_type(_LIST_TYPE, original[key])
            original_list = original[key]
        if found_patch:
            if not isinstance(patch[key], list):
                raise _bad_arg_type(_LIST_TYPE, patch[key])
            patch_list = patch[key]
        meta, sub = schema.lookup(key)
        strategy = _retain_keys_strategy(meta)
        merge_key = meta.merge_key
        _validate_order(patch_list, order, merge_key)

        if found_original and not found_patch:
            merged = list(original_list)
        elif not found_original and found_patch:
            merged = _clean_new(patch_list)[0]
        elif found_original and found_patch:
            # May write through into original_list exactly where Go's append would, which
            # upstream's ordering below then observes.
            merged = _merge_list_field(original_list, patch_list, sub, strategy, merge_key, False)
        else:
            continue

        if merge_key:
            in_order, server_only = _partition_maps(merged, order, merge_key)
        else:
            in_order, server_only = _partition_primitives(merged, order)
        is_map = _element_kind(original_list, patch_list) == _MAP_TYPE
        original[key] = _normalize_order(
            in_order, server_only, order, original_list, merge_key, is_map
        )
        patch.pop(key, None)


def _validate_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch's items (deletions aside) must appear in ``$setElementOrder`` in the same
    relative order."""
    if not order or not patch_list:
        return
    items = _split_deletions(patch_list)[0] if merge_key else patch_list
    i = j = 0
    while i < len(items) and j < len(order):
        if isinstance(items[i], dict) and _DIRECTIVE in items[i]:
            i += 1
            continue
        if _merge_key_equal(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items) and j >= len(order):
        raise _failure(
            f"the order in patch list:\n{_go_fmt(patch_list)}\n doesn't match"
            f" {_SET_ELEMENT_ORDER} list:\n{_go_fmt(order)}"
        )


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _go_eq(left, right)
    for side in (left, right):
        if not isinstance(side, dict):
            raise _bad_arg_type(_MAP_TYPE, side)
        if merge_key not in side:
            raise _no_merge_key(side, merge_key)
    return _go_eq(left[merge_key], right[merge_key])


def _split_deletions(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """``extractToDeleteItems``: (items kept, items marked ``$patch: delete``)."""
    kept: list[Any] = []
    deleted: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_MAP_TYPE, item)
        (deleted if item.get(_DIRECTIVE) == _DELETE else kept).append(item)
    return kept, deleted


def _element_kind(*lists: list[Any]) -> str:
    """``sliceElementType``: all elements must share one Go type, which is not a list."""
    kind: str | None = None
    for items in lists:
        for item in items:
            this = _kind(item)
            if kind is None:
                kind = this
                if kind == _LIST_TYPE:
                    raise PatchError(_ERR_NO_LIST_OF_LISTS, UNPROCESSABLE_ENTITY)
            elif this != kind:
                shown = " ".join(_go_fmt(items) for items in lists)
                raise _failure(f"list element types are not identical: [{shown}]")
    if kind is None:
        raise _failure("no elements in any of the given slices")
    return kind


def _merge_list_field(
    original: list[Any],
    patch: Any,
    schema: MergeSchema,
    strategy: str,
    merge_key: str,
    is_delete_list: bool,
) -> list[Any]:
    """``mergeSliceHandler``: merge lists with the merge strategy (and deletion lists),
    replace all others."""
    if not isinstance(patch, list):
        raise _bad_arg_type(_LIST_TYPE, patch)
    if strategy == _MERGE or is_delete_list:
        return _merge_list(original, patch, schema, merge_key, is_delete_list)
    return _clean_replacing(patch)


def _merge_list(
    original: list[Any],
    patch: list[Any],
    schema: MergeSchema,
    merge_key: str,
    is_delete_list: bool,
) -> list[Any]:
    """``mergeSlice``. ``original`` plays the role of a Go slice with len == cap: deletions
    shift its elements left in place and appends fill the freed slots, so a caller still
    holding it sees what a Go caller would see through its own slice header."""
    if not original and not patch:
        return list(original)
    is_map = _element_kind(original, patch) == _MAP_TYPE
    if not is_map:
        if is_delete_list:
            return [item for item in original if not any(_go_eq(item, d) for d in patch)]
        merged = _dedupe(original + patch)
        server_order: list[Any] = original
    else:
        if not merge_key:
            raise _failure(f"cannot merge lists without merge key for {schema.name}")
        length = len(original)
        replacement: list[Any] | None = None
        pending: list[Any] = []
        for item in patch:
            if _DIRECTIVE not in item:
                pending.append(item)
                continue
            directive = item[_DIRECTIVE]
            if directive == _DELETE:
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
                length = _delete_matching(original, length, merge_key, item[merge_key])
            elif directive == _REPLACE:
                replacement = []  # keep scanning: later deletions still apply upstream
            elif directive == _MERGE:
                raise _failure("merging lists cannot yet be specified in the patch")
            else:
                raise _failure(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(item)}")
        if replacement is not None:
            backing = [_clean_replacing(item) for item in pending]
            length, patch = len(backing), []
        else:
            backing, patch = original, pending
        server_order = backing[:length]
        merged = _merge_maps_by_key(backing, length, patch, merge_key, schema)

    if merge_key:
        in_patch, server_only = _partition_maps(merged, patch, merge_key)
    else:
        in_patch, server_only = _partition_primitives(merged, patch)
    return _normalize_order(in_patch, server_only, patch, server_order, merge_key, is_map)


def _delete_matching(items: list[Any], length: int, merge_key: str, value: Any) -> int:
    """``deleteMatchingEntries`` over ``items[:length]``, shifting in place like Go's
    ``append(s[:i], s[i+1:]...)``; returns the new length."""
    while (index := _find_by_key(items, length, merge_key, value)) is not None:
        items[index : length - 1] = items[index + 1 : length]
        length -= 1
    return length


def _find_by_key(items: list[Any], length: int, merge_key: str, value: Any) -> int | None:
    for index in range(length):
        item = items[index]
        if not isinstance(item, dict):
            raise _failure(f"value for key {index} is not a map")
        if merge_key in item and _go_eq(item[merge_key], value):
            return index
    return None


def _merge_maps_by_key(
    backing: list[Any], length: int, patch: list[Any], merge_key: str, schema: MergeSchema
) -> list[Any]:
    """``mergeSliceWithoutSpecialElements``: merge each patch item into the element with the
    same merge key, or append it (into ``backing``'s free slots first, like Go's append)."""
    detached: list[Any] | None = None
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        current = backing if detached is None else detached
        index = _find_by_key(current, length, merge_key, item[merge_key])
        if index is not None:
            current[index] = _merge_map(current[index], item, schema)
            continue
        new = _clean_replacing(item)
        if detached is None and length < len(backing):
            backing[length] = new
        else:
            if detached is None:
                detached = backing[:length]
            detached.append(new)
        length += 1
    return list((backing if detached is None else detached)[:length])


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not any(_go_eq(item, seen) for seen in out):
            out.append(item)
    return out


def _partition_primitives(items: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    inside = [x for x in items if any(_go_eq(x, y) for y in by)]
    outside = [x for x in items if not any(_go_eq(x, y) for y in by)]
    return inside, outside


def _partition_maps(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    inside: list[Any] = []
    outside: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_MAP_TYPE, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        found = _find_by_key(by, len(by), merge_key, item[merge_key]) is not None
        (inside if found else outside).append(item)
    return inside, outside


def _index(items: list[Any], value: Any, merge_key: str, is_map: bool) -> int:
    """Position of ``value`` in ``items`` (by merge key for maps), -1 if absent."""

    def key_of(item: Any) -> Any:
        if not is_map:
            return item
        return item.get(merge_key) if isinstance(item, dict) else None

    wanted = key_of(value)
    for position, item in enumerate(items):
        if _go_eq(wanted, key_of(item)):
            return position
    return -1


def _sort_by(items: list[Any], order: list[Any], merge_key: str, is_map: bool) -> list[Any]:
    """``normalizeSliceOrder``: stable sort by position in ``order``; deletions go last.

    Upstream's comparison calls anything missing from ``order`` "less"; Go's stable sort is
    an insertion sort on lists this short, which we replay step for step."""
    deleted: list[Any] = []
    if is_map:
        for collection in (items, order):
            for item in collection:
                if not isinstance(item, dict):
                    raise _bad_arg_type(_MAP_TYPE, item)
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
        items, deleted = _split_deletions(items)
    data = list(items)
    positions = [_index(order, item, merge_key, is_map) for item in data]

    def less(a: int, b: int) -> bool:
        return positions[a] < 0 or positions[b] < 0 or positions[a] < positions[b]

    for i in range(1, len(data)):
        j = i
        while j > 0 and less(j, j - 1):
            data[j], data[j - 1] = data[j - 1], data[j]
            positions[j], positions[j - 1] = positions[j - 1], positions[j]
            j -= 1
    return data + deleted


def _normalize_order(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    is_map: bool,
) -> list[Any]:
    """``normalizeElementOrder``: order patch items by the patch, server-only items by the
    live list, then interleave them where the live order puts server-only items first."""
    patch_items = _sort_by(in_patch, patch_order, merge_key, is_map)
    server_items = _sort_by(server_only, server_order, merge_key, is_map)
    out: list[Any] = []
    i = j = 0
    while i < len(server_items) and j < len(patch_items):
        left = _index(server_order, server_items[i], merge_key, is_map)
        right = _index(server_order, patch_items[j], merge_key, is_map)
        if left >= 0 and right >= 0 and left < right:
            out.append(server_items[i])
            i += 1
        else:
            out.append(patch_items[j])
            j += 1
    return out + server_items[i:] + patch_items[j:]
