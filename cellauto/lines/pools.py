"""Pools of units on a line: one equipment name, several instruments of one kind.

A line file may give one equipment name several *units* (``units = { "BR-01" =
"opc.tcp://…", "BR-02" = "…" }``: twenty bioreactors for the line's ``bioreactor``).
Opening or serving the line treats each unit as equipment of its own under the key
``POOL@UNIT`` (``bioreactor@BR-01``): its adapter, its connection, its served
simulated instrument, its action-log name. The :class:`~cellauto.instruments.line.Line`
then holds them in ``line.pools`` (pool -> unit -> instrument) and a run drives the view
:meth:`~cellauto.instruments.line.Line.with_units` gives, where ``bioreactor`` is the
unit it is bound to (:mod:`cellauto.controller.units`).
"""

from __future__ import annotations

from collections.abc import Mapping

from cellauto.instruments.base import Instrument
from cellauto.lines.config import LineConfig

__all__ = ["expand_pools", "gather_pools", "nest_endpoints", "unit_key"]


def unit_key(pool: str, unit: str) -> str:
    """The equipment key of ``unit`` of ``pool``: ``bioreactor@BR-01``."""
    return f"{pool}@{unit}"


def expand_pools(
    config: LineConfig, needed: Mapping[str, type[Instrument]]
) -> tuple[LineConfig, dict[str, type[Instrument]], dict[str, dict[str, str]]]:
    """``config`` and ``needed`` with each needed pool replaced by its units (keys
    ``POOL@UNIT``), and pool -> unit -> key. A line without pools comes back as it is."""
    pools = config.pools
    if not pools:
        return config, dict(needed), {}
    equipment = {name: item for name, item in config.equipment.items() if name not in pools}
    wanted: dict[str, type[Instrument]] = {}
    keys: dict[str, dict[str, str]] = {}
    for name, interface in needed.items():
        pool = pools.get(name)
        if pool is None:
            wanted[name] = interface
            continue
        keys[name] = {}
        for unit, item in pool.unit_configs().items():
            key = unit_key(name, unit)
            equipment[key] = item
            wanted[key] = interface
            keys[name][unit] = key
    return config.model_copy(update={"equipment": equipment}), wanted, keys


def gather_pools(
    equipment: dict[str, Instrument], keys: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, Instrument]]:
    """Take the units out of ``equipment`` (opened under their keys): pool -> unit -> it."""
    return {
        pool: {unit: equipment.pop(key) for unit, key in units.items()}
        for pool, units in keys.items()
    }


def nest_endpoints(
    endpoints: Mapping[str, str], config: LineConfig
) -> dict[str, str | dict[str, str]]:
    """Endpoints as the line file gives them: a pool's as ``{unit: endpoint}``."""
    pools = config.pools
    units: dict[str, dict[str, str]] = {}
    nested: dict[str, str | dict[str, str]] = {}
    for key, endpoint in endpoints.items():
        pool, at, unit = key.partition("@")
        if at and pool in pools:
            units.setdefault(pool, {})[unit] = endpoint
        else:
            nested[key] = endpoint
    return {**nested, **units}
