"""Object uids are version-4 UUIDs in their canonical text, all different."""

from __future__ import annotations

import uuid

from pyk8s.machinery.meta import new_uid


def test_uids_are_canonical_version_4_uuids() -> None:
    for _ in range(1000):
        text = new_uid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_uids_do_not_repeat() -> None:
    assert len({new_uid() for _ in range(10_000)}) == 10_000
