"""Quantities parse as apimachinery's ParseQuantity, with its error wording."""

from __future__ import annotations

from fractions import Fraction

import pytest

from pyk8s.machinery.schema import quantity


@pytest.mark.parametrize(("text", "value"), [
    ("1", 1), ("500m", Fraction(1, 2)), ("1Gi", 2**30), ("1e3", 1000), ("1.5", Fraction(3, 2)),
    (".5", Fraction(1, 2)), ("+1k", 1000), ("-1", -1), ("1E", 10**18), (" 2Mi ", 2 * 2**20),
])
def test_valid_quantities(text: str, value: Fraction) -> None:
    assert quantity.parse(text) == value
    quantity.check(text)


@pytest.mark.parametrize(("text", "message"), [
    ("abc", quantity.ERR_FORMAT), ("1x", quantity.ERR_FORMAT), ("", quantity.ERR_FORMAT),
    ("1.2.3", quantity.ERR_SUFFIX), ("1e", quantity.ERR_SUFFIX), ("1mi", quantity.ERR_SUFFIX),
])
def test_invalid_quantities(text: str, message: str) -> None:
    with pytest.raises(quantity.QuantityError) as failure:
        quantity.check(text)
    assert str(failure.value) == message


def test_numbers_and_other_json_values() -> None:
    quantity.check(1)
    quantity.check(0.5)
    for bad in (True, None, {}, []):
        with pytest.raises(quantity.QuantityError):
            quantity.check(bad)


def test_the_fast_pattern_accepts_exactly_what_the_parser_accepts() -> None:
    for text in ["1", "1.", ".1", "1..", "1e3", "1e+3", "1E-3", "1Ki", "1ki", "1KiB", "1m", "1M",
                 "1u", "1n", "1Ei", "1EE", "-.5m", "+", "."]:
        try:
            quantity.parse(text)
            parses = True
        except quantity.QuantityError:
            parses = False
        assert bool(quantity.VALID.match(text)) == parses, text


@pytest.mark.parametrize(("given", "shown"), [
    ("0.5", "500m"), ("1000", "1k"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("-1", "-1"),
    ("100m", "100m"), ("1e3", "1e3"), (0.1, "100m"), (2, "2"), ("512", "512"),
])
def test_canonical_form_as_quantity_string_prints_it(given: object, shown: str) -> None:
    assert quantity.canonical(given) == shown
