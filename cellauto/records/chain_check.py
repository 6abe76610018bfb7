"""Rules 1-5 of :mod:`cellauto.records.verify` over the rows of one hash chain.

A chain is a run's records (:class:`RunRows`) or the site chain
(:class:`cellauto.records.site_verify.SiteRows`): the same checks run over either
through a :class:`RowSource`, which says where the rows are and which payload model
each record kind has. :func:`check_rows` walks the rows in seq order and names the
first record that was changed, removed or added, and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from cellauto.records import _sqlite
from cellauto.records._sqlite import StoredRow
from cellauto.records.backend import Conn
from cellauto.records.canonical import record_hash
from cellauto.records.kinds import GENESIS_HASH, KIND_VALUES, RecordKind
from cellauto.records.payloads import PAYLOAD_TYPES

__all__ = ["ChainWalk", "RowChecked", "RowSource", "RunRows", "check_rows", "record_name"]

_dumps = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS
_COLUMNS = ("run_id", "seq", "kind", "process_time_s", "wall_time_ns", "prev_hash")
_Problem = tuple[int, str]


def record_name(seq: int, kind: object) -> str:
    return f"record {seq} ({kind})"


_name = record_name


class RowSource(Protocol):
    """The stored rows of one hash chain: a run's (:class:`RunRows`) or the site's.

    The nine rules above (1-5 here, 6-9 against the ledger) hold for every chain whose
    bodies are :func:`~cellauto.records.canonical.record_body` bodies with ``run_id =
    chain``; a source tells where its rows are and which payload model each kind has.
    """

    @property
    def chain(self) -> str:
        """The ``run_id`` every body of the chain carries (``"site"`` for the site's)."""
        ...

    def stored_rows(self) -> Iterator[StoredRow]:
        """Every row, in seq order."""
        ...

    def seqs_where(self, column: str, value: str) -> list[int]:
        """Seqs of the rows whose ``hash`` or ``prev_hash`` column equals ``value``."""
        ...

    def hashes_at(self, seqs: list[int]) -> dict[int, str]:
        """The stored hash of each row at ``seqs`` (absent seqs left out)."""
        ...

    def payload_model(self, kind: str) -> type[BaseModel] | None:
        """The payload model of a record kind; None if ``kind`` is not one of the chain's."""
        ...


class RunRows:
    """The rows of one run in ``records``."""

    def __init__(self, conn: Conn, run_id: str) -> None:
        self._conn = conn
        self.chain = run_id

    def stored_rows(self) -> Iterator[StoredRow]:
        return _sqlite.stored_rows(self._conn, self.chain)

    def seqs_where(self, column: str, value: str) -> list[int]:
        return _sqlite.seqs_where(self._conn, self.chain, column, value)

    def hashes_at(self, seqs: list[int]) -> dict[int, str]:
        return _sqlite.hashes_at(self._conn, self.chain, seqs)

    def payload_model(self, kind: str) -> type[BaseModel] | None:
        return None if KIND_VALUES.get(kind) is None else PAYLOAD_TYPES[RecordKind(kind)]


class ChainWalk(NamedTuple):
    """What :func:`check_rows` found: how many rows, the last one, the first problem."""

    records: int
    last: StoredRow | None
    problem: tuple[int, str] | None
    """(the first record changed, removed or added; why, in words), None when intact."""


RowChecked = Callable[[StoredRow, BaseModel], None]
"""Called with each row that passed, and its payload as its model (parsed once)."""


def check_rows(
    source: RowSource, sealed_at: int | None = None, *, on_row: RowChecked | None = None
) -> ChainWalk:
    """Check a chain's rows by rules 1-5 (``sealed_at``: its sealed last seq, if any).

    ``on_row`` gets every row up to the first problem, with its payload model.
    """
    checker = _Checker(source, sealed_at, on_row)
    count = 0
    prev: StoredRow | None = None
    problem: _Problem | None = None
    for row in source.stored_rows():
        count += 1
        if problem is None:
            problem = checker.check(row, prev)
        prev = row
    return ChainWalk(count, prev, problem)


class _Checker:
    """Checks one row against its predecessor; looks further only to explain a break."""

    def __init__(
        self, source: RowSource, sealed_at: int | None, on_row: RowChecked | None = None
    ) -> None:
        self._source = source
        self._sealed_at = sealed_at
        self._on_row = on_row

    def check(self, row: StoredRow, prev: StoredRow | None) -> _Problem | None:
        expected = 0 if prev is None else prev.seq + 1
        name = _name(row.seq, row.kind)
        sealed_at = self._sealed_at
        if row.seq != expected and (sealed_at is None or expected <= sealed_at):
            if row.seq < expected:
                return row.seq, f"{name}: seq {row.seq} is not a journal seq (seqs start at 0)"
            if expected == 0:
                return 0, f"record 0 is missing: the stored records start at {row.seq}"
            return expected, (
                f"record {expected} is missing: the stored records jump from {expected - 1} "
                f"to {row.seq} — records were deleted"
            )
        if sealed_at is not None and row.seq > sealed_at:
            return row.seq, f"{name} was added after the run was sealed at record {sealed_at}"
        if not isinstance(row.body, str) or record_hash(row.body.encode()) != row.hash:
            return (
                row.seq,
                f"{name}: stored hash does not match its content — the record was edited",
            )
        parsed = _parse(row.body)
        if parsed is None:
            return row.seq, f"{name}: the stored body is not a record body — the record was edited"
        raw, body = parsed
        # a parsed body holds no NaN or infinity (orjson refuses them), so its canonical
        # form is plain sorted-keys orjson (canonical_bytes' slow path is never needed)
        if _dumps(raw, option=_SORT_KEYS) != row.body.encode():
            return row.seq, f"{name}: the stored body is not in canonical form — it was rewritten"
        expected_prev = GENESIS_HASH if prev is None else prev.hash
        if body.prev_hash != expected_prev:
            return self._explain_break(row, body, prev)
        return self._check_columns(row, body) or self._check_payload(row, body)

    def _explain_break(self, row: StoredRow, body: _Envelope, prev: StoredRow | None) -> _Problem:
        name = _name(row.seq, row.kind)
        linked = [s for s in self._seqs("hash", body.prev_hash) if s != row.seq]
        if linked and linked[0] < row.seq - 1:
            first = linked[0] + 1
            return first, (
                f"record {first} was inserted: record {row.seq} chains to record {linked[0]}, "
                f"so records {first} to {row.seq - 1} are not part of the original chain"
            )
        if linked and linked[0] > row.seq:
            return row.seq, (
                f"{name} is out of order: it chains to record {linked[0]} — records were reordered"
            )
        problem = self._check_seq(row, body)
        if problem is not None:
            return problem
        expected_prev = GENESIS_HASH if prev is None else prev.hash
        if [s for s in self._seqs("prev_hash", expected_prev) if s != row.seq]:
            after = "starts the chain" if prev is None else f"follows record {prev.seq}"
            return row.seq, (
                f"{name} is out of place: another record {after} — records were reordered "
                "or replaced"
            )
        if prev is None:
            return 0, f"{name}: it does not start from the genesis hash — the record was replaced"
        return prev.seq, (
            f"{_name(prev.seq, prev.kind)} was changed after record {row.seq} was written: "
            f"record {row.seq} chains to a different hash — the record was edited and its hash "
            f"recomputed (or the record that followed it was removed and the rest rewritten)"
        )

    def _check_seq(self, row: StoredRow, body: _Envelope) -> _Problem | None:
        if body.seq == row.seq:
            return None
        why = (
            "earlier records were deleted and the rest renumbered"
            if body.seq > row.seq
            else "a record was inserted or records were reordered"
        )
        return row.seq, (
            f"{_name(row.seq, row.kind)}: stored as seq {row.seq} but its body says seq "
            f"{body.seq!r} — {why}"
        )

    def _check_columns(self, row: StoredRow, body: _Envelope) -> _Problem | None:
        problem = self._check_seq(row, body)
        if problem is not None:
            return problem
        columns = {"run_id": self._source.chain, **row._asdict()}
        for column in _COLUMNS:
            hashed = getattr(body, column)
            if hashed != columns[column]:
                return row.seq, (
                    f"{_name(row.seq, row.kind)}: column {column} is {columns[column]!r} but the "
                    f"hashed body says {hashed!r} — the row was edited"
                )
        if self._source.payload_model(body.kind) is None:
            return row.seq, f"{_name(row.seq, row.kind)}: {body.kind!r} is not a record kind"
        return None

    def _seqs(self, column: str, value: str) -> list[int]:
        return self._source.seqs_where(column, value)

    def _check_payload(self, row: StoredRow, body: _Envelope) -> _Problem | None:
        """The payload must be its kind's model: a journal is never misread."""
        model = self._source.payload_model(body.kind)
        if model is None:  # unreachable: _check_columns checked the kind first
            return row.seq, f"{_name(row.seq, row.kind)}: {body.kind!r} is not a record kind"
        try:
            payload = model.model_validate(body.payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "payload"
            return row.seq, (
                f"{_name(row.seq, row.kind)}: its payload is not a valid {body.kind} record "
                f"({where}: {first['msg']}) — it was written by something other than this "
                "cellauto, or edited"
            )
        if self._on_row is not None:
            self._on_row(row, payload)
        return None


class _Envelope(BaseModel):
    """A record body as stored: the seven hashed fields, types checked, nothing coerced."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    run_id: str
    seq: int
    kind: str
    process_time_s: float
    wall_time_ns: int
    prev_hash: str
    payload: dict[str, Any]


def _parse(body: str) -> tuple[dict[str, Any], _Envelope] | None:
    """The body as parsed JSON (for the canonical-form check) and as an envelope."""
    try:
        parsed = orjson.loads(body)
        return parsed, _Envelope.model_validate(parsed)
    except (orjson.JSONDecodeError, ValidationError):
        return None
