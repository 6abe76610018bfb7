"""bench_site.py's ``controllers`` shape: N queued CAR-T runs carried by 2 ``cellauto
controller`` services (``[simulation] line_per_run = true``) on one PostgreSQL journal.

See :mod:`bench_site` for what is measured. The runs are submitted through
:func:`cellauto.controller.queue.submit` (what ``cellauto run --queue`` calls after its
checks), in this process: one ``cellauto run`` process per run costs ~1 s of start-up.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_site import CAR_T, ServerCpu, _verified, _wal_lsn

LINE = "bench-rehearsal"


FENCE = ["--grace-s", "10", "--self-fence-s", "20", "--stale-s", "60"]
"""Wider than the defaults (2 / 10 / 30 s): one virtual-time loop carrying 500 runs that
tick together delays the control connection's heartbeat (every 2.5 s) by up to 6.6 s
(measured at load average 5), and a run of this bench under heavier load met the 10 s
self-fence once."""


def _line_file(folder: Path) -> Path:
    """The rehearsal line: every piece of equipment CAR-T needs, simulated per run."""
    from cellauto.protocols import load_protocol

    names = sorted(load_protocol(CAR_T).equipment())
    text = f'name = "{LINE}"\n\n'
    text += "".join(f'[equipment.{name}]\nadapter = "sim"\n' for name in names)
    text += "\n[simulation]\nline_per_run = true\n"
    path = folder / "rehearsal.toml"
    path.write_text(text)
    return path


def submit_runs(url: str, seeds: range) -> float:
    """Queue one CAR-T run per seed (``--seed`` i); the seconds it took."""
    from cellauto.controller import queue
    from cellauto.protocols import load_protocol
    from cellauto.protocols.params import build_params
    from cellauto.protocols.runner import _source_sha256
    from cellauto.records.site_store import SiteStore
    from cellauto.site.store import this_terminal

    protocol = load_protocol(CAR_T)
    params = build_params(protocol.params, {}, rehearsal=True).model_dump(mode="json")
    _, sha = _source_sha256(protocol)
    assert sha is not None
    terminal = this_terminal()
    started = time.perf_counter()
    with SiteStore(url) as store:
        for seed in seeds:
            queue.submit(
                store,
                protocol_name=protocol.name,
                protocol_version=protocol.version,
                source_sha256=sha,
                parameters=params,
                line=LINE,
                priority=0,
                by="bench",
                terminal=terminal,
                seed=seed,
            )
    return time.perf_counter() - started


def _controller(
    url: str,
    line: Path,
    name: str,
    protocols: Path,
    capacity: int,
    workdir: Path,
    profile: Path | None,
) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"{name}.log"
    command = [sys.executable]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        command += ["-m", "cProfile", "-o", str(profile / f"{name}.prof")]
    command += ["-m", "cellauto", "controller", "--db", url, "--line", str(line)]
    command += ["--name", name, "--capacity", str(capacity), "--protocols", str(protocols)]
    command += FENCE
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def _stop(process: subprocess.Popen[bytes]) -> dict[str, float]:
    """SIGTERM, then the process's rusage (``wait4``): CPU seconds, peak RSS."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "exit": process.returncode,
    }


def _sealed(conn: Any) -> int:
    row = conn.execute("SELECT count(*) FROM ledger WHERE kind = 'run_sealed'").fetchone()
    return int(row[0])


def controllers(
    server: Any, n: int, *, profile: Path | None = None, timeout_s: float = 3600.0
) -> dict[str, Any]:
    """The row of the ``controllers`` shape (see the module doc)."""
    from cellauto.records import backend as db

    url = server.location_url("services")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    init = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cellauto", "db", "init", "--db", url],
        check=True,
        capture_output=True,
        env=env,
    )
    init_s = time.perf_counter() - init
    submit_s = submit_runs(url, range(n))
    capacity = math.ceil(n / 2)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        line = _line_file(workdir)
        protocols = workdir / "protocols"
        protocols.mkdir()
        shutil.copy(CAR_T, protocols / CAR_T.name)
        cpu = ServerCpu(server.data_dir) if server.data_dir is not None else None
        wal_before = _wal_lsn(url)
        conn = db.open_backend(url).connect(create=False, timeout_s=10.0)
        started = time.perf_counter()
        pair = [
            _controller(url, line, name, protocols, capacity, workdir, profile)
            for name in ("ctl-a", "ctl-b")
        ]
        sealed = 0
        try:
            while sealed < n:
                time.sleep(1.0)
                sealed = _sealed(conn)
                dead = [log.name for process, log in pair if process.poll() is not None]
                if dead:
                    raise RuntimeError(
                        f"controller {dead} ended: {(workdir / dead[0]).read_text()[-3000:]}"
                    )
                if time.perf_counter() - started > timeout_s:
                    break
            outer_s = time.perf_counter() - started
            usage = [_stop(process) for process, _ in pair]
        finally:
            for process, _ in pair:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        server_cpu = cpu.stop() if cpu is not None else float("nan")
        first, last = conn.execute(
            "SELECT min(wall_time_ns) FILTER (WHERE kind = 'run_started'),"
            " max(wall_time_ns) FILTER (WHERE kind = 'run_ended') FROM records"
        ).fetchone()
        records = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        states = Counter(
            json.loads(body)["payload"]["final_state"]
            for (body,) in conn.execute("SELECT body FROM records WHERE kind = 'run_ended'")
        )
        by = dict(
            conn.execute(
                "SELECT controller, count(*) FROM run_owners GROUP BY controller ORDER BY 1"
            ).fetchall()
        )
        conn.close()
    wall = (last - first) / 1e9
    wal_mb = (_wal_lsn(url) - wal_before) / 1e6
    ok = _verified(url)
    a, b = usage
    return {
        "case": f"site: {n} CAR-T batches queued, 2 `cellauto controller` services "
        "(line_per_run) on one PostgreSQL journal",
        "value": f"{wall:.1f} s",
        "detail": f"wall (first run_started to last run_ended; {outer_s:.1f} s from the "
        f"controllers' start to the bench seeing all {sealed} sealed); CPU {a['cpu_s']:.1f}"
        f" + {b['cpu_s']:.1f} s (controllers) + {server_cpu:.1f} s (server); {records:,} "
        f"records = {records / wall:,.0f} records/s; peak RSS {a['peak_rss_mb']:.0f} / "
        f"{b['peak_rss_mb']:.0f} MB; runs per controller {by}; WAL {wal_mb:,.0f} MB; "
        f"{dict(states)}; verify {'intact' if ok else 'FAILED'}; exit {a['exit']}/{b['exit']}"
        f"; db init {init_s:.1f} s, {n} submissions {submit_s:.1f} s",
        "wall_s": wall,
    }
