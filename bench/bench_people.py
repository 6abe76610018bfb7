"""People (issue 10): passwords, sign-ins, signatures, site appends, site verify, and what
operator steps cost a batch, each against a raw baseline in the same run.

Run ``python bench/bench_people.py [--quick]``; or import and call :func:`run`, which
returns rows for ``bench/run.py``.

1. argon2id at the site policy's parameters (RFC 9106's second, low-memory
   recommendation: t=3, 64 MiB, p=4): cellauto's :class:`~cellauto.site.passwords.Hasher`
   against argon2-cffi's ``PasswordHasher`` with the same parameters (interleaved, median of 15);
2. ``authenticate`` (a sign-in: the argon2 verify and its journaled transaction) and
   ``sign_in_store`` (one signature in its own fsync'd transaction, the signer's checks
   included), per second, against the bare argon2 verify;
3. site appends per second (one record per fsync'd transaction, with its signed
   anchor) against a bare SQLite ``INSERT`` + ``COMMIT`` with ``synchronous=FULL``;
4. ``verify`` of a site chain of 100,000 records (10,000 with ``--quick``): the chain
   rules alone, and with the replay of the projections ``cellauto verify`` adds;
5. N concurrent CAR-T batches with simulated operators (``simulate_batches``), CPU-s
   and journal bytes per batch, against the same protocol as it was before operator
   steps (``protocols/car_t_autologous.py`` at commit 15ac4ae, run on this code in the
   same run). Each level runs in a fresh subprocess, three times, the median kept.

``python bench/bench_people.py --child PROTOCOL N`` runs one batch level in this process
and prints its figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type

ROOT = Path(__file__).resolve().parents[1]
CAR_T = ROOT / "protocols" / "car_t_autologous.py"
BEFORE_OPERATOR_STEPS = "15ac4ae"
"""main just before CAR-T asked people anything (bc3d0e7 added its operator steps)."""


def _median_s(action: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _rate(action: Callable[[], object], count: int) -> float:
    """Actions per second over ``count`` back to back (best of three)."""
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            action()
        best = max(best, count / (time.perf_counter() - started))
    return best


def _argon2(quick: bool) -> dict[str, float]:
    from cellauto.records.site_payloads import SitePolicy
    from cellauto.site.passwords import Hasher

    params = SitePolicy().argon2
    ours = Hasher(params)
    raw = PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=params.hash_len,
        salt_len=params.salt_len,
        type=Type.ID,
    )
    password = "correct horse battery staple"
    stored = raw.hash(password)
    cases: dict[str, Callable[[], object]] = {
        "raw_hash_s": lambda: raw.hash(password),
        "ours_hash_s": lambda: ours.hash(password),
        "raw_verify_s": lambda: raw.verify(stored, password),
        "ours_verify_s": lambda: ours.verify(stored, password),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5 if quick else 15):  # interleaved: a busy moment hits all four alike
        for name, action in cases.items():
            samples[name].append(_median_s(action, 1))
    return {name: statistics.median(values) for name, values in samples.items()}


class _Site:
    """A journal with root and alice (operator) at the site policy's argon2 cost."""

    def __init__(self, directory: Path) -> None:
        from cellauto.records.site_payloads import SitePolicy
        from cellauto.site.accounts import add_account, bootstrap
        from cellauto.site.auth import authenticate
        from cellauto.site.password_changes import change_password
        from cellauto.site.store import open_site_store, this_terminal

        self.terminal = this_terminal()
        self.store = open_site_store(directory / "site.db", create=True)
        self.password = "a settled secret, no. 42!"
        root_pw = "the first keeper secret"
        bootstrap(
            self.store, "root", "Rita Admin", root_pw, policy=SitePolicy(), terminal=self.terminal
        )
        root = authenticate(self.store, "root", root_pw, purpose="bench", terminal=self.terminal)
        initial = "initial secret 12345"
        add_account(self.store, root, "alice", "Alice Bench", ["operator"], initial, reason="b")
        who = authenticate(
            self.store,
            "alice",
            initial,
            purpose="bench",
            terminal=self.terminal,
            password_change=True,
        )
        change_password(self.store, who, self.password)

    def sign_in(self) -> Any:
        from cellauto.site.auth import authenticate

        return authenticate(
            self.store, "alice", self.password, purpose="bench", terminal=self.terminal
        )


