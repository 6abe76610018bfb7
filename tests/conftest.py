"""Shared fixtures: every async test runs on the virtual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cellauto.clock import virtual_loop_factory
from cellauto.records import Journal


@pytest.fixture(autouse=True)
def signing_key_path(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test signs with a key under a temp folder, never in the real home.

    One key per test session (made on first use), so that session-scoped journal
    fixtures and the tests that read them agree on it; CLI subprocesses inherit it.
    """
    path = tmp_path_factory.getbasetemp() / "signing-key" / "journal.key"
    monkeypatch.setenv("CELLAUTO_SIGNING_KEY", str(path))
    return path


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("asyncio", {"loop_factory": virtual_loop_factory})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.db") as opened:
        yield opened
