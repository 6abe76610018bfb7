"""A site for controller tests: a served demo line, controller processes, waits.

``cellauto sim serve`` serves the demo line's instruments (scanner over TCP, bioreactor
over OPC UA, cell counter over SCPI) with the starting bag, and logs what they
physically do (``--actions``); controllers (``cellauto controller``) reach it through
the line file it announces. With ``units=N`` the bioreactor is a pool of N units
(``BR-01``…, one served instrument each) and the counter is shared, and the served
world holds N labelled bags (:func:`coi`, :func:`bag`): N batches at once. Waits are
bounded by real-time limits that fail the test; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cellauto.records import backend as db

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "protocols" / "demo_expansion.py"
COI = "W123426A1B2C3"


def coi(batch: int) -> str:
    """The chain-of-identity id on batch ``batch``'s bag (1: :data:`COI`)."""
    return COI if batch == 1 else f"W12342600{batch:04d}"


def bag(batch: int) -> str:
    """Where batch ``batch``'s bag is on the served line (its container id)."""
    return "starting material bag" if batch == 1 else f"starting material bag {batch}"


def unit_names(units: int) -> list[str]:
    return [f"BR-{n:02d}" for n in range(1, units + 1)]


SERVED = {
    "scanner": ("tcp", "BarcodeScanner", "tcp://127.0.0.1:0"),
    "bioreactor": ("opcua", "Bioreactor", "opc.tcp://127.0.0.1:0/cellauto/bioreactor"),
    "counter": ("visa", "CellCounter", "TCPIP0::127.0.0.1::0::SOCKET"),
}

T = TypeVar("T")


def _equipment(endpoints: dict[str, Any], *, shared: bool = False) -> str:
    """Equipment tables; a pool's endpoints as ``{unit: endpoint}``."""
    tables = []
    for name, (adapter, interface, _) in SERVED.items():
        if name not in endpoints:
            continue
        where = endpoints[name]
        if isinstance(where, dict):
            units = ", ".join(f'"{unit}" = "{endpoint}"' for unit, endpoint in where.items())
            reach = f"units = {{ {units} }}\n"
        else:
            reach = f'endpoint = "{where}"\n'
        share = "shared = { capacity = 1 }\n" if shared and name == "counter" else ""
        tables.append(
            f'[equipment.{name}]\nadapter = "{adapter}"\ninterface = "{interface}"\n{reach}{share}'
        )
    return "\n".join(tables)


def _bags(batches: int) -> str:
    return "".join(
        f'[[simulation.materials]]\ncontainer_id = "{bag(n)}"\n'
        f'material = "t_cells"\nlabel = "{coi(n)}"\n\n'
        for n in range(1, batches + 1)
    )


def env() -> dict[str, str]:
    values = dict(os.environ)
    values["PYTHONUNBUFFERED"] = "1"
    return values


@contextmanager
def served_demo_line(
    workdir: Path, *, speed: float, seed: int = 7, units: int = 0
) -> Iterator[tuple[Path, Path]]:
    """Serve the demo line (``units``: a pool of bioreactors, as many bags, a shared
    counter); yields (the controllers' line file, the action log)."""
    serve = workdir / "serve.toml"
    served: dict[str, Any] = {name: endpoint for name, (_, _, endpoint) in SERVED.items()}
    if units:
        served["bioreactor"] = {unit: served["bioreactor"] for unit in unit_names(units)}
    serve.write_text(
        f'name = "site-demo"\n\n[simulation]\nseed = {seed}\n\n'
        + _bags(max(units, 1))
        + _equipment(served)
    )
    actions = workdir / "actions.jsonl"
    command = [sys.executable, "-m", "cellauto", "sim", "serve", str(serve)]
    command += ["--speed", str(speed), "--actions", str(actions)]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        if not first:
            raise RuntimeError(f"cellauto sim serve ended: {server.communicate()[1][-3000:]}")
        announced: dict[str, Any] = json.loads(first)
        line = workdir / "site.toml"
        line.write_text(
            f'name = "site-demo"\n\n[simulation]\nspeed = {announced["speed"]}\n'
            f"epoch = {announced['epoch']}\n\n"
            + _equipment(announced["endpoints"], shared=units > 0)
        )
        partial = workdir / "site-b.toml"  # a line without the bioreactor
        partial.write_text(
            f'name = "site-b"\n\n[simulation]\nspeed = {announced["speed"]}\n'
            f"epoch = {announced['epoch']}\n\n"
            + _equipment({k: v for k, v in announced["endpoints"].items() if k != "bioreactor"})
        )
        yield line, actions
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def protocols_dir(workdir: Path) -> Path:
    """A protocol directory holding the demo protocol only (quick to load)."""
    folder = workdir / "protocols"
    folder.mkdir(exist_ok=True)
    shutil.copy(DEMO, folder / DEMO.name)
    return folder


class Controller:
    """A ``cellauto controller`` child process, its output in a log file."""

    def __init__(
        self, url: str, line: Path, name: str, workdir: Path, *extra: str, capacity: int = 4
    ) -> None:
        self.name = name
        self.log = workdir / f"controller-{name}.log"
        command = [sys.executable, "-m", "cellauto", "controller", "--db", url]
        command += ["--line", str(line), "--name", name, "--capacity", str(capacity)]
        command += ["--protocols", str(protocols_dir(workdir)), *extra]
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            command, stdout=self._out, stderr=subprocess.STDOUT, env=env()
        )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str, timeout_s: float = 60.0) -> None:
        wait_until(
            lambda: text in self.output() or self.process.poll() is not None,
            timeout_s,
            f"controller {self.name} to say {text!r}",
        )
        if text not in self.output():
            raise AssertionError(f"controller {self.name} ended:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self._out.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()


def wait_until(check: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll ``check`` until it is truthy; a failure after ``timeout_s`` real seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(0.05)


def submit(
    url: str, *params: str, line: str = "site-demo", protocol: Path = DEMO, batch: int = 1
) -> str:
    """Queue a demo batch (``cellauto run --queue``) with batch ``batch``'s bag; its run id."""
    command = [sys.executable, "-m", "cellauto", "run", str(protocol), "--queue", "--db", url]
    command += ["--line-name", line, "--param", f"coi={coi(batch)}"]
    if batch != 1:
        command += ["--param", f"bag={bag(batch)}"]
    for param in params:
        command += ["--param", param]
    done = subprocess.run(command, capture_output=True, text=True, env=env(), check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0].removeprefix("run ")


def kill_rng() -> random.Random:
    """The seeded random source of kill moments (``$CELLAUTO_KILL_SEED``, printed)."""
    seed = int(os.environ.get("CELLAUTO_KILL_SEED", "2026"))
    print(f"kill seed {seed} (CELLAUTO_KILL_SEED)")
    return random.Random(seed)


def owner(url: str, run_id: str) -> tuple[str, int] | None:
    """(controller, epoch) of the run's claim, None before its first."""
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        row = conn.execute(
            "SELECT controller, epoch FROM run_owners WHERE run_id = ?", (run_id,)
        ).fetchone()
    finally:
        conn.close()
    return None if row is None or row[0] is None else (str(row[0]), int(row[1]))


def kill_after(controller: Controller, seconds: float) -> None:
    """SIGKILL ``controller`` ``seconds`` real seconds from now (unless it ended)."""
    try:
        controller.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        controller.kill()
