"""Release tests declared by a protocol: checked when it is defined, frozen into one
``release_plan`` record right after ``run_started`` (and the reservation), never again
on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto import Field, Params, Protocol, Run, Spec
from cellauto.errors import ProtocolDefinitionError
from cellauto.identity import ContainerPlan
from cellauto.protocols import PercentOf, PerKg, Qualitative, ReleaseTest
from cellauto.protocols.loader import load_protocol
from cellauto.protocols.release_tests import sample_matches
from cellauto.records.backend import Location
from cellauto.records.release_plan import ReleasePlan
from cellauto.sim import simulate
from tests.protocols import bagging

ROOT = Path(__file__).resolve().parents[2]
STERILITY = ReleaseTest(
    name="sterility", method="Ph. Eur. 2.6.27", spec=Qualitative(accept=("no growth",))
)


class _Params(Params):
    coi: str = "W123426A1B2C3"
    weight_kg: float = Field(70.0, gt=0)


def _define(tests: list[ReleaseTest], **options: object) -> Protocol[_Params]:
    return Protocol("qc-test", version="1", params=_Params, release_tests=tests, **options)  # type: ignore[call-overload, no-any-return]


def test_names_must_be_unique() -> None:
    with pytest.raises(ProtocolDefinitionError, match="'sterility' is declared twice"):
        _define([STERILITY, STERILITY])


def _flow(name: str) -> ReleaseTest:
    return ReleaseTest(name=name, method="flow cytometry", unit="%", spec=Spec(min=0, unit="%"))


def test_names_must_not_share_their_result_id_slug() -> None:
    """ "CD4+" and "CD4-" would both be QC-<run>-cd4-01: refused at definition and in the
    record's own validator."""
    with pytest.raises(ProtocolDefinitionError, match="'CD4\\+' and 'CD4-' would share"):
        _define([_flow("CD4+"), _flow("CD4-")])
    with pytest.raises(ValueError, match="would share the result id part 'cd4'"):
        ReleasePlan(product="x", tests=[_flow("CD4+"), _flow("CD4-")])
    assert len(_define([_flow("CD4 positive"), _flow("CD4 negative")]).release_tests) == 2


def test_weight_param_must_be_a_param() -> None:
    endotoxin = ReleaseTest(
        name="endotoxin",
        method="LAL",
        unit="EU/mL",
        spec=Spec(max=5, unit="EU/kg"),
        normalise=PerKg(volume_value="final volume ml"),
    )
    with pytest.raises(ProtocolDefinitionError, match="'patient_weight_kg', which is not a param"):
        _define([endotoxin])
    weighed = endotoxin.model_copy(
        update={"normalise": PerKg(volume_value="final volume ml", weight_param="weight_kg")}
    )
    assert _define([weighed]).release_tests == [weighed]


def test_sample_must_be_a_declared_container() -> None:
    sampled = STERILITY.model_copy(update={"sample": "final product"})
    with pytest.raises(ProtocolDefinitionError, match="not a declared container"):
        _define([sampled])
    with pytest.raises(ProtocolDefinitionError, match="not a declared container"):
        Protocol(
            "bagging-qc",
            version="1",
            params=bagging.BagParams,
            inputs=bagging.protocol.inputs,
            containers=[ContainerPlan(key="apheresis bag", container_type="apheresis bag")],
            release_tests=[sampled],
        )


def test_a_sample_of_containers_by_params_is_checked_when_the_run_starts(
    db_location: Location, tmp_path: Path
) -> None:
    wrong = Protocol(
        "bagging-qc",
        version="1",
        params=bagging.BagParams,
        inputs=bagging.protocol.inputs,
        containers=bagging.plans,
        release_tests=[STERILITY.model_copy(update={"sample": "retained vial"})],
    )
    for step in bagging.protocol.steps:
        wrong.steps.append(step)
    db = db_location
    with pytest.raises(ProtocolDefinitionError, match="'retained vial', which is not a declared"):
        simulate(wrong, db=db, patient="typical")


def test_sample_matches_a_set_of_containers() -> None:
    assert sample_matches("final product", "final product")
    assert sample_matches("final product 2", "final product")
    assert not sample_matches("final product x", "final product")
    assert not sample_matches("QC sample", "final product")


def test_qualitative_tests_are_not_normalised() -> None:
    with pytest.raises(ValueError, match="not normalised"):
        ReleaseTest(
            name="x",
            method="m",
            spec=Qualitative(accept=("ok",)),
            normalise=PercentOf(target_value="t"),
        )


def test_car_t_and_nk_declare_their_release_tests() -> None:
    car_t = load_protocol(ROOT / "protocols" / "car_t_autologous.py")
    nk = load_protocol(ROOT / "protocols" / "nk_expansion.py")
    assert car_t.version == nk.version == "1.3.0"
    assert [t.name for t in car_t.release_tests] == [
        "sterility",
        "endotoxin",
        "mycoplasma",
        "vector copy number",
        "identity (CAR+)",
        "viability",
        "post-thaw viability",
        "cell count",
    ]
    assert [t.name for t in nk.release_tests] == [
        "sterility",
        "endotoxin",
        "mycoplasma",
        "viability",
        "cell count",
    ]
    endotoxin = car_t.release_tests[1]
    assert endotoxin.unit == "EU/mL" and endotoxin.spec_unit == "EU/kg"


def _plans(run_records: list[object]) -> list[ReleasePlan]:
    return [p for p in run_records if isinstance(p, ReleasePlan)]


def test_the_plan_follows_run_started_and_the_reservation() -> None:
    run = simulate(ROOT / "protocols" / "car_t_autologous.py", seed=3, patient="typical")
    kinds = [r.kind for r in run.records[:4]]
    assert kinds[:3] == ["run_started", "materials_reserved", "release_plan"]
    (plan,) = run.of_kind(ReleasePlan)
    assert plan.product == "CAR-T cells, autologous"
    assert plan.coi == run.params.coi  # type: ignore[attr-defined]
    assert len(plan.tests) == 8
    assert {"final volume ml", "target dose cells"} <= set(run.values)


def test_a_protocol_without_release_tests_writes_an_empty_plan() -> None:
    run = simulate(bagging.protocol, patient="typical")
    assert [r.kind for r in run.records[:2]] == ["run_started", "release_plan"]
    (plan,) = run.of_kind(ReleasePlan)
    assert (plan.product, plan.coi, plan.tests) == ("bagging", bagging.COI, [])


_crashing = Protocol("crashing", version="1", params=_Params, release_tests=[STERILITY])


@_crashing.step(resume="rerun")
async def wait(run: Run[_Params]) -> None:
    await run.sleep(hours=4)


def test_never_written_again_on_resume() -> None:
    run = simulate(_crashing, crashes=[1.0, 2.0], downtime_h=0.1, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    kinds = [r.kind for r in run.records]
    assert kinds.count("run_resumed") == 2
    assert kinds.count("release_plan") == 1
    assert kinds.index("release_plan") == kinds.index("run_started") + 1
