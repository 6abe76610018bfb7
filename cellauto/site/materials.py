"""The site's acts on materials and lots: define, receive, release, reject, adjust.

Each act is one site transaction: the record, its projection (rows of ``materials`` or
``lots``) and, for QA's release or rejection, the signature of that record (meaning
``released`` / ``rejected``), committed together or not at all. Who may do what
(:mod:`cellauto.site.roles`): ``material.define`` a supervisor or QA, ``lot.receive`` an
operator or supervisor, ``lot.release`` (release and reject) QA only, ``lot.adjust`` a
supervisor. A person never releases a lot they received (segregation of duties, EU GMP
Annex 11 §12 and Part 211.84).

A refusal is journaled as a ``lot_act_refused`` site record (and, when the signature was
the refused part, the ``signature_refused`` record beside it) in a transaction of its
own, after the act's own writes rolled back; then :class:`~cellauto.errors.MaterialRefusedError`
or :class:`~cellauto.errors.PermissionRefusedError` is raised (exit 2 at the CLI). Input that
cannot even form a record (a material name too long, an empty reason) is refused with
:class:`~cellauto.errors.BadInputError` before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Literal, NamedTuple, TypeVar

from pydantic import ValidationError

from cellauto.errors import BadInputError, MaterialRefusedError, PermissionRefusedError
from cellauto.records.refs import SITE_CHAIN, Meaning, RecordRef, SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_mat import (
    LOT_ID_PATTERN,
    LotActRefused,
    LotAdjusted,
    LotReceived,
    LotRejected,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Storage,
    Unit,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._acts import Refused, actor_problem, run_act
from cellauto.site._acts import today as site_today
from cellauto.site.auth import Authenticated
from cellauto.site.materials_read import LotRow, read_lot, read_material
from cellauto.site.roles import Permission
from cellauto.site.signatures import SignatureRefusal, sign

__all__ = [
    "Act",
    "Decision",
    "adjust_lot",
    "default_lot_id",
    "define_material",
    "receive_lot",
    "reject_lot",
    "release_lot",
]

Act = Literal["define", "receive", "release", "reject", "adjust"]
T = TypeVar("T")

_VERB: Mapping[Act, str] = {
    "define": "define materials",
    "receive": "receive lots",
    "release": "release lots",
    "reject": "reject lots",
    "adjust": "adjust lots",
}


class Decision(NamedTuple):
    """QA's decision on a lot: its ``lot_released``/``lot_rejected`` record and signature."""

    record: SiteRef
    signature: SiteRef


def _payload(make: Callable[[], T], what: str) -> T:
    """A record model built from the act's input, or bad input named (nothing written)."""
    try:
        return make()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise BadInputError(f"{what} refused, nothing written: {problems}") from None


def default_lot_id(material: str, supplier_lot: str) -> str:
    """``"<material-slug>/<supplier lot>"``: the material lowercased, spaces as ``-``."""
    slug = re.sub(r"\s+", "-", material.strip().lower())
    return f"{slug}/{supplier_lot.strip()}"


class _Acting(NamedTuple):
    who: Authenticated
    act: Act
    key: str
    """The lot (or, for ``define``, the material) the act names."""
    reason: str

    def refused(
        self,
        cause: str,
        message: str,
        detail: str = "",
        error: type[BadInputError] = MaterialRefusedError,
        extra: Sequence[SitePayload] = (),
    ) -> Refused:
        record = LotActRefused(
            by=self.who.account.name,
            reason=self.reason,
            terminal=self.who.terminal,
            lot_id=self.key,
            act=self.act,
            cause=cause,
            detail=detail or message,
        )
        return Refused([record, *extra], error(message))


def _check_actor(tx: SiteTx, acting: _Acting, permission: Permission) -> None:
    """The acting person, re-confirmed under the write lock, holds ``permission``."""
    problem = actor_problem(tx, acting.who, permission, _VERB[acting.act])
    if problem is not None:
        raise acting.refused(*problem, error=PermissionRefusedError)


def _lot(tx: SiteTx, acting: _Acting) -> LotRow:
    lot = read_lot(tx.conn, acting.key)
    if lot is None:
        raise acting.refused(
            "unknown_lot",
            f"no lot {acting.key!r}; `cellauto materials list --status all` shows the lots",
        )
    return lot


