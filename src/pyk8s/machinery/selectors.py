"""Label and field selectors: parsing, matching and canonical strings, as apimachinery has them.

Label selectors follow ``k8s.io/apimachinery/pkg/labels`` (``labels.Parse``): the same lexer
(``in``/``notin`` are keywords only where an operator may stand), the same grammar, the same key
and value validation, the same error wording (``unable to parse requirement: ...``,
``found 'x', expected: ...``), and the same canonical ``String()`` (requirements sorted by key,
set values sorted). ``metav1.LabelSelector`` dicts are converted as ``LabelSelectorAsSelector``
does, which keeps upstream's two meanings apart: a *nil* selector selects nothing (we return
``None``) while an *empty* one selects everything (an empty :class:`LabelSelector`).

Field selectors follow ``k8s.io/apimachinery/pkg/fields``: ``=``, ``==``, ``!=`` terms joined by
commas, values escaped with ``\\``. Which fields a resource supports is the API server's
business; :func:`unsupported_fields` lets it answer ``field label not supported: <f>``.

Every function is pure and every value immutable, so selectors may be shared between
threads and cached freely. Malformed input raises :class:`SelectorError` (a ``ValueError``)
whose message is upstream's; the API server turns it into a 400.

Deliberately absent: the ``Transform`` hook of field selectors (per-version field label
conversion) and label ``Set`` helpers; add them next to their first caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

__all__ = [
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EVERYTHING",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOT_EQUALS",
    "NOT_IN",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "escape_field_value",
    "label_key_errors",
    "label_selector_dict_to_string",
    "label_selector_from_dict",
    "label_value_errors",
    "new_requirement",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_set",
    "selector_matches",
    "unsupported_fields",
]


class SelectorError(ValueError):
    """A selector that does not parse or validate; ``str()`` is upstream's message."""


# Operators, spelled as apimachinery's ``selection.Operator`` constants.
DOES_NOT_EXIST = "!"
EQUALS = "="
DOUBLE_EQUALS = "=="
IN = "in"
NOT_EQUALS = "!="
NOT_IN = "notin"
EXISTS = "exists"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_SET_OPERATORS = frozenset({IN, NOT_IN})
_EXACT_OPERATORS = frozenset({EQUALS, DOUBLE_EQUALS, NOT_EQUALS})
_UNARY_OPERATORS = frozenset({EXISTS, DOES_NOT_EXIST})
_ORDER_OPERATORS = frozenset({GREATER_THAN, LESS_THAN})
_ALL_OPERATORS = frozenset(_BINARY_OPERATORS) | _UNARY_OPERATORS


# --------------------------------------------------------------------------------------------
# Label key / value syntax (apimachinery validation.IsQualifiedName / IsValidLabelValue)

