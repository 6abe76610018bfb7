"""A crash drill: a whole CAR-T batch across processes, the controller killed and resumed.

``cellauto sim serve`` serves the CAR-T line (every instrument over its wire protocol)
in one process and logs what the instruments physically do (``--actions``);
``cellauto run`` drives the batch from another process; the drill SIGKILLs the
controller at seeded random moments and starts ``cellauto resume`` each time, until the
batch ends. It then compares what the instruments did with what the journal says:

* **repeated actions**: physical actions done more often than in an uninterrupted
  batch of the same line and seed (per instrument and method: a second seeding,
  vector addition, feed, program start, freeze or store; a sample drawn or counted
  again). Setpoints are states, not amounts: setting one again repeats nothing.
* **lost records**: physical actions with no journaled intent (the intent must be
  durable before the instrument is told).

Not yet prevented, and reported apart (``redone_in_doubt``): a controller killed
between a sample command's intent and its reply leaves the command in doubt; the step
run again draws (or counts) again. A sample drawn and answered is reused
(``measure_once``); the instruments do not yet tell a resumed controller which samples
they drew for it when the reply itself was cut.

Used by ``tests/lines/test_crash_drill.py`` and ``bench/bench_crash_drill.py``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellauto.identity import coi_barcode
from cellauto.records import Journal
from cellauto.records.payloads import InstrumentCommand, RunEnded, RunResumed
from cellauto.sim.action_log import PhysicalAction, read_actions

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocols" / "car_t_autologous.py"
COI = "W123426A1B2C3"

#: The CAR-T line's instruments and the wire each is served over (the label printer is
#: in-process beside the controller).
SERVED = {
    "scanner": ("tcp", "BarcodeScanner", "tcp://127.0.0.1:0"),
    "processor": ("opcua", "CellProcessor", "opc.tcp://127.0.0.1:0/cellauto/processor"),
    "bioreactor": ("opcua", "Bioreactor", "opc.tcp://127.0.0.1:0/cellauto/bioreactor"),
    "cytometer": ("opcua", "FlowCytometer", "opc.tcp://127.0.0.1:0/cellauto/cytometer"),
    "storage": ("opcua", "CryoStorage", "opc.tcp://127.0.0.1:0/cellauto/storage"),
    "counter": ("visa", "CellCounter", "TCPIP0::127.0.0.1::0::SOCKET"),
    "freezer": ("visa", "ControlledRateFreezer", "TCPIP0::127.0.0.1::0::SOCKET"),
    "dry_shipper": ("visa", "DryShipper", "TCPIP0::127.0.0.1::0::SOCKET"),
    "thawer": ("visa", "Thawer", "TCPIP0::127.0.0.1::0::SOCKET"),
    "liquid_handler": ("pylabrobot", "LiquidHandler", "tcp://127.0.0.1:0"),
}

#: What a served liquid handler logs: each dispense into a container (sim/plr_actions.py).
#: Its intents are the journaled ``transfer`` and ``aliquot`` naming that destination.
DISPENSE = "dispense"


#: Commands on a sample (drawn, counted, phenotyped): when the controller dies between
#: such a command's journaled intent and its reply, the step run again draws or counts
#: a new sample. The journal shows it (the command is listed in doubt on resume); the
#: drill reports these apart, as ``redone_in_doubt`` (not yet prevented: see the module doc).
SAMPLING = {"draw_sample", "count", "immunophenotype"}

#: Commands that set a state rather than act on material: sent again, they change
#: nothing (how often the run adjusts a setpoint follows the culture, crashes or not).
STATE_SETTING = {("bioreactor", "set_setpoints")}


def _equipment_toml(endpoints: dict[str, str]) -> str:
    parts = []
    for name, (adapter, interface, _) in SERVED.items():
        parts.append(
            f'[equipment.{name}]\nadapter = "{adapter}"\ninterface = "{interface}"\n'
            f'endpoint = "{endpoints[name]}"\n'
        )
    return "\n".join(parts)


def serve_line_toml(seed: int) -> str:
    """The line ``cellauto sim serve`` serves: the CAR-T line with its apheresis bag."""
    return (
        f'name = "car-t-served"\n\n[simulation]\nseed = {seed}\n\n'
        '[[simulation.materials]]\ncontainer_id = "apheresis bag"\nmaterial = "apheresis"\n'
        f'label = "{coi_barcode(COI)}"\n\n'
        + _equipment_toml({name: endpoint for name, (_, _, endpoint) in SERVED.items()})
    )


def client_line_toml(announced: dict[str, Any]) -> str:
    """The line the controller runs on: what ``cellauto sim serve`` announced."""
    simulation = f"speed = {announced['speed']}\nepoch = {announced['epoch']}\n"
    return (
        f'name = "car-t-remote"\n\n[simulation]\n{simulation}\n'
        + _equipment_toml(announced["endpoints"])
        + '\n[equipment.printer]\nadapter = "sim"\n'  # in-process, beside the controller
    )


@dataclass
class DrillReport:
    run_id: str = ""
    final_state: str = ""
    kills: int = 0
    controllers: int = 0
    actions: int = 0
    repeated_actions: list[str] = field(default_factory=list)
    redone_in_doubt: list[str] = field(default_factory=list)
    lost_records: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    controller_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    exit_codes: list[int] = field(default_factory=list)
    done: Counter[tuple[str, str]] = field(default_factory=Counter)
    outputs: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.final_state == "Complete"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def served_line(
    workdir: Path, *, seed: int, speed: float
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """``cellauto sim serve`` in a child process; yields it and what it announced."""
    serve_toml = workdir / "serve.toml"
    serve_toml.write_text(serve_line_toml(seed))
    command = [sys.executable, "-m", "cellauto", "sim", "serve", str(serve_toml)]
    command += ["--speed", str(speed), "--actions", str(workdir / "actions.jsonl")]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        if not first:
            raise RuntimeError(f"cellauto sim serve ended: {server.communicate()[1][-3000:]}")
        yield server, json.loads(first)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _controller(command: list[str], kill_after_s: float | None, log: Path) -> tuple[int, bool]:
    """Run one controller; SIGKILL it ``kill_after_s`` real seconds after its run began."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_env())
        if kill_after_s is None:
            return child.wait(), False
        try:
            return child.wait(timeout=kill_after_s), False
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            out.write(f"\n--- SIGKILL after {kill_after_s:.2f} s ---\n")
            return -9, True


