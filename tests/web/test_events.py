"""The event stream (``GET /events``) of a real server in this process: a record written
by another connection reaches an open stream as ``row``, ``counts`` and ``run`` events;
a stream whose session was closed or went idle gets ``logout`` and ends; the stream
never keeps a session alive. And the hub itself: coalescing, and a subscriber that
falls behind is dropped."""

from __future__ import annotations

import asyncio
import queue
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from cellauto.cli import main
from cellauto.records import Journal
from cellauto.web.app import create_app
from cellauto.web.changes import Change, NewRow
from cellauto.web.config import WebConfig
from cellauto.web.hub import QUEUE_EVENTS, ChangeHub, parse_topics
from cellauto.web.line_model import Dirty
from cellauto.web.sessions import WebSession
from tests.site.conftest import own_password
from tests.web.harness import DEADLINE_S, wait_for
from tests.web.test_changes import Clock, alarm, begin, reading


class Served:
    """The app under uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, db: Path) -> None:
        self.app = create_app(WebConfig(db=db, poll_s=0.01))
        self.clients: list[httpx.Client] = []
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_config=None, timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, "the server to listen")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        hub = self.app.state.services.hub
        if hub._loop is not None:
            hub._loop.call_soon_threadsafe(hub.end_streams)  # as `cellauto serve` does
        self.server.should_exit = True
        self.thread.join(DEADLINE_S)
        for client in self.clients:
            client.close()

    def session(self) -> WebSession:
        (web,) = self.app.state.sessions.open_sessions()
        return web


@pytest.fixture
def served(journal: Path) -> Iterator[Served]:
    server = Served(journal)
    try:
        yield server
    finally:
        server.stop()


def signed_in(served: Served, name: str) -> httpx.Client:
    client = httpx.Client(base_url=served.url, timeout=DEADLINE_S)
    served.clients.append(client)
    page = client.get("/login")
    token = re.search(r'name="csrf_login" value="([^"]+)"', page.text)
    assert token is not None
    form = {"csrf_login": token.group(1), "name": name, "password": own_password(name)}
    done = client.post("/login", data=form, headers={"origin": served.url})
    assert done.status_code == 303, done.text
    return client


class Stream:
    """An open ``/events`` stream, read in a thread into a queue of (event, data)."""

    def __init__(self, client: httpx.Client, topics: str) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.seen: list[tuple[str, Any]] = []
        self.opened = threading.Event()
        self.first = ""
        self.headers: httpx.Headers | None = None
        self._cm = client.stream("GET", f"/events?topics={topics}")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(DEADLINE_S)

    def _read(self) -> None:
        try:
            self._lines()
        except httpx.HTTPError as exc:
            self.events.put(("error", str(exc)))
        self.opened.set()
        self.events.put(("end", None))

    def _lines(self) -> None:
        with self._cm as response:
            self.headers = response.headers
            name = ""
            for line in response.iter_lines():
                if not self.first:
                    self.first = line
                    self.opened.set()
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.events.put((name, orjson.loads(line[6:])))

    def next(self, name: str, where: Any = lambda data: True) -> Any:
        """The data of the first ``name`` event that ``where`` accepts, of all received
        so far or yet to come (events are not used up: the order of topics is free)."""
        for got, data in self.seen:
            if got == name and where(data):
                return data
        while True:
            got, data = self.events.get(timeout=DEADLINE_S)
            self.seen.append((got, data))
            if got == name and where(data):
                return data
            assert got != "end", f"the stream ended before a {name} event"


def test_a_write_reaches_an_open_stream_and_the_stream_keeps_no_session_alive(
    served: Served, journal: Path
) -> None:
    client = signed_in(served, "ann")
    used = served.session().session.last_use_monotonic
    stream = Stream(client, "overview,counts,run:run-e")
    assert stream.first == "retry: 2000"
    assert stream.headers is not None
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["x-accel-buffering"] == "no"
    with Journal(journal) as writer:
        run = begin(writer, "run-e", Clock(), coi="W123426A1B2C3")
        run.append(alarm("pH probe drift suspected"), durable=True)
        row = stream.next("row", lambda d: d["run"] == "run-e" and "1 alarm" in d["html"])
        assert 'id="run-run-e"' in row["html"] and "COI W123426A1B2C3" in row["html"]
        assert row["last_wall_ns"] > 0
        assert stream.next("counts", lambda d: d["alarms"] == 1)["tasks"] == 0
        assert stream.next("run")["run"] == "run-e"
        run.append(reading(), durable=True)  # record 3
        assert stream.next("run", lambda d: d["seq"] == 3) == {
            "run": "run-e",
            "seq": 3,
            "state": "Running",
        }
    assert served.session().session.last_use_monotonic == used
    page = client.get("/")
    # the overview shows the alarm's count, never its message (a random token may hold "pH")
    assert 'id="run-run-e"' in page.text and "pH probe drift" not in page.text
    assert 'id="run-run-e"' in client.get("/line/rows").text


def test_a_stream_of_a_closed_session_gets_logout(served: Served) -> None:
    client = signed_in(served, "ann")
    stream = Stream(client, "counts")
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text)
    assert token is not None
    out = client.post("/logout", data={"csrf": token.group(1)}, headers={"origin": served.url})
    assert out.status_code == 303
    assert stream.next("logout") == {"why": "closed"}
    assert stream.next("end") is None


def test_a_stream_of_an_idle_session_gets_logout(served: Served) -> None:
    client = signed_in(served, "olga")
    stream = Stream(client, "counts")
    served.session().session.last_use_monotonic = -1e12  # unused for ages
    assert stream.next("logout") == {"why": "idle"}


def test_poll_interval_out_of_range_is_refused(journal: Path) -> None:
    assert main(["serve", "--db", str(journal), "--poll-ms", "5"]) == 2


def test_topics_are_parsed_and_unknown_ones_ignored() -> None:
    assert parse_topics("overview,counts run:ab-1 run: run:a/b nonsense") == {
        "overview",
        "counts",
        "run:ab-1",
    }


@pytest.mark.anyio
async def test_the_hub_coalesces_a_burst_and_drops_a_subscriber_that_falls_behind(
    tmp_path: Path,
) -> None:
    hub = ChangeHub(tmp_path / "none.db", coalesce_s=0.05)
    hub._loop = asyncio.get_running_loop()
    with Journal(tmp_path / "line.db") as writer:
        run = begin(writer, "run-h", Clock())
        run.append(reading(), durable=True)
    from cellauto.web.changes import open_reader, rows_after

    conn = open_reader(tmp_path / "line.db")
    rows = rows_after(conn, 0, 100)
    conn.close()
    hub.model.apply(rows)
    slow = hub.subscribe(frozenset({"run:run-h"}))
    quick = hub.subscribe(frozenset({"overview"}))
    for _ in range(3 * QUEUE_EVENTS):
        hub._dirty(Dirty(runs={"run-h"}))
    row = await quick.next(DEADLINE_S)
    assert row is not None and row.name == "row"
    assert quick.queue.empty()  # the burst was one event
    for _ in range(QUEUE_EVENTS + 1):
        slow.put(row)
    with pytest.raises(EOFError):
        while True:
            await slow.next(DEADLINE_S)
    assert hub.subscribers == 1


def test_the_poller_carries_on_after_any_failed_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Busy, damaged or replaced: no error ends the poller; it says so (the pages show
    ``failure``), starts again on a fresh connection, and clears it once a read works."""
    Journal(tmp_path / "line.db").close()
    hub = ChangeHub(tmp_path / "line.db", poll_s=0.001)
    failures: list[str | None] = []

    class Flaky:
        calls = 0
        resets = 0

        def wait(self, timeout_s: float) -> None:
            self.calls += 1
            failures.append(hub.failure)
            if self.calls == 1:
                raise sqlite3.OperationalError("database is locked")
            if self.calls == 2:
                raise sqlite3.DatabaseError("file is not a database")
            if self.calls == 4:
                hub._stopping.set()

        def reset(self) -> None:
            self.resets += 1

        def close(self) -> None:
            pass

    flaky = Flaky()
    hub._source = flaky  # type: ignore[assignment]
    hub._poll()  # returns once stopped
    assert flaky.calls == 4 and flaky.resets == 2
    assert failures[1] == "OperationalError: database is locked"
    assert failures[2] == "DatabaseError: file is not a database"
    assert failures[3] is None and hub.failure is None
    assert "database is locked" in caplog.text and "not a database" in caplog.text


