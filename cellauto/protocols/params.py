"""Typed protocol parameters and their validation from CLI strings and JSON files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from typing_extensions import TypeVar

from cellauto.errors import ParameterError
from cellauto.identity.isbt128 import validate_din_with_check, validate_identifier

__all__ = [
    "Din",
    "Params",
    "ParamsT",
    "SimDefault",
    "build_params",
    "din_value",
    "parse_param_assignments",
]


@dataclass(frozen=True)
class SimDefault:
    """Field metadata: the value a rehearsal takes when none is given.

    A parameter that identifies a patient (the chain-of-identity id, the weight the dose
    is computed from) must never take a default on a real line: declare it without a
    default and with ``SimDefault`` for simulation::

        coi: Annotated[str, SimDefault("W123426A1B2C3")] = Field(pattern=...)

    On a rehearsal (``--sim``, ``simulate()``, a line file with ``[simulation]``) the
    value is filled in when not given; on a real line the run is refused without it.
    """

    value: Any


def din_value(text: str) -> str:
    """The 13-character DIN of a parameter: 13 characters as printed in the barcode, or
    14 as read by eye with the check character (refused when the check is wrong)."""
    compact = text.replace(" ", "")
    if len(compact) == 14:
        return validate_din_with_check(compact)
    return validate_identifier(compact)


Din = Annotated[str, AfterValidator(din_value)]
"""A parameter holding an ISBT 128 DIN (``din: Annotated[Din, SimDefault(...)]``)."""


class Params(BaseModel):
    """Base of a protocol's parameters: a pydantic model with defaults and bounds.

    Unknown keys are refused; values are frozen once the run starts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


ParamsT = TypeVar("ParamsT", bound=Params, covariant=True, default=Params)
"""A protocol's parameters model, for ``Protocol[P]`` and ``Run[P]``.

Covariant, so a ``Run[CarTParams]`` is a ``Run`` (``Run[Params]``) to helpers that
read no protocol-specific parameter; bare ``Run`` and ``Protocol`` mean ``[Params]``.
"""


def _allowed(model: type[BaseModel], field: str) -> str:
    info = model.model_fields.get(field)
    if info is None:
        return "known parameters: " + ", ".join(model.model_fields)
    bounds = []
    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
        for attr, label in (("min_length", "min length"), ("max_length", "max length")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{label} {value}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            bounds.append(f"matching {pattern}")
    annotation = getattr(info.annotation, "__name__", str(info.annotation))
    text = f"type {annotation}"
    if bounds:
        text += ", " + " and ".join(bounds)
    return text


def _describe(model: type[BaseModel], error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(parameters)"
        top = str(item["loc"][0]) if item["loc"] else ""
        if item["type"] == "extra_forbidden":
            lines.append(
                f"unknown parameter {field!r}; known parameters: {', '.join(model.model_fields)}"
            )
            continue
        given = item.get("input")
        given_text = "" if item["type"] == "missing" else f" (got {given!r})"
        lines.append(
            f"parameter {field!r}: {item['msg']}{given_text}; allowed: {_allowed(model, top)}"
        )
    return "; ".join(lines)


def parse_param_assignments(
    assignments: list[str], model: type[BaseModel] | None = None
) -> dict[str, Any]:
    """Turn ``["KEY=VALUE", ...]`` into a dict.

    A value for a text parameter of ``model`` is taken as written (so a numeric
    chain-of-identity id stays text); any other value is read as JSON when it parses
    as JSON (numbers, booleans, lists) and as text otherwise.
    """
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--param {item!r} is not KEY=VALUE (e.g. --param culture_days=7)")
        field = model.model_fields.get(key) if model is not None else None
        if field is not None and field.annotation is str:
            values[key] = raw
            continue
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def load_params_file(path: Path) -> dict[str, Any]:
    """Read a JSON object of parameters; refuses anything else with the file named."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(f"--params file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParameterError(f"--params file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"--params file {str(path)!r} must hold a JSON object of parameters")
    return data


def sim_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The :class:`SimDefault` values ``model`` declares, by field name."""
    found: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, SimDefault):
                found[name] = meta.value
    return found


def build_params(model: type[Params], values: dict[str, Any], *, rehearsal: bool = False) -> Params:
    """Validate ``values`` against ``model``; ParameterError names each bad field.

    ``rehearsal``: the run is a simulation, so parameters declared with a
    :class:`SimDefault` take it when not given; on a real line they are required.
    """
    defaults = sim_defaults(model)
    if rehearsal:
        values = {**defaults, **values}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        message = _describe(model, exc)
        missing = [name for name in defaults if name not in values]
        if missing:
            message += (
                f"; {', '.join(map(repr, missing))} are the patient's own and have no "
                "default on a real line (a simulated line uses a made-up one): "
                "give them with --param KEY=VALUE or --params FILE.json"
            )
        raise ParameterError(message) from None
