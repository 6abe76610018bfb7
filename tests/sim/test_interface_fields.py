"""Interface fields issue 14 adds, defaulted and unused (seam S2): defaults, old
records, a check's flags, the new interfaces, the containers' new compartments."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cellauto import Protocol, Run
from cellauto.errors import InstrumentError
from cellauto.instruments import (
    Bioreactor,
    CellCount,
    Instrument,
    LimitFlag,
    ProcessValues,
    Reagent,
    Setpoints,
    StaticCultureVessel,
    Thawer,
    ThawResult,
)
from cellauto.instruments.bioreactor import SETPOINT_LIMITS
from cellauto.instruments.cell_processor import ProgramResult
from cellauto.instruments.flow_cytometer import Immunophenotype
from cellauto.instruments.opcua import OpcUaBioreactor
from cellauto.records import payloads as rec
from cellauto.records.spec import Spec
from cellauto.sim import simulate
from cellauto.sim.material import Container, FeederCells, FrozenState
from cellauto.sim.opcua import serve_bioreactor
from tests.wire.test_opcua_support import make_bioreactor


def test_the_new_fields_default_to_nothing_said() -> None:
    assert Reagent(name="IL-2", kind="cytokine", volume_ml=1).agents == {}
    assert Reagent(name="x", kind="cytokine", volume_ml=1, agents={"IL-15": 10.0}).agents
    with pytest.raises(ValidationError):
        Reagent(name="x", kind="cytokine", volume_ml=1, agents={"TNF": 1.0})  # type: ignore[dict-item]
    assert Setpoints().co2_pct is None and SETPOINT_LIMITS["co2_pct"] == (0.0, 20.0, "%")
    count = CellCount.model_validate(
        {
            "sample_id": "S",
            "total_cells_per_ml": 1e6,
            "viable_cells_per_ml": 9e5,
            "viability_pct": 90,
            "mean_diameter_um": 9,
            "operator": "o",
            "counted_at_process_time_s": 0,
            "instrument_serial": "C",
        }
    )  # a result recorded before the range existed
    assert count.range_flag == "in_range"
    assert "limit_flags" in ProgramResult.model_fields
    assert ProgramResult.model_fields["limit_flags"].default_factory is list
    fields = Immunophenotype.model_fields
    assert fields["cd16_pct"].default is None and fields["gate_events"].default_factory is dict
    values = {
        "temperature_c": 37.0,
        "ph": None,
        "dissolved_oxygen_pct": None,
        "culture_volume_ml": 100,
        "glucose_mmol_per_l": 10,
        "lactate_mmol_per_l": 2,
        "perfusion_rate_ml_per_day": 0,
        "rocking_rate_rpm": 0,
        "process_time_s": 0,
    }
    assert ProcessValues.model_validate(values).ph is None  # a vessel with no probe
    flag = LimitFlag(quantity="input cells", value=4.1e9, limit=4e9, message="recovery reduced")
    assert LimitFlag.model_validate_json(flag.model_dump_json()) == flag


def test_a_check_records_its_flags_and_old_checks_read_without() -> None:
    protocol = Protocol("flags", version="1")

    @protocol.step(expected_duration_h=0.1)
    async def wash(run: Run) -> None:
        run.check(
            "wash recovery",
            102.4,
            Spec(min=50, max=110, unit="%"),
            flags=["above 100 % within counting uncertainty"],
        )
        run.check("plain", 1.0, Spec(min=0, max=2))
        with pytest.raises(TypeError, match="list of strings"):
            run.check("bad", 1.0, Spec(min=0, max=2), flags="oops")  # type: ignore[arg-type]

    result = simulate(protocol, seed=0, patient="typical")
    assert result.exit_status == "complete"
    assert result.check("wash recovery").flags == ["above 100 % within counting uncertainty"]
    assert result.check("wash recovery").value == 102.4 and result.check("plain").flags == []
    old = result.check("plain").model_dump(mode="json")
    del old["flags"]
    assert rec.CheckResult.model_validate(old).flags == []


def test_the_new_interfaces() -> None:
    assert issubclass(StaticCultureVessel, Bioreactor)
    assert StaticCultureVessel.interface_name == "StaticCultureVessel"
    assert getattr(StaticCultureVessel.reduce_volume, "__isabstractmethod__", False)
    assert issubclass(Thawer, Instrument)
    assert getattr(Thawer.thaw, "__isabstractmethod__", False)
    thawed = ThawResult(
        container_id="QC retain 1", duration_s=150, final_temperature_c=4, process_time_s=9
    )
    assert ThawResult.model_validate_json(thawed.model_dump_json()) == thawed


def test_containers_carry_monocytes_nk_subsets_feeders_and_frozen_state() -> None:
    bag = Container(
        "BAG",
        viable_cells=1e8,
        volume_ml=100,
        nk_fraction=0.5,
        monocyte_fraction=0.2,
        nk_cd16_fraction=0.9,
        feeders=FeederCells(kind="pbmc", viable=1e9, dead=1e8, cd3_share=0.6),
        frozen=FrozenState(frozen_at_h=10.0, cooling_rate_c_per_min=-1.0),
    )
    part = bag.take(25, "S-1")
    assert part.feeders is not None and bag.feeders is not None
    assert (part.feeders.viable, bag.feeders.viable) == (2.5e8, 7.5e8)
    assert part.monocyte_fraction == 0.2 and part.frozen == bag.frozen
    other = Container("B2", viable_cells=1e8, volume_ml=100, nk_fraction=0.5, nk_cd16_fraction=0.5)
    other.add(part)
    assert other.nk_cd16_fraction == pytest.approx(0.5 * 0.8 + 0.9 * 0.2)
    assert other.monocyte_fraction == pytest.approx(0.2 * 0.2)
    assert other.feeders is not None and other.feeders.viable == pytest.approx(2.5e8)
    assert part.feeders.viable == 0 and other.frozen is not None
    plain = Container("P", viable_cells=1.0, volume_ml=1.0)
    assert plain.feeders is None and plain.frozen is None and plain.take(0.5, "x").feeders is None


@pytest.mark.anyio
async def test_the_opcua_bioreactor_refuses_what_it_cannot_carry_yet() -> None:
    remote = make_bioreactor()
    async with serve_bioreactor(remote, sample_interval_s=None) as server:
        adapter = await OpcUaBioreactor.connect(server.url, clock=remote.world.clock)
        async with adapter:
            with pytest.raises(InstrumentError, match="no CO2 set point"):
                await adapter.set_setpoints(Setpoints(co2_pct=5.0))
            il2 = Reagent(name="IL-2", kind="cytokine", volume_ml=1, agents={"IL-2": 1e5})
            with pytest.raises(InstrumentError, match="agents"):
                await adapter.add_reagent(il2)
