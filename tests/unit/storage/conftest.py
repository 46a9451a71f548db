"""Fixtures for the storage tests; the backends themselves are in ``store_backends.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_backends import BACKENDS, Backend


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, BACKENDS[request.param], tmp_path)


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend("sqlite", BACKENDS["sqlite"], tmp_path)
