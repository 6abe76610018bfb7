"""The shipped line files: the CAR-T line on a wire, served apart and reached from afar."""

from __future__ import annotations

from pathlib import Path

from cellauto.cli.sim_cmd import _needed
from cellauto.lines import load_line_config
from cellauto.protocols import load_protocol

LINES = Path(__file__).resolve().parents[2] / "lines"
CAR_T = Path(__file__).resolve().parents[2] / "protocols" / "car_t_autologous.py"


def test_sim_opcua_reaches_every_car_t_instrument_over_a_wire() -> None:
    line = load_line_config(LINES / "sim-opcua.toml")
    needed = load_protocol(CAR_T).equipment()
    assert set(needed) <= set(line.equipment)
    assert {name: line.equipment[name].adapter for name in needed} == {
        "scanner": "tcp",
        "processor": "opcua",
        "bioreactor": "opcua",
        "cytometer": "opcua",
        "storage": "opcua",
        "counter": "visa",
        "freezer": "visa",
        "dry_shipper": "visa",
        "printer": "sim",  # the label printer: in-process, beside the controller
        "liquid_handler": "sim",  # in-process on the simulated line
        "thawer": "sim",
    }


def test_the_remote_line_reaches_what_the_served_line_serves() -> None:
    served = load_line_config(LINES / "car-t-serve.toml")
    remote = load_line_config(LINES / "car-t-remote.toml")
    needed = load_protocol(CAR_T).equipment()
    needed.pop("printer")  # in-process beside the controller: not served
    assert remote.equipment["printer"].adapter == "sim"
    assert set(_needed(served)) == set(needed)  # sim serve serves all ten
    assert remote.equipment["thawer"].adapter == "visa"
    assert remote.equipment["liquid_handler"].adapter == "pylabrobot"
    assert not remote.simulation.serve and remote.simulation.speed == served.simulation.speed
    for name in needed:
        assert remote.equipment[name].adapter == served.equipment[name].adapter
        assert remote.equipment[name].endpoint == served.equipment[name].endpoint
        assert ":0" not in (served.equipment[name].endpoint or ""), "fixed ports"


def test_the_site_rehearsal_line_serves_every_demo_instrument() -> None:
    served = load_line_config(LINES / "site-sim.toml")
    demo = load_protocol(LINES.parent / "protocols" / "demo_expansion.py").equipment()
    assert set(_needed(served)) == set(demo)
    assert served.simulation.materials[0].label == "W123426A1B2C3"
    units = served.equipment["bioreactor"].unit_configs()
    assert list(units) == [f"BR-{n:02d}" for n in range(1, 7)]  # a pool of six
    bags = {m.container_id: m.label for m in served.simulation.materials}
    assert len(bags) == len(set(bags.values())) == len(units)  # a labelled bag per batch
    assert served.equipment["counter"].shared is not None  # one counter for every batch
