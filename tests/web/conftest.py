"""Fixtures of the web app's in-process tests: a journal with people in it, and a
browser-like client (Starlette's TestClient) that signs in and posts forms as a page of
the app would (its Origin, its session's CSRF token)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from cellauto.records.backend import Location
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import SitePayload
from cellauto.site.accounts import bootstrap
from cellauto.site.store import open_site_store
from cellauto.web.app import create_app
from cellauto.web.config import WebConfig
from tests.raw_sql import close_pg_pools_after_test  # noqa: F401  (autouse)
from tests.site.chain import POLICY, TERMINAL
from tests.site.conftest import ROOT_PASSWORD, Site, own_password

ORIGIN = {"origin": "http://testserver"}
STAFF = (("ann", "operator"), ("olga", "operator"), ("sam", "supervisor"), ("quinn", "qa"))


class Browser:
    """One browser (its own cookies) on the app."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def login_token(self) -> str:
        page = self.client.get("/login")
        found = re.search(r'name="csrf_login" value="([^"]+)"', page.text)
        assert found is not None, page.text
        return found.group(1)

    def sign_in(self, name: str, password: str | None = None) -> httpx.Response:
        secret = (
            (ROOT_PASSWORD if name == "root" else own_password(name))
            if (password is None)
            else password
        )
        form = {"csrf_login": self.login_token(), "name": name, "password": secret}
        return self.client.post("/login", data=form, headers=ORIGIN, follow_redirects=False)

    def csrf(self) -> str:
        """The session's CSRF token, as the layout's meta tag carries it."""
        found = re.search(r'name="csrf-token" content="([^"]+)"', self.client.get("/").text)
        assert found is not None, "not signed in"
        return found.group(1)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        """POST ``data`` with this session's token, from this app's page."""
        form = {"csrf": self.csrf(), **(data or {})}
        return self.client.post(path, data=form, headers=ORIGIN, follow_redirects=False, **kw)


def site_records(path: Path | Location) -> list[SitePayload]:
    with open_site_store(path) as store, store.reading() as conn:
        return [r.payload for r in read_site_records(conn)]


@pytest.fixture
def journal(db_location: Location) -> Path | Location:
    """A journal whose site has root and :data:`STAFF` (own passwords set) (in the
    PostgreSQL pass, a schema)."""
    path: Path | Location = db_location.path or db_location
    with open_site_store(path, create=True) as store:
        bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
        site = Site(store)
        for name, role in STAFF:
            site.add(name, role)
    return path


@pytest.fixture
def client(journal: Path | Location) -> Iterator[TestClient]:
    with TestClient(create_app(WebConfig(db=journal))) as opened:
        yield opened


@pytest.fixture
def browser(client: TestClient) -> Browser:
    return Browser(client)


@pytest.fixture(scope="module")
def staffed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A staffed journal built once per module (argon2 is paid once); copy it per test."""
    from tests.web.harness import staff_journal

    return staff_journal(tmp_path_factory.mktemp("web-staff") / "template.db")


@pytest.fixture
def live_line(staffed_template: Path, tmp_path: Path) -> Iterator[tuple[Path, Any, Any]]:
    """(journal, live run, server): a copy of the staffed journal, the live run started on
    it in its own process, and ``cellauto serve`` on it; both stopped after the test."""
    import shutil

    from tests.web.harness import LiveRun, Server

    db = tmp_path / "line.db"
    shutil.copyfile(staffed_template, db)
    run = LiveRun(db, tmp_path / "controller.log")
    server = Server(db, tmp_path / "server.log")
    try:
        yield db, run, server
    finally:
        server.stop()
        run.stop()
