"""The Kubernetes 1.32 type definitions, read from the ``kubernetes-validate`` package.

That package ships upstream's OpenAPI definitions converted to JSON Schema (draft 2020-12):
``$ref`` points into ``#/$defs/``, every optional field's type also admits ``null``, and the
``x-kubernetes-*`` extensions (group-version-kind, patch strategy and merge key, list type
and map keys) are kept. :class:`Definitions` undoes the JSON-Schema spelling once, so the
rest of the package sees upstream's OpenAPI shapes again:

* :meth:`Definitions.schema` — definition name → OpenAPI schema (``$ref`` still a plain
  definition name, types single strings, Quantity and IntOrString as upstream publishes them);
* :meth:`Definitions.by_gvk` — the definition of a group/version/kind.

Loading costs ~60 ms (a 1.3 MB JSON file), so nothing loads at import time: :func:`get`
loads on first use, and :func:`warm_up` does it in a background thread so the API server's
start is not delayed. Loading is guarded by a lock; the result is immutable afterwards and
shared by every thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

import orjson

KUBERNETES_VERSION = "v1.32.0"
_PACKAGE = "kubernetes_validate"
_FILE = f"kubernetes-json-schema/{KUBERNETES_VERSION}-local/_definitions.json"
_REF_PREFIX = "#/$defs/"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"

# Upstream's own wording for the two types the JSON-Schema conversion reduced to a oneOf.
_SPECIAL: dict[str, dict[str, Any]] = {
    QUANTITY: {
        "description": (
            "Quantity is a fixed-point representation of a number. It provides convenient "
            "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() "
            "accessors.\n\nThe serialization format is:\n\n``` <quantity>        ::= "
            "<signedNumber><suffix>\n\n\t(Note that <suffix> may be empty, from the \"\" case "
            "in <decimalSI>.)\n\n<digit>           ::= 0 | 1 | ... | 9 <digits>          ::= "
            "<digit> | <digit><digits> <number>          ::= <digits> | <digits>.<digits> | "
            "<digits>. | .<digits> <sign>            ::= \"+\" | \"-\" <signedNumber>    ::= "
            "<number> | <sign><number> <suffix>          ::= <binarySI> | <decimalExponent> | "
            "<decimalSI> <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n\t(International "
            "System of units; See: http://physics.nist.gov/cuu/Units/binary.html)\n\n"
            "<decimalSI>       ::= m | \"\" | k | M | G | T | P | E\n\n\t(Note that 1024 = 1Ki "
            "but 1000 = 1k; I didn't choose the capitalization.)\n\n<decimalExponent> ::= \"e\" "
            "<signedNumber> | \"E\" <signedNumber> ```"
        ),
        "type": "string",
    },
    INT_OR_STRING: {
        "description": (
            "IntOrString is a type that can hold an int32 or a string.  When used in JSON or "
            "YAML marshalling and unmarshalling, it produces or consumes the inner type.  This "
            "allows you to have, for example, a JSON field that can accept a name or number."
        ),
        "format": "int-or-string",
        "type": "string",
    },
}


def _plain_type(value: Any) -> Any:
    if isinstance(value, list):
        rest = [t for t in value if t != "null"]
        return rest[0] if len(rest) == 1 else rest
    return value


def _normalize(schema: Any, *, top: dict[str, Any] | None = None) -> Any:
    """One JSON-Schema node back in OpenAPI form (refs as bare definition names)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = value[len(_REF_PREFIX):] if value.startswith(_REF_PREFIX) else value
        elif key == "type":
            out[key] = _plain_type(value)
        elif key == "properties":
            out[key] = {name: _normalize(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _normalize(value)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [_normalize(v) for v in value]
        else:
            out[key] = value
    if top is not None and "x-kubernetes-group-version-kind" in top:
        # kubernetes-validate pins apiVersion and kind with an enum; upstream does not.
        for field in ("apiVersion", "kind"):
            prop = out.get("properties", {}).get(field)
            if isinstance(prop, dict):
                prop.pop("enum", None)
    return out


class Definitions:
    """The loaded definitions (immutable once built; each definition is converted on first
    use, which keeps loading at the cost of parsing the file)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._source: dict[str, Any] = document.get("$defs") or document.get("definitions") or {}
        self._converted: dict[str, dict[str, Any]] = {}
        self._gvk: dict[tuple[str, str, str], str] = {}
        for name, schema in self._source.items():
            gvks = schema.get("x-kubernetes-group-version-kind") or []
            if len(gvks) != 1:
                continue  # shared types (DeleteOptions, WatchEvent, ...) are no kind's root
            gvk = gvks[0]
            self._gvk[(gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))] = name

    def __contains__(self, name: object) -> bool:
        return name in self._source

    def names(self) -> list[str]:
        return list(self._source)

    def schema(self, name: str) -> dict[str, Any]:
        """The OpenAPI schema of definition ``name`` (``$ref`` values are bare definition
        names). Raises KeyError for an unknown name."""
        done = self._converted.get(name)
        if done is None:
            source = self._source[name]
            done = dict(_SPECIAL[name]) if name in _SPECIAL else _normalize(source, top=source)
            self._converted[name] = done
        return done

    def by_gvk(self, group: str, version: str, kind: str) -> str | None:
        """The definition name of a kind's object, or None if the kind is not built in."""
        return self._gvk.get((group, version, kind))

    def closure(self, roots: list[str]) -> list[str]:
        """``roots`` and every definition they reference, sorted."""
        seen: dict[str, None] = {}
        stack = [r for r in roots if r in self._source]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen[name] = None
            _refs(self.schema(name), stack)
        return sorted(seen)


def _refs(schema: Any, out: list[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            out.append(ref)
        for key, value in schema.items():
            if key == "properties":
                for prop in value.values():
                    _refs(prop, out)
            elif key in ("items", "additionalProperties"):
                _refs(value, out)
            elif key in ("oneOf", "anyOf", "allOf"):
                for v in value:
                    _refs(v, out)


_lock = threading.Lock()
_loaded: Definitions | None = None


def _read() -> bytes:
    # find_spec locates the package without importing it (its __init__ pulls in jsonschema,
    # ~150 ms we do not need: only its data file is used).
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {_PACKAGE} package is not installed")
    return (Path(next(iter(spec.submodule_search_locations))) / _FILE).read_bytes()


def get() -> Definitions:
    """The definitions, loading them on first use (thread-safe)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            _loaded = Definitions(orjson.loads(_read()))
    return _loaded


def _warm() -> None:
    get()
    # The compiled checks' library (~40-140 ms to import); compiling waits for first use.
    importlib.import_module("pyk8s.machinery.schema.fast")


def warm_up() -> threading.Thread:
    """Load in a daemon thread; callers that need the definitions later find them ready."""
    thread = threading.Thread(target=_warm, name="schema-load", daemon=True)
    thread.start()
    return thread
