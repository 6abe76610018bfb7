"""The wording of a run's review records on the site chain (deviations, QC results, the
disposition), and which of them are corrections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.records.models import utc_from_epoch_ns
from cellauto.records.refs import SignatureShown
from cellauto.records.site_payload_base import SiteKind, SitePayload
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_mat import LotAdjusted
from cellauto.records.site_payloads_review import (
    BatchDisposed,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    DeviationWithdrawn,
    LimsSchemaDefined,
    QcResultEntered,
    QcResultInvalidated,
    QcResultsImported,
    QcResultVerified,
    ReviewActRefused,
)
from cellauto.records.wording import signed_at_local
from cellauto.review.report.model import Correction, SignatureLine
from cellauto.site._chain import stored_site_records

__all__ = ["correction_text", "describe_review", "lot_adjustments", "signature_line"]


def describe_review(p: SitePayload) -> str:
    """One line for a review record of a run."""
    match p:
        case DeviationRaised():
            return f"{p.deviation_id} raised ({p.origin}): {p.title} — {p.description}"
        case DeviationClassified():
            again = f" (was {p.previous.value})" if p.previous is not None else ""
            klass = p.classification.value
            return f"{p.deviation_id} classified {klass}{again}: {p.impact_assessment}"
        case DeviationInvestigated():
            return (
                f"{p.deviation_id} investigated: root cause ({p.category.value}) {p.root_cause};"
                f" product impact {p.product_impact.value}: {p.impact_detail}"
            )
        case DeviationClosed():
            capa = f"CAPA {p.capa}" if p.capa else f"no CAPA: {p.no_capa_reason or p.reason}"
            return f"{p.deviation_id} closed ({capa}): {p.conclusion}"
        case DeviationWithdrawn():
            return f"{p.deviation_id} withdrawn: {p.cause}"
        case QcResultEntered():
            r = p.result
            return (
                f"{r.result_id} entered: {r.test} = {p.observed} {r.unit} ({p.verdict}); method"
                f" {r.method}, analyst {r.analyst}, tested {r.tested_on},"
                f" sample {r.sample.sample_id}"
            )
        case QcResultsImported():
            return (
                f"{len(p.results)} QC results imported from {p.file_name} (sha256"
                f" {p.file_sha256[:12]}…, schema {p.schema_name}): "
                + ", ".join(
                    f"{r.test} {o} ({v})"
                    for r, o, v in zip(p.results, p.observed, p.verdicts, strict=True)
                )
            )
        case QcResultVerified():
            return f"{p.result_id} verified"
        case QcResultInvalidated():
            return f"{p.result_id} invalidated: {p.cause}"
        case BatchDisposed():
            return f"batch {p.decision}; certificate of analysis sha256 {p.coa_sha256[:12]}…"
        case ReviewActRefused():
            return f"REFUSED {p.act} of {p.subject}: {p.cause} {p.detail}".rstrip()
        case LimsSchemaDefined():
            return f"LIMS schema {p.name} v{p.version} defined"
    return p.kind.value


def correction_text(p: SitePayload) -> str | None:
    """What a correction changed, for the audit trail; None when it is no correction."""
    match p:
        case DeviationClassified() if p.previous is not None:
            return describe_review(p)
        case QcResultInvalidated() | DeviationWithdrawn():
            return describe_review(p)
    return None


def lot_adjustments(conn: Conn, lot_ids: Sequence[str]) -> list[Correction]:
    """Quantity corrections of the lots the batch used."""
    found: list[Correction] = []
    try:
        conn.execute("SELECT 1 FROM site_records LIMIT 1")
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return found  # a file from before the site chain: no lot was adjusted on it
        raise
    for lot_id in lot_ids:
        for r in stored_site_records(conn, kinds=(SiteKind.LOT_ADJUSTED,), mentioning=lot_id):
            p = r.payload
            if isinstance(p, LotAdjusted) and p.lot_id == lot_id:
                found.append(
                    Correction(
                        anchor=f"s{r.seq}",
                        when_utc=utc_from_epoch_ns(r.wall_time_ns),
                        kind="lot_adjusted",
                        text=f"lot {lot_id} adjusted by {p.delta_milli / 1000:g}: {p.cause}",
                    )
                )
    return found


def signature_line(signature: SignatureShown | Signature) -> SignatureLine:
    """A signature as the report prints it (run-embedded or a site record)."""
    shown = (
        signature
        if isinstance(signature, SignatureShown)
        else SignatureShown(
            signer=signature.signer,
            printed_name=signature.printed_name,
            meaning=signature.meaning,
            signed_at=signature.signed_at,
            time_zone=signature.time_zone,
            utc_offset=signature.utc_offset,
        )
    )
    local, zone = signed_at_local(shown)
    if isinstance(signature, Signature):
        where = "site record"
    elif signature.simulated:
        where = "SIMULATED OPERATOR"
    elif signature.site is not None:
        where = f"site #{signature.site.seq}"
    else:
        where = "NO SITE RECORD"
    return SignatureLine(
        printed_name=shown.printed_name,
        signer=shown.signer,
        meaning=shown.meaning.value,
        signed_at=f"{local:%Y-%m-%d %H:%M:%S} {zone} ({shown.utc_offset})",
        where=where,
    )
