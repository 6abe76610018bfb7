"""Open a configured line: serve simulated instruments on loopback, connect adapters.

:func:`serve_simulated` starts, for each equipment of a simulated line whose adapter
speaks a wire protocol, a server for the simulated instrument behind it (SCPI over
TCP for ``visa``; OPC UA for ``opcua``; a line device's plain TCP for ``tcp``, see
:mod:`cellauto.lines.tcp`) and returns the endpoints actually bound.
:func:`open_line` connects the adapter for each piece of equipment a protocol needs
and returns the :class:`~cellauto.instruments.line.Line`. Both register their
cleanup on an :class:`~contextlib.AsyncExitStack` the caller owns.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from cellauto.clock import Clock, real_seconds
from cellauto.errors import BadInputError, EquipmentError
from cellauto.instruments import (
    BarcodeScanner,
    Bioreactor,
    CellCounter,
    CellProcessor,
    ControlledRateFreezer,
    CryoStorage,
    DryShipper,
    FlowCytometer,
    LiquidHandler,
)
from cellauto.instruments.base import Instrument
from cellauto.instruments.label_printer import LabelPrinter
from cellauto.instruments.line import Line
from cellauto.instruments.thawer import Thawer
from cellauto.lines.config import EquipmentConfig, LineConfig, SetpointPolicy
from cellauto.lines.pools import expand_pools, gather_pools
from cellauto.lines.setpoints import record_setpoint_change
from cellauto.lines.tcp import connect_tcp, serve_tcp, served_tcp_port
from cellauto.protocols.execution import Execution
from cellauto.records.payloads import Alarm
from cellauto.sim.line import SimLine

if TYPE_CHECKING:
    from cellauto.instruments.opcua.setpoints import SetpointChange
    from cellauto.sim.opcua.device import DeviceServer
    from cellauto.sim.printer_tcp import PrinterTcpServer
    from cellauto.sim.scanner_tcp import ScannerTcpServer
    from cellauto.sim.scpi.server import ScpiServer

__all__ = ["INTERFACES", "GapRecorder", "open_line", "serve_simulated"]

log = logging.getLogger(__name__)

#: Instrument interfaces by name, as a line file names them.
INTERFACES: dict[str, type[Instrument]] = {
    cls.interface_name: cls
    for cls in (
        BarcodeScanner,
        Bioreactor,
        CellCounter,
        CellProcessor,
        ControlledRateFreezer,
        CryoStorage,
        DryShipper,
        FlowCytometer,
        LabelPrinter,
        LiquidHandler,
        Thawer,
    )
}

_VISA_PORT = re.compile(r"^TCPIP0?::127\.0\.0\.1::(\d+)::SOCKET$")


def _port(config: EquipmentConfig, name: str) -> int:
    endpoint = config.endpoint or ""
    match = _VISA_PORT.match(endpoint)
    if config.adapter == "visa" and match:
        return int(match.group(1))
    if config.adapter == "opcua":
        found = re.match(r"^opc\.tcp://127\.0\.0\.1:(\d+)(/.*)?$", endpoint)
        if found:
            return int(found.group(1))
    raise BadInputError(
        f"equipment {name!r}: a simulated {config.adapter} instrument is served on loopback; "
        f"endpoint {endpoint!r} must be TCPIP0::127.0.0.1::PORT::SOCKET (visa) or "
        "opc.tcp://127.0.0.1:PORT/... (opcua); PORT 0 picks a free port"
    )


def _check_declared_interface(
    config: LineConfig, name: str, item: EquipmentConfig, needed: type[Instrument]
) -> None:
    """The line file's ``interface`` for ``name``, if it gives one, must be what the
    protocol asks for (or a narrower one): a line file that says otherwise is wrong."""
    if item.interface is None:
        return
    declared = INTERFACES.get(item.interface)
    if declared is None:
        raise BadInputError(
            f"line {config.name!r}: equipment {name!r} has interface {item.interface!r}, "
            f"which is none of {', '.join(sorted(INTERFACES))}"
        )
    if not issubclass(declared, needed):
        raise EquipmentError(
            f"line {config.name!r}: equipment {name!r} is a {item.interface} in the line "
            f"file, but the protocol needs a {needed.interface_name} there; fix the line "
            "file or name other equipment"
        )


async def serve_simulated(
    config: LineConfig,
    sim: SimLine,
    needed: Mapping[str, type[Instrument]],
    stack: AsyncExitStack,
    servers: dict[str, object] | None = None,
) -> dict[str, str]:
    """Serve each wire-protocol equipment of ``needed`` from ``sim``; name -> endpoint.

    ``servers``, when given, receives the server object of each equipment (tests use it
    to cut or restart a connection). A pool's units are served each as its own
    instrument, keyed ``POOL@UNIT`` (:mod:`cellauto.lines.pools`).
    """
    config, needed, _ = expand_pools(config, needed)
    sim.line_for(needed)
    endpoints: dict[str, str] = {}
    for name in needed:
        equipment = config.equipment.get(name)
        if equipment is not None and _plr_over_tcp(equipment):
            endpoints[name] = await _serve_plr(config, name, sim, equipment, stack, servers)
            continue
        if equipment is None or equipment.adapter not in ("visa", "opcua", "tcp"):
            continue
        tcp = equipment.adapter == "tcp"
        port = served_tcp_port(equipment, name) if tcp else _port(equipment, name)
        instrument = sim.equipment[name]
        server: ScpiServer | DeviceServer | ScannerTcpServer | PrinterTcpServer
        try:
            if tcp:
                server = await serve_tcp(name, instrument, port, stack)
                endpoints[name] = server.endpoint
            elif equipment.adapter == "visa":
                from cellauto.sim.scpi import scpi_device, serve_scpi

                server = await stack.enter_async_context(
                    serve_scpi(scpi_device(instrument), port=port)
                )
                endpoints[name] = server.resource_name
            else:
                server = await _serve_opcua(instrument, port, stack)
                endpoints[name] = str(server.url)
        except OSError as exc:  # the port is taken, or not ours to take
            raise BadInputError(
                f"line {config.name!r}: cannot serve {name!r} on 127.0.0.1 port {port} "
                f"({equipment.endpoint}): {exc.strerror or exc}; stop what listens there, or "
                "give another port in the line file (port 0 picks a free one)"
            ) from None
        if servers is not None:
            servers[name] = server
    return endpoints


def _plr_over_tcp(equipment: EquipmentConfig) -> bool:
    """A PyLabRobot liquid handler with a tcp:// endpoint: reached over JSON lines."""
    return equipment.adapter == "pylabrobot" and (equipment.endpoint or "").startswith("tcp://")


