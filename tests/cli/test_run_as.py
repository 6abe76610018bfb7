"""``cellauto run|resume --as USER``: a person starts the run and answers at its console.

Design §2.7, §6.2, §8 rows 20 and 23. Stdin is fed as lines (``--password-stdin``):
the start password, then the console's answers and passwords in the order asked.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from cellauto.instruments.line import Line
from cellauto.protocols import Runner, load_protocol
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import (
    SessionClosed,
    SessionOpened,
    Signature,
    SignatureRefused,
    SignInFailed,
    TaskAnswer,
)
from cellauto.site.history import reading_journal
from tests.cli.conftest import (
    DEMO,
    RUN_LINE,
    Result,
    journal_records,
    run_id_of,
    write_protocol,
)
from tests.cli.people import People, own, people, staffed

__all__ = ["people", "staffed"]  # fixtures

PEOPLE_DEMO = """
from cellauto import Protocol, Run, Spec

protocol = Protocol("people-demo", version="1")


@protocol.step()
async def connect(run: Run) -> None:
    await run.confirm("connect bag", instruction="Connect the bag to the set.")
    await run.enter(
        "bag weight", type=float, unit="g", instruction="Weigh the bag.",
        spec=Spec(min=70, max=90, unit="g"), verify=True,
    )
"""

HOLDS = """
from cellauto import Protocol, Run, Spec

protocol = Protocol("people-demo", version="1")


@protocol.step(checks={"x": Spec(min=2, policy="hold")})
async def measure(run: Run) -> None:
    run.check("x", 1)
    await run.hold_point()
