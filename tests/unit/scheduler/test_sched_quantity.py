"""Quantities parse exactly and round up, as apimachinery's Value()/MilliValue()."""

from __future__ import annotations

import pytest

from pyk8s.scheduler.quantity import QuantityError, milli_value, parse_quantity, value


@pytest.mark.parametrize(("text", "millis"), [
    ("100m", 100), ("1", 1000), ("0.5", 500), ("2.5", 2500), ("1e3", 1_000_000),
    ("1k", 1_000_000), ("0.1m", 1), ("250u", 1), ("0", 0), ("1E-3", 1), (".5", 500), (3, 3000),
])
def test_cpu_millis(text: str, millis: int) -> None:
    assert milli_value(text) == millis


@pytest.mark.parametrize(("text", "amount"), [
    ("1Ki", 1024), ("1Mi", 2**20), ("1Gi", 2**30), ("1.5Gi", 1610612736), ("128974848", 128974848),
    ("129e6", 129_000_000), ("129M", 129_000_000), ("123Mi", 128974848), ("1Ti", 2**40),
    ("1Ei", 2**60), ("1E", 10**18), ("1n", 1), ("+2", 2), ("1.0000001", 2),
])
def test_base_units_round_up(text: str, amount: int) -> None:
    assert value(text) == amount


def test_exact_decimal_arithmetic() -> None:
    assert parse_quantity("0.1") * 3 == parse_quantity("0.3")


@pytest.mark.parametrize("text", ["", "abc", "1Gb", "1 Gi", "--1", "1.2.3", "Mi", "1ki", "e3"])
def test_malformed(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
