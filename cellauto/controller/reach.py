"""What a controller reaches: its protocols by name and the instruments of its line.

A controller runs a queued batch only if it has the protocol the batch was submitted
with (same name, same source SHA-256) and its line has every piece of equipment the
protocol needs; it takes a run over from a lost peer only if it reaches every
instrument the run started with (:func:`run_assets`, by vendor, model and serial: an
instrument in this process, such as a simulated label printer, is anyone's). A run on
a simulated line of its own (``run_started.simulated``: a ``line_per_run`` controller's
run, its world in virtual time in that controller's process) is reached by nobody
else: its cells and instruments ended with that process, and a fresh world would not
be them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from cellauto.errors import CellautoError
from cellauto.instruments.base import Instrument
from cellauto.protocols import load_protocol
from cellauto.protocols.definition import Protocol
from cellauto.protocols.runner import _source_sha256
from cellauto.records import payloads as rec

__all__ = [
    "LOCAL_ADAPTERS",
    "ProtocolShelf",
    "asset_key",
    "line_assets",
    "missing_assets",
    "own_world_key",
    "run_assets",
]

log = logging.getLogger(__name__)

LOCAL_ADAPTERS = frozenset({"in-process", "sim"})
"""Adapters of instruments inside the controller's own process (anyone's to reach)."""


def asset_key(vendor: str, model: str, serial: str) -> str:
    """How an instrument is named across controllers."""
    return f"{vendor}/{model}/{serial}"


def line_assets(equipment: Mapping[str, Instrument]) -> set[str]:
    """The instruments a line reaches (those outside this process)."""
    return {
        asset_key(i.identity.vendor, i.identity.model, i.identity.serial)
        for i in equipment.values()
        if i.identity.adapter not in LOCAL_ADAPTERS
    }


def own_world_key(started: rec.RunStarted, name: str) -> str:
    """How an instrument of a run's own simulated world is named: no controller's line
    has it (see the module doc)."""
    return f"simulated in its controller's process/{started.run_id}/{name}"


def run_assets(started: rec.RunStarted) -> set[str]:
    """The instruments a run started with (those outside its controller's process; all
    of them for a run on a simulated world of its own, which nobody else reaches)."""
    if started.simulated:
        return {own_world_key(started, name) for name in started.instruments}
    return {
        asset_key(identity.vendor, identity.model, identity.serial)
        for identity in started.instruments.values()
        if identity.adapter not in LOCAL_ADAPTERS
    }


def missing_assets(started: rec.RunStarted, reached: Iterable[str]) -> list[str]:
    """The run's instruments this controller does not reach, as ``name (vendor/model/
    serial)``, sorted."""
    have = set(reached)
    missing = []
    if started.simulated:  # its own world, in its controller's process: nobody reaches it
        for name, identity in started.instruments.items():
            if own_world_key(started, name) not in have:
                key = asset_key(identity.vendor, identity.model, identity.serial)
                missing.append(f"{name} ({key}, simulated in its controller's process)")
        return sorted(missing)
    for name, identity in started.instruments.items():
        key = asset_key(identity.vendor, identity.model, identity.serial)
        if identity.adapter not in LOCAL_ADAPTERS and key not in have:
            missing.append(f"{name} ({key})")
    return sorted(missing)


class ProtocolShelf:
    """The protocol files of a directory, loaded once and found by protocol name."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise CellautoError(
                f"protocol directory {directory} does not exist; give --protocols DIR, the "
                "directory of the protocol files the queue names"
            )
        self.directory = directory
        self._by_name: dict[str, tuple[Protocol, str]] = {}
        for file in sorted(directory.glob("*.py")):
            if file.name.startswith("_"):
                continue
            try:
                protocol = load_protocol(file)
            except CellautoError as exc:
                log.warning("protocol file %s not loaded: %s", file, exc)
                continue
            _, sha = _source_sha256(protocol)
            self._by_name[protocol.name] = (protocol, sha or "")

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def find(self, name: str, source_sha256: str) -> tuple[Protocol | None, str | None]:
        """(the protocol, None), or (None, why this controller cannot run it)."""
        found = self._by_name.get(name)
        if found is None:
            return None, (
                f"protocol {name!r} is not among the protocols of {self.directory} "
                f"({', '.join(self.names()) or 'none'})"
            )
        protocol, sha = found
        if sha != source_sha256:
            return None, (
                f"protocol {name!r} in {self.directory} has source SHA-256 {sha[:12]}..., "
                f"the run was submitted with {source_sha256[:12]}...: another version of the file"
            )
        return protocol, None

    def equipment(self, line_has: Iterable[str]) -> dict[str, type[Instrument]]:
        """Every piece of equipment the protocols need that the line has: name -> interface."""
        has = set(line_has)
        needed: dict[str, type[Instrument]] = {}
        for protocol, _ in self._by_name.values():
            for name, interface in protocol.equipment().items():
                if name in has:
                    needed.setdefault(name, interface)
        return needed