def _people(quick: bool) -> dict[str, float]:
    from cellauto.records.refs import Meaning, RecordRef
    from cellauto.records.site_payloads import SessionOpened
    from cellauto.site.signatures import sign_in_store

    with tempfile.TemporaryDirectory() as tmp:
        site = _Site(Path(tmp))
        try:
            sign_ins = 3 if quick else 9
            authenticate_s = _median_s(site.sign_in, sign_ins)
            alice = site.sign_in()
            with site.store.reading() as conn:
                kind, digest = conn.execute(
                    "SELECT kind, hash FROM site_records WHERE seq = 1"
                ).fetchone()
            target = RecordRef(chain="site", seq=1, hash=digest, kind=kind)
            count = 50 if quick else 300
            signatures = _rate(
                lambda: sign_in_store(site.store, alice, target, Meaning.PERFORMED, "bench"),
                count,
            )
            opened = SessionOpened(
                by="alice", terminal=site.terminal, session_id="b" * 16, name="alice", purpose="b"
            )

            def append() -> None:
                with site.store.transaction() as tx:
                    tx.append(opened)

            appends = _rate(append, count)
        finally:
            site.store.close()
        raw = _raw_inserts(Path(tmp) / "raw.db", count)
    return {
        "authenticate_s": authenticate_s,
        "signatures_per_s": signatures,
        "appends_per_s": appends,
        "raw_inserts_per_s": raw,
    }


def _raw_inserts(path: Path, count: int) -> float:
    """A bare INSERT + COMMIT per row, WAL, synchronous=FULL: one fsync each."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE t (seq INTEGER PRIMARY KEY, kind TEXT, body TEXT, prev TEXT, hash TEXT)"
    )
    body = "x" * 600  # a site record's body is 500-700 bytes
    seq = iter(range(10**9))

    def insert() -> None:
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO t VALUES (?, 'session_opened', ?, ?, ?)",
            (next(seq), body, "0" * 64, "1" * 64),
        )
        conn.execute("COMMIT")

    try:
        return _rate(insert, count)
    finally:
        conn.close()


def _site_verify(records: int) -> dict[str, float]:
    """Verify a site chain of ``records`` records (appended in commits of 1,000)."""
    from cellauto.records import Journal
    from cellauto.records.ledger_check import check_ledger
    from cellauto.records.site_payloads import SessionOpened
    from cellauto.records.site_verify import verify_site
    from cellauto.site.replay import replay_problem

    with tempfile.TemporaryDirectory() as tmp:
        site = _Site(Path(tmp))
        opened = SessionOpened(
            by="alice", terminal=site.terminal, session_id="b" * 16, name="alice", purpose="b"
        )
        try:
            left = records - 6
            while left > 0:
                with site.store.transaction() as tx:
                    for _ in range(min(1000, left)):
                        tx.append(opened)
                left -= 1000
        finally:
            site.store.close()
        with Journal(Path(tmp) / "site.db", create=False) as journal:
            conn = journal._read()
            started = time.perf_counter()
            plain = verify_site(conn, check_ledger(conn, None))
            chain_s = time.perf_counter() - started
            started = time.perf_counter()
            replayed = verify_site(conn, check_ledger(conn, None), site_replay=replay_problem)
            replay_s = time.perf_counter() - started
        if not (plain.intact and replayed.intact):
            raise RuntimeError(f"the bench's site chain does not verify: {replayed.describe()}")
        return {"records": float(plain.records), "chain_s": chain_s, "replay_s": replay_s}


# -- batches -------------------------------------------------------------------------------
def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_batches(protocol: Path, count: int) -> dict[str, object]:
    """``count`` concurrent batches of ``protocol`` in this process, simulated operators."""
    from cellauto.protocols import load_protocol
    from cellauto.sim.batches import simulate_batches
    from cellauto.sim.line import simulators

    simulators()
    load_protocol(protocol)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "j.db"
        before = _cpu_s()
        batches = simulate_batches(protocol, range(count), db=db, on_hold="stop")
        cpu = _cpu_s() - before
        db_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
    return {
        "batches": count,
        "cpu_per_batch_s": cpu / count,
        "records_per_batch": batches.records / count,
        "db_bytes_per_batch": db_bytes / count,
        "summary": batches.summary(),
    }


def _child(protocol: Path, count: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(protocol), str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _before_operator_steps(directory: Path) -> Path:
    """The CAR-T protocol as it was before operator steps, from git, in ``directory``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE_OPERATOR_STEPS}:protocols/car_t_autologous.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = directory / "car_t_autologous.py"
    path.write_text(source, encoding="utf-8")
    return path


