"""A simulated instrument behind a real asyncua server (base of the device servers).

What every device server shares: the asyncua ``Server`` (namespace 0 and the
DI/Machinery/AMB/LADS nodesets cloned from a process-wide template, see
:mod:`._standard` and :mod:`._nodesets`), security, the DI/LADS device skeleton
(:mod:`.skeleton`), method handlers that never raise, guarded TargetValue writes, a
network cut for fault injection, and background tasks stopped with the server.

**Time.** Server and adapters run on the simulation's loop. asyncua's own timers (session
watchdog, activation grace period, publishing) are real seconds on any loop
(:func:`cellauto._compat.asyncua.use_real_time_timers`). On a virtual loop the
server is tuned so that an idle connection costs almost nothing per virtual hour:
the 1 Hz ``ServerStatus`` clock is disabled, the per-connection session watchdog
(1 s, no public knob) is stretched to 600 s, and sessions may live 30 days (session
expiry is decided on *real* time, so a long operator prompt cannot kill a session).
``Server.init`` (a worker thread) runs inside ``real_time()``. Method handlers run
inside ``serving_outside()``: virtual time may pass while a request from a client is
served, never while the client still waits for it to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.crypto.permission_rules import User, UserRole

from cellauto._compat import asyncua as asyncua_compat
from cellauto.clock import VirtualTimeEventLoop, is_virtual, serving_outside
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.status import error_kind, refusal
from cellauto.sim.base import SimInstrument
from cellauto.sim.opcua._nodesets import import_nodesets
from cellauto.sim.opcua._standard import use_standard_template
from cellauto.sim.opcua.builder import Namespaces, SpaceBuilder
from cellauto.sim.opcua.security import ServerSecurity, apply_security

__all__ = ["SimOpcUaServer", "free_port"]

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[list[ua.Variant] | None]]
WriteGuard = Callable[[ua.DataValue], Awaitable[ua.StatusCode]]
Refresher = Callable[[], Awaitable[None]]

#: Session watchdog period on a virtual loop (asyncua: 1 s; expiry is judged on real time).
VIRTUAL_SESSION_WATCHDOG_S = 600.0
MAX_SESSION_TIMEOUT_MS = 30 * 86_400_000
_ADMIN = User(role=UserRole.Admin)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


#: What a client may ask on an unsecured channel of a secured server: discovery only.
_DISCOVERY = frozenset(
    _ua.node_id(i)
    for i in (
        ua.ObjectIds.GetEndpointsRequest_Encoding_DefaultBinary,
        ua.ObjectIds.FindServersRequest_Encoding_DefaultBinary,
    )
)


def _adjust_connection(processor: Any, *, watchdog_s: float | None, secured: bool) -> None:
    """Adjust each connection as it is accepted.

    * ``watchdog_s``: the per-connection session watchdog period (asyncua: 1 s).
    * ``secured``: on a channel of security policy None only GetEndpoints and
      FindServers are answered; anything else gets ``BadSecurityPolicyRejected``.
    """
    if watchdog_s is not None:
        asyncua_compat.set_session_watchdog(processor, watchdog_s)
    if secured:
        asyncua_compat.discovery_only_when_unsecured(processor, _DISCOVERY)


class SimOpcUaServer:
    """One simulated instrument served over OPC UA (``async with`` or start/stop)."""

    #: First element of every NodeId path of the device (``bioreactor/...``).
    device_key: ClassVar[str] = "device"

    def __init__(
        self,
        sim: SimInstrument,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        security: ServerSecurity | None = None,
        tune_timers: bool | None = None,
    ) -> None:
        """``port`` 0: a free port; ``security`` None: no security (loopback only);
        ``tune_timers`` None: tune asyncua's timers when on a virtual loop (see above)."""
        self.sim = sim
        self.tune_timers = tune_timers
        self.host = host
        self.port = port or free_port(host)
        self.security = security
        self.server: Server | None = None
        self.ns: Namespaces | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._guards: dict[ua.NodeId, WriteGuard] = {}
        self._refreshers: dict[ua.NodeId, Refresher] = {}

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/cellauto/{self.device_key}"

    @property
    def where(self) -> str:
        return f"{self.sim.interface_name} {self.sim.identity.serial}"

    async def __aenter__(self) -> SimOpcUaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build the address space and listen on :attr:`url`."""
        asyncua_compat.use_real_time_timers()  # asyncua's timers in real seconds, any loop
        server = Server()
        with_nodesets = use_standard_template(server)
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeEventLoop):
            with loop.real_time():
                await server.init()
        else:
            await server.init()
        ident = self.sim.identity
        server.set_endpoint(self.url)
        server.set_server_name(f"cellauto simulated {ident.model} {ident.serial}")
        uri = await apply_security(server, self.security)
        await server.set_application_uri(
            uri or f"urn:cellauto:sim:{self.device_key}:{ident.serial}"
        )
        server.iserver.max_session_timeout_ms = MAX_SESSION_TIMEOUT_MS
        tune = is_virtual() if self.tune_timers is None else self.tune_timers
        if tune:
            server.disable_clock()
        asyncua_compat.on_each_connection(
            server,
            partial(
                _adjust_connection,
                watchdog_s=VIRTUAL_SESSION_WATCHDOG_S if tune else None,
                secured=self.security is not None,
            ),
        )
        self.server = server
        try:
            self.ns = await Namespaces.register(server)
            if not with_nodesets:  # asyncua internals differ: import them here (slower)
                await import_nodesets(server)
            builder = SpaceBuilder(server, self.ns)
            await self.build(builder)
            await builder.commit()
            self._guard_writes(server)
            asyncua_compat.republish_only_what_is_kept(server)
            if self._refreshers:
                server.subscribe_server_callback(CallbackType.PreRead, self._before_read)
            await server.start()  # e.g. OSError: the port is taken
        except BaseException:
            self.server = None
            raise
        await self.started()
        log.info("%s: OPC UA server on %s", self.where, self.url)

    async def stop(self) -> None:
        """Close every connection and stop; the simulated instrument carries on."""
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.stopping()
        if self.server is not None:
            server, self.server = self.server, None
            await asyncua_compat.stop_clock_task(server)  # else stop() waits out its 1 s sleep
            await server.stop()
            # asyncua leaves sessions whose connection dropped open (for a reconnect),
            # each with a timeout task; a stopped server has no use for them
            for session in asyncua_compat.external_sessions(server):
                await session.close_session(True)
            log.info("%s: OPC UA server on %s stopped", self.where, self.url)

    def drop_connections(self) -> int:
        """Close every client connection at once (a network cut); returns how many."""
        transports = asyncua_compat.connections(self.server) if self.server else []
        for transport in transports:
            transport.close()
        return len(transports)

    # -- for the device servers ---------------------------------------------------------
    async def build(self, builder: SpaceBuilder) -> None:
        """Add the device's nodes."""
        raise NotImplementedError

    async def started(self) -> None:
        """Called once the server listens (start background tasks here)."""

    async def stopping(self) -> None:
        """Called before the server closes (background tasks are already cancelled)."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a background task cancelled when the server stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def node_id(self, path: str) -> ua.NodeId:
        if self.ns is None:
            raise RuntimeError(f"{self.where}: the OPC UA server is not started")
        return _ua.node_id(path, self.ns.own)

    async def write(
        self, path: str, value: Any, vtype: ua.VariantType, *, at: datetime | None = None
    ) -> None:
        """Set a variable's value (process-time source timestamp), telling subscribers."""
        if self.server is None:
            return
        stamp = at or self.sim.world.clock.now()
        data = ua.DataValue(
            ua.Variant(value, vtype),
            SourceTimestamp=stamp,  # type: ignore[arg-type]  # datetime for codec marker ua.DateTime
            ServerTimestamp=stamp,  # type: ignore[arg-type]
        )
        await self.server.write_attribute_value(self.node_id(path), data)

    def handler(self, function: Handler, inputs: int) -> Callable[..., Awaitable[Any]]:
        """A method callback calling ``function(*values)``; an error becomes a Bad status."""
        where = self.where

        async def callback(parent: ua.NodeId, *args: ua.Variant) -> Any:
            if len(args) != inputs:
                code = ua.StatusCodes.BadArgumentsMissing
                if len(args) > inputs:
                    code = ua.StatusCodes.BadTooManyArguments
                return _ua.status_code(code)
            with serving_outside():
                try:
                    outputs = await function(*(arg.Value for arg in args))
                except Exception as exc:
                    if error_kind(exc) is None:
                        log.exception("%s: %s failed", where, function.__name__)
                    else:
                        log.info("%s: %s refused: %s", where, function.__name__, exc)
                    return refusal(exc, inputs)
            return outputs or []

        callback.__name__ = function.__name__
        return callback

    def guard_write(self, path: str, guard: WriteGuard) -> None:
        """Clients' writes of this variable's value pass ``guard`` first (Bad: refused)."""
        self._guards[self.node_id(path)] = guard

    def refresh_before_read(self, paths: list[str], refresh: Refresher) -> None:
        """Any client's Read of these variables' values awaits ``refresh()`` first (once
        per request), so a value that is only computed on demand is never stale."""
        for path in paths:
            self._refreshers[self.node_id(path)] = refresh

    async def _before_read(self, event: ServerItemCallback, dispatcher: object) -> None:
        params = event.request_params
        refreshers = self._refreshers
        due: list[Refresher] = []
        for item in getattr(params, "NodesToRead", None) or []:
            refresh = refreshers.get(item.NodeId)
            value = item.AttributeId == ua.AttributeIds.Value
            if refresh is not None and value and refresh not in due:
                due.append(refresh)
        for refresh in due:
            await refresh()

    def _guard_writes(self, server: Server) -> None:
        service = server.iserver.attribute_service
        plain_write = service.write
        guards = self._guards
        space = server.iserver.aspace

        def read_only(node_id: ua.NodeId) -> bool:
            """The node's AccessLevel forbids writing its value (asyncua would answer
            BadUserAccessDenied, as if the user were at fault: BadNotWritable is right)."""
            level = space.read_attribute_value(node_id, ua.AttributeIds.AccessLevel)
            if level.StatusCode is None or not level.StatusCode.is_good() or level.Value is None:
                return False  # no such node, or no access level: asyncua answers
            return not level.Value.Value & ua.AccessLevel.CurrentWrite.mask

        async def write(params: ua.WriteParameters, user: User = _ADMIN) -> list[ua.StatusCode]:
            results: list[ua.StatusCode] = []
            for item in params.NodesToWrite:
                value = item.AttributeId == ua.AttributeIds.Value
                if value and user.role != UserRole.Admin and read_only(item.NodeId):
                    results.append(_ua.status_code(ua.StatusCodes.BadNotWritable))
                    continue
                guard = guards.get(item.NodeId)
                if guard is not None and value:
                    with serving_outside():
                        status = await guard(item.Value)
                    if not status.is_good():
                        results.append(status)
                        continue
                results.extend(await plain_write(ua.WriteParameters([item]), user=user))
            return results

        service.write = write  # type: ignore[method-assign]
