"""Helpers for the people CLI tests: a journal with accounts, passwords on stdin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cellauto.records.backend import Location
from cellauto.records.site_payloads import Argon2Params, SitePolicy
from tests.cli.conftest import Cli, Result

ROOT_PW = "first keeper secret"
INITIAL = "initial secret 12345"


def own(name: str) -> str:
    return f"settled secret no. {sum(map(ord, name))}!"


class People:
    """``cellauto users|training`` with passwords fed on stdin."""

    def __init__(
        self, cli: Cli, db: Path | Location, monkeypatch: pytest.MonkeyPatch, folder: Path
    ) -> None:
        self.cli, self.db, self._patch = cli, db, monkeypatch
        self.policy = folder / "policy.json"
        cheap = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
        self.policy.write_text(SitePolicy(argon2=cheap).model_dump_json())

    def __call__(self, *argv: object, stdin: list[str] | None = None) -> Result:
        self._patch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in stdin or [])))
        extra = ("--password-stdin",) if stdin is not None else ()
        return self.cli(*argv, "--db", self.db, *extra)

    def bootstrap(self) -> None:
        done = self(
            "users",
            "add",
            "root",
            "--role",
            "administrator",
            "--full-name",
            "Rita Admin",
            "--policy",
            self.policy,
            stdin=[ROOT_PW],
        )
        assert done.code == 0, done.err

    def add(self, name: str, *roles: str) -> None:
        role_args = [arg for role in roles for arg in ("--role", role)]
        done = self(
            "users",
            "add",
            name,
            *role_args,
            "--full-name",
            f"{name.title()} Tester",
            "--as",
            "root",
            "--reason",
            "hire",
            stdin=[ROOT_PW, INITIAL],
        )
        assert done.code == 0, done.err
        done = self("users", "passwd", name, stdin=[INITIAL, own(name)])
        assert done.code == 0, done.err


@pytest.fixture
def people(
    cli: Cli, db_location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> People:
    return People(cli, db_location, monkeypatch, tmp_path)


@pytest.fixture
def staffed(people: People) -> People:
    """root, alice (operator), carol (supervisor)."""
    people.bootstrap()
    people.add("alice", "operator")
    people.add("carol", "supervisor")
    return people