async def _serve_plr(
    config: LineConfig,
    name: str,
    sim: SimLine,
    equipment: EquipmentConfig,
    stack: AsyncExitStack,
    servers: dict[str, object] | None,
) -> str:
    """Serve the simulated liquid handler ``name`` (sim/plr_server.py); its endpoint."""
    from cellauto.sim.liquid_handler import SimLiquidHandler
    from cellauto.sim.plr_server import serve_plr

    handler = sim.equipment[name]
    if not isinstance(handler, SimLiquidHandler):
        raise EquipmentError(f"equipment {name!r}: only a liquid handler is served for PyLabRobot")
    port = served_tcp_port(equipment, name)
    try:
        server = await stack.enter_async_context(serve_plr(handler, port=port))
    except OSError as exc:
        raise BadInputError(
            f"line {config.name!r}: cannot serve {name!r} on 127.0.0.1 port {port}: "
            f"{exc.strerror or exc}; give another port (0 picks a free one)"
        ) from None
    if servers is not None:
        servers[name] = server
    return server.endpoint


async def _serve_opcua(instrument: Instrument, port: int, stack: AsyncExitStack) -> DeviceServer:
    from cellauto.sim.bioreactor import SimBioreactor
    from cellauto.sim.opcua import free_port, serve_bioreactor, serve_processor
    from cellauto.sim.processor import SimCellProcessor

    port = port or free_port()
    server: DeviceServer
    if isinstance(instrument, SimBioreactor):
        # sampling only on request keeps the served culture's numbers those of in-process
        server = await stack.enter_async_context(
            serve_bioreactor(instrument, port=port, sample_interval_s=None)
        )
    elif isinstance(instrument, SimCellProcessor):
        server = await stack.enter_async_context(serve_processor(instrument, port=port))
    elif served := await _serve_opcua_more(instrument, port, stack):
        server = served
    else:
        raise EquipmentError(
            f"{instrument.interface_name}: no OPC UA server for it; OPC UA serves the "
            "Bioreactor, CellProcessor, FlowCytometer and CryoStorage (the others: visa or sim)"
        )
    return server


