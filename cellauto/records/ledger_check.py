"""Check the journal's ledger: its chain, every signature, its signed head, its times.

The result is a :class:`LedgerCheck`: the problems found (each naming the ledger
entry and, when known, the run) and, per run, the *trusted* marks - the entries
whose hash and signature verify against the trusted public key - that
:mod:`cellauto.records.verify` holds each run's records against, and the trusted
``site_anchor`` entries (:attr:`LedgerCheck.site`) that
:mod:`cellauto.records.site_verify` holds the site chain against. A site anchor never
counts as a mark of a run: a ``site_anchor`` naming a run, or a run entry naming the
site chain (``"site"``), is a ledger problem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from cellauto.records import _sqlite
from cellauto.records._sqlite import LedgerRow
from cellauto.records.backend import Conn
from cellauto.records.canonical import canonical_bytes
from cellauto.records.kinds import GENESIS_HASH
from cellauto.records.ledger import ENTRY_DOMAIN, LedgerEntryBody, LedgerKind, head_message
from cellauto.records.refs import SITE_CHAIN
from cellauto.records.signing import PublicKey, default_key_path, load_public_key, public_key_path

__all__ = ["LedgerCheck", "LedgerProblem", "Mark", "RunMarks", "TrustedKey", "check_ledger"]

_BODY_FIELDS = tuple(LedgerEntryBody.model_fields)


class TrustedKey(BaseModel):
    """The public key signatures are checked against, and how far it can be trusted."""

    model_config = ConfigDict(frozen=True)

    hex: str | None
    """Raw key (hex); None when no key was available at all."""
    fingerprint: str | None
    source: str
    """A file path, or "the journal's own copy"."""
    external: bool
    """True when the key came from a file outside the journal."""


class Mark(NamedTuple):
    """A verified ledger entry about one run: record ``run_seq`` had hash ``run_hash``."""

    entry_seq: int
    kind: LedgerKind
    run_seq: int
    run_hash: str
    sealed_wall_time_ns: int | None


def marks_problem(
    marks: Sequence[Mark],
    stored: Mapping[int, str],
    last_seq: int,
    *,
    subject: str,
    verb: Callable[[Mark], str],
    noun: str,
) -> tuple[int, str] | None:
    """Hold a chain's stored hashes (``stored``: seq -> hash of the marked records that
    exist; ``last_seq``: its last record) against its verified ledger marks, in order:
    (first bad seq, why) for a marked record that is missing (the chain's end was cut)
    or whose hash differs (a record up to it changed and the chain recomputed).
    ``subject`` and ``verb`` word it ("the run was" + "sealed"; "the site chain was" +
    "anchored"), ``noun`` names a record of the chain ("a record", "a site record")."""
    covered = -1
    for mark in marks:
        did = verb(mark)
        if mark.run_seq not in stored:
            first = last_seq + 1
            missing = (
                f"record {first} is"
                if first == mark.run_seq
                else f"records {first} to {mark.run_seq} are"
            )
            return first, (
                f"{missing} missing: {subject} {did} at record {mark.run_seq} (ledger "
                f"entry {mark.entry_seq}) — its last records were deleted"
            )
        if stored[mark.run_seq] != mark.run_hash:
            first = covered + 1
            return first, (
                f"record {mark.run_seq}'s hash is not the one {did} in ledger entry "
                f"{mark.entry_seq}: {noun} from {first} to {mark.run_seq} was changed and the "
                "chain after it recomputed (or records were deleted or inserted and the rest "
                "rewritten)"
            )
        covered = max(covered, mark.run_seq)
    return None


class RunMarks(NamedTuple):
    begun: Mark | None
    anchors: list[Mark]
    """Anchors and the seal, in ledger order."""
    sealed: Mark | None


class LedgerProblem(NamedTuple):
    entry_seq: int
    run_id: str | None
    """The run the entry names (as stored: it may be forged), None for the ledger as a whole."""
    reason: str
    run_seq: int | None = None
    """The record of that run the entry names (as stored)."""


class LedgerCheck(BaseModel):
    """The verdict on the ledger as a whole."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    entries: int
    head_hash: str | None
    """Hash of the last entry (what to keep to detect a rollback); None if empty."""
    key: TrustedKey
    problems: list[LedgerProblem]
    marks: dict[str, RunMarks]
    site: list[Mark] = []
    """The verified ``site_anchor`` entries, in ledger order (never in ``marks``)."""
    hashes: list[str]
    """Every entry's stored hash, in order (for ``--head``)."""

    @property
    def intact(self) -> bool:
        return not self.problems

    def marks_of(self, run_id: str) -> RunMarks:
        return self.marks.get(run_id, RunMarks(None, [], None))

    def problems_of(self, run_id: str) -> list[LedgerProblem]:
        return [p for p in self.problems if p.run_id == run_id]


def trusted_key(conn: Conn, public_key: Path | None) -> tuple[PublicKey | None, str]:
    """The key to check against: ``public_key``, the default ``.pub``, else the journal's copy."""
    if public_key is not None:
        return load_public_key(public_key), ""
    default_pub = public_key_path(default_key_path())
    if default_pub.is_file():
        return load_public_key(default_pub), ""
    stored = _sqlite.stored_public_key(conn)
    if stored is None:
        return None, "no public key: the journal holds none and there is no .pub file"
    return PublicKey.from_hex(stored, "the journal's own copy of its public key"), ""


def check_ledger(
    conn: Conn, public_key: Path | None = None, head: str | None = None
) -> LedgerCheck:
    """Check the whole ledger; ``head`` is an externally kept ledger head hash."""
    key, missing = trusted_key(conn, public_key)
    problems: list[LedgerProblem] = []
    stored = _sqlite.stored_public_key(conn)
    external = key is not None and key.source != "the journal's own copy of its public key"
    if key is not None and external and stored is not None and stored != key.hex:
        problems.append(
            LedgerProblem(
                0,
                None,
                f"the journal's public key (fingerprint {_fingerprint(stored)}) is not the "
                f"trusted key {key.fingerprint} from {key.source}: the key stored in the "
                "journal was replaced, or the journal is signed by another site's key "
                "(give that key with --public-key)",
            )
        )
    walker = _Walker(key)
    for row in _sqlite.ledger_rows(conn):
        walker.add(row)
    problems.extend(walker.problems)
    if key is None and walker.hashes:
        problems.append(LedgerProblem(0, None, f"signatures cannot be checked: {missing}"))
    problems.extend(_check_head(conn, walker, key))
    if head is not None and head not in walker.trusted_hashes:
        problems.append(
            LedgerProblem(
                walker.last_seq,
                None,
                f"the ledger head {head} you kept is not in this ledger: the file was rolled "
                "back to an older copy, or replaced",
            )
        )
    return LedgerCheck(
        entries=len(walker.hashes),
        head_hash=walker.hashes[-1] if walker.hashes else None,
        key=TrustedKey(
            hex=None if key is None else key.hex,
            fingerprint=None if key is None else key.fingerprint,
            source="nowhere" if key is None else key.source,
            external=external,
        ),
        problems=problems,
        marks=walker.marks,
        site=walker.site,
        hashes=walker.hashes,
    )


def _fingerprint(hex_key: str) -> str:
    try:
        return hashlib.sha256(bytes.fromhex(hex_key)).hexdigest()[:16]
    except ValueError:
        return "(not a key)"


def _name(row: LedgerRow) -> str:
    if row.kind == LedgerKind.SITE_ANCHOR.value and row.run_id == SITE_CHAIN:
        return f"ledger entry {row.seq} (site_anchor at site record {row.run_seq})"
    return f"ledger entry {row.seq} ({row.kind} of run {row.run_id} at record {row.run_seq})"


class _Walker:
    """Walks the ledger rows in seq order, collecting problems and trusted marks."""

    def __init__(self, key: PublicKey | None) -> None:
        self._key = key
        self.problems: list[LedgerProblem] = []
        self.marks: dict[str, RunMarks] = {}
        self.site: list[Mark] = []
        self.hashes: list[str] = []
        self.trusted_hashes: set[str] = set()
        self.last_seq = -1
        self._prev_hash = GENESIS_HASH
        self._wall_ns = 0

    def add(self, row: LedgerRow) -> None:
        problem = self._check(row)
        if problem is not None:
            run_seq = row.run_seq if isinstance(row.run_seq, int) else None
            self.problems.append(LedgerProblem(row.seq, _text(row.run_id), problem, run_seq))
        self.hashes.append(str(row.hash))
        self.last_seq = row.seq if isinstance(row.seq, int) else self.last_seq + 1
        self._prev_hash = str(row.hash)

    def _check(self, row: LedgerRow) -> str | None:
        expected = self.last_seq + 1
        if row.seq != expected:
            if isinstance(row.seq, int) and row.seq > expected:
                missing = (
                    f"entry {expected} is"
                    if row.seq == expected + 1
                    else f"entries {expected} to {row.seq - 1} are"
                )
                # the chain check below still runs for this entry
                self.problems.append(
                    LedgerProblem(
                        expected,
                        None,
                        f"ledger {missing} missing: deleted (a run's begin, anchors or seal "
                        "went with them)",
                    )
                )
            else:
                return f"{_name(row)}: seq {row.seq!r} out of order"
        if hashlib.sha256(str(row.body).encode()).hexdigest() != row.hash:
            return f"{_name(row)}: its hash does not match its content — the entry was edited"
        parsed = _parse(row.body)
        if parsed is None or canonical_bytes(parsed[0]) != str(row.body).encode():
            return f"{_name(row)}: not a ledger entry body — the entry was edited"
        body = parsed[1]
        columns = row._asdict()
        for column in _BODY_FIELDS:
            signed_value = getattr(body, column)
            if signed_value != columns[column]:
                return (
                    f"{_name(row)}: column {column} is {columns[column]!r} but the signed "
                    f"body says {signed_value!r} — the row was edited"
                )
        key = self._key
        if key is not None and not key.verifies(row.signature, ENTRY_DOMAIN + row.hash.encode()):
            return (
                f"{_name(row)}: its signature does not verify with the trusted key — the "
                "entry was forged or rewritten by someone without the signing key"
            )
        signed = key is not None
        problem: str | None = None
        if row.prev_hash != self._prev_hash:
            problem = (
                f"{_name(row)} does not follow entry {row.seq - 1}: entries before it were "
                "deleted, inserted or reordered"
            )
        elif row.wall_time_ns < self._wall_ns:
            problem = (
                f"{_name(row)}: its wall time is before entry {row.seq - 1}'s — the "
                "ledger's times were changed"
            )
        self._wall_ns = max(self._wall_ns, row.wall_time_ns)
        if signed:
            self.trusted_hashes.add(row.hash)
            self._mark(row, body)
        return problem

    def _mark(self, row: LedgerRow, body: LedgerEntryBody) -> None:
        kind = body.kind
        mark = Mark(row.seq, kind, body.run_seq, body.run_hash, body.sealed_wall_time_ns)
        run_id = body.run_id
        if (kind is LedgerKind.SITE_ANCHOR) != (run_id == SITE_CHAIN):
            self.problems.append(LedgerProblem(row.seq, run_id, _misnamed(row), row.run_seq))
            return
        if kind is LedgerKind.SITE_ANCHOR:
            self.site.append(mark)
            return
        marks = self.marks.get(run_id, RunMarks(None, [], None))
        if kind is LedgerKind.RUN_BEGUN:
            if marks.begun is not None:
                self.problems.append(
                    LedgerProblem(row.seq, run_id, f"{_name(row)}: the run was begun twice")
                )
            marks = marks._replace(begun=mark)
        else:
            marks.anchors.append(mark)
            if kind is LedgerKind.RUN_SEALED:
                marks = marks._replace(sealed=mark)
        self.marks[run_id] = marks


def _misnamed(row: LedgerRow) -> str:
    if row.kind == LedgerKind.SITE_ANCHOR.value:
        return (
            f"{_name(row)}: a site anchor names the site chain ({SITE_CHAIN!r}), never a run "
            "— the entry was written by something other than cellauto"
        )
    return (
        f"{_name(row)}: {SITE_CHAIN!r} is the site chain's name and no run may be called so "
        "— the entry was written by something other than cellauto"
    )


def _check_head(conn: Conn, walker: _Walker, key: PublicKey | None) -> list[LedgerProblem]:
    head = _sqlite.ledger_head(conn)
    last = walker.last_seq
    if head is None:
        if not walker.hashes and _sqlite.stored_public_key(conn) is not None:
            return [
                LedgerProblem(
                    0,
                    None,
                    "the ledger is empty, but the journal holds the public key written with "
                    "its first entry: every entry and the head were deleted",
                )
            ]
        if walker.hashes:
            return [LedgerProblem(last, None, "the signed ledger head is missing: it was deleted")]
        return []
    if key is not None and not key.verifies(head.signature, head_message(head.seq, head.hash)):
        return [
            LedgerProblem(
                head.seq if isinstance(head.seq, int) else last,
                None,
                "the ledger head's signature does not verify with the trusted key — the head "
                "was rewritten by someone without the signing key",
            )
        ]
    if not walker.hashes:
        return [
            LedgerProblem(
                0,
                None,
                f"every ledger entry (0 to {head.seq}) was deleted: the head names "
                f"entry {head.seq}",
            )
        ]
    if head.seq > last:
        first = last + 1
        what = f"entry {first} is" if first == head.seq else f"entries {first} to {head.seq} are"
        return [
            LedgerProblem(
                first,
                None,
                f"ledger {what} missing: the signed head names entry {head.seq} — "
                "the ledger's last entries were deleted",
            )
        ]
    if head.seq != last or head.hash != walker.hashes[-1]:
        return [
            LedgerProblem(
                head.seq,
                None,
                f"the signed ledger head names entry {head.seq} with hash {head.hash[:16]}…, "
                f"but the ledger ends at entry {last} with another hash: entries were added, "
                "changed or cut after the head was signed",
            )
        ]
    return []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _parse(body: object) -> tuple[dict[str, object], LedgerEntryBody] | None:
    """The entry body as parsed JSON (for the canonical-form check) and as its model."""
    try:
        text = str(body)
        return orjson.loads(text), LedgerEntryBody.model_validate_json(text)
    except (orjson.JSONDecodeError, ValidationError):
        return None
