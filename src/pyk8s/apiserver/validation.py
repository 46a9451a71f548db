"""Decoding request bodies into built-in kinds, and the ``fieldValidation`` directive.

Upstream decodes every body into the kind's Go type before anything else runs, which
drops unknown fields, reports them per ``fieldValidation`` and fails on values of the wrong
type. This module does the same with the compiled schemas of
:mod:`pyk8s.machinery.schema.decoder`, and words the outcome as the handlers in
``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/`` do:

==================  =============================================================  =====
what                create / update (``X in version "v" cannot be handled as a X:``)  patch
==================  =============================================================  =====
wrong type, bad     400 ``<prefix> json: cannot unmarshal ...``                     422 on
quantity or time                                                                   ``patch``
unknown/duplicate   Strict: 400 ``<prefix> strict decoding error: unknown field     400 (no
field               "spec.foo"``; Warn: stored without it, ``Warning: 299``         prefix)
                    headers; Ignore: dropped silently
==================  =============================================================  =====

No ``fieldValidation`` parameter means ``Warn``, as upstream (kubectl sends ``Strict`` for
create/apply/replace, ``Ignore`` with ``--validate=false``; ``kubectl run`` sends nothing).
Bodies of kinds without a definition (none today) pass unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from pyk8s.machinery import errors
from pyk8s.machinery.resources import Resource
from pyk8s.machinery.schema import decoder, quantity
from pyk8s.machinery.schema import definitions as schema_defs

STRICT = "Strict"
WARN = "Warn"
IGNORE = "Ignore"
_DIRECTIVES = ("", IGNORE, STRICT, WARN)
_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}


@dataclass(slots=True)
class FieldValidation:
    """One request's directive, its raw JSON body (for duplicate keys) and the warnings
    decoding produced (sent as ``Warning`` headers)."""

    mode: str = WARN
    raw: bytes | None = None
    warnings: list[str] = field(default_factory=list)

    def header_values(self) -> list[str]:
        return [warning_header(w) for w in dict.fromkeys(self.warnings)]


def warning_header(text: str) -> str:
    """RFC 7234 warn-value, as upstream's warning recorder writes it: code 299, no agent.
    A header may carry only printable ASCII: anything else in the text (field names come
    from the client) is escaped Go-style, so no client can break the response."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    escaped = "".join(out)
    return f'299 - "{escaped}"'


def directive(method: str, value: str | None) -> str:
    """The request's ``fieldValidation`` (absent means Warn). Raises 422 for other values."""
    value = value or ""
    if value not in _DIRECTIVES:
        options = ", ".join(f'"{d}"' for d in _DIRECTIVES)
        raise errors.invalid("meta.k8s.io", _OPTIONS_KIND.get(method, "CreateOptions"), "", [(
            "fieldValidation", "FieldValueNotSupported",
            f'Unsupported value: "{value}": supported values: {options}')])
    return value or WARN


def _definition(resource: Resource) -> str | None:
    return schema_defs.get().by_gvk(resource.group, resource.version, resource.kind)


def _handled_as(resource: Resource, body: dict[str, Any], message: str) -> errors.ApiError:
    kind = body.get("kind") if isinstance(body.get("kind"), str) and body.get("kind") else resource.kind
    api_version = body.get("apiVersion")
    version = (api_version.rsplit("/", 1)[-1] if isinstance(api_version, str) and api_version
               else resource.version)
    return errors.bad_request(
        f'{kind} in version "{version}" cannot be handled as a {resource.kind}: {message}')


def decode_body(resource: Resource, body: Any, validation: FieldValidation | None) -> Any:
    """A create or update body decoded into ``resource``'s kind: pruned, checked, and
    returned (possibly a different dict when duplicate keys made it re-parse the raw body).
    Raises 400 as upstream; records warnings on ``validation``."""
    if not isinstance(body, dict):
        return body  # the registry answers "must be a JSON object" in its own words
    definition = _definition(resource)
    if definition is None:
        return body
    mode = validation.mode if validation else WARN
    raw = validation.raw if validation else None
    obj, report = decoder.decode_object(definition, body, raw, find_duplicates=mode != IGNORE)
    if report is None:
        return obj
    if report.failure:
        raise _handled_as(resource, obj, report.failure)
    strict = report.strict_errors()
    if strict and mode == STRICT:
        raise _handled_as(resource, obj, "strict decoding error: " + ", ".join(strict))
    if strict and mode == WARN and validation is not None:
        validation.warnings.extend(strict)
    return obj


