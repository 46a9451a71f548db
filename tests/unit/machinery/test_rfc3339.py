"""rfc3339 formats through a one-second cache: it must give what strftime in UTC gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pyk8s.machinery.meta import now_rfc3339, parse_rfc3339, rfc3339


def reference(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_rfc3339_matches_strftime_across_seconds_zones_and_the_epoch() -> None:
    base = datetime(2030, 1, 1, 23, 59, 58, 999_999, tzinfo=UTC)
    moments = [base + timedelta(microseconds=step) for step in (0, 1, 1_000_000, 2_000_000)]
    moments += [base.astimezone(timezone(timedelta(hours=-7))), base.replace(tzinfo=None),
                datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
                datetime(1970, 1, 1, tzinfo=UTC)]
    for moment in moments * 2:  # the second pass is answered from the cache
        assert rfc3339(moment) == reference(moment), moment


def test_now_rfc3339_is_the_current_second() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    parsed = parse_rfc3339(now_rfc3339())
    after = datetime.now(UTC)
    assert parsed is not None and before <= parsed <= after
