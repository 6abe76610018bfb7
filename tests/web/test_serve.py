"""``cellauto serve``: what it refuses to serve, and what every response carries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cellauto.cli import main
from cellauto.records import Journal


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    path = tmp_path / "line.db"
    with Journal(path):
        pass
    return path


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--host", "0.0.0.0"], "serve it over HTTPS"),
        (["--host", "10.1.2.3"], "serve it over HTTPS"),
        (["--cert", "c.pem"], "give --cert and --key together"),
        (["--port", "70000"], "is not a port"),
    ],
)
def test_what_is_refused_before_anything_listens(
    journal_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main(["serve", "--db", str(journal_file), *argv]) == 2
    assert says in capsys.readouterr().err


def test_no_journal_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--db", str(tmp_path / "none.db")]) == 2
    assert "no journal at" in capsys.readouterr().err


def test_it_listens_on_loopback_and_every_page_wants_a_sign_in(journal_file: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "serve", "--db", str(journal_file), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split(" ", 1)[1]
        with httpx.Client(base_url=url) as client:
            login = client.get("/login")
            assert login.status_code == 200 and "Sign in" in login.text
            assert "not using HTTPS" in login.text
            assert "script-src 'self'" in login.headers["content-security-policy"]
            assert login.headers["x-content-type-options"] == "nosniff"
            assert login.headers["cache-control"] == "no-store"
            assert "server" not in login.headers
            for path in ("/", "/runs/abc", "/tasks"):
                away = client.get(path)
                assert (away.status_code, away.headers["location"]) == (303, "/login"), path
            assert client.post("/qa/release").status_code == 303
            css = client.get("/static/app.css")
            assert (
                css.status_code == 200
                and "frame-ancestors 'none'" in css.headers["content-security-policy"]
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