def _go_format(value: Any) -> str:
    """A JSON value as Go's ``%+v`` prints the map it unmarshals into."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _duplicates(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if type(value) is decoder.DuplicateKeys:
            out.extend(f"{path}.{k}" if path else k for k in value.duplicates)
        for k, v in value.items():
            _duplicates(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _duplicates(v, f"{path}[{i}]", out)


def patch_duplicates(validation: FieldValidation | None) -> list[str]:
    """``duplicate field`` errors of a strategic-merge or apply patch body (upstream
    decodes those strictly into a map; merge and JSON patches lose duplicates silently)."""
    if validation is None or validation.mode == IGNORE or validation.raw is None:
        return []
    raw = validation.raw
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if decoder.raw_key_count(raw) == decoder.raw_key_count(orjson.dumps(parsed)):
        return []
    found: list[str] = []
    try:
        _duplicates(decoder.parse_checked(raw), "", found)
    except ValueError:
        return []
    return [f'duplicate field "{p}"' for p in found]


def decode_patched(resource: Resource, obj: dict[str, Any], patch_body: Any, patch_type: str,
                   validation: FieldValidation | None) -> dict[str, Any]:
    """The result of applying a patch, decoded into the kind (see the module's table).
    Called once per attempt of the guaranteed update, so warnings are replaced, not added."""
    definition = _definition(resource)
    if definition is None:
        return obj
    mode = validation.mode if validation else WARN
    obj, report = decoder.decode_object(definition, obj, new_values=patch_body)
    strict = patch_duplicates(validation) if patch_type.startswith(
        ("application/strategic-merge-patch", "application/apply-patch")) else []
    if report is not None and report.failure:
        shown = (_go_format(patch_body) if patch_type.startswith("application/strategic")
                 else orjson.dumps(obj).decode())
        raise errors.invalid("", "", "", [(
            "patch", "FieldValueInvalid",
            f"Invalid value: {orjson.dumps(shown).decode()}: {report.failure}")])
    if report is not None:
        strict += report.strict_errors()
    if validation is not None:
        validation.warnings.clear()
    if strict and mode == STRICT:
        raise errors.bad_request("strict decoding error: " + ", ".join(strict))
    if strict and mode == WARN and validation is not None:
        validation.warnings.extend(strict)
    return obj


# --------------------------------------------------------------------------------------------
# Semantic rules on decoded values (upstream: pkg/apis/core/validation), shared by the
# registry strategies.

_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
Cause = tuple[str, str, str]


def _native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    return _native(name) and not name.startswith("hugepages-")


def _invalid(path: str, value: str, why: str) -> Cause:
    return (path, "FieldValueInvalid", f'Invalid value: "{value}": {why}')


def resource_requirements_causes(resources: Any, path: str) -> list[Cause]:
    """ValidateResourceRequirements: resource names, non-negative quantities, whole numbers
    for extended resources, requests ≤ limits (= for resources that cannot be
    overcommitted)."""
    if not isinstance(resources, dict):
        return []
    limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
    requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
    causes: list[Cause] = []
    parsed: dict[tuple[str, str], Any] = {}
    for section, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            where = f"{path}.{section}[{name}]"
            if ("/" not in name and name not in _STANDARD_CONTAINER_RESOURCES
                    and not name.startswith("hugepages-")):
                causes.append(_invalid(where, name, "must be a standard resource for containers"))
            try:
                amount = quantity.parse_value(value)
            except quantity.QuantityError:
                continue  # the decoder reports unparsable quantities
            parsed[(section, name)] = (amount, value)
            if amount.numerator < 0:
                causes.append(_invalid(where, quantity.canonical(value),
                                       "must be greater than or equal to 0"))
            if not _native(name) and amount.denominator != 1:
                causes.append(_invalid(where, quantity.canonical(value), "must be an integer"))
    for name in requests:
        request = parsed.get(("requests", name))
        if request is None:
            continue
        limit = parsed.get(("limits", name))
        if limit is not None:
            (rn, rd), (ln, ld) = request[0].as_integer_ratio(), limit[0].as_integer_ratio()
            if (rn, rd) != (ln, ld) and not _overcommit_allowed(name):
                causes.append(_invalid(
                    f"{path}.requests", quantity.canonical(request[1]),
                    f"must be equal to {name} limit of {quantity.canonical(limit[1])}"))
            elif rn * ld > ln * rd:
                causes.append(_invalid(
                    f"{path}.requests", quantity.canonical(request[1]),
                    f"must be less than or equal to {name} limit of {quantity.canonical(limit[1])}"))
        elif not _overcommit_allowed(name) and name not in limits:
            causes.append((f"{path}.limits", "FieldValueRequired",
                           "Required value: Limit must be set for non overcommitable resources"))
    return causes
