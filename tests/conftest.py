"""Shared fixtures: every async test runs on the virtual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cellauto.clock import virtual_loop_factory
from cellauto.records import Journal
from cellauto.records.backend import Location


@pytest.fixture(autouse=True, scope="session")
def signing_key_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test signs with a key under a temp folder, never in the real home.

    Session-scoped (and set up before any other fixture), so that session-scoped
    journal fixtures and the tests that read them agree on the key; CLI
    subprocesses inherit the environment variable.
    """
    path = tmp_path_factory.getbasetemp() / "signing-key" / "journal.key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELLAUTO_SIGNING_KEY", str(path))
        yield path


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("asyncio", {"loop_factory": virtual_loop_factory})


@pytest.fixture
def journal(db_location: Location) -> Iterator[Journal]:
    """A new journal on the backend the tests run on (``--db-backend``)."""
    with Journal(db_location) as opened:
        yield opened
