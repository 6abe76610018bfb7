"""Signatures checked wherever they show: ``show`` and ``verify RUN_ID`` hold each
signature a run record embeds against its site record (verify rule 6)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import orjson
import pytest

from cellauto import Protocol, Run, Spec
from cellauto.errors import PermissionRefusedError
from cellauto.instruments import Line
from cellauto.protocols import Runner, State
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.canonical import record_hash
from cellauto.records.kinds import RecordKind
from cellauto.records.refs import Meaning, RecordRef
from cellauto.records.signature_check import Confirmation, journal_signatures
from cellauto.records.site_chain import read_site_record
from cellauto.records.site_payloads import Signature
from cellauto.site.authority import SiteAuthority
from cellauto.site.roles import Permission
from cellauto.site.signatures import shown, sign_in_store
from cellauto.testing import raw_connection
from tests.cli.conftest import Cli
from tests.protocols.harness import ORIGIN, Valve
from tests.site.conftest import Site
from tests.site.evidence import run_answered_by_people

pytestmark = pytest.mark.anyio


def _site_of_first_answer(path: Path, run_id: str) -> tuple[int, int]:
    """(run seq, site seq) of the first task_answered's signature."""
    with Journal(path, create=False) as journal:
        first = journal.records(run_id, {RecordKind.TASK_ANSWERED})[0]
    signature = first.payload.signature  # type: ignore[attr-defined]
    return first.seq, signature.site.seq


def _edit(path: Path, query: str, *args: object) -> None:
    conn = raw_connection(path)
    try:
        conn.execute(query, args)
    finally:
        conn.close()


def _edit_body(
    path: Path, table: str, where: str, args: tuple[object, ...], change: Callable[[dict], None]
) -> None:
    """Change a stored body (its stored hash stays)."""
    conn = raw_connection(path)
    try:
        (body,) = conn.execute(f"SELECT body FROM {table} WHERE {where}", args).fetchone()
        data = orjson.loads(body)
        change(data)
        new = orjson.dumps(data).decode()
        conn.execute(f"UPDATE {table} SET body = ? WHERE {where}", (new, *args))
    finally:
        conn.close()