def test_rows_applied_before_a_failed_refresh_are_told_once_a_read_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source moves past the rows it hands over: a refresh failing after they were
    applied must not lose their events, nor the site move that came with them."""
    Journal(tmp_path / "line.db").close()
    hub = ChangeHub(tmp_path / "line.db", poll_s=0.001)
    told: list[Dirty] = []

    class Loop:
        def call_soon_threadsafe(self, callback: Any, dirty: Dirty) -> None:
            told.append(dirty)

    hub._loop = Loop()  # type: ignore[assignment]
    refreshes: list[bool] = []
    refresh = hub.model.refresh

    def failing_once(conn: Any, *, site_moved: bool, now_ns: int) -> Dirty:
        refreshes.append(site_moved)
        if len(refreshes) == 1:
            raise sqlite3.OperationalError("database is locked")
        return refresh(conn, site_moved=site_moved, now_ns=now_ns)

    monkeypatch.setattr(hub.model, "refresh", failing_once)
    new = NewRow(1, "run-r", 1, "reading", 60.0, 1, None)

    class Source:
        calls = 0

        def wait(self, timeout_s: float) -> Change | None:
            self.calls += 1
            if self.calls == 1:
                return Change((new,), 7, True, 1)
            if self.calls == 3:
                hub._stopping.set()
            return None  # nothing new: the rows above are not handed over again

        def reset(self) -> None:
            pass

        def close(self) -> None:
            pass

    hub._source = Source()  # type: ignore[assignment]
    hub._poll()
    assert refreshes == [True, True]  # the site move is read on the retry
    assert [sorted(d.runs) for d in told] == [["run-r"]]
    assert hub.failure is None
