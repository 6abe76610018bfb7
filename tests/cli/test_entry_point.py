"""The installed entry point, and the default journal ./cellauto.db."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cellauto import __version__
from cellauto.records import payloads as rec
from tests.cli.conftest import DEMO, Cli, journal_records, run_demo


def _cellauto(*argv: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)  # let the child pick its own hash seed
    return subprocess.run(
        [sys.executable, "-m", "cellauto", *map(str, argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_m_cellauto_runs_and_verifies(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "sub.db"

    ran = _cellauto("run", DEMO, "--sim", "--seed", 3, "--db", db, "--operator", "t", cwd=tmp_path)
    verified = _cellauto("verify", "--db", db, cwd=tmp_path)

    assert ran.returncode == 0, ran.stderr
    match = re.match(r"run ([0-9a-f]{32})\n", ran.stdout)
    assert match, ran.stdout
    run_id = match.group(1)
    assert f"run {run_id} ended Complete (complete)" in ran.stdout
    assert verified.returncode == 0, verified.stderr
    assert f"run {run_id}: intact" in verified.stdout
    # a fresh process (its own hash seed) gives the readings of an in-process run
    local_db = tmp_path / "local.db"
    local = run_demo(cli, local_db, seed=3)

    def checks(db: Path, run_id: str) -> list[object]:
        return [
            r.payload.value if isinstance(r.payload, rec.CheckResult) else r.payload.observed
            for r in journal_records(db, run_id)
            if isinstance(r.payload, rec.CheckResult | rec.IdentityCheck)
        ]

    assert checks(db, run_id) == checks(local_db, local)


def test_version_and_help_exit_0(cli: Cli) -> None:
    version = cli("--version")
    assert version.code == 0 and version.out.strip() == f"cellauto {__version__}"
    helped = cli("--help")
    assert helped.code == 0
    for command in ("run", "runs", "show", "verify", "export"):
        assert command in helped.out


def test_default_journal_is_cellauto_db_in_the_working_directory(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    ran = cli("run", DEMO, "--sim", "--seed", 3, "--operator", "t")

    assert ran.code == 0, ran.err
    assert (tmp_path / "cellauto.db").is_file()
    run_id = ran.lines[0].split()[1]
    runs = cli("runs")
    assert runs.code == 0 and run_id[:12] in runs.out
    assert cli("show", run_id[:6]).code == 0
    assert cli("verify").code == 0
    assert cli("export", run_id, "--out", "exported").code == 0
    assert (tmp_path / "exported" / "run.json").is_file()
