"""Resource quantities (``"100m"``, ``"1Gi"``, ``"1e3"``) as apimachinery's ``resource.Quantity``.

The scheduler compares requests with allocatable amounts as integers: CPU in millicores and
everything else in base units (bytes, pods, devices), exactly as upstream's ``MilliValue()``
and ``Value()``, both of which round *up* (so ``"0.5m"`` of CPU is 1 millicore, never 0).

Parsing is exact (``Decimal`` with enough precision for every suffix), so ``"1.5Gi"`` is
1610612736 bytes, not a float approximation. Malformed input raises :class:`QuantityError`;
callers that read objects from the API (already validated there) treat a bad quantity as
zero rather than failing a scheduling cycle.

Deliberately absent: canonical re-formatting (``String()``); the scheduler never writes
quantities.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Context, Decimal, InvalidOperation

__all__ = ["QuantityError", "milli_value", "parse_quantity", "value"]


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; ``str()`` names it."""


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_SYNTAX = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")
_CTX = Context(prec=60)


def parse_quantity(text: str | int | float) -> Decimal:
    """The exact amount a quantity string denotes. Numbers (from YAML) are accepted as is."""
    if isinstance(text, bool):
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    if isinstance(text, int):
        return Decimal(text)
    if isinstance(text, float):
        return Decimal(repr(text))
    match = _SYNTAX.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise QuantityError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    try:
        number = Decimal(match["num"])
        if match["exp"]:
            return _CTX.multiply(number, _CTX.power(Decimal(10), int(match["exp"][1:])))
        suffix = match["suffix"] or ""
        if suffix in _BINARY:
            return _CTX.multiply(number, Decimal(_BINARY[suffix]))
        return _CTX.multiply(number, _DECIMAL[suffix])
    except (InvalidOperation, OverflowError) as exc:
        raise QuantityError(f"quantity out of range: {text!r}") from exc


def _ceil(amount: Decimal) -> int:
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


def value(text: str | int | float) -> int:
    """The amount in base units, rounded up (upstream ``Quantity.Value()``)."""
    return _ceil(parse_quantity(text))


def milli_value(text: str | int | float) -> int:
    """The amount in thousandths, rounded up (upstream ``Quantity.MilliValue()``)."""
    return _ceil(parse_quantity(text) * 1000)