_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an"
    " alphanumeric character"
)
_VALUE_FMT = "(" + _NAME_FMT + ")?"
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character"
)
_SUBDOMAIN_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character"
)
_NAME_RE = re.compile(_NAME_FMT)
_VALUE_RE = re.compile(_VALUE_FMT)
_SUBDOMAIN_RE = re.compile(_SUBDOMAIN_FMT)
_NAME_MAX = 63
_VALUE_MAX = 63
_SUBDOMAIN_MAX = 253
_INT64 = re.compile(r"[+-]?[0-9]+")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """upstream ``RegexError``, including its double space before each ``or``."""
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def _blen(s: str) -> int:
    """Go's ``len``: bytes, not characters."""
    return len(s.encode("utf-8", "surrogatepass"))


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid label key (``[prefix/]name``); empty when it is."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if _blen(prefix) > _SUBDOMAIN_MAX:
                errs.append("prefix part " + _max_len_error(_SUBDOMAIN_MAX))
            if not _SUBDOMAIN_RE.fullmatch(prefix):
                errs.append(
                    "prefix part " + _regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com")
                )
    else:
        return [
            "a qualified name "
            + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif _blen(name) > _NAME_MAX:
        errs.append("name part " + _max_len_error(_NAME_MAX))
    if not _NAME_RE.fullmatch(name):
        errs.append(
            "name part " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value; empty when it is (``""`` is valid)."""
    errs: list[str] = []
    if _blen(value) > _VALUE_MAX:
        errs.append(_max_len_error(_VALUE_MAX))
    if not _VALUE_RE.fullmatch(value):
        errs.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


# --------------------------------------------------------------------------------------------
# field.Error formatting, for messages that read exactly like upstream's


def _go_quote(s: str) -> str:
    """Go's ``%q`` for the strings we meet (printable text, the usual escapes)."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_strings(values: list[str] | None) -> str:
    """Go's ``%#v`` of a ``[]string``."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _invalid(path: str, value: str | list[str] | None, detail: str) -> str:
    shown = _go_quote(value) if isinstance(value, str) else _go_strings(value)
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message bare, several bracketed, deduped."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


# --------------------------------------------------------------------------------------------
# Label selectors


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <op> values`` clause. Build with :func:`new_requirement` to validate it."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in _ORDER_OPERATORS:
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        shown = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in _SET_OPERATORS:
            return f"{self.key} {op} ({shown})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{shown}"


def _parse_int64(text: str) -> int | None:
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def new_requirement(
    key: str, operator: str, values: Iterable[str] | None = (), *, path: str | None = None
) -> Requirement:
    """``labels.NewRequirement``: validate and build one requirement.

    ``values=None`` stands for Go's nil slice (it only changes how an error prints). ``path``
    prefixes field paths in messages, as ``field.WithPath`` does; upstream's default is none.
    """
    vals = None if values is None else list(values)
    given = vals or []
    errs: list[str] = []
    base = f"{path}." if path else ""
    if key_errs := label_key_errors(key):
        errs.append(_invalid(base + "key", key, "; ".join(key_errs)))
    values_path = base + "values"
    if operator in _SET_OPERATORS:
        if not given:
            errs.append(
                _invalid(
                    values_path, vals, "for 'in', 'notin' operators, values set can't be empty"
                )
            )
    elif operator in _EXACT_OPERATORS:
        if len(given) != 1:
            errs.append(
                _invalid(values_path, vals, "exact-match compatibility requires one single value")
            )
    elif operator in _UNARY_OPERATORS:
        if given:
            errs.append(
                _invalid(
                    values_path, vals, "values set must be empty for exists and does not exist"
                )
            )
    elif operator in _ORDER_OPERATORS:
        if len(given) != 1:
            errs.append(
                _invalid(
                    values_path, vals, "for 'Gt', 'Lt' operators, exactly one value is required"
                )
            )
        for i, v in enumerate(given):
            if _parse_int64(v) is None:
                errs.append(
                    _invalid(
                        f"{values_path}[{i}]",
                        v,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    else:
        supported = ", ".join(_go_quote(o) for o in (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST))
        errs.append(
            f"{base}operator: Unsupported value: {_go_quote(operator)}: supported values: {supported}"
        )
    for i, v in enumerate(given):
        if value_errs := label_value_errors(v):
            errs.append(_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(value_errs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return Requirement(key, operator, tuple(given))


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An AND of requirements, kept sorted by key. No requirements selects everything."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have for a match, if the selector pins one."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def add(self, *requirements: Requirement) -> LabelSelector:
        return LabelSelector(_sorted_by_key((*self.requirements, *requirements)))

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()


def _sorted_by_key(reqs: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(reqs, key=lambda r: r.key))


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """``labels.SelectorFromValidatedSet``: ``key=value`` for each label, unvalidated (as for
    a Service's ``spec.selector``). An empty or missing set selects everything."""
    return LabelSelector(
        _sorted_by_key(Requirement(k, EQUALS, (v,)) for k, v in (labels or {}).items())
    )


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str] | None) -> bool:
    """Match with upstream's nil semantics: a ``None`` (nil) selector matches nothing."""
    return selector is not None and selector.matches(labels)


# Tokens of the label selector lexer.
_ERROR, _END, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN = range(14)
_STRING_TO_TOKEN = {
    ")": _CLOSE,
    ",": _COMMA,
    "!": _NOT,
    "==": _DEQ,
    "=": _EQ,
    ">": _GT,
    "in": _IN,
    "<": _LT,
    "!=": _NEQ,
    "notin": _NOTIN,
    "(": _OPEN,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[int, str]]:
    """Tokenise like upstream's Lexer; a NUL character ends the input, as it does there."""
    items: list[tuple[int, str]] = []
    pos = 0
    n = len(text)

    def peek(i: int) -> str:
        return text[i] if i < n else "\0"

    while True:
        while peek(pos) in _WHITESPACE:
            pos += 1
        ch = peek(pos)
        if ch == "\0":
            items.append((_END, ""))
            return items
        if ch in _SPECIAL:
            buf = ""
            last: tuple[int, str] | None = None
            while (c := peek(pos)) in _SPECIAL:
                buf += c
                if buf in _STRING_TO_TOKEN:
                    last = (_STRING_TO_TOKEN[buf], buf)
                elif last is not None:
                    break
                pos += 1
            items.append(
                last if last is not None else (_ERROR, f"error expected: keyword found '{buf}'")
            )
        else:
            start = pos
            while (c := peek(pos)) != "\0" and c not in _SPECIAL and c not in _WHITESPACE:
                pos += 1
            word = text[start:pos]
            items.append((_STRING_TO_TOKEN.get(word, _ID), word))


class _Parser:
    """Upstream's recursive-descent parser, one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def lookahead(self, values: bool) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        return (_ID if values and tok in (_IN, _NOTIN) else tok), lit

    def consume(self, values: bool) -> tuple[int, str]:
        item = self.lookahead(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self.requirement())
                except SelectorError as err:
                    raise SelectorError(f"unable to parse requirement: {err}") from None
                tok, lit = self.consume(True)
                if tok == _END:
                    return reqs
                if tok == _COMMA:
                    tok2, lit2 = self.lookahead(True)
                    if tok2 not in (_ID, _NOT):
                        raise SelectorError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _END:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        operator = ""
        tok, key = self.consume(True)
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, key = self.consume(True)
        if tok != _ID:
            raise SelectorError(f"found '{key}', expected: identifier")
        if key_errs := label_key_errors(key):
            raise SelectorError(_invalid("<nil>", key, "; ".join(key_errs)))
        if operator == DOES_NOT_EXIST:
            # "!key" takes no operator; anything after it fails as a missing separator.
            return new_requirement(key, DOES_NOT_EXIST, [])
        if self.lookahead(True)[0] in (_END, _COMMA):
            return new_requirement(key, EXISTS, [])
        tok, lit = self.consume(False)
        op = {
            _IN: IN,
            _EQ: EQUALS,
            _DEQ: DOUBLE_EQUALS,
            _GT: GREATER_THAN,
            _LT: LESS_THAN,
            _NOTIN: NOT_IN,
            _NEQ: NOT_EQUALS,
        }.get(tok)
        if op is None:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        values = self.set_values() if op in _SET_OPERATORS else self.exact_value()
        return new_requirement(key, op, sorted(values))

    def set_values(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok in (_ID, _COMMA):
            values = self.identifiers()
            if self.consume(True)[0] != _CLOSE:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok == _CLOSE:
            self.consume(True)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not values:
                    values.add("")
                tok2, _ = self.lookahead(True)
                if tok2 == _CLOSE:
                    values.add("")
                    return values
                if tok2 == _COMMA:
                    self.consume(True)
                    values.add("")
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.lookahead(True)[0] in (_END, _COMMA):
            return {""}
        tok, lit = self.consume(True)
        if tok == _ID:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """``labels.Parse``: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``,
    ``!a``, ``a>1``, ``a<1``, comma-separated. The empty string selects everything."""
    return LabelSelector(_sorted_by_key(_Parser(text).parse()))


_EXPRESSION_OPERATORS = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector | None:
    """``metav1.LabelSelectorAsSelector``: ``None`` for a nil selector (it selects nothing),
    :data:`EVERYTHING` for one without requirements."""
    if selector is None:
        return None
    if not isinstance(selector, Mapping):
        raise SelectorError(f"label selector must be an object, not {type(selector).__name__}")
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError("matchLabels must be an object and matchExpressions a list")
    reqs: list[Requirement] = []
    for key in sorted(match_labels):
        value = match_labels[key]
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError(f"matchLabels values must be strings: {key!r}")
        reqs.append(new_requirement(key, EQUALS, [value]))
    for expr in expressions:
        if not isinstance(expr, Mapping):
            raise SelectorError("matchExpressions items must be objects")
        operator = expr.get("operator", "")
        op = _EXPRESSION_OPERATORS.get(operator) if isinstance(operator, str) else None
        if op is None:
            raise SelectorError(
                f"{_go_quote(str(operator))} is not a valid label selector operator"
            )
        key = expr.get("key", "")
        values = expr.get("values") or None
        if not isinstance(key, str) or not (
            values is None or (isinstance(values, list) and all(isinstance(v, str) for v in values))
        ):
            raise SelectorError("matchExpressions key must be a string and values strings")
        reqs.append(new_requirement(key, op, values))
    return LabelSelector(_sorted_by_key(reqs))


def label_selector_dict_to_string(selector: Mapping[str, Any] | None) -> str:
    """``LabelSelectorAsSelector(s).String()``, e.g. for a Scale's ``status.selector``.

    Nil and empty selectors both print as ``""``; invalid ones raise :class:`SelectorError`."""
    parsed = label_selector_from_dict(selector)
    return "" if parsed is None else str(parsed)


# --------------------------------------------------------------------------------------------
# Field selectors


class FieldRequirement(NamedTuple):
    """One ``field <op> value`` term; ``op`` is ``=`` (also for ``==``) or ``!=``."""

    field: str
    op: str
    value: str


def escape_field_value(value: str) -> str:
    """``fields.EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # upstream prints the rune with %v, i.e. its code point
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (the backslashes stay in the terms)."""
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """Split at the first operator; ``!=`` and ``==`` win over ``=`` at the same position."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


class FieldValues(Protocol):
    """What a field selector reads: a dict of values, or anything with its ``get``."""

    def get(self, key: str, default: str, /) -> str | None: ...


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of field terms. A field absent from the object compares as ``""``."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: FieldValues) -> bool:
        for field, op, value in self.requirements:
            have = fields.get(field, "")
            if (have == value) != (op == "="):
                return False
        return True

    def requires_exact_match(self, field: str) -> str | None:
        for f, op, value in self.requirements:
            if f == field and op == "=":
                return value
        return None

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)


def parse_field_selector(text: str) -> FieldSelector:
    """``fields.ParseSelector``: ``a=b``, ``a==b``, ``a!=b``, comma-separated, values escaped
    with ``\\``. Terms come out in the sorted order upstream gives them."""
    reqs: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        reqs.append(FieldRequirement(lhs, "!=" if op == "!=" else "=", _unescape_field_value(rhs)))
    return FieldSelector(tuple(reqs))


def unsupported_fields(selector: FieldSelector, allowed: Iterable[str]) -> list[str]:
    """Fields ``selector`` uses that are not in ``allowed``, in order, each once.

    The API server answers 400 ``field label not supported: <field>`` for the first one."""
    permitted = set(allowed)
    return list(dict.fromkeys(f for f, _, _ in selector.requirements if f not in permitted))