# -- define -----------------------------------------------------------------------------
def define_material(
    store: SiteStore,
    who: Authenticated,
    material: str,
    *,
    material_kind: MaterialKindName,
    unit: Unit,
    storage: Storage,
    attributes: Iterable[str] = (),
    description: str = "",
    reason: str = "",
) -> SiteRef:
    """Define a material (by the name bills of materials give it); ``attributes``: what
    every lot of it must carry before QA may release it (``titer_tu_per_ml``)."""
    wanted = [a.strip() for a in attributes]
    if any(not a for a in wanted) or len(set(wanted)) != len(wanted):
        raise BadInputError(f"attributes {wanted} of {material!r}: each named once, not empty")
    record = _payload(
        lambda: MaterialDefined(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            material=material,
            material_kind=material_kind,
            unit=unit,
            storage=storage,
            attributes=wanted,
            description=description,
        ),
        f"material {material!r}",
    )
    acting = _Acting(who, "define", material, reason)

    def body(tx: SiteTx) -> SiteRef:
        _check_actor(tx, acting, Permission.MATERIAL_DEFINE)
        if read_material(tx.conn, material) is not None:
            raise acting.refused(
                "material_exists",
                f"material {material!r} is defined already; `cellauto materials list` shows it",
            )
        return tx.append(record)

    return run_act(store, body)


# -- receive ----------------------------------------------------------------------------
def receive_lot(
    store: SiteStore,
    who: Authenticated,
    material: str,
    *,
    supplier: str,
    supplier_lot: str,
    expires_on: date,
    quantity_milli: int,
    received_on: date | None = None,
    attributes: Mapping[str, float | str] | None = None,
    lot_id: str | None = None,
    reason: str = "",
) -> SiteRef:
    """Receive a lot of ``material`` into quarantine; ``quantity_milli`` in milli-units of
    the material's unit; ``received_on`` default today (site time zone); ``lot_id``
    default :func:`default_lot_id`."""
    key = lot_id or default_lot_id(material, supplier_lot)
    if not re.match(LOT_ID_PATTERN, key):
        raise BadInputError(
            f"lot id {key!r} is not 1-80 letters, digits and . _ / - (starting with a letter"
            " or digit); give --lot-id ID"
        )
    acting = _Acting(who, "receive", key, reason)

    def body(tx: SiteTx) -> SiteRef:
        _check_actor(tx, acting, Permission.LOT_RECEIVE)
        day = received_on or site_today(tx)
        if read_material(tx.conn, material) is None:
            raise acting.refused(
                "unknown_material",
                f"material {material!r} is not defined; a supervisor or QA defines it with"
                " `cellauto materials define`",
            )
        if read_lot(tx.conn, key) is not None:
            raise acting.refused(
                "lot_exists", f"lot {key!r} was received already; give another --lot-id"
            )
        if day > site_today(tx):
            raise acting.refused("received_in_future", f"received date {day} is in the future")
        if expires_on < day:
            raise acting.refused(
                "expiry_before_receipt", f"lot {key!r} expires {expires_on}, before {day}"
            )
        if quantity_milli <= 0:
            raise acting.refused(
                "quantity", f"lot {key!r}: quantity {quantity_milli / 1000:g} must be above 0"
            )
        record = _payload(
            lambda: LotReceived(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                lot_id=key,
                material=material,
                supplier=supplier,
                supplier_lot=supplier_lot,
                received_on=day,
                expires_on=expires_on,
                quantity_milli=quantity_milli,
                attributes=dict(attributes or {}),
            ),
            f"lot {key!r}",
        )
        return tx.append(record)

    return run_act(store, body)


# -- release and reject -----------------------------------------------------------------
def _decide(
    tx: SiteTx, acting: _Acting, record: LotReleased | LotRejected, meaning: Meaning
) -> Decision:
    ref = tx.append(record)
    target = RecordRef(chain=SITE_CHAIN, seq=ref.seq, hash=ref.hash, kind=record.kind.value)
    verb = "release" if meaning == Meaning.RELEASED else "reject"
    statement = (
        f"I {verb} lot {acting.key} ("
        + ("for use in manufacturing" if verb == "release" else "it may never be used")
        + ")"
    )
    try:
        signature = sign(
            tx, acting.who, target, meaning, statement, permission=Permission.LOT_RELEASE
        )
    except SignatureRefusal as refusal:
        raise acting.refused(
            "signature",
            str(refusal.error),
            error=type(refusal.error),
            extra=[refusal.record],
        ) from None
    return Decision(ref, signature)


