"""The first run on a machine creates the journal's signing key, and says so on stderr
(without --verbose: its owner must act on it); later runs say nothing of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cellauto.records.backend import Location
from tests.cli.conftest import DEMO


def _run(db: Path, key: Path, seed: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CELLAUTO_SIGNING_KEY": str(key)}
    command = [sys.executable, "-m", "cellauto", "run", str(DEMO), "--sim", "--seed", str(seed)]
    return subprocess.run(
        [*command, "--db", str(db)], env=env, capture_output=True, text=True, check=False
    )


def test_a_new_signing_key_is_announced_once(db_location: Location, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "signing.key"
    first = _run(db_location, key, seed=3)
    assert first.returncode == 0, first.stderr
    assert f"created a new journal signing key {key}" in first.stderr
    assert "cellauto verify --public-key" in first.stderr
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert Path(f"{key}.pub").is_file()

    second = _run(db_location, key, seed=4)
    assert second.returncode == 0, second.stderr
    assert "signing key" not in second.stderr
