"""Line configuration files: validated, and secrets only by reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.errors import BadInputError
from cellauto.lines import load_line_config

GOOD = """
name = "suite-3"

[equipment.counter]
adapter = "visa"
endpoint = "TCPIP0::127.0.0.1::5025::SOCKET"

[equipment.bioreactor]
adapter = "opcua"
endpoint = "opc.tcp://127.0.0.1:4840/cellauto/bioreactor"
credentials = "env:CELLAUTO_TEST_BR"

[simulation]
serve = true
seed = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "line.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_line_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = load_line_config(write(tmp_path, GOOD))
    assert line.name == "suite-3" and line.simulation.seed == 3
    assert line.equipment["counter"].adapter == "visa"
    monkeypatch.setenv("CELLAUTO_TEST_BR", "operator1:s3cret")
    assert line.equipment["bioreactor"].resolve_credentials() == ("operator1", "s3cret")
    record = line.equipment["bioreactor"].for_record()
    assert record["credentials"] == "env" and "s3cret" not in str(record)


def test_a_password_in_the_file_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace('credentials = "env:CELLAUTO_TEST_BR"', 'credentials = "op:pw"')
    with pytest.raises(BadInputError, match="must be a reference"):
        load_line_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\n[equipment.a]\nadapter = 'modbus'\n", "equipment.a.adapter"),
        ("name = 'x'\n", "equipment"),
        ("name = 'x'\n[equipment.a]\nadapter = 'sim'\nport = 1\n", "equipment.a.port"),
        ("name = = 'x'", "not valid TOML"),
    ],
)
def test_bad_line_files_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message.replace(".", r"\.")):
        load_line_config(write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        load_line_config(tmp_path / "nope.toml")


def test_an_unset_credential_variable_is_named(tmp_path: Path) -> None:
    line = load_line_config(write(tmp_path, GOOD))
    with pytest.raises(BadInputError, match="CELLAUTO_TEST_BR"):
        line.equipment["bioreactor"].resolve_credentials()


def test_a_fast_line_with_an_epoch_has_one_process_time_for_all_its_processes(
    tmp_path: Path,
) -> None:
    text = GOOD.replace("serve = true", "speed = 3600\nepoch = 2026-12-04T00:00:00Z")
    simulation = load_line_config(write(tmp_path, text)).simulation
    epoch_s = simulation.epoch.timestamp() if simulation.epoch else 0.0
    # ten real seconds after the epoch, the line is ten process hours on
    assert simulation.process_time_s(epoch_s + 10.0) == pytest.approx(epoch_s + 36_000.0)
    no_epoch = load_line_config(write(tmp_path, GOOD)).simulation
    assert no_epoch.process_time_s(epoch_s) is None


def test_an_epoch_without_a_time_zone_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("serve = true", "speed = 60\nepoch = 2026-12-04T00:00:00")
    with pytest.raises(BadInputError, match=r"simulation\.epoch"):
        load_line_config(write(tmp_path, text))
