"""The batch record's wording of operator-task records and of the signatures they embed."""

from __future__ import annotations

from datetime import UTC, datetime

from cellauto.records import Record
from cellauto.records import payloads as rec
from cellauto.records.kinds import GENESIS_HASH, RecordKind
from cellauto.records.refs import Meaning, SignatureShown, SiteRef
from cellauto.records.spec import Spec
from cellauto.records.wording import describe, describe_signature

SIGNED_AT = datetime(2026, 1, 5, 8, 14, 3, tzinfo=UTC)


def _record(payload: rec.Payload) -> Record:
    return Record(
        run_id="r",
        seq=7,
        kind=payload.kind,
        process_time_s=SIGNED_AT.timestamp(),
        wall_time_ns=0,
        prev_hash=GENESIS_HASH,
        hash=GENESIS_HASH,
        payload=payload,
    )


def _alice(**changes: object) -> SignatureShown:
    fields: dict[str, object] = {
        "signer": "alice",
        "printed_name": "Alice Martin",
        "meaning": Meaning.PERFORMED,
        "signed_at": SIGNED_AT,
        "time_zone": "Europe/Berlin",
        "utc_offset": "+01:00",
        "site": SiteRef(seq=412, hash="a" * 64),
    }
    fields.update(changes)
    return SignatureShown.model_validate(fields)


def test_signature_line_shows_name_account_meaning_local_time_zone_and_site_record() -> None:
    assert describe_signature(_alice()) == (
        "signed: Alice Martin (alice) — performed — 2026-01-05 09:14:03 CET (+01:00)  [site #412]"
    )


def test_simulated_signature_is_marked() -> None:
    simulated = _alice(
        signer="sim:operator-b",
        printed_name="Simulated operator B",
        meaning=Meaning.VERIFIED,
        time_zone="UTC",
        utc_offset="+00:00",
        site=None,
        simulated=True,
    )
    assert describe_signature(simulated) == (
        "signed: Simulated operator B (sim:operator-b) — verified — 2026-01-05 08:14:03 UTC "
        "(+00:00)  [SIMULATED OPERATOR]"
    )


def test_answered_record_is_followed_by_its_signature_line() -> None:
    text = describe(_record(rec.TaskAnswered(task_id="7F3K2Q9A", value=72.4, signature=_alice())))
    assert text is not None
    first, second = text.split("\n")
    assert first == "task 7F3K2Q9A answered: 72.4"
    assert second == "          " + describe_signature(_alice())


def test_every_task_kind_has_one_line() -> None:
    opened = rec.TaskOpened(
        task_id="7F3K2Q9A",
        step="formulate",
        name="filled bag weight",
        summary=rec.TaskSummary(
            what="entry",
            instruction="Weigh the filled bag.",
            value_type="float",
            unit="g",
            spec=Spec(min=70, max=90, unit="g"),
            verify=True,
        ),
        timeout_h=0.5,
        on_timeout="abort",
        answered_by="simulated",
    )
    lines = {
        RecordKind.TASK_OPENED: describe(_record(opened)),
        RecordKind.TASK_VERIFIED: describe(
            _record(rec.TaskVerified(task_id="7F3K2Q9A", signature=_alice(), late=True))
        ),
        RecordKind.TASK_REJECTED: describe(
            _record(
                rec.TaskRejected(
                    task_id="7F3K2Q9A", by=None, cause="wrong_run", detail="answer for run x"
                )
            )
        ),
        RecordKind.TASK_EXPIRED: describe(
            _record(rec.TaskExpired(task_id="7F3K2Q9A", policy="abort"))
        ),
        RecordKind.TASK_WITHDRAWN: describe(
            _record(rec.TaskWithdrawn(task_id="7F3K2Q9A", why="Stop by bob"))
        ),
    }
    assert lines[RecordKind.TASK_OPENED] == (
        "TASK 7F3K2Q9A opened: enter 'filled bag weight' (float, g, spec 70..90 g) — Weigh the "
        "filled bag. [verified by a second person; answer within 0.5 h, then abort; simulated "
        "operators]"
    )
    assert lines[RecordKind.TASK_VERIFIED] is not None
    assert lines[RecordKind.TASK_VERIFIED].startswith("task 7F3K2Q9A verified (LATE")
    assert lines[RecordKind.TASK_REJECTED] == (
        "task 7F3K2Q9A REJECTED (wrong_run): answer for run x"
    )
    assert lines[RecordKind.TASK_EXPIRED] == (
        "task 7F3K2Q9A EXPIRED: not answered in time (policy abort)"
    )
    assert lines[RecordKind.TASK_WITHDRAWN] == "task 7F3K2Q9A withdrawn: Stop by bob"


def test_run_started_written_before_operator_tasks_reads_as_simulated_operators() -> None:
    written_before = {
        "run_id": "r",
        "protocol_name": "p",
        "protocol_version": "1",
        "protocol_source_sha256": None,
        "protocol_file": None,
        "parameters": {},
        "steps": [],
        "line": "sim",
        "simulated": True,
        "wall_clock": "real",
        "seed": None,
        "operator": "sim",
        "instruments": {},
        "package_versions": {},
    }
    assert rec.RunStarted.model_validate(written_before).operators == "simulated"


def test_command_with_an_approval_shows_its_signature() -> None:
    approval = _alice(meaning=Meaning.APPROVED, signer="sam", printed_name="Sam Chen")
    command = rec.Command(
        command="Restart",
        state="Held",
        accepted=True,
        by="sam",
        reason="sensor re-zeroed",
        signature=approval,
    )
    text = describe(_record(command))
    assert text is not None
    assert text.split("\n") == [
        "command Restart by sam in Held: accepted",
        "          signed: Sam Chen (sam) — approved — 2026-01-05 09:14:03 CET (+01:00)  "
        "[site #412]",
    ]
