"""Request bodies in, response bodies out: content negotiation at one boundary.

Bodies arrive as JSON, YAML or Kubernetes protobuf (kubectl 1.32's typed commands send
protobuf and treat 415 as fatal); every decoding failure becomes a 400 ``Status`` naming the
problem. Responses are always JSON (every protobuf-accepting client also accepts JSON) or YAML
when asked; ``as=Table`` requests are flagged for the table renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from pyk8s.machinery import errors, protobuf

MAX_BODY = 3 * 1024 * 1024
ACCEPTED_BODY_TYPES = "application/json, application/yaml, application/vnd.kubernetes.protobuf"

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
# Bodies parsed as JSON (duplicate keys can be found in their raw text).
JSON_BODY_TYPES = ("", JSON, MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """The request body as a plain value. Raises ApiError 400/415."""
    kind = media_type(content_type)
    if kind in ("", JSON, MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, "text/plain"):
        return _json(raw)
    if kind == APPLY_PATCH or kind in (YAML, "application/x-yaml", "text/yaml"):
        # kubectl sends server-side apply bodies as JSON, which is also YAML; JSON first is
        # both faster and gives better error messages.
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _yaml(raw)
    if kind == PROTOBUF:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(f"unable to decode protobuf body: {exc}") from None
    raise errors.unsupported_media_type(ACCEPTED_BODY_TYPES)


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise errors.bad_request("the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None


def _yaml(raw: bytes) -> Any:
    try:
        docs = list(yaml.load_all(raw, Loader=_YAML_LOADER))
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"the request body is not valid YAML: {exc}") from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise errors.bad_request("the request body must hold exactly one YAML document")
    return docs[0]


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the client wants back."""

    table: bool = False
    yaml: bool = False


def negotiate(accept: str | None) -> Negotiated:
    """Pick the response form from Accept; JSON unless a client asks only for what we do
    not produce (then 406)."""
    if not accept:
        return Negotiated()
    table = False
    usable = False
    want_yaml = False
    for part in accept.split(","):
        part = part.strip()
        if not part:
            continue
        base = media_type(part)
        params = part.lower()
        if base == JSON and "as=table" in params:
            table = True
            usable = True
        elif base == JSON and "as=" in params:
            # PartialObjectMetadata and the like: we answer with full objects instead.
            usable = True
        elif base in (JSON, "*/*", "application/*"):
            usable = True
        elif base in (YAML, "application/x-yaml", "text/yaml") and not usable:
            want_yaml = True
            usable = True
    if not usable:
        raise errors.not_acceptable("application/json, application/yaml")
    return Negotiated(table=table, yaml=want_yaml and not table)


def dump_yaml(value: Any) -> bytes:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(value, Dumper=dumper, sort_keys=False, allow_unicode=True).encode()