def _run_id(db: Path) -> str:
    """The run the journal holds; "" if the controller died before it began one."""
    if not db.exists():
        return ""
    with Journal(db) as journal:
        runs = [summary.run_id for summary in journal.runs()]
    if len(runs) > 1:
        raise RuntimeError(f"{db}: expected one run, found {runs}")
    return runs[0] if runs else ""


def drill(
    workdir: Path,
    *,
    kills: int,
    speed: float,
    seed: int = 7,
    rng_seed: int = 2026,
    expansion_days: int = 9,
    mean_kill_after_s: float = 2.0,
    max_controllers: int = 200,
    reference: Counter[tuple[str, str]] | None = None,
) -> DrillReport:
    """Serve, run, kill ``kills`` times at random, resume each time; audit the result.

    ``reference``: the physical actions of an uninterrupted batch (``report.done`` of a
    drill with ``kills=0``); an action done more often than there is done twice.
    """
    rng = random.Random(rng_seed)
    report = DrillReport()
    db = workdir / "journal.db"
    log = workdir / "controllers.log"
    start = time.perf_counter()
    cpu_before = os.times()
    with served_line(workdir, seed=seed, speed=speed) as (server, announced):
        client_toml = workdir / "remote.toml"
        client_toml.write_text(client_line_toml(announced))
        # the operator's answer to a hold (a step with resume="operator" was interrupted):
        # the equipment checked, run the step again
        common = ["--line", str(client_toml), "--db", str(db), "--on-hold", "restart"]
        run = [sys.executable, "-m", "cellauto", "run", str(PROTOCOL), *common]
        run += ["--param", f"coi={COI}", "--param", f"expansion_days={expansion_days}"]
        command = run
        while report.controllers < max_controllers:
            report.controllers += 1
            kill_after = rng.uniform(0.2, 2 * mean_kill_after_s) if report.kills < kills else None
            code, killed = _controller(command, kill_after, log)
            report.exit_codes.append(code)
            report.kills += killed
            if not killed:
                break
            report.run_id = report.run_id or _run_id(db)
            if not report.run_id:  # killed before the run began: start it again
                continue
            command = [sys.executable, "-m", "cellauto", "resume", str(PROTOCOL), report.run_id]
            command += common
        report.server_cpu_s = _cpu_s(server.pid)
    cpu_after = os.times()
    report.controller_cpu_s = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    report.wall_s = time.perf_counter() - start
    report.outputs = log.read_text().splitlines()[-40:]
    report.run_id = report.run_id or _run_id(db)
    audit(report, db, workdir / "actions.jsonl", reference)
    return report