def _batches(count: int, repetitions: int) -> tuple[dict[str, object], dict[str, object]]:
    """(with operator steps, before them): the median CPU per batch of ``repetitions``,
    the two protocols interleaved."""
    with tempfile.TemporaryDirectory() as tmp:
        before_path = _before_operator_steps(Path(tmp))
        now, before = [], []
        for _ in range(repetitions):
            now.append(_child(CAR_T, count))
            before.append(_child(before_path, count))

    def median(results: list[dict[str, object]]) -> dict[str, object]:
        results.sort(key=lambda r: float(r["cpu_per_batch_s"]))  # type: ignore[arg-type]
        return results[len(results) // 2]

    return median(now), median(before)


# -- the table -----------------------------------------------------------------------------
def run(quick: bool = False) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    a = _argon2(quick)
    rows.append(
        {
            "case": "people: argon2id hash at the site policy (t=3, 64 MiB, p=4)",
            "value": f"{a['ours_hash_s'] * 1000:.0f} ms",
            "target": "≤ 1.05x raw",
            "detail": f"Hasher {a['ours_hash_s'] * 1000:.1f} ms vs argon2-cffi "
            f"{a['raw_hash_s'] * 1000:.1f} ms = {a['ours_hash_s'] / a['raw_hash_s']:.2f}x",
            "ok": a["ours_hash_s"] <= 1.05 * a["raw_hash_s"],
        }
    )
    rows.append(
        {
            "case": "people: argon2id verify at the site policy",
            "value": f"{a['ours_verify_s'] * 1000:.0f} ms",
            "target": "≤ 1.05x raw",
            "detail": f"Hasher {a['ours_verify_s'] * 1000:.1f} ms vs argon2-cffi "
            f"{a['raw_verify_s'] * 1000:.1f} ms = {a['ours_verify_s'] / a['raw_verify_s']:.2f}x",
            "ok": a["ours_verify_s"] <= 1.05 * a["raw_verify_s"],
        }
    )
    p = _people(quick)
    bare_verify_per_s = 1 / a["raw_verify_s"]
    rows.append(
        {
            "case": "people: authenticate (sign-in, its journaled transaction)",
            "value": f"{1 / p['authenticate_s']:.1f} /s",
            "target": "",
            "detail": f"{p['authenticate_s'] * 1000:.1f} ms each; bare argon2 verify "
            f"{bare_verify_per_s:.1f} /s = {(1 / p['authenticate_s']) / bare_verify_per_s:.2f}x",
            "ok": None,
        }
    )
    rows.append(
        {
            "case": "people: sign_in_store (one signature, fsync'd, checks included)",
            "value": f"{p['signatures_per_s']:,.0f} /s",
            "target": "",
            "detail": f"{1000 / p['signatures_per_s']:.2f} ms each = "
            f"{p['signatures_per_s'] / bare_verify_per_s:.0f}x the bare argon2 verify rate "
            "(the password is checked once, at sign-in)",
            "ok": None,
        }
    )
    rows.append(
        {
            "case": "people: site appends, one per fsync'd transaction with its anchor",
            "value": f"{p['appends_per_s']:,.0f} /s",
            "target": "",
            "detail": f"bare SQLite INSERT+COMMIT, synchronous=FULL: "
            f"{p['raw_inserts_per_s']:,.0f} /s = "
            f"{p['appends_per_s'] / p['raw_inserts_per_s']:.2f}x",
            "ok": None,
        }
    )
    v = _site_verify(10_000 if quick else 100_000)
    rows.append(
        {
            "case": f"people: verify a site chain of {v['records']:,.0f} records",
            "value": f"{v['replay_s']:.2f} s",
            "target": "< 5 s",
            "detail": f"chain and anchors {v['chain_s']:.2f} s; with the projections' "
            f"replay (cellauto verify) {v['replay_s']:.2f} s",
            "ok": v["replay_s"] < 5 if not quick else None,
        }
    )
    count = 10 if quick else 100
    now, before = _batches(count, 1 if quick else 3)
    cpu_ratio = float(now["cpu_per_batch_s"]) / float(before["cpu_per_batch_s"])  # type: ignore[arg-type]
    bytes_ratio = float(now["db_bytes_per_batch"]) / float(before["db_bytes_per_batch"])  # type: ignore[arg-type]
    rows.append(
        {
            "case": f"people: {count} CAR-T batches, simulated operators vs before operator steps",
            "value": f"{cpu_ratio:.2f}x CPU",
            "target": "≤ 1.05x CPU and bytes",
            "detail": f"{float(now['cpu_per_batch_s']):.3f} vs "  # type: ignore[arg-type]
            f"{float(before['cpu_per_batch_s']):.3f} CPU-s/batch; "  # type: ignore[arg-type]
            f"{float(now['db_bytes_per_batch']) / 1000:,.0f} vs "  # type: ignore[arg-type]
            f"{float(before['db_bytes_per_batch']) / 1000:,.0f} KB journal/batch "  # type: ignore[arg-type]
            f"({bytes_ratio:.2f}x); {float(now['records_per_batch']):,.0f} vs "  # type: ignore[arg-type]
            f"{float(before['records_per_batch']):,.0f} records/batch; "  # type: ignore[arg-type]
            f"{now['summary']} / {before['summary']}",
            "ok": cpu_ratio <= 1.05 and bytes_ratio <= 1.05,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--child", nargs=2, metavar=("PROTOCOL", "N"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_batches(Path(args.child[0]), int(args.child[1]))))
        return
    for row in run(quick=args.quick):
        ok = "" if row["ok"] is None else ("yes" if row["ok"] else "NO")
        print(f"{row['case']:<72} {row['value']:>14}  {row['target']:<22} {ok:<4} {row['detail']}")


if __name__ == "__main__":
    main()
