"""``cellauto export``: the ``confirmed`` column of signatures.csv, and ``export --site``
(the site audit trail, never password material)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cellauto.records.backend import Location
from cellauto.records.site_payloads import SitePolicy
from cellauto.site.accounts import set_site_policy
from cellauto.testing import raw_connection
from tests.cli.conftest import Cli
from tests.site.chain import CHEAP
from tests.site.conftest import ROOT_PASSWORD, Site, own_password
from tests.site.evidence import run_answered_by_people

pytestmark = pytest.mark.anyio


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _berlin(site: Site) -> None:
    policy = SitePolicy(argon2=CHEAP, time_zone="Europe/Berlin")
    set_site_policy(site.store, site.root(), policy, reason="the plant is in Berlin")


async def test_signatures_csv_says_each_signature_is_confirmed(
    site: Site, journal_path: Location, cli: Cli, tmp_path: Path
) -> None:
    _berlin(site)
    run_id = await run_answered_by_people(site, journal_path)
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 0, shown.err
    signed = [line.strip() for line in shown.lines if line.strip().startswith("signed:")]
    assert len(signed) == 3 and all(" CET (+01:00)  [site #" in line for line in signed)
    out = tmp_path / "run"
    assert cli("export", run_id, "--out", out, "--db", journal_path).code == 0
    rows = _csv(out / "signatures.csv")
    assert [(r["signer"], r["confirmed"]) for r in rows] == [
        ("alice", "true"),
        ("alice", "true"),
        ("carol", "true"),
    ]
    assert rows[0]["time_zone"] == "Europe/Berlin" and rows[0]["utc_offset"] == "+01:00"
    assert rows[0]["signed_at_local"].endswith("+01:00")
    conn = raw_connection(journal_path)
    conn.execute("DELETE FROM site_records WHERE seq = ?", (int(rows[2]["site_seq"]),))
    conn.close()
    again = tmp_path / "again"
    exported = cli("export", run_id, "--out", again, "--db", journal_path)
    assert exported.code == 1 and "signature of carol names site record" in exported.err
    assert [r["confirmed"] for r in _csv(again / "signatures.csv")] == ["true", "true", "false"]
    document = json.loads((again / "run.json").read_text(encoding="utf-8"))
    assert [s["confirmed"] for s in document["signatures"]] == ["true", "true", "false"]


async def test_export_site_writes_the_audit_trail_without_password_material(
    site: Site, journal_path: Location, cli: Cli, tmp_path: Path
) -> None:
    _berlin(site)
    await run_answered_by_people(site, journal_path)
    out = tmp_path / "site"
    result = cli("export", "--site", "--out", out, "--db", journal_path)
    assert result.code == 0, result.err
    names = sorted(path.name for path in out.iterdir())
    assert {"site_account_created.csv", "site_signature.csv", "site_policy_set.csv"} <= set(names)
    assert "site.json" in names and "site_password_changed.csv" in names
    created = _csv(out / "site_account_created.csv")
    assert [r["name"] for r in created] == ["root", "alice", "bob", "carol"]
    alice = created[1]
    assert (alice["by"], alice["reason"], alice["roles"]) == ("root", "hire", '["operator"]')
    assert alice["terminal.host"] and alice["terminal.os_user"]
    assert alice["wall_time_local"].endswith("+01:00")  # Berlin in December (CET)
    assert alice["wall_time_utc"].endswith("+00:00")
    signatures = _csv(out / "site_signature.csv")
    assert [(r["signer"], r["meaning"], r["signed.kind"]) for r in signatures] == [
        ("alice", "performed", "task_opened"),
        ("alice", "performed", "task_opened"),
        ("carol", "verified", "task_answered"),
    ]
    policy = _csv(out / "site_policy_set.csv")
    assert policy[-1]["new.time_zone"] == "Europe/Berlin"
    document = json.loads((out / "site.json").read_text(encoding="utf-8"))
    assert document["time_zone"] == "Europe/Berlin" and document["chain"]["intact"] is True
    assert [r["seq"] for r in document["records"]] == list(range(len(document["records"])))
    everything = "".join(path.read_text(encoding="utf-8") for path in out.iterdir())
    assert "commitment" not in everything and "$argon2" not in everything
    for secret in (ROOT_PASSWORD, own_password("alice")):
        assert secret not in everything


async def test_export_site_of_a_broken_chain_warns_and_exits_1(
    site: Site, journal_path: Location, cli: Cli, tmp_path: Path
) -> None:
    conn = raw_connection(journal_path)
    conn.execute("UPDATE site_records SET body = replace(body, '\"hire\"', '\"fire\"')")
    conn.close()
    out = tmp_path / "site"
    result = cli("export", "--site", "--out", out, "--db", journal_path)
    assert result.code == 1
    assert "site: BROKEN at record" in result.err and "run cellauto verify" in result.err
    document = json.loads((out / "site.json").read_text(encoding="utf-8"))
    assert document["chain"]["intact"] is False
    assert [r["reason"] for r in _csv(out / "site_account_created.csv")][1] == "fire"


def test_export_needs_a_run_or_site_not_both(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    for argv in ((), ("RUN", "--site")):
        result = cli("export", *argv, "--out", tmp_path / "x", "--db", db)
        assert result.code == 2
        assert "export takes a RUN_ID or --site" in result.err