async def _serve_opcua_more(
    instrument: Instrument, port: int, stack: AsyncExitStack
) -> DeviceServer | None:
    """The cytometer's or cryostorage's server (None: neither). Readings only on request,
    so that a served line gives the in-process numbers."""
    from cellauto.sim.cytometer import SimFlowCytometer
    from cellauto.sim.opcua import serve_cytometer, serve_storage
    from cellauto.sim.storage import SimCryoStorage

    if isinstance(instrument, SimFlowCytometer):
        return await stack.enter_async_context(serve_cytometer(instrument, port=port))
    if isinstance(instrument, SimCryoStorage):
        return await stack.enter_async_context(
            serve_storage(instrument, port=port, sample_interval_s=None)
        )
    return None


class GapRecorder:
    """Where an adapter reports a connection outage; the run journals it as an alarm."""

    def __init__(self) -> None:
        self.sink: Callable[[str, float, float, str], None] | None = None
        self.execution: Execution | None = None

    def journal_to(self, execution: Execution) -> None:
        """Record every gap from now on in ``execution``'s journal as a major alarm."""

        def record(name: str, started_s: float, ended_s: float, reason: str) -> None:
            execution.record(
                Alarm(
                    source=name,
                    severity="major",
                    message=f"connection to {name} lost: {reason}",
                    gap_started_process_time_s=started_s,
                    gap_ended_process_time_s=ended_s,
                )
            )

        self.sink = record
        self.execution = execution

    def for_equipment(self, name: str) -> Callable[[float, float, str], None]:
        def on_gap(started_s: float, ended_s: float, reason: str) -> None:
            if self.sink is not None:
                self.sink(name, started_s, ended_s, reason)
            else:
                log.warning("%s: connection gap %.0f..%.0f s: %s", name, started_s, ended_s, reason)

        return on_gap

    def for_setpoints(self, name: str, policy: SetpointPolicy) -> Callable[[SetpointChange], None]:
        """Where ``name``'s adapter reports a setpoint changed behind the run's back."""

        def on_change(change: SetpointChange) -> None:
            record_setpoint_change(self.execution, name, policy, change)

        return on_change


async def _connect_opcua(
    name: str,
    interface: type[Instrument],
    config: EquipmentConfig,
    endpoint: str | None,
    stack: AsyncExitStack,
    gaps: GapRecorder,
    *,
    simulated: bool,
    clock: Clock | None,
) -> Instrument:
    from cellauto.instruments.opcua import (
        OpcUaBioreactor,
        OpcUaCellProcessor,
        OpcUaCryoStorage,
        OpcUaFlowCytometer,
    )

    if not endpoint:
        raise BadInputError(f"equipment {name!r}: an opc.tcp:// endpoint is required")
    options: dict[str, Any] = {
        "timeout_s": config.timeout_s,
        "clock": clock or Clock(),  # process time of the gaps it reports
        "on_gap": gaps.for_equipment(name),
    }
    credentials = config.resolve_credentials()
    if credentials is not None:
        options["user"], options["password"] = credentials
    if config.security:
        options["security"] = config.security.split(",")[0]
        options["certificate"] = config.certificate
        options["private_key"] = config.private_key
    if issubclass(interface, Bioreactor):
        if simulated:  # read on demand: the same numbers as the in-process instrument
            options["max_age_s"] = 0.0
        options["on_setpoint_changed"] = gaps.for_setpoints(name, config.on_setpoint_changed)
        options["restore_setpoints"] = config.on_setpoint_changed == "restore"
        adapter: Instrument = await OpcUaBioreactor.connect(endpoint, **options)
    elif issubclass(interface, CellProcessor):
        adapter = await OpcUaCellProcessor.connect(endpoint, **options)
    elif issubclass(interface, FlowCytometer):
        adapter = await OpcUaFlowCytometer.connect(endpoint, **options)
    elif issubclass(interface, CryoStorage):
        adapter = await OpcUaCryoStorage.connect(endpoint, **options)
    else:
        raise EquipmentError(
            f"equipment {name!r}: no OPC UA adapter for {interface.__name__}; "
            "OPC UA adapters: Bioreactor, CellProcessor, FlowCytometer, CryoStorage"
        )
    stack.push_async_callback(adapter.aclose)  # type: ignore[attr-defined]
    return adapter


