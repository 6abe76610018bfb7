"""The web app as a browser sees it: a staffed journal, a simulated run in progress in
its own process, ``cellauto serve`` in another, and sign-in in Chromium.

Every wait is on something the other process writes or prints (a line of its output, a
row of the journal), bounded by a deadline that only catches a hang; none is a sleep
that a test's result depends on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cellauto.records.site_store import SiteStore
from cellauto.site.accounts import bootstrap
from cellauto.site.auth import authenticate
from cellauto.site.store import open_site_store
from cellauto.site.training import parse_subject, record_training
from tests.site.chain import POLICY, TERMINAL
from tests.site.conftest import ROOT_PASSWORD, Site, own_password

REPO = Path(__file__).resolve().parents[2]
LIVE_SUBJECT = "web-live@1"
STAFF = (
    ("alice", "operator"),
    ("bob", "operator"),
    ("carol", "supervisor"),
    ("quinn", "qa"),
    ("quentin", "qc"),
    ("olga", "operator"),
)
"""alice, bob and carol are trained on the live protocol; olga is not."""
DEADLINE_S = 60.0


def password(name: str) -> str:
    return ROOT_PASSWORD if name == "root" else own_password(name)


def staff_journal(path: Path) -> Path:
    """A new journal at ``path`` whose site has root and :data:`STAFF`."""
    with open_site_store(path, create=True) as store:
        bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
        site = Site(store)
        for name, role in STAFF:
            site.add(name, role)
        for trainee in ("alice", "bob", "carol"):
            _train(store, "quinn" if trainee == "carol" else "carol", trainee)
    return path


def _train(store: SiteStore, trainer: str, trainee: str) -> None:
    who = authenticate(
        store, trainer, password(trainer), purpose="test: training", terminal=TERMINAL
    )
    record_training(store, who, trainee, parse_subject(LIVE_SUBJECT), reason="web tests")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _line(stream: IO[str], want: Callable[[str], bool], process: subprocess.Popen[str]) -> str:
    """The first line of ``stream`` that ``want`` accepts (the process's own output)."""
    for line in stream:
        if want(line):
            return line.strip()
    raise AssertionError(f"process ended ({process.wait()}) before the line the test waits for")


class Background:
    """A process of the test (the controller, the server), stopped at the end."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._err = log.open("w")
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._err, text=True, env=_env(), cwd=REPO
        )

    def expect(self, prefix: str) -> str:
        """The rest of the first line printed that starts with ``prefix``."""
        assert self.process.stdout is not None
        line = _line(self.process.stdout, lambda text: text.startswith(prefix), self.process)
        return line[len(prefix) :].strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._err.close()

    def errors(self) -> str:
        return self.log.read_text()


class LiveRun(Background):
    """:mod:`tests.web.live.live_controller` running its run on ``db``."""

    def __init__(self, db: Path, log: Path) -> None:
        super().__init__([sys.executable, "-m", "tests.web.live.live_controller", str(db)], log)
        self.run_id = self.expect("run ")


class Server(Background):
    """``cellauto serve --db DB --port 0``; ``url`` is where it listens."""

    def __init__(self, db: Path, log: Path, *extra: str) -> None:
        args = [sys.executable, "-m", "cellauto", "serve", "--db", str(db), "--port", "0"]
        super().__init__([*args, *extra], log)
        self.url = self.expect("serving ")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition()`` (another process's write); a hang fails after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def sign_in(page: Any, url: str, name: str) -> None:
    """Sign ``name`` in on ``page`` through the login form."""
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password(name))
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
