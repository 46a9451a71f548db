#!/usr/bin/env python3
"""Generate ``src/pyk8s/machinery/proto_schema.json`` from upstream Kubernetes schema text.

Why a generator: the protobuf field numbers of the Kubernetes API are data that upstream
already publishes (``generated.proto`` in k8s.io/api and k8s.io/apimachinery). Copying them
by hand into Python would be a second, silently diverging source of truth; parsing the
``.proto`` text keeps the decoder honest and makes an upgrade a matter of dropping in newer
files and re-running this script.

Inputs (all under ``tools/proto/``):

* ``k8s.io/**/generated.proto`` -- the upstream schema (comments stripped, otherwise as
  published). Only the subset of proto2 syntax that go-to-protobuf emits is understood:
  top-level ``message`` blocks with ``optional``/``repeated`` scalar, message and
  ``map<string, V>`` fields. Anything else is an error, not a silent skip.
* ``gotypes/*.txt`` -- facts about the Go structs that the ``.proto`` cannot express,
  transcribed from upstream ``types.go``: which fields are Go pointers (an explicit zero on
  the wire is meaningful), which embedded structs are inlined into the parent JSON object,
  which messages are named ``[]string`` slices, which types are registered kinds, and the
  API group of each package.

Output: one JSON document with

* ``messages``: full message name -> {field number -> [json name, type, label]}, where the
  label is ``optional``, ``repeated`` or ``map`` (map keys are always strings in the
  Kubernetes API) and the type is a proto scalar name or a full message name;
* ``pointers`` / ``inline``: sorted ``"<message>.<field>"`` names;
* ``slices``: messages whose Go type is a named ``[]string``;
* ``kinds``: apiVersion -> kind -> message;
* ``anyVersionKinds``: kinds registered in every group version (DeleteOptions, Status...).

The script validates as it goes: every message-typed field must resolve, every Go fact must
name an existing field, every kind an existing message. Run it from the repository root::

    python tools/gen_proto_schema.py            # writes the JSON
    python tools/gen_proto_schema.py --check    # exits 1 if the committed JSON is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "tools" / "proto"
OUTPUT = ROOT / "src" / "pyk8s" / "machinery" / "proto_schema.json"

SCALARS = frozenset(
    {
        "string", "bytes", "bool", "double", "float",
        "int32", "int64", "uint32", "uint64", "sint32", "sint64",
        "fixed32", "fixed64", "sfixed32", "sfixed64",
    }
)  # fmt: skip

_FIELD = re.compile(
    r"^(?:(optional|repeated|required)\s+([\w.]+)|map\s*<\s*(\w+)\s*,\s*([\w.]+)\s*>)"
    r"\s+(\w+)\s*=\s*(\d+)\s*;$"
)
_MESSAGE = re.compile(r"^message\s+(\w+)\s*\{$")


class SchemaError(Exception):
    """Input that this generator does not understand or that fails validation."""


@dataclass
class ProtoField:
    name: str
    number: int
    label: str  # optional | repeated | map
    type: str  # as written; resolved later
    key_type: str | None = None


@dataclass
class ProtoFile:
    path: Path
    package: str = ""
    messages: dict[str, list[ProtoField]] = field(default_factory=dict)


def parse_proto(path: Path) -> ProtoFile:
    """Parse the go-to-protobuf subset of proto2 into messages and fields."""
    result = ProtoFile(path)
    current: list[ProtoField] | None = None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("//", 1)[0].strip()
        where = f"{path.relative_to(PROTO_DIR)}:{lineno}"
        if not line:
            continue
        if current is None:
            if line.startswith(("syntax", "import", "option")):
                continue
            if line.startswith("package "):
                result.package = line[len("package ") :].rstrip(";").strip()
                continue
            match = _MESSAGE.match(line)
            if match:
                if match.group(1) in result.messages:
                    raise SchemaError(f"{where}: duplicate message {match.group(1)}")
                current = result.messages[match.group(1)] = []
                continue
            if line.startswith("message ") and line.endswith("{}"):
                result.messages[line.split()[1]] = []
                continue
            raise SchemaError(f"{where}: unexpected top-level line {line!r}")
        if line == "}":
            current = None
            continue
        match = _FIELD.match(line)
        if not match:
            raise SchemaError(f"{where}: unsupported field syntax {line!r}")
        label, ftype, key_type, value_type, name, number = match.groups()
        if key_type is not None:
            if key_type != "string":
                raise SchemaError(f"{where}: map key {key_type} (only string keys exist in k8s)")
            current.append(ProtoField(name, int(number), "map", value_type, key_type))
        else:
            current.append(
                ProtoField(
                    name, int(number), "optional" if label != "repeated" else "repeated", ftype
                )
            )
    if current is not None:
        raise SchemaError(f"{path}: unterminated message")
    if not result.package:
        raise SchemaError(f"{path}: no package declaration")
    return result


def resolve(type_name: str, package: str, known: set[str]) -> str:
    """Resolve a proto type reference the way protoc does: innermost package scope first."""
    if type_name in SCALARS:
        return type_name
    if type_name.startswith("."):
        candidate = type_name[1:]
        if candidate in known:
            return candidate
        raise SchemaError(f"unresolved type {type_name}")
    parts = package.split(".")
    for depth in range(len(parts), -1, -1):
        candidate = ".".join([*parts[:depth], type_name])
        if candidate in known:
            return candidate
    raise SchemaError(f"unresolved type {type_name} in package {package}")


@dataclass
class GoFacts:
    package: str
    group: str | None = None
    version: str | None = None
    kinds: list[str] = field(default_factory=list)
    any_kinds: list[str] = field(default_factory=list)
    pointers: list[tuple[str, str]] = field(default_factory=list)
    inline: list[tuple[str, str]] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)


def parse_facts(path: Path) -> GoFacts:
    facts: GoFacts | None = None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{path.name}:{lineno}"
        verb, args = words[0], words[1:]
        if verb == "package":
            facts = GoFacts(args[0])
            continue
        if facts is None:
            raise SchemaError(f"{where}: fact before the package line")
        if verb == "group":
            facts.group, facts.version = (args[0] if args[0] != '""' else ""), args[1]
        elif verb == "kind":
            facts.kinds.extend(args)
        elif verb == "anykind":
            facts.any_kinds.extend(args)
        elif verb == "ptr":
            facts.pointers.extend((args[0], name) for name in args[1:])
        elif verb == "inline":
            facts.inline.extend((args[0], name) for name in args[1:])
        elif verb == "slice":
            facts.slices.extend(args)
        else:
            raise SchemaError(f"{where}: unknown fact {verb!r}")
    if facts is None:
        raise SchemaError(f"{path}: no package line")
    if facts.version is None:
        raise SchemaError(f"{path}: no group line")
    return facts


def build() -> dict[str, object]:
    files = [parse_proto(p) for p in sorted(PROTO_DIR.glob("k8s.io/**/*.proto"))]
    known = {f"{pf.package}.{name}" for pf in files for name in pf.messages}
    messages: dict[str, dict[str, list[str]]] = {}
    for pf in files:
        for name, fields in pf.messages.items():
            entry: dict[str, list[str]] = {}
            for f in fields:
                if str(f.number) in entry:
                    raise SchemaError(f"{pf.package}.{name}: duplicate field number {f.number}")
                entry[str(f.number)] = [f.name, resolve(f.type, pf.package, known), f.label]
            messages[f"{pf.package}.{name}"] = dict(
                sorted(entry.items(), key=lambda kv: int(kv[0]))
            )

    def field_exists(message: str, json_name: str) -> None:
        if message not in messages:
            raise SchemaError(f"unknown message {message}")
        if not any(v[0] == json_name for v in messages[message].values()):
            raise SchemaError(f"{message} has no field {json_name!r}")

    pointers: set[str] = set()
    inline: set[str] = set()
    slices: set[str] = set()
    kinds: dict[str, dict[str, str]] = {}
    any_kinds: dict[str, str] = {}
    for path in sorted((PROTO_DIR / "gotypes").glob("*.txt")):
        facts = parse_facts(path)
        pkg = facts.package
        api_version = f"{facts.group}/{facts.version}" if facts.group else facts.version
        for msg, fname in facts.pointers:
            field_exists(f"{pkg}.{msg}", fname)
            pointers.add(f"{pkg}.{msg}.{fname}")
        for msg, fname in facts.inline:
            field_exists(f"{pkg}.{msg}", fname)
            inline.add(f"{pkg}.{msg}.{fname}")
        for msg in facts.slices:
            fields = messages.get(f"{pkg}.{msg}")
            if fields != {"1": ["items", "string", "repeated"]}:
                raise SchemaError(f"{pkg}.{msg} is not a {{1 repeated string items}} wrapper")
            slices.add(f"{pkg}.{msg}")
        for kind in facts.kinds:
            if f"{pkg}.{kind}" not in messages:
                raise SchemaError(f"kind {kind} has no message in {pkg}")
            kinds.setdefault(api_version, {})[kind] = f"{pkg}.{kind}"
        for kind in facts.any_kinds:
            if f"{pkg}.{kind}" not in messages:
                raise SchemaError(f"kind {kind} has no message in {pkg}")
            any_kinds[kind] = f"{pkg}.{kind}"

    return {
        "comment": "Generated by tools/gen_proto_schema.py from tools/proto; do not edit.",
        "messages": dict(sorted(messages.items())),
        "pointers": sorted(pointers),
        "inline": sorted(inline),
        "slices": sorted(slices),
        "kinds": {av: dict(sorted(ks.items())) for av, ks in sorted(kinds.items())},
        "anyVersionKinds": dict(sorted(any_kinds.items())),
    }


def render(schema: dict[str, object]) -> str:
    """One message per line: small enough to load fast, still reviewable as a diff."""
    lines = ["{"]
    items = list(schema.items())
    for i, (key, value) in enumerate(items):
        tail = "," if i < len(items) - 1 else ""
        if isinstance(value, dict) and key in ("messages", "kinds"):
            lines.append(f"{json.dumps(key)}: {{")
            inner = list(value.items())
            for j, (k, v) in enumerate(inner):
                sep = "," if j < len(inner) - 1 else ""
                lines.append(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}{sep}")
            lines.append("}" + tail)
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}{tail}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    try:
        text = render(build())
    except SchemaError as exc:
        print(f"gen_proto_schema: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale; re-run tools/gen_proto_schema.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    data = json.loads(text)
    print(
        f"wrote {args.output.relative_to(ROOT)}: {len(data['messages'])} messages, "
        f"{len(data['pointers'])} pointer fields, "
        f"{sum(len(k) for k in data['kinds'].values())} kinds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
