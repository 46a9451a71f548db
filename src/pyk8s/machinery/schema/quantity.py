"""Parsing resource quantities (``500m``, ``1Gi``, ``1e3``) as apimachinery's
``resource.ParseQuantity`` does, with its error wording; values as :class:`~fractions.Fraction`
so comparisons (requests ≤ limits) are exact."""

from __future__ import annotations

import functools
import re
from fractions import Fraction

ERR_FORMAT = ("quantities must match the regular expression "
              "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
ERR_SUFFIX = "unable to parse quantity's suffix"
ERR_NUMERIC = "unable to parse quantity's numeric part"

_SHAPE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$")
_EXPONENT = re.compile(r"^[eE][-+]?[0-9]+$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


# Exactly the strings parse() accepts (used to skip it on the hot path and by validators).
VALID = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
                   r"(?:[eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
VALID_PATTERN = VALID.pattern


class QuantityError(ValueError):
    pass


def check(value: object) -> None:
    """Raise QuantityError unless ``value`` (a JSON value) is a quantity."""
    if type(value) is str:
        if VALID.match(value.strip()) is None:
            parse(value)
            raise QuantityError(ERR_SUFFIX)
    elif type(value) is int or type(value) is float:
        return
    else:
        raise QuantityError(ERR_FORMAT)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Fraction:
    """The quantity's value. Raises QuantityError with upstream's message. Cached: the
    same few quantities ("100m", "128Mi") recur in nearly every object."""
    text = text.strip()
    match = _SHAPE.match(text)
    if match is None:
        raise QuantityError(ERR_FORMAT)
    number, suffix = match.groups()
    if not _NUMBER.match(number):
        # "1.2.3": the numeric scan stops at the second dot, which is then no suffix.
        raise QuantityError(ERR_SUFFIX)
    try:
        value = Fraction(number)
    except ValueError:
        raise QuantityError(ERR_NUMERIC) from None
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    if _EXPONENT.match(suffix):
        exponent = int(suffix[1:])
        if abs(exponent) > 1000:
            raise QuantityError(ERR_NUMERIC)
        return value * Fraction(10) ** exponent
    raise QuantityError(ERR_SUFFIX)


def parse_value(value: object) -> Fraction:
    """A quantity as it appears in JSON: a string or a number."""
    if isinstance(value, bool) or value is None:
        raise QuantityError(ERR_FORMAT)
    if isinstance(value, int | float):
        return parse(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, str):
        return parse(value)
    raise QuantityError(ERR_FORMAT)


_DECIMAL_SUFFIXES = [(18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, ""),
                     (-3, "m"), (-6, "u"), (-9, "n")]
_BINARY_SUFFIXES = [(60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")]


def canonical(value: object) -> str:
    """The quantity as ``Quantity.String()`` prints it (``0.5`` → ``500m``, ``1024Mi`` →
    ``1Gi``): the format of the input (binary, decimal or exponent) with the largest suffix
    that keeps the number whole, rounded up to nano units."""
    text = value.strip() if isinstance(value, str) else repr(value)
    amount = parse(text)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if text.endswith("i") and amount.denominator == 1:
        whole = int(amount)
        for shift, suffix in _BINARY_SUFFIXES:
            if whole >= 1 << shift and whole % (1 << shift) == 0:
                return f"{sign}{whole >> shift}{suffix}"
        if whole < 1024:
            return f"{sign}{whole}"
    exponent_form = bool(_EXPONENT.search(text.lstrip("+-0123456789.")))
    nanos = -(-amount * 10**9 // 1)  # round up to nano units, as upstream does
    for power, suffix in _DECIMAL_SUFFIXES:
        scale = 10 ** (power + 9)
        if nanos % scale == 0:
            mantissa = nanos // scale
            if exponent_form:
                return f"{sign}{mantissa}" + (f"e{power}" if power else "")
            return f"{sign}{mantissa}{suffix}"
    return f"{sign}{nanos}n"
