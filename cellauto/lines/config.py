"""Line configuration: which adapter and endpoint stands behind each equipment name.

A line is described in TOML::

    name = "suite-3"

    [equipment.bioreactor]
    adapter = "opcua"
    endpoint = "opc.tcp://127.0.0.1:4840/cellauto/bioreactor"
    credentials = "env:CELLAUTO_BIOREACTOR"     # a reference, never the secret
    on_setpoint_changed = "hold"                # or "alarm" (default), "restore"
    asset = "BR-001"                            # its equipment registry tag (optional)

    [equipment.counter]
    adapter = "visa"
    endpoint = "TCPIP0::127.0.0.1::5025::SOCKET"

    [equipment.scanner]
    adapter = "tcp"                             # a line device in TCP server mode
    endpoint = "tcp://127.0.0.1:9004"

    [equipment.cytometer]
    adapter = "sim"                             # in-process simulated instrument
    shared = { capacity = 1, max_hold_min = 30 }  # one cytometer for every batch (holds)

    [equipment.bioreactor]                      # a pool: twenty bioreactors, one per run
    adapter = "opcua"
    interface = "Bioreactor"
    units = { "BR-01" = "opc.tcp://10.0.3.11:4840/lads", "BR-02" = "opc.tcp://10.0.3.12:4840/lads" }

    [simulation]
    serve = true    # serve the simulated instruments on loopback, in this process
    seed = 1

A rehearsal controller whose instruments are all simulated in its own process gives
each run it takes a simulated line of its own (its own seeded world: the patient drawn
from the run's seed, the labelled starting material, the instruments), as
``simulate_batches`` gives each batch, so that one controller carries many simulated
batches at once, in virtual time::

    [equipment.bioreactor]
    adapter = "sim"
    [simulation]
    line_per_run = true

Credentials are references (``env:VAR`` or ``file:PATH``) resolved when the adapter
connects; the journal records the reference's kind only, never its value.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cellauto.errors import BadInputError

__all__ = [
    "EquipmentConfig",
    "LineConfig",
    "MaterialConfig",
    "SetpointPolicy",
    "SharedConfig",
    "SimulationConfig",
    "UnitConfig",
    "load_line_config",
]

Adapter = Literal["sim", "visa", "opcua", "pylabrobot", "tcp"]
#: When a setpoint the run set is changed on the instrument by someone else, a major
#: Alarm and a Deviation are always journaled; then ``alarm``: nothing more (the run
#: goes on with the instrument's new value), ``restore``: the run's value is written
#: back, ``hold``: the run is held for a person to decide.
SetpointPolicy = Literal["alarm", "restore", "hold"]


class SharedConfig(BaseModel):
    """An instrument shared between batches: a step holds it while it uses it, in a fair
    queue across every run and controller of the journal (:mod:`cellauto.protocols.holds`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    capacity: int = Field(1, ge=1, le=1000, description="holds at once")
    max_hold_min: float | None = Field(
        None, gt=0, description="a hold longer than this raises a major alarm"
    )
    patience_min: float = Field(
        60.0, gt=0, description="a request without a deadline becomes this urgent after it"
    )
    sample_stability_min: float | None = Field(
        60.0, gt=0, description="a drawn sample's deadline: drawn + this (None: no deadline)"
    )
    poll_s: float = Field(
        30.0, gt=0, description="how often a run waiting behind another controller asks again"
    )


ASSET_TAG = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"


class UnitConfig(BaseModel):
    """One unit of a pool (``units = { "BR-01" = "opc.tcp://..." }``, or
    ``"BR-01" = { endpoint = "...", asset = "BR-0001" }``): a run is bound to one free
    unit for its life (:mod:`cellauto.controller.units`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str | None = Field(None, description="this unit's endpoint (as `endpoint`)")
    asset: str | None = Field(
        None, pattern=ASSET_TAG, description="its registry asset tag (default: the unit's name)"
    )


class EquipmentConfig(BaseModel):
    """One piece of equipment: how it is reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    adapter: Adapter
    interface: str | None = Field(
        None, description="instrument class served here, e.g. CellCounter (for sim serve)"
    )
    endpoint: str | None = Field(
        None, description="VISA resource, opc.tcp:// URL, tcp://HOST:PORT (tcp), ..."
    )
    credentials: str | None = Field(None, description="env:VAR or file:PATH, never a secret")
    security: str | None = Field(None, description='e.g. "Basic256Sha256,SignAndEncrypt"')
    certificate: str | None = None
    private_key: str | None = None
    timeout_s: float = Field(
        5.0, gt=0, le=600, description="per request, in real seconds whatever the line's speed"
    )
    on_setpoint_changed: SetpointPolicy = Field(
        "alarm", description="alarm, restore or hold (OPC UA bioreactor; see SetpointPolicy)"
    )
    asset: str | None = Field(
        None,
        pattern=ASSET_TAG,
        description="its equipment registry asset tag, e.g. BR-001 (else found by its serial)",
    )
    shared: SharedConfig | None = Field(
        None,
        description="shared between batches (its queue is keyed by `asset`, else by the "
        "line's name and the equipment's)",
    )
    units: dict[str, UnitConfig] | None = Field(
        None,
        description="a pool: unit name -> endpoint (or {endpoint, asset}); each run is "
        "bound to one free unit for its life",
    )

    @field_validator("units", mode="before")
    @classmethod
    def _unit_shapes(cls, value: object) -> object:
        if isinstance(value, list):  # ["BR-01", "BR-02"]: units without endpoints (sim)
            return {str(name): {} for name in value}
        if isinstance(value, dict):
            return {k: {"endpoint": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _a_pool_is_its_units(self) -> EquipmentConfig:
        if self.units is None:
            return self
        where = "a pool (`units`)"
        if not self.units:
            raise ValueError(f"{where} needs at least one unit")
        if self.endpoint is not None:
            raise ValueError(
                f"{where} has no `endpoint`: each unit has its own (units = {{ NAME = ENDPOINT }})"
            )
        if self.shared is not None:
            raise ValueError(
                f"{where} cannot be `shared`: each run has a unit of its own; share one "
                "instrument between runs with `shared` and no `units`"
            )
        if self.asset is not None:
            raise ValueError(f"{where} has no `asset`: give each unit its own (units.NAME.asset)")
        bad = [name for name in self.units if not re.match(ASSET_TAG, name)]
        if bad:
            raise ValueError(
                f"unit names {bad} must be tags such as BR-01 (letters, digits, '.', '_', '-')"
            )
        assets = [unit.asset or name for name, unit in self.units.items()]
        twice = sorted({a for a in assets if assets.count(a) > 1})
        if twice:
            raise ValueError(f"units share the asset tag {', '.join(twice)}: each unit is one")
        if self.adapter != "sim":
            lacking = [name for name, unit in self.units.items() if not unit.endpoint]
            if lacking:
                raise ValueError(f"units {lacking} have no endpoint ({self.adapter} adapter)")
            endpoints = [unit.endpoint for unit in self.units.values()]
            same = sorted({e for e in endpoints if e is not None and endpoints.count(e) > 1})
            if same and not all(_any_port(e) for e in same):
                raise ValueError(f"units share the endpoint {', '.join(same)}: each unit is one")
        return self

    def unit_configs(self) -> dict[str, EquipmentConfig]:
        """A pool's units, each as the equipment it is (its endpoint and asset tag)."""
        return {
            name: self.model_copy(
                update={"units": None, "endpoint": unit.endpoint, "asset": unit.asset or name}
            )
            for name, unit in (self.units or {}).items()
        }

    @field_validator("credentials")
    @classmethod
    def _is_reference(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("env:", "file:")):
            raise ValueError(
                "credentials must be a reference, 'env:VARIABLE' or 'file:PATH' — "
                "never the user name or password itself"
            )
        return value

    def resolve_credentials(self) -> tuple[str, str] | None:
        """(user, password) from the reference: 'user:password' in the variable or file."""
        if self.credentials is None:
            return None
        kind, _, where = self.credentials.partition(":")
        if kind == "env":
            text = os.environ.get(where)
            if text is None:
                raise BadInputError(f"credentials: environment variable {where!r} is not set")
        else:
            try:
                text = Path(where).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise BadInputError(f"credentials: cannot read {where!r}: {exc}") from None
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise BadInputError(f"credentials {self.credentials!r} must hold 'user:password'")
        return user, password

    def for_record(self) -> dict[str, object]:
        """What the journal may hold about this equipment (no secrets)."""
        return {
            "adapter": self.adapter,
            "endpoint": self.endpoint,
            "security": self.security,
            "credentials": self.credentials.split(":", 1)[0] if self.credentials else None,
        }


def _any_port(endpoint: str) -> bool:
    """An endpoint on port 0 (served on any free port): several units may say so."""
    return bool(re.search(r"(:|::)0(::|/|$)", endpoint))


class MaterialConfig(BaseModel):
    """A labelled starting material on a simulated line (for ``cellauto sim serve``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    container_id: str = Field(min_length=1)
    material: Literal["apheresis", "pbmc", "nk_cells", "t_cells"] = "apheresis"
    label: str = ""


class SimulationConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    serve: bool = Field(False, description="serve the simulated line on loopback in-process")
    seed: int | None = None
    patient: Literal["drawn", "typical"] = Field(
        "drawn",
        description="whose cells a simulated run receives: drawn from the population of "
        "the protocol's starting material by the seed, or its typical patient "
        "(`cellauto run --patient` overrides it)",
    )
    speed: float = Field(
        1.0, gt=0, le=1e6, description="process time per real second when served to others"
    )
    epoch: AwareDatetime | None = Field(
        None,
        description="on a line faster than real time, the moment its process time began: "
        "every process of the line (the one serving it, the controllers) then reads the "
        "same process time, epoch + (now - epoch) x speed; `cellauto sim serve` prints its own",
    )
    materials: list[MaterialConfig] = Field(default_factory=list)
    line_per_run: bool = Field(
        False,
        description="every run a controller takes gets its own simulated line in the "
        "controller's process (its own seeded world), in virtual time; only when every "
        'equipment is adapter = "sim" (see LineConfig.check_line_per_run)',
    )

    def process_time_s(self, wall_s: float) -> float | None:
        """The line's process time at ``wall_s`` (epoch seconds), if it has an epoch."""
        if self.epoch is None:
            return None
        epoch_s = self.epoch.timestamp()
        return epoch_s + (wall_s - epoch_s) * self.speed


class LineConfig(BaseModel):
    """A named line: equipment names to adapters and endpoints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    equipment: dict[str, EquipmentConfig] = Field(min_length=1)
    simulation: SimulationConfig = SimulationConfig()

    @property
    def is_simulation(self) -> bool:
        """True when the file has a ``[simulation]`` table: its instruments are simulated
        (served in this process, or by ``cellauto sim serve`` in another), so a run on it
        is a rehearsal. A plant's line file has no ``[simulation]`` table."""
        return "simulation" in self.model_fields_set

    @property
    def pools(self) -> dict[str, EquipmentConfig]:
        """The equipment given as pools of units (``units = {...}``)."""
        return {name: item for name, item in self.equipment.items() if item.units is not None}

    @model_validator(mode="after")
    def check_line_per_run(self) -> LineConfig:
        """``line_per_run``: every instrument simulated in the controller's process, and
        nothing that belongs to one line shared by every run (a seed, serving, a speed)."""
        simulation = self.simulation
        if not simulation.line_per_run:
            return self
        wired = [f"{n} ({e.adapter})" for n, e in self.equipment.items() if e.adapter != "sim"]
        if wired:
            raise ValueError(
                "[simulation] line_per_run = true gives each run its own simulated "
                'instruments, so every equipment must be adapter = "sim"; these are not: '
                f"{', '.join(wired)} (drop line_per_run, or make them sim)"
            )
        pooled = [name for name, e in self.equipment.items() if e.units is not None]
        if pooled:
            raise ValueError(
                f"[simulation] line_per_run = true: equipment {', '.join(pooled)} is a pool of "
                "units, but each run has its own simulated instruments: drop `units`"
            )
        shared = [name for name, e in self.equipment.items() if e.shared is not None]
        if shared:
            raise ValueError(
                f"[simulation] line_per_run = true: equipment {', '.join(shared)} is shared, "
                "but each run has its own simulated instruments: drop `shared`"
            )
        clashing = {
            "serve": "nothing is served: the runs' instruments live in the controller",
            "seed": "each run's seed is its own (`cellauto run --queue --seed N`, else "
            "drawn from its run id)",
            "speed": "the runs go in virtual time, as fast as the controller computes",
            "epoch": "the runs go in virtual time, as fast as the controller computes",
            "materials": "each run's world gets its protocol's labelled starting material",
        }
        given = [k for k in clashing if k in simulation.model_fields_set]
        if given:
            raise ValueError(
                "[simulation] line_per_run = true: drop "
                + "; ".join(f"{k} ({clashing[k]})" for k in given)
            )
        return self


def load_line_config(path: str | Path) -> LineConfig:
    """Read and validate a line TOML file; BadInputError names the file and the field."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"line file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInputError(f"line file {str(file)!r} is not valid TOML: {exc}") from None
    try:
        return LineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        raise BadInputError(f"line file {str(file)!r}: {problems}") from None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """``field.path: message`` (a check of the whole file: the message alone)."""
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message
