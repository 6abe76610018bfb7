"""A patient's own parameters (chain-of-identity id, weight) have no default on a real line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from cellauto import Field, Params, SimDefault
from cellauto.errors import ParameterError
from cellauto.lines.config import LineConfig
from cellauto.protocols.loader import load_protocol
from cellauto.protocols.params import build_params, sim_defaults

REPO = Path(__file__).resolve().parents[2]
CAR_T = REPO / "protocols" / "car_t_autologous.py"
NK = REPO / "protocols" / "nk_expansion.py"


class Patient(Params):
    coi: Annotated[str, SimDefault("W123426A1B2C3")] = Field(min_length=13)
    patient_weight_kg: Annotated[float, SimDefault(70.0)] = Field(gt=0)
    dose_per_kg: float = 2e6


def test_a_rehearsal_fills_in_the_simulation_defaults() -> None:
    params = build_params(Patient, {}, rehearsal=True)
    assert isinstance(params, Patient)
    assert (params.coi, params.patient_weight_kg) == ("W123426A1B2C3", 70.0)


def test_given_values_win_over_simulation_defaults() -> None:
    params = build_params(Patient, {"patient_weight_kg": 81.5}, rehearsal=True)
    assert isinstance(params, Patient)
    assert params.patient_weight_kg == 81.5


def test_a_real_line_requires_them_naming_each() -> None:
    with pytest.raises(ParameterError) as caught:
        build_params(Patient, {"coi": "W123426A1B2C3"})
    message = str(caught.value)
    assert "parameter 'patient_weight_kg': Field required" in message
    assert "'patient_weight_kg' are the patient's own and have no default on a real line" in (
        message
    )
    assert "'coi'" not in message.split(";")[-1]  # given: not named as missing


@pytest.mark.parametrize("path", [CAR_T, NK])
def test_shipped_protocols_declare_patient_parameters_without_default(path: Path) -> None:
    protocol = load_protocol(path)
    assert set(sim_defaults(protocol.params)) == {"coi", "din", "patient_weight_kg"}
    with pytest.raises(ParameterError, match="'coi', 'din', 'patient_weight_kg' are the"):
        build_params(protocol.params, {})


def test_a_line_file_is_a_simulation_only_with_a_simulation_table() -> None:
    equipment = {"counter": {"adapter": "visa", "endpoint": "TCPIP0::10.0.0.5::5025::SOCKET"}}
    assert not LineConfig.model_validate({"name": "plant", "equipment": equipment}).is_simulation
    rehearsal = {"name": "r", "equipment": equipment, "simulation": {"speed": 3600}}
    assert LineConfig.model_validate(rehearsal).is_simulation