def release_lot(store: SiteStore, who: Authenticated, lot_id: str, *, reason: str = "") -> Decision:
    """QA releases a lot in quarantine for use: unexpired today, every attribute its
    material requires present, and not received by the releaser."""
    acting = _Acting(who, "release", lot_id, reason)

    def body(tx: SiteTx) -> Decision:
        _check_actor(tx, acting, Permission.LOT_RELEASE)
        lot = _lot(tx, acting)
        if lot.status != "quarantine":
            raise acting.refused(
                "not_in_quarantine", f"lot {lot_id!r} is {lot.status}, not in quarantine"
            )
        if lot.received_by == who.account.name:
            raise acting.refused(
                "received_by_releaser",
                f"{who.account.name} received lot {lot_id!r} and may not release it;"
                " another QA person must",
                error=PermissionRefusedError,
            )
        today = site_today(tx)
        if lot.expires_on < today:
            raise acting.refused(
                "expired", f"lot {lot_id!r} expired on {lot.expires_on} (today is {today})"
            )
        material = read_material(tx.conn, lot.material)
        missing = [a for a in (material.attributes if material else ()) if a not in lot.attributes]
        if missing:
            raise acting.refused(
                "missing_attribute",
                f"lot {lot_id!r} lacks {', '.join(missing)}, which material {lot.material!r}"
                " requires before release; reject it and receive it again with --attr NAME=VALUE",
            )
        record = LotReleased(
            by=who.account.name, reason=reason, terminal=who.terminal, lot_id=lot_id
        )
        return _decide(tx, acting, record, Meaning.RELEASED)

    return run_act(store, body)


def reject_lot(store: SiteStore, who: Authenticated, lot_id: str, *, cause: str) -> Decision:
    """QA rejects a lot (in quarantine or released): it may never be used. ``cause`` is
    required and is the record's reason too."""
    if not cause.strip():
        raise BadInputError(f"rejecting lot {lot_id!r} needs a reason; nothing was written")
    acting = _Acting(who, "reject", lot_id, cause)

    def body(tx: SiteTx) -> Decision:
        _check_actor(tx, acting, Permission.LOT_RELEASE)
        lot = _lot(tx, acting)
        if lot.status == "rejected":
            raise acting.refused("rejected_already", f"lot {lot_id!r} is rejected already")
        record = LotRejected(
            by=who.account.name, reason=cause, terminal=who.terminal, lot_id=lot_id, cause=cause
        )
        return _decide(tx, acting, record, Meaning.REJECTED)

    return run_act(store, body)


# -- adjust -----------------------------------------------------------------------------
def adjust_lot(
    store: SiteStore, who: Authenticated, lot_id: str, *, delta_milli: int, cause: str
) -> SiteRef:
    """A supervisor corrects a lot's remaining quantity by ``delta_milli`` (a spill, a
    physical count); never below zero. ``cause`` is required and is the record's reason."""
    if not cause.strip():
        raise BadInputError(f"adjusting lot {lot_id!r} needs a reason; nothing was written")
    acting = _Acting(who, "adjust", lot_id, cause)

    def body(tx: SiteTx) -> SiteRef:
        _check_actor(tx, acting, Permission.LOT_ADJUST)
        lot = _lot(tx, acting)
        if delta_milli == 0:
            raise acting.refused(
                "quantity", f"an adjustment of lot {lot_id!r} by 0 changes nothing"
            )
        if lot.remaining_milli + delta_milli < 0:
            raise acting.refused(
                "quantity",
                f"lot {lot_id!r} has {lot.remaining_milli / 1000:g} left; it cannot lose"
                f" {-delta_milli / 1000:g}",
            )
        record = LotAdjusted(
            by=who.account.name,
            reason=cause,
            terminal=who.terminal,
            lot_id=lot_id,
            delta_milli=delta_milli,
            cause=cause,
        )
        return tx.append(record)

    return run_act(store, body)
