"""The web app's line overview and live updates (issue 13), next to the raw libraries.

Modes (``--mode overview|latency|memory``; all three by default, and from ``run.py``):

* **overview**: a journal of ``runs`` runs in progress (record 0 with 11 step plans, a
  state change, a step, then readings: ~1,270 records per run, as a CAR-T batch has).
  Reading the runs raw (``Journal.runs()``) against the overview's startup scan
  (``LineModel``); ``cellauto serve`` started on it (until it listens: the scan
  included); ``GET /`` signed in: first byte and whole body (median of 20); Chromium
  ``page.goto('/')``: navigation timing (response start, DOMContentLoaded, load).
* **latency**: a writer process appends one reading per run per second to ``runs`` runs;
  an open Chromium page's ``EventSource`` on the overview topic measures
  ``Date.now() - last_wall_ns`` of every ``row`` event (one machine: one clock). Raw: a
  bare Starlette stream that polls the same way (``data_version``, new rows by rowid)
  and sends every new record, with no session, no read model, no coalescing.
* **memory**: the server's ``VmRSS``/``VmHWM`` (``/proc/PID/status``) idle and with 50
  signed-in sessions, each with an open event stream and one overview fetched; raw: the
  bare Starlette stream server with 50 streams.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the raw server process stays bare Starlette
    import httpx

    from cellauto.records import Journal
    from cellauto.records import payloads as rec

ROOT_PW = "the first keeper secret"
HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import CHROMIUM, FLAGS  # noqa: E402  (the flags the browser tests use)


# -- the journal --------------------------------------------------------------------------
def _started(run_id: str) -> rec.RunStarted:
    from cellauto.records import payloads as rec

    steps = [
        rec.StepPlan(
            name=f"s{k}",
            path=["P", f"s{k}"],
            resume="rerun",
            max_duration_h=None,
            max_hold_h=None,
            expected_duration_h=20.0,
            checks={},
        )
        for k in range(11)
    ]
    return rec.RunStarted(
        run_id=run_id,
        protocol_name="car-t-autologous",
        protocol_version="1.1.0",
        protocol_source_sha256=None,
        protocol_file=None,
        parameters={"coi": "W123426A1B2C3", "din": "W123426000042"},
        steps=steps,
        line="bench",
        simulated=False,
        wall_clock="real",
        seed=None,
        operator="bench",
        instruments={},
        package_versions={},
    )


def _reading() -> rec.Reading:
    from cellauto.records import payloads as rec

    return rec.Reading(
        instrument="bioreactor",
        method="read_process_values",
        arguments={},
        step="s5",
        value={"ph": 7.1, "temperature_c": 37.0, "dissolved_oxygen_pct": 40.0},
    )


def _begin(journal: Journal, run_id: str) -> Any:
    from cellauto.records import payloads as rec

    run = journal.begin_run(run_id, time.time)
    run.append(_started(run_id))
    run.append(rec.StateChange(from_state="Idle", to_state="Running", cause="Start", step=None))
    run.append(rec.StepStarted(step="s5", index=5, path=["P", "s5"], resume="rerun"))
    return run


def build(path: Path, runs: int, per_run: int) -> Path:
    """A journal with root (site policy's argon2) and ``runs`` runs in progress."""
    from cellauto.records import Journal
    from cellauto.records.site_payloads import SitePolicy
    from cellauto.site.accounts import bootstrap
    from cellauto.site.store import open_site_store, this_terminal

    with open_site_store(path, create=True) as store:
        bootstrap(
            store, "root", "Rita Admin", ROOT_PW, policy=SitePolicy(), terminal=this_terminal()
        )
    with Journal(path) as journal:
        opened = [_begin(journal, f"b{i:04d}".ljust(32, "0")) for i in range(runs)]
        for _ in range(per_run):
            for run in opened:
                run.append(_reading())
    return path


def writer(path: Path, runs: int, seconds: float, prefix: str) -> None:
    """``runs`` new runs, each appending one reading per second for ``seconds``."""

    from cellauto.records import Journal

    async def main() -> None:
        with Journal(path) as journal:
            opened = [_begin(journal, f"{prefix}{i:04d}".ljust(32, "0")) for i in range(runs)]
            print("ready", flush=True)
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                for part in range(20):  # each run once a second, spread over 20 slices
                    for run in opened[part::20]:
                        run.append(_reading())
                    await asyncio.sleep(0.05)

    asyncio.run(main())


# -- processes --------------------------------------------------------------------------
class Proc:
    """A child process printing ``serving URL`` (or ``ready``) once it is up."""

    def __init__(self, args: list[str], prefix: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        started = time.perf_counter()
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(prefix):
                self.text = line[len(prefix) :].strip()
                break
        else:
            raise RuntimeError(f"{args} ended before printing {prefix!r}")
        self.up_s = time.perf_counter() - started

    def status(self, key: str) -> float:
        """``VmRSS``/``VmHWM`` of the process, MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def serve(db: Path) -> Proc:
    args = [sys.executable, "-m", "cellauto", "serve", "--db", str(db), "--port", "0"]
    return Proc(args, "serving ")


def raw_server(db: Path) -> Proc:
    return Proc([sys.executable, str(HERE), "--raw-server", str(db)], "serving ")


def sign_in(url: str) -> httpx.Client:
    import re

    import httpx

    client = httpx.Client(base_url=url, timeout=60)
    page = client.get("/login")
    found = re.search(r'name="csrf_login" value="([^"]+)"', page.text)
    assert found is not None
    form = {"csrf_login": found.group(1), "name": "root", "password": ROOT_PW}
    done = client.post("/login", data=form, headers={"origin": url})
    assert done.status_code == 303, done.text
    return client


# -- the raw baseline: a bare Starlette event stream ---------------------------------------
def run_raw_server(db: Path) -> None:
    """Every new record as an SSE event (polled as the app polls); no session, no model."""
    import sqlite3

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response, StreamingResponse
    from starlette.routing import Route

    queues: set[asyncio.Queue[bytes]] = set()

    async def poll() -> None:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        last = conn.execute("SELECT coalesce(max(rowid), 0) FROM records").fetchone()[0]
        version = None
        while True:
            now = conn.execute("PRAGMA data_version").fetchone()[0]
            if now != version:
                version = now
                rows = conn.execute(
                    "SELECT rowid, run_id, wall_time_ns FROM records WHERE rowid > ?", (last,)
                ).fetchall()
                for rowid, run_id, wall in rows:
                    last = rowid
                    data = f'event: row\ndata: {{"run": "{run_id}", "last_wall_ns": {wall}}}\n\n'
                    for q in list(queues):
                        if q.qsize() < 10_000:
                            q.put_nowait(data.encode())
            await asyncio.sleep(0.1)

    async def events(_: Request) -> Response:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        queues.add(q)

        async def stream() -> Any:
            try:
                yield b"retry: 2000\n\n"
                while True:
                    yield await q.get()
            finally:
                queues.discard(q)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def home(_: Request) -> Response:
        return HTMLResponse("<!doctype html><title>raw</title><p>raw")

    async def lifespan(_: Starlette) -> Any:
        task = asyncio.create_task(poll())
        yield
        task.cancel()

    app = Starlette(
        routes=[Route("/", home), Route("/events", events)],
        lifespan=lifespan,  # type: ignore[arg-type]
    )

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            port = self.servers[0].sockets[0].getsockname()[1]
            print(f"serving http://127.0.0.1:{port}", flush=True)

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    config.timeout_graceful_shutdown = 1
    Announcing(config).run()


# -- measurements -------------------------------------------------------------------------
def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _browser(playwright: Any, profile: Path) -> Any:
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=FLAGS
    )


def _sign_in_page(page: Any, url: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=name]", "root")
    page.fill("input[name=password]", ROOT_PW)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def overview(directory: Path, runs: int, per_run: int) -> list[dict[str, object]]:
    from cellauto.records import Journal
    from cellauto.web.changes import open_reader
    from cellauto.web.line_model import LineModel

    db = build(directory / "overview.db", runs, per_run)
    raw: list[float] = []
    scan: list[float] = []
    for _ in range(3):
        started = time.perf_counter()
        with Journal(db, create=False) as journal:
            listed = journal.runs()
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        conn = open_reader(db)
        model = LineModel()
        model.scan(conn, conn.execute("SELECT max(rowid) FROM records").fetchone()[0])
        scan.append(time.perf_counter() - started)
        conn.close()
    assert len(listed) == len(model.runs) == runs
    server = serve(db)
    rows: list[dict[str, object]] = []
    try:
        client = sign_in(server.text)
        first: list[float] = []
        whole: list[float] = []
        for _ in range(20):
            started = time.perf_counter()
            with client.stream("GET", "/") as response:
                first.append(time.perf_counter() - started)
                body = response.read()
            whole.append(time.perf_counter() - started)
        assert body.count(b'class="run ') == runs
        nav = _chromium_overview(directory, server.text) if CHROMIUM.exists() else {}
    finally:
        server.stop()
    rows.append(
        {
            "case": f"web: read {runs} runs' overview, raw Journal.runs() vs LineModel scan",
            "value": f"{_median_ms(scan):.0f} ms",
            "detail": f"Journal.runs() {_median_ms(raw):.0f} ms ({runs * (per_run + 3):,} records)",
        }
    )
    rows.append(
        {
            "case": f"web: cellauto serve start to listening ({runs} runs)",
            "value": f"{server.up_s * 1000:.0f} ms",
            "detail": "process start, imports, LineModel scan",
        }
    )
    rows.append(
        {
            "case": f"web: GET / with {runs} runs (signed in), first byte",
            "value": f"{_median_ms(first):.1f} ms",
            "target": "< 30 ms",
            "ok": _median_ms(first) < 30,
            "detail": f"whole body {_median_ms(whole):.1f} ms, {len(body):,} B (median of 20)",
        }
    )
    if nav:
        rows.append(
            {
                "case": f"web: Chromium opens / with {runs} runs, load event",
                "value": f"{nav['loadEventEnd']:.0f} ms",
                "target": "< 300 ms",
                "ok": nav["loadEventEnd"] < 300,
                "detail": (
                    f"response start {nav['responseStart']:.0f} ms, DOMContentLoaded "
                    f"{nav['domContentLoadedEventEnd']:.0f} ms (median of 5)"
                ),
            }
        )
    return rows


def _chromium_overview(directory: Path, url: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    keys = ("responseStart", "domContentLoadedEventEnd", "loadEventEnd")
    samples: dict[str, list[float]] = {k: [] for k in keys}
    with sync_playwright() as playwright:
        context = _browser(playwright, directory / "profile-overview")
        try:
            page = context.new_page()
            _sign_in_page(page, url)
            for _ in range(5):
                page.goto(f"{url}/", wait_until="load")
                timing = page.evaluate(
                    "(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return {responseStart: n.responseStart,"
                    " domContentLoadedEventEnd: n.domContentLoadedEventEnd,"
                    " loadEventEnd: n.loadEventEnd}; })()"
                )
                for k in keys:
                    samples[k].append(float(timing[k]))
        finally:
            context.close()
    return {k: statistics.median(v) for k, v in samples.items()}


_LISTEN = """(url) => { window.__lat = []; const s = new EventSource(url);
s.addEventListener('row', (e) => { const d = JSON.parse(e.data);
window.__lat.push(Date.now() - d.last_wall_ns / 1e6); }); window.__source = s; }"""


def _latency_with(url: str, signed: bool, db: Path, runs: int, seconds: float, tag: str) -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = _browser(playwright, db.parent / f"profile-{tag}")
        try:
            page = context.new_page()
            if signed:
                _sign_in_page(page, url)
            else:
                page.goto(url + "/")
            page.evaluate(_LISTEN, f"{url}/events?topics=overview")
            args = [sys.executable, str(HERE), "--writer", str(db), str(runs), str(seconds), tag]
            write = Proc(args, "ready")
            write.process.wait()
            lat = page.evaluate("window.__lat")
        finally:
            context.close()
    return lat


def latency(directory: Path, runs: int, seconds: float) -> list[dict[str, object]]:
    db = build(directory / "latency.db", 0, 0)
    if not CHROMIUM.exists():
        return []
    rows: list[dict[str, object]] = []
    for tag, start in (("raw", raw_server), ("app", serve)):
        server = start(db)
        try:
            found = _latency_with(server.text, tag == "app", db, runs, seconds, tag)
        finally:
            server.stop()
        lat = sorted(found[len(found) // 10 :])  # past the first runs' start
        median = statistics.median(lat)
        p95 = lat[int(0.95 * (len(lat) - 1))]
        what = (
            "cellauto serve (hub, 250 ms coalescing)"
            if tag == "app"
            else "raw Starlette SSE (every record, no coalescing)"
        )
        row: dict[str, object] = {
            "case": f"web: record -> open Chromium page, {runs} runs writing 1/s, {what}",
            "value": f"{median:.0f} ms",
            "detail": f"p95 {p95:.0f} ms, max {lat[-1]:.0f} ms, {len(found):,} events",
        }
        if tag == "app":
            row |= {"target": "median <= 1 s", "ok": median <= 1000}
        rows.append(row)
    return rows


def memory(directory: Path, sessions: int) -> list[dict[str, object]]:
    import httpx

    db = build(directory / "memory.db", 20, 50)
    rows: list[dict[str, object]] = []
    for tag, start in (("raw", raw_server), ("app", serve)):
        server = start(db)
        clients: list[httpx.Client] = []
        readers: list[threading.Thread] = []
        try:
            idle = server.status("VmRSS")
            for _ in range(sessions):
                signed = tag == "app"
                client = sign_in(server.text) if signed else httpx.Client(base_url=server.text)
                clients.append(client)
                opened = threading.Event()

                def read(c: httpx.Client = client, o: threading.Event = opened) -> None:
                    try:
                        with c.stream("GET", "/events?topics=overview,counts") as response:
                            for _ in response.iter_bytes():
                                o.set()
                    except httpx.HTTPError:
                        o.set()

                reader = threading.Thread(target=read, daemon=True)
                reader.start()
                readers.append(reader)
                opened.wait(30)
                client.get("/")
            busy, peak = server.status("VmRSS"), server.status("VmHWM")
        finally:
            server.stop()
            for client in clients:
                client.close()
        what = "cellauto serve" if tag == "app" else "raw Starlette SSE server"
        rows.append(
            {
                "case": f"web: {what} memory, {sessions} sessions with an open stream",
                "value": f"{busy:.0f} MB",
                "detail": f"idle {idle:.0f} MB, peak {peak:.0f} MB",
            }
        )
    return rows


def run(quick: bool = False, mode: str = "all") -> list[dict[str, object]]:
    runs, per_run = (20, 100) if quick else (200, 1_267)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-web-") as name:
        directory = Path(name)
        if mode in ("all", "overview"):
            rows += overview(directory, runs, per_run)
        if mode in ("all", "latency"):
            rows += latency(directory, 20 if quick else 200, 8 if quick else 30)
        if mode in ("all", "memory"):
            rows += memory(directory, 10 if quick else 50)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mode", choices=("all", "overview", "latency", "memory"), default="all")
    parser.add_argument("--writer", nargs=4, metavar=("DB", "RUNS", "SECONDS", "PREFIX"))
    parser.add_argument("--raw-server", metavar="DB")
    args = parser.parse_args()
    if args.writer:
        db, runs, seconds, prefix = args.writer
        writer(Path(db), int(runs), float(seconds), prefix)
        return
    if args.raw_server:
        run_raw_server(Path(args.raw_server))
        return
    for row in run(args.quick, args.mode):
        print(f"{row['case']:<90} {row['value']:>10}  {row.get('detail', '')}")


if __name__ == "__main__":
    main()