"""

PLANT_LINE = (
    'name = "plant-1"\n\n'
    '[equipment.scanner]\nadapter = "tcp"\nendpoint = "tcp://127.0.0.1:9"\n\n'
    '[equipment.bioreactor]\nadapter = "opcua"\nendpoint = "opc.tcp://127.0.0.1:9"\n\n'
    '[equipment.counter]\nadapter = "visa"\nendpoint = "TCPIP0::127.0.0.1::9::SOCKET"\n'
)


@pytest.fixture
def crew(staffed: People) -> People:
    """root, alice and bob (operators), carol (supervisor), quinn (QA); alice, bob and
    carol trained on people-demo@1."""
    staffed.add("bob", "operator")
    staffed.add("quinn", "qa")
    for name in ("alice", "bob", "carol", "quinn"):
        trainer = "quinn" if name == "carol" else "carol"
        if name == "quinn":
            continue
        done = staffed(
            "training", "add", name, "--for", "people-demo@1", "--as", trainer,
            stdin=[own(trainer)],
        )  # fmt: skip
        assert done.code == 0, done.err
    return staffed


def run_in(result: Result) -> str:
    """The run id ``run`` printed (after the sign-in line)."""
    found = [m.group(1) for m in map(RUN_LINE.match, result.lines) if m]
    assert found, result.out[:300]
    return found[0]


def site_payloads(db: Path) -> list[object]:
    with reading_journal(db) as conn:
        return [r.payload for r in read_site_records(conn)]


def run_as(
    crew: People, protocol: Path, user: str, *lines: str, extra: tuple[str, ...] = ()
) -> Result:
    return crew(
        "run", protocol, "--sim", "--seed", "3", "--as", user, *extra,
        stdin=[own(user) if user in ("alice", "bob", "carol", "quinn") else user, *lines],
    )  # fmt: skip


# -- a plant's line ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, says",
    [
        ((), "give --as USER"),
        (("--operator", "QA Director (anyone)"), "--operator is a label, not an identity"),
        (("--as", "alice", "--on-hold", "restart"), "needs a supervisor's approval"),
        (("--as", "alice", "--operator", "x"), "not both"),
        (("--as", "alice", "--operators", "simulated"), "never by simulated operators"),
        (("--as", "alice"), "no terminal to type the password at"),  # no --password-stdin
    ],
)
def test_real_line_requires_a_person(
    crew: People, tmp_path: Path, extra: tuple[str, ...], says: str
) -> None:
    line = tmp_path / "plant.toml"
    line.write_text(PLANT_LINE, encoding="utf-8")
    before = len(site_payloads(crew.db))
    result = crew.cli("run", DEMO, "--line", line, "--db", crew.db, *extra)
    assert result.code == 2, result.err
    assert says in result.err
    assert len(site_payloads(crew.db)) == before  # nothing written
    with reading_journal(crew.db) as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone() == (0,)


def test_resume_on_a_plant_line_requires_a_person(crew: People, tmp_path: Path) -> None:
    line = tmp_path / "plant.toml"
    line.write_text(PLANT_LINE, encoding="utf-8")
    done = crew("run", DEMO, "--sim", "--seed", "1", "--operator", "t")
    assert done.code == 0, done.err
    result = crew("resume", DEMO, run_id_of(done), "--line", line)
    assert result.code == 2 and "give --as USER" in result.err


def test_a_simulation_needs_no_account(crew: People) -> None:
    result = crew("run", DEMO, "--sim", "--seed", "2")
    assert result.code == 0, result.err
    started = journal_records(crew.db, run_id_of(result))[0].payload
    assert isinstance(started, rec.RunStarted)
    assert started.operators == "simulated" and started.operator_account is None


# -- the start, signed ---------------------------------------------------------------------
def test_run_as_signs_the_start_and_the_console_answers_in_place(
    crew: People, tmp_path: Path
) -> None:
    protocol = write_protocol(tmp_path, "people.py", PEOPLE_DEMO)
    result = run_as(
        crew, protocol, "alice",
        "y", own("alice"),                     # connect bag: performed, password only
        "80,5", "80.5", own("alice"),          # a value not a number is asked again
        "y", "alice", own("alice"),            # verify: alice performed it: refused
        "y", "bob", own("bob"),                # bob verifies
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "signed in: Alice Tester (alice); session open" in result.out
    assert "TASK " in result.out and "confirm: connect bag — Connect the bag to the set." in (
        result.out
    )
    assert "signing as Alice Tester (alice)" in result.out
    assert "may not verify it" in result.err
    records = journal_records(crew.db, run_in(result))
    started = records[0].payload
    assert isinstance(started, rec.RunStarted)
    assert started.operator == "alice" and started.operators == "people"
    assert started.operator_account is not None
    assert started.operator_account.signer == "alice"
    assert started.operator_account.site is not None
    start = next(r.payload for r in records if r.kind == "command")
    assert isinstance(start, rec.Command) and start.command == "Start" and start.by == "alice"
    assert start.signature == started.operator_account
    answered = [r.payload for r in records if r.kind == "task_answered"]
    assert [a.signature.signer for a in answered] == ["alice", "alice"]
    assert answered[1].value == 80.5
    verified = [r.payload for r in records if r.kind == "task_verified"]
    assert [v.signature.signer for v in verified] == ["bob"]
    site = site_payloads(crew.db)
    opened = [p for p in site if isinstance(p, SessionOpened)]
    assert opened[-1].name == "alice" and opened[-1].purpose == "run.start people-demo@1"
    signatures = [p for p in site if isinstance(p, Signature)]
    assert [s.meaning.value for s in signatures[-4:]] == [
        "performed",
        "performed",
        "performed",
        "verified",
    ]
    assert signatures[-3].components == "password"  # within the session
    assert signatures[-1].components == "user_id+password"  # the verifier
    assert len([p for p in site if isinstance(p, TaskAnswer)]) == 3
    refused = [p for p in site if isinstance(p, SignatureRefused)]
    assert refused[-1].cause == "self_verification"
    assert isinstance(site[-1], SessionClosed) and site[-1].cause == "exit"
    with reading_journal(crew.db) as conn:  # answered through the rows, as from afar
        rows = conn.execute("SELECT status, answer_site_seq FROM tasks").fetchall()
    assert [status for status, _ in rows] == ["closed", "closed"]
    assert all(seq is not None for _, seq in rows)
    verify = crew("verify")
    assert verify.code == 0, verify.out + verify.err


@pytest.mark.parametrize(
    "user, password, cause",
    [
        ("alice", "not her password", SignInFailed),
        ("quinn", None, "permission"),  # QA may not start a run
        ("root", None, "permission"),  # an administrator signs nothing of a batch
    ],
)
def test_start_refused_and_journaled(
    crew: People, tmp_path: Path, user: str, password: str | None, cause: object
) -> None:
    protocol = write_protocol(tmp_path, "people.py", PEOPLE_DEMO)
    secret = password or (own(user) if user != "root" else "first keeper secret")
    result = crew("run", protocol, "--sim", "--as", user, stdin=[secret])
    assert result.code == 2, result.out
    last = site_payloads(crew.db)[-2:]
    if cause is SignInFailed:
        assert isinstance(last[-1], SignInFailed) and last[-1].cause == "wrong_password"
    else:
        assert isinstance(last[0], SignatureRefused) and last[0].cause == cause
        assert isinstance(last[1], SessionClosed)
    with reading_journal(crew.db) as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone() == (0,)


def test_start_without_training_refused_naming_it(crew: People, tmp_path: Path) -> None:
    source = PEOPLE_DEMO.replace('version="1"', 'version="2"')
    protocol = write_protocol(tmp_path, "people2.py", source)
    result = crew("run", protocol, "--sim", "--as", "alice", stdin=[own("alice")])
    assert result.code == 2
    assert "alice has no valid training for people-demo 2" in result.err
    refused = [p for p in site_payloads(crew.db) if isinstance(p, SignatureRefused)]
    assert refused[-1].cause == "training"


def test_restart_after_a_deviation_asks_a_supervisor(crew: People, tmp_path: Path) -> None:
    protocol = write_protocol(tmp_path, "holds.py", HOLDS)
    result = run_as(
        crew, protocol, "alice",
        "restart", "alice", own("alice"), "looked fine",   # an operator may not approve
        "restart", "carol", own("carol"), "re-measured: 2.1, within spec",
        extra=("--on-hold", "prompt"),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "may not sign approved" in result.err or "run.restart_after_deviation" in result.err
    records = journal_records(crew.db, run_in(result))
    restart = [
        r.payload
        for r in records
        if isinstance(r.payload, rec.Command) and r.payload.command == "Restart"
    ]
    assert len(restart) == 1 and restart[0].accepted
    assert restart[0].signature is not None and restart[0].signature.signer == "carol"
    assert restart[0].signature.meaning.value == "approved"
    assert restart[0].reason == "re-measured: 2.1, within spec"
    refused = [p for p in site_payloads(crew.db) if isinstance(p, SignatureRefused)]
    assert refused[-1].name == "alice" and refused[-1].cause == "permission"
    assert crew("verify").code == 0


def test_a_wrong_password_at_the_console_is_journaled_and_asked_again(
    crew: People, tmp_path: Path
) -> None:
    protocol = write_protocol(tmp_path, "people.py", PEOPLE_DEMO)
    result = run_as(
        crew, protocol, "alice",
        "y", "not her password", "y", own("alice"),
        "80", own("alice"),
        "y", "bob", own("bob"),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "user name or password is wrong" in result.err
    failed = [p for p in site_payloads(crew.db) if isinstance(p, SignInFailed)]
    assert failed[-1].name_given == "alice" and failed[-1].cause == "wrong_password"
    assert failed[-1].purpose.startswith("task ") and failed[-1].consecutive == 1


def test_lock_ends_the_session(crew: People, tmp_path: Path) -> None:
    protocol = write_protocol(tmp_path, "people.py", PEOPLE_DEMO)
    result = run_as(
        crew, protocol, "alice",
        "lock", "y", "alice", own("alice"),    # after lock: name and password again
        "80", "alice", own("alice"),
        "y", "bob", own("bob"),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "session of alice locked" in result.err
    site = site_payloads(crew.db)
    closed = [p for p in site if isinstance(p, SessionClosed)]
    assert [c.cause for c in closed][-1:] == ["lock"]  # recorded once, at lock
    signatures = [p for p in site if isinstance(p, Signature)]
    assert [s.components for s in signatures[-3:-1]] == ["user_id+password"] * 2


# -- resume --------------------------------------------------------------------------------
WAITS = """
import anyio
from cellauto import Protocol, Run

