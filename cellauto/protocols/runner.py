"""The runner: validates a run request, then executes it against a line.

Everything that can be refused is refused in :meth:`Runner.prepare`, before a
single record is written: unknown or out-of-range parameters, a line lacking
equipment. Many runs execute concurrently in one process; each
:meth:`Execution.execute` keeps its failures to itself.
"""

from __future__ import annotations

import hashlib
import inspect
import platform
import uuid
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from cellauto.clock import Clock
from cellauto.instruments.line import Line
from cellauto.protocols.definition import Protocol
from cellauto.protocols.execution import Execution, Observer, RunOutcome
from cellauto.protocols.params import Params, build_params
from cellauto.records import Journal

__all__ = ["Runner"]

_PACKAGES = (
    "cellauto",
    "pydantic",
    "anyio",
    "numpy",
    "asyncua",
    "pyvisa",
    "pyvisa-py",
    "pylabrobot",
    "orjson",
)


@cache
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _source_sha256(protocol: Protocol) -> tuple[str | None, str | None]:
    if protocol.source_sha256:
        return protocol.source_file, protocol.source_sha256
    try:
        file = inspect.getsourcefile(protocol.steps[0].function) if protocol.steps else None
    except TypeError:
        file = None
    if file is None:
        return None, None
    return file, hashlib.sha256(Path(file).read_bytes()).hexdigest()


class Runner:
    """Prepares and executes protocol runs, recording them in one journal."""

    def __init__(self, journal: Journal, *, clock_origin: datetime | None = None) -> None:
        self.journal = journal
        self.clock_origin = clock_origin
        self.observers: list[Observer] = []

    def prepare(
        self,
        protocol: Protocol,
        line: Line,
        params: Params | dict[str, Any] | None = None,
        *,
        seed: int | None = None,
        operator: str = "system",
        run_id: str | None = None,
    ) -> Execution:
        """Validate everything and return an Execution; nothing is written yet."""
        if not isinstance(params, Params):
            params = build_params(protocol.params, dict(params or {}))
        elif not isinstance(params, protocol.params):
            params = build_params(protocol.params, params.model_dump())
        needed = protocol.equipment()
        line.provide(needed, protocol=protocol.name)
        run_id = run_id or uuid.uuid4().hex
        source_file, source_sha = _source_sha256(protocol)
        instruments = {name: line.equipment[name] for name in needed}
        run_started = {
            "run_id": run_id,
            "protocol_name": protocol.name,
            "protocol_version": protocol.version,
            "protocol_source_sha256": source_sha,
            "protocol_file": source_file,
            "parameters": params.model_dump(mode="json"),
            "steps": [
                {
                    "name": s.name,
                    "path": s.path,
                    "resume": s.resume.value,
                    "max_duration_h": s.max_duration_h,
                    "max_hold_h": s.max_hold_h,
                    "expected_duration_h": s.estimate_h(params),
                    "checks": {k: v.model_dump(mode="json") for k, v in s.checks.items()},
                }
                for s in protocol.steps
            ],
            "line": line.name,
            "simulated": line.simulated,
            "seed": seed,
            "operator": operator,
            "instruments": {
                name: {
                    "interface": needed[name].__name__,
                    **instrument.identity.model_dump(mode="json"),
                }
                for name, instrument in instruments.items()
            },
            "package_versions": package_versions(),
        }
        clock = Clock(self.clock_origin)
        return Execution(
            run_id=run_id,
            protocol=protocol,
            params=params,
            journal=self.journal.begin_run(run_id, clock.now_s),
            clock=clock,
            instruments=instruments,
            run_started=run_started,
            observers=list(self.observers),
        )

    async def run(
        self,
        protocol: Protocol,
        line: Line,
        params: Params | dict[str, Any] | None = None,
        **options: Any,
    ) -> RunOutcome:
        """Prepare and execute one run to its end, then seal its record."""
        execution = self.prepare(protocol, line, params, **options)
        outcome = await execution.execute()
        execution.close()
        return outcome