async def open_line(
    config: LineConfig,
    needed: Mapping[str, type[Instrument]],
    stack: AsyncExitStack,
    *,
    sim: SimLine | None = None,
    endpoints: Mapping[str, str] | None = None,
    gaps: GapRecorder | None = None,
    clock: Clock | None = None,
) -> Line:
    """Connect an adapter for each piece of equipment ``needed`` (each unit of a pool:
    ``line.pools``); refuse what is missing."""
    missing = [name for name in needed if name not in config.equipment]
    if missing:
        raise EquipmentError(
            f"line {config.name!r} has no equipment {', '.join(map(repr, missing))}; "
            f"it has: {', '.join(config.equipment)}"
        )
    gaps = gaps or GapRecorder()
    config, needed, pool_keys = expand_pools(config, needed)
    equipment: dict[str, Instrument] = {}
    local: SimLine | None = None  # a rehearsal's in-process instruments beside served ones
    for name, interface in needed.items():
        item = config.equipment[name]
        _check_declared_interface(config, name, item, interface)
        endpoint = (endpoints or {}).get(name, item.endpoint)
        over_tcp = item.adapter == "pylabrobot" and (endpoint or "").startswith("tcp://")
        if item.adapter == "sim" or (
            item.adapter == "pylabrobot" and sim is not None and not over_tcp
        ):
            if sim is None and config.is_simulation and clock is not None:
                # a rehearsal reaching a line served elsewhere: e.g. its label printer
                local = local or SimLine(clock=clock, name=config.name)
                local.line_for({name: interface})
                equipment[name] = local.equipment[name]
                continue
            if sim is None:
                raise BadInputError(
                    f'equipment {name!r} is simulated (adapter = "sim") but the line is not: '
                    "set [simulation] serve = true"
                )
            sim.line_for({name: interface})
            equipment[name] = sim.equipment[name]
        elif item.adapter == "visa":
            from cellauto.instruments.visa import connect_visa

            if not endpoint:
                raise BadInputError(f"equipment {name!r}: a VISA resource name is required")
            adapter = await connect_visa(interface, endpoint, timeout_s=item.timeout_s)
            stack.push_async_callback(adapter.aclose)
            equipment[name] = adapter
        elif item.adapter == "tcp":
            equipment[name] = await connect_tcp(name, interface, item, endpoint, stack)
        elif item.adapter == "opcua":
            equipment[name] = await _connect_opcua(
                name,
                interface,
                item,
                endpoint,
                stack,
                gaps,
                simulated=sim is not None,
                clock=clock or (sim.world.clock if sim is not None else None),
            )
        elif over_tcp:  # pylabrobot over JSON lines (a served simulated one, or a device)
            equipment[name] = await _connect_plr(name, endpoint or "", item, stack)
        else:  # pylabrobot on its own simulation backend
            from cellauto.instruments.plr import PlrLiquidHandler

            equipment[name] = PlrLiquidHandler(serial=endpoint or name)
    assets = {name: config.equipment[name].asset for name in equipment}
    from cellauto.protocols.holds import share_line  # the protocols build on the lines

    share_line(config, equipment)  # `shared = {...}`: steps hold them (issue 15, §5)
    pools = gather_pools(equipment, pool_keys)
    return Line(
        config.name,
        equipment,
        simulated=sim is not None,
        rehearsal=config.is_simulation,
        assets={name: asset for name, asset in assets.items() if asset is not None},
        pools=pools,
        unit_assets={
            pool: {unit: assets[key] or unit for unit, key in keys.items()}
            for pool, keys in pool_keys.items()
        },
    )


async def _connect_plr(
    name: str, endpoint: str, item: EquipmentConfig, stack: AsyncExitStack
) -> Instrument:
    """The PyLabRobot adapter on a :class:`TcpSerializingBackend` to ``endpoint``."""
    from cellauto.instruments.plr import TcpPlrLiquidHandler, TcpSerializingBackend
    from cellauto.instruments.tcp import parse_tcp_endpoint

    host, port = parse_tcp_endpoint(endpoint)
    # network timeouts are real time: on a sped-up line, 30 process seconds are a few ms
    timeout_s = real_seconds(item.timeout_s or 30.0)
    backend = TcpSerializingBackend(host, port, timeout_s=timeout_s)
    serial = (await backend.hello()).get("serial", name)
    adapter = TcpPlrLiquidHandler(backend, serial=serial)
    stack.push_async_callback(adapter.stop)
    return adapter