protocol = Protocol("people-demo", version="1")


@protocol.step(resume="rerun")
async def wait(run: Run) -> None:
    if run.resumed is None:
        await anyio.sleep_forever()
"""

REHEARSAL_LINE = (
    'name = "rehearsal"\n[simulation]\nseed = 1\n'
    '[equipment.scanner]\nadapter = "tcp"\nendpoint = "tcp://127.0.0.1:9"\n'
)


def _left_unended(db: Path, protocol_file: Path) -> str:
    """A run whose controller went away in its first step (its claim released)."""
    protocol = load_protocol(str(protocol_file))

    async def main() -> str:
        started = anyio.Event()

        def watch(payload: rec.Payload, now_s: float) -> None:
            if isinstance(payload, rec.StepStarted):
                started.set()

        with Journal(db) as journal:
            line = Line("rehearsal", {}, rehearsal=True)
            execution = Runner(journal).prepare(protocol, line, operator="t", observers=[watch])
            async with anyio.create_task_group() as group:
                group.start_soon(execution.execute)
                await started.wait()
                group.cancel_scope.cancel()
            return execution.run_id

    return anyio.run(main)


def test_resume_as_signs_the_restart(crew: People, tmp_path: Path) -> None:
    protocol = write_protocol(tmp_path, "waits.py", WAITS)
    line = tmp_path / "line.toml"
    line.write_text(REHEARSAL_LINE, encoding="utf-8")
    run_id = _left_unended(crew.db, protocol)
    refused = crew(
        "resume", protocol, run_id[:8], "--line", line, "--as", "quinn", stdin=[own("quinn")]
    )
    assert refused.code == 2 and "run.restart" in refused.err
    result = crew(
        "resume", protocol, run_id[:8], "--line", line, "--as", "alice", stdin=[own("alice")]
    )
    assert "signed in: Alice Tester (alice)" in result.out, result.err
    resumed = [r.payload for r in journal_records(crew.db, run_id) if r.kind == "run_resumed"]
    assert len(resumed) == 1 and isinstance(resumed[0], rec.RunResumed)
    assert resumed[0].resumed_by == "alice"
    assert resumed[0].signature is not None and resumed[0].signature.signer == "alice"
    opened = [p for p in site_payloads(crew.db) if isinstance(p, SessionOpened)]
    assert opened[-1].purpose == "run.restart people-demo@1"
    shown = crew("show", run_id)
    resumed_line = next(i for i, line in enumerate(shown.lines) if "RUN RESUMED by alice" in line)
    assert "signed: Alice Tester (alice) — performed" in shown.lines[resumed_line + 1]