async def test_signatures_of_a_run_answered_by_people_are_confirmed(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    run_id = await run_answered_by_people(site, journal_path)
    with Journal(journal_path, create=False) as journal:
        findings = journal_signatures(journal, run_id)
    assert [(f.record_kind, f.signature.signer, f.confirmation) for f in findings] == [
        ("task_answered", "alice", Confirmation.CONFIRMED),
        ("task_answered", "alice", Confirmation.CONFIRMED),
        ("task_verified", "carol", Confirmation.CONFIRMED),
    ]
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 0, shown.err
    signed = [line.strip() for line in shown.lines if line.strip().startswith("signed:")]
    site_seqs = [f.signature.site.seq for f in findings if f.signature.site]
    assert [line.split("  [")[-1] for line in signed] == [f"site #{seq}]" for seq in site_seqs]
    assert signed[2].startswith("signed: Carol Tester (carol) — verified — 2026-")
    assert " UTC (+00:00)  [site #" in signed[2]
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 0, verified.out
    assert f"run {run_id}: intact" in verified.out


async def test_deleted_site_signature_is_missing_in_show_and_breaks_the_run(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    run_id = await run_answered_by_people(site, journal_path)
    run_seq, site_seq = _site_of_first_answer(journal_path, run_id)
    _edit(journal_path, "DELETE FROM site_records WHERE seq = ?", site_seq)
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 1
    marked = [line for line in shown.lines if "[SIGNATURE RECORD MISSING]" in line]
    assert len(marked) == 1 and f"[site #{site_seq}]" in marked[0]
    assert "cellauto verify" in shown.err and "not confirmed by the site chain" in shown.err
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 1
    assert (
        f"run {run_id}: BROKEN at record {run_seq}: record {run_seq} (task_answered): the "
        f"performed signature of alice names site record {site_seq}, which is not in the "
        "journal — deleted"
    ) in verified.out


@pytest.mark.parametrize("rehash", [False, True], ids=["edited", "edited-and-rehashed"])
async def test_edited_site_signature_is_altered(
    site: Site, journal_path: Location, cli: Cli, rehash: bool
) -> None:
    run_id = await run_answered_by_people(site, journal_path)
    run_seq, site_seq = _site_of_first_answer(journal_path, run_id)

    def renamed(body: dict) -> None:
        body["payload"]["printed_name"] = "Mallory Forger"

    _edit_body(journal_path, "site_records", "seq = ?", (site_seq,), renamed)
    if rehash:
        conn = raw_connection(journal_path)
        query = "SELECT body FROM site_records WHERE seq = ?"
        (body,) = conn.execute(query, (site_seq,)).fetchone()
        conn.execute(
            "UPDATE site_records SET hash = ? WHERE seq = ?", (record_hash(body.encode()), site_seq)
        )
        conn.close()
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 1
    assert sum("[SIGNATURE RECORD ALTERED]" in line for line in shown.lines) == 1
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 1
    assert f"run {run_id}: BROKEN at record {run_seq}: record {run_seq} (task_answered): " in (
        verified.out
    )
    assert f"names site record {site_seq} with hash" in verified.out


async def test_signer_changed_in_the_run_record_names_the_signature(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    run_id = await run_answered_by_people(site, journal_path)
    run_seq, site_seq = _site_of_first_answer(journal_path, run_id)

    def forged(body: dict) -> None:
        body["payload"]["signature"]["signer"] = "mallory"

    _edit_body(journal_path, "records", "run_id = ? AND seq = ?", (run_id, run_seq), forged)
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 1
    assert any("(mallory)" in line and "[SIGNATURE RECORD ALTERED]" in line for line in shown.lines)
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 1
    line = next(line for line in verified.out.splitlines() if line.startswith(f"run {run_id}"))
    assert f"BROKEN at record {run_seq}" in line  # the chain: the record was edited
    assert (
        f"the performed signature of mallory differs from site record {site_seq} in signer: "
        "mallory here, alice there"
    ) in line


async def test_simulated_signature_in_a_run_answered_by_people(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    run_id = await run_answered_by_people(site, journal_path)
    run_seq, _ = _site_of_first_answer(journal_path, run_id)

    def simulated(body: dict) -> None:
        body["payload"]["signature"].update(site=None, simulated=True)

    _edit_body(journal_path, "records", "run_id = ? AND seq = ?", (run_id, run_seq), simulated)
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 1
    assert any(
        "[SIMULATED OPERATOR]  [SIMULATED SIGNATURE IN A RUN ANSWERED BY PEOPLE]" in line
        for line in shown.lines
    )
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 1
    assert "is a simulated operator's, but the run is answered by people" in verified.out


async def test_signature_without_site_record_in_a_run_answered_by_people(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    run_id = await run_answered_by_people(site, journal_path)
    run_seq, _ = _site_of_first_answer(journal_path, run_id)

    def unlinked(body: dict) -> None:
        body["payload"]["signature"]["site"] = None

    _edit_body(journal_path, "records", "run_id = ? AND seq = ?", (run_id, run_seq), unlinked)
    shown = cli("show", run_id, "--db", journal_path)
    assert any("[NO SITE RECORD]  [SIGNATURE RECORD MISSING]" in line for line in shown.lines)
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 1
    assert "the performed signature of alice names no site record" in verified.out


async def test_signature_of_another_record_does_not_confirm_an_answer(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    """alice's site signature is real and unchanged, but signs the run's first record, not
    the task: the run chain is intact, rule 6 is not."""
    run_id = await run_answered_by_people(site, journal_path, sign_run_started=True)
    run_seq, site_seq = _site_of_first_answer(journal_path, run_id)
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 1
    assert sum("[SIGNATURE RECORD ALTERED]" in line for line in shown.lines) == 2
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 1
    assert (
        f"BROKEN at record {run_seq}: record {run_seq} (task_answered): the performed "
        f"signature of alice (site record {site_seq}) signs run record 0 (run_started), but "
        "a task_answered signature signs a task_opened record"
    ) in verified.out


def _held_protocol() -> Protocol:
    protocol = Protocol("held-by-deviation", version="1")

    @protocol.step
    async def only(run: Run, valve: Valve) -> None:
        run.check("pressure", 9.0, Spec(max=5, unit="bar"))
        await valve.open()

    return protocol


async def _restarted_with_approval(site: Site, path: Path, *, sign_first_record: bool) -> str:
    """A plant run held by a deviation, restarted with carol's approval signed in the site
    chain (of the deviation, or of the run's first record); its id."""
    with Journal(path) as journal:
        runner = Runner(journal, clock_origin=ORIGIN)
        execution = runner.prepare(
            _held_protocol(),
            Line("plant", {"valve": Valve()}),
            answerers=[],
            authority=SiteAuthority(site.store.reading),
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(execution.execute)
            await anyio.sleep(10)
            assert execution.state is State.HELD
            journal.flush()
            kinds = None if sign_first_record else {RecordKind.DEVIATION}
            signed = journal.records(execution.run_id, kinds)[0]
            target = RecordRef(
                chain="run",
                run_id=execution.run_id,
                seq=signed.seq,
                hash=signed.hash,
                kind=signed.kind.value,
            )
            deviation = journal.records(execution.run_id, {RecordKind.DEVIATION})[0]
            ref = sign_in_store(
                site.store,
                site.sign_in("carol"),
                RecordRef(
                    chain="run",
                    run_id=execution.run_id,
                    seq=deviation.seq,
                    hash=deviation.hash,
                    kind=deviation.kind.value,
                ),
                Meaning.APPROVED,
                "I approve the restart",
                permission=Permission.RUN_RESTART_AFTER_DEVIATION,
            )
            with site.store.reading() as conn:
                record = read_site_record(conn, ref.seq)
            assert record is not None and isinstance(record.payload, Signature)
            if sign_first_record:  # carol's signature re-pointed at another record, as
                # only someone writing the site chain by hand could: the controller refuses
                with site.store.transaction() as tx:
                    ref = tx.append(record.payload.model_copy(update={"signed": target}))
                with site.store.reading() as conn:
                    record = read_site_record(conn, ref.seq)
                assert record is not None and isinstance(record.payload, Signature)
            if sign_first_record:
                with pytest.raises(PermissionRefusedError, match="not the deviation #"):
                    execution.command(
                        "Restart",
                        by="carol",
                        reason="sensor re-zeroed",
                        approval=shown(record.payload, ref),
                    )
                assert execution.state is State.HELD
                execution.command("Abort", by="carol", reason="approval refused")
            else:
                execution.command(
                    "Restart",
                    by="carol",
                    reason="sensor re-zeroed",
                    approval=shown(record.payload, ref),
                )
        assert execution.state is (State.ABORTED if sign_first_record else State.COMPLETE)
        execution.close()
        return execution.run_id


async def test_a_restart_approved_in_the_site_chain_is_confirmed(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    run_id = await _restarted_with_approval(site, journal_path, sign_first_record=False)
    with Journal(journal_path, create=False) as journal:
        findings = journal_signatures(journal, run_id)
    assert [(f.record_kind, f.signature.signer, f.confirmation) for f in findings] == [
        ("command", "carol", Confirmation.CONFIRMED)
    ]
    verified = cli("verify", run_id, "--db", journal_path)
    assert verified.code == 0, verified.out


async def test_an_approval_signing_another_record_is_refused_by_the_controller(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    run_id = await _restarted_with_approval(site, journal_path, sign_first_record=True)
    with Journal(journal_path, create=False) as journal:
        commands = [r.payload for r in journal.records(run_id, {RecordKind.COMMAND})]
    restart = [c for c in commands if c.command == "Restart"]
    assert len(restart) == 1 and not restart[0].accepted
    assert "signs run_started #0" in (restart[0].refusal or "")
    verified = cli("verify", run_id, "--db", journal_path)  # and verify names the forgery
    assert verified.code == 1
    assert "signature of 'carol' (approved): roles supervisor do not grant record.approve" in (
        verified.out
    )


async def test_a_refused_simulated_answer_is_evidence_not_a_broken_run(
    site: Site, journal_path: Location, cli: Cli
) -> None:
    """A simulated operator's answer to a run answered by people is refused by the runner
    (task_rejected, simulated_in_real_run): the record shows the attempt, and the run
    verifies."""
    run_id = await run_answered_by_people(site, journal_path, simulated_first=True)
    with Journal(journal_path, create=False) as journal:
        findings = journal_signatures(journal, run_id)
    assert [(f.record_kind, f.signature.signer, f.confirmation) for f in findings][:2] == [
        ("task_rejected", "sim:operator-a", Confirmation.SIMULATED),
        ("task_answered", "alice", Confirmation.CONFIRMED),
    ]
    shown = cli("show", run_id, "--db", journal_path)
    assert shown.code == 0, shown.err
    assert "REJECTED (simulated_in_real_run)" in shown.out
    assert cli("verify", run_id, "--db", journal_path).code == 0
