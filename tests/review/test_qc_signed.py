"""``cellauto verify`` names a QC record written around its act without its signature:
an entry or import ``performed``, a verification ``verified``, an invalidation and a LIMS
schema ``approved`` (each by its actor), and the deviation an OOS result opened
``performed``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cellauto.cli import main
from cellauto.records.refs import SITE_CHAIN, Meaning, RecordRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_review import QcResultInvalidated, QcResultVerified
from cellauto.review import lims as lims_module
from cellauto.review import qc as qc_module
from cellauto.review.lims import define_schema, import_results
from cellauto.review.qc import add_result
from cellauto.sim.qc import SIM_LIMS_SCHEMA
from cellauto.site.roles import Permission
from cellauto.site.signatures import sign
from tests.site.chain import TERMINAL

from .conftest import Batch
from .test_lims import rows_of, write
from .test_qc import _forged_entry, _verify, entry


def _cli_verify(batch: Batch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", "--db", str(batch.path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _forge(batch: Batch, record: SitePayload, meaning: Meaning | None = None, by: str = "") -> int:
    who = None if meaning is None else batch.site.sign_in(by or record.by)
    with batch.store.transaction() as tx:
        ref = tx.append(record)
        if who is not None and meaning is not None:
            target = RecordRef(chain=SITE_CHAIN, seq=ref.seq, hash=ref.hash, kind=record.kind.value)
            sign(tx, who, target, meaning, "forged around the acts")
    return ref.seq


def _unsigned(monkeypatch: pytest.MonkeyPatch, module: Any, permission: Permission) -> None:
    """The act's ``sign_act`` for ``permission`` writes nothing (the record stays)."""
    real = module.sign_act

    def skip(tx: Any, acting: Any, ref: Any, record: Any, *a: Any, **k: Any) -> Any:
        if k.get("permission") == permission:
            return ref
        return real(tx, acting, ref, record, *a, **k)

    monkeypatch.setattr(module, "sign_act", skip)


def test_the_signed_acts_verify_intact(batch: Batch, capsys: pytest.CaptureFixture[str]) -> None:
    add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry())
    add_result(
        batch.store,
        batch.site.sign_in("lab.chen"),
        batch.run_id,
        entry(test="endotoxin", value=9.0, unit="EU/mL"),
    )
    assert _cli_verify(batch, capsys)[0] == 0


def test_an_unsigned_entry_is_named(batch: Batch, capsys: pytest.CaptureFixture[str]) -> None:
    body = _forged_entry(batch).result.model_copy(update={"value": 91.0})
    seq = _forge(batch, _forged_entry(batch, observed=91.0, result=body))
    code, out = _cli_verify(batch, capsys)
    assert code == 1
    assert f"site record {seq} (qc_result_entered) has no signature by lab.chen" in out
    assert "of meaning performed" in out


def test_an_entry_signed_by_another_is_named(batch: Batch) -> None:
    body = _forged_entry(batch).result.model_copy(update={"value": 91.0})
    record = _forged_entry(batch, observed=91.0, result=body)
    seq = _forge(batch, record, Meaning.PERFORMED, by="lab.ito")
    assert f"site record {seq} (qc_result_entered) has no signature by lab.chen" in _verify(batch)


def test_an_unsigned_verification_is_named(batch: Batch) -> None:
    act = add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry())
    forged = QcResultVerified(
        by="lab.ito", terminal=TERMINAL, run_id=batch.run_id, result_id=act.result_id, entry=act.ref
    )
    seq = _forge(batch, forged, Meaning.PERFORMED)  # signed, but not "verified"
    assert f"site record {seq} (qc_result_verified) has no signature by lab.ito of meaning" in (
        _verify(batch)
    )


def test_an_unsigned_invalidation_is_named(batch: Batch) -> None:
    act = add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry())
    forged = QcResultInvalidated(
        by="qa.smith",
        terminal=TERMINAL,
        run_id=batch.run_id,
        result_id=act.result_id,
        cause="lab error in the assay run",
    )
    seq = _forge(batch, forged)
    assert f"site record {seq} (qc_result_invalidated) has no signature by qa.smith" in (
        _verify(batch)
    )


def test_an_unsigned_schema_is_named(batch: Batch, monkeypatch: pytest.MonkeyPatch) -> None:
    _unsigned(monkeypatch, lims_module, Permission.QC_SCHEMA)
    done = define_schema(batch.store, batch.site.sign_in("qa.smith"), "sim-lims", SIM_LIMS_SCHEMA)
    assert f"site record {done.ref.seq} (lims_schema_defined) has no signature by qa.smith" in (
        _verify(batch)
    )


def test_an_unsigned_import_is_named(
    batch: Batch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    define_schema(batch.store, batch.site.sign_in("qa.smith"), "sim-lims", SIM_LIMS_SCHEMA)
    path = write(tmp_path / "results.csv", rows_of(batch))
    _unsigned(monkeypatch, lims_module, Permission.QC_ENTER)
    done = import_results(
        batch.store, batch.site.sign_in("lab.chen"), batch.run_id, path, schema_name="sim-lims"
    )
    assert done.ref is not None
    assert f"site record {done.ref.seq} (qc_results_imported) has no signature by lab.chen" in (
        _verify(batch)
    )


def test_an_unsigned_oos_deviation_is_named(batch: Batch, monkeypatch: pytest.MonkeyPatch) -> None:
    _unsigned(monkeypatch, qc_module, Permission.DEVIATION_RAISE)
    act = add_result(
        batch.store,
        batch.site.sign_in("lab.chen"),
        batch.run_id,
        entry(test="endotoxin", value=9.0, unit="EU/mL"),
    )
    assert f"(deviation_raised of {act.deviation_id}) has no signature by lab.chen" in (
        _verify(batch)
    )
