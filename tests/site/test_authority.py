"""The site's Authority for a controller taking up answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payloads import TrainingSubject
from cellauto.site.authority import SiteAuthority
from cellauto.site.signatures import sign_in_store
from cellauto.site.training import parse_subject, record_training

from .conftest import Site

CAR_T = parse_subject("car-t-autologous@1.0.0")


@dataclass
class Signed:
    signer: str
    meaning: Meaning


@dataclass
class Answer:
    phase: str
    signature: Signed
    simulated: bool = False


@dataclass
class Summary:
    permission: str = "step.perform"
    training: list[TrainingSubject] = field(default_factory=lambda: [CAR_T])


@dataclass
class Task:
    summary: Summary = field(default_factory=Summary)


def test_perform_and_verify(site: Site) -> None:
    authority = SiteAuthority(site.store.reading)
    perform = Answer("perform", Signed("alice", Meaning.PERFORMED))
    assert "alice has no valid training" in str(authority.refusal(perform, Task(), None))
    record_training(site.store, site.sign_in("carol"), "alice", CAR_T)
    record_training(site.store, site.sign_in("carol"), "bob", CAR_T)
    assert authority.refusal(perform, Task(), None) is None
    verify = Answer("verify", Signed("bob", Meaning.VERIFIED))
    assert authority.refusal(verify, Task(), "alice") is None
    assert "may not verify it" in str(authority.refusal(verify, Task(), "bob"))
    by_qa = Answer("perform", Signed("bob", Meaning.PERFORMED))
    assert "it needs step.perform" in str(authority.refusal(by_qa, Task(), None))


def test_simulated_answers_are_refused(site: Site) -> None:
    simulated = Answer("perform", Signed("sim:operator-a", Meaning.PERFORMED), simulated=True)
    assert "simulated" in str(SiteAuthority(site.store.reading).refusal(simulated, Task(), None))


@dataclass
class Shown:
    signer: str
    meaning: Meaning
    site: SiteRef | None
    simulated: bool = False


def test_approval_of_a_restart_after_deviation(site: Site) -> None:
    with site.store.reading() as conn:
        kind, digest = conn.execute("SELECT kind, hash FROM site_records WHERE seq = 1").fetchone()
    target = RecordRef(chain="site", seq=1, hash=digest, kind=kind)
    ref = sign_in_store(site.store, site.sign_in("carol"), target, Meaning.REVIEWED, "ok")
    authority = SiteAuthority(site.store.reading)
    need = "run.restart_after_deviation"
    assert authority.approval_refusal(Shown("carol", Meaning.REVIEWED, ref), need) is None
    assert "is not alice's signature" in str(
        authority.approval_refusal(Shown("alice", Meaning.REVIEWED, ref), need)
    )
    forged = SiteRef(seq=ref.seq, hash="0" * 64)
    assert "is not carol's" in str(
        authority.approval_refusal(Shown("carol", Meaning.REVIEWED, forged), need)
    )
    assert "names no signature" in str(
        authority.approval_refusal(Shown("carol", Meaning.APPROVED, None), need)
    )
    ref = sign_in_store(site.store, site.sign_in("alice"), target, Meaning.PERFORMED, "x")
    assert "needs run.restart_after_deviation" in str(
        authority.approval_refusal(Shown("alice", Meaning.PERFORMED, ref), need)
    )