def audit(
    report: DrillReport,
    db: Path,
    actions_file: Path,
    reference: Counter[tuple[str, str]] | None,
) -> None:
    """Compare the instruments' physical actions with the journal and with an
    uninterrupted batch of the same line and seed (see the module doc)."""
    intents: Counter[tuple[str, str]] = Counter()
    in_doubt: Counter[tuple[str, str]] = Counter()
    with Journal(db) as journal:
        for record in journal.records(report.run_id):
            payload = record.payload
            if isinstance(payload, InstrumentCommand):
                intents[(payload.instrument, payload.method)] += 1
                for destination in _destinations(payload):
                    intents[(payload.instrument, f"{DISPENSE} into {destination}")] += 1
            elif isinstance(payload, RunResumed):
                in_doubt.update((c.instrument, c.method) for c in payload.in_doubt_commands)
            elif isinstance(payload, RunEnded):
                report.final_state = payload.final_state
    done = Counter(_action_key(a) for a in read_actions(actions_file) if a.repeat_of is None)
    report.actions = sum(done.values())
    report.done = done
    for key, n in sorted(done.items()):
        if reference is None or n <= reference[key] or key in STATE_SETTING:
            pass
        elif key[1] in SAMPLING and n - reference[key] <= in_doubt[key]:
            report.redone_in_doubt.append(
                f"{key[0]}.{key[1]}: done {n}, in an uninterrupted batch {reference[key]}, "
                f"{in_doubt[key]} in doubt after a kill"
            )
        else:
            report.repeated_actions.append(
                f"{key[0]}.{key[1]}: done {n}, in an uninterrupted batch {reference[key]}"
            )
        if key[1].startswith(f"{DISPENSE} into "):  # a transfer may take several dispenses
            if not intents[key]:
                report.lost_records.append(f"{key[0]}.{key[1]}: done {n}, never journaled")
        elif n > intents[key]:
            report.lost_records.append(f"{key[0]}.{key[1]}: done {n}, journaled {intents[key]}")


def _action_key(action: PhysicalAction) -> tuple[str, str]:
    """(instrument, method); a served liquid handler's dispense keys by its destination."""
    if action.method == DISPENSE:
        return action.instrument, f"{DISPENSE} into {action.arguments.get('destination')}"
    return action.instrument, action.method


def _destinations(command: InstrumentCommand) -> list[str]:
    """The containers a journaled liquid-handler ``transfer`` or ``aliquot`` delivers into."""
    arguments = command.arguments
    if command.method == "transfer":
        return [str(arguments.get("destination_container_id"))]
    if command.method == "aliquot":
        return [str(d) for d in arguments.get("destination_container_ids") or []]
    return []
