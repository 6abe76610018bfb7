"""An adapter's OPC UA connection: connect, reconnect, outages, calls, reads, subscriptions.

**Reconnect.** asyncua's supervisor (``auto_reconnect=True``) notices a dropped socket
at once, reconnects with backoff (1 s doubling to ``reconnect_max_delay_s``),
re-activates or re-creates the session and restores the subscriptions. Meanwhile a
request fails fast with :class:`OpcUaDisconnectedError` ("disconnected;
reconnecting"): nothing was sent. A request in flight when the connection drops
raises :class:`OpcUaConnectionLostError`: its outcome is unknown (retry only what is
idempotent). Each outage becomes a gap (:mod:`.outages`) for the journal.

**Time.** On a virtual loop the server must run on the same loop (our simulators do):
requests are awaited inside ``awaiting_outside()`` and ``connect()`` inside
``real_time()``; the keep-alive probe runs once a virtual hour instead of every
second, the stale-subscription check is off (publishing interval 0: notifications
are sent when values change, with no timer), and the session may idle a day. On a
real loop asyncua's defaults stand (1 s probe) and subscriptions publish every 0.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from asyncua import Client, ua
from asyncua.client.ua_client import UaClient, UaClientState
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from cellauto._compat import asyncua as asyncua_compat
from cellauto.clock import Clock, VirtualTimeEventLoop, awaiting_outside, is_virtual
from cellauto.errors import InstrumentError, OutcomeUnknownError
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.outages import (
    ConnectionGap,
    GapCallback,
    OutageWatch,
    quiet_publish_loop,
)
from cellauto.instruments.opcua.security import ClientSecurity, application_uri_of
from cellauto.instruments.opcua.status import error_for, message_of

__all__ = [
    "ConnectionGap",
    "GapCallback",
    "OpcUaConnection",
    "OpcUaConnectionLostError",
    "OpcUaDisconnectedError",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A request failed on the way or on the server side of the session: outcome unknown.
_LOST = (ConnectionError, OSError, TimeoutError, ua.UaStatusCodeError)


class OpcUaDisconnectedError(InstrumentError):
    """The connection is down (reconnecting); the request was not sent."""


class OpcUaConnectionLostError(OutcomeUnknownError):
    """The connection dropped while a request was in flight: its outcome is unknown."""


@contextlib.contextmanager
def _real_time() -> Iterator[None]:
    loop = asyncio.get_running_loop()
    with loop.real_time() if isinstance(loop, VirtualTimeEventLoop) else contextlib.nullcontext():
        yield


class _Handler:
    def __init__(self, on_change: Callable[[ua.NodeId, Any, ua.DataValue], None]) -> None:
        self.on_change = on_change

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        self.on_change(node.nodeid, value, data.monitored_item.Value)


class OpcUaConnection:
    """One client session to one server, kept up for the adapter's lifetime."""

    def __init__(
        self,
        url: str,
        security: ClientSecurity,
        *,
        where: str,
        clock: Clock,
        timeout_s: float = 10.0,
        reconnect_max_delay_s: float = 10.0,
        on_gap: GapCallback | None = None,
    ) -> None:
        if timeout_s <= 0 or reconnect_max_delay_s <= 0:
            raise ValueError("timeout_s and reconnect_max_delay_s must be > 0")
        self.url = url
        self.security = security
        self.where = where
        self.clock = clock
        self.timeout_s = timeout_s
        self.virtual = is_virtual()
        loop = asyncio.get_running_loop()
        #: ``awaiting_outside()`` of this connection's loop (bound once: every request uses it)
        self.outside: Callable[[], contextlib.AbstractContextManager[None]] = (
            loop.awaiting_outside
            if isinstance(loop, VirtualTimeEventLoop)
            else contextlib.nullcontext
        )
        asyncua_compat.use_real_time_timers()  # every timeout below is in real seconds
        self.client = Client(
            url,
            timeout=timeout_s,
            watchdog_intervall=3600.0 if self.virtual else 1.0,
            auto_reconnect=True,
            reconnect_max_delay=reconnect_max_delay_s,
            reconnect_request_timeout=min(timeout_s, 1.0),
        )
        if self.virtual:
            asyncua_compat.set_stale_check_interval(self.client, 1e9)  # interval 0: no keep-alive
            self.client.session_timeout = 86_400_000
        quiet_publish_loop()
        self.outages = OutageWatch(
            self.client,
            clock,
            lambda: f"{self.where} at {self.url}",
            on_gap,
            self._check_namespaces,
        )
        self._namespaces: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect (security and user as configured); InstrumentError names why not."""
        sec, client = self.security, self.client
        try:
            with _real_time():
                if sec.security == "Basic256Sha256":
                    client.application_uri = application_uri_of(sec.certificate)  # type: ignore[arg-type]
                    await client.set_security(
                        SecurityPolicyBasic256Sha256,
                        certificate=str(sec.certificate),
                        private_key=str(sec.private_key),
                        server_certificate=str(sec.server_certificate)
                        if sec.server_certificate
                        else None,
                        mode=ua.MessageSecurityMode.SignAndEncrypt,
                    )
                if sec.user is not None and sec.password is not None:
                    client.set_user(sec.user)
                    client.set_password(sec.password.get_secret_value())
                await client.connect()
        except (*_LOST, ua.UaError, ValueError) as exc:
            raise InstrumentError(self._refusal(exc)) from exc
        self._namespaces = await self.read_value(
            _ua.node_id(ua.ObjectIds.Server_NamespaceArray), "read the namespace array"
        )
        self.outages.start()

    def _refusal(self, exc: BaseException) -> str:
        name = type(exc).__name__
        hints = {
            "BadCertificateUntrusted": "the server does not trust this client's certificate; "
            "add it to the server's trust list",
            "BadUserAccessDenied": "user name or password refused",
            "BadIdentityTokenRejected": "the server refuses this kind of identity (anonymous?); "
            "give user= and password=",
            "BadSecurityPolicyRejected": "the server refuses this security policy; "
            "use security='Basic256Sha256'",
        }
        if str(exc).startswith("No matching endpoints"):
            hint = f"the server offers no endpoint for security {self.security.security!r}"
        elif isinstance(exc, TimeoutError):
            hint = (
                f"no answer within {self.timeout_s:g} s (real time); is it an OPC UA server, "
                "and not overloaded? A slow one needs a larger timeout_s"
            )
        else:
            hint = hints.get(name) or (
                "is the server running?" if isinstance(exc, OSError) else str(exc) or name
            )
        return f"{self.where}: cannot connect to {self.url}: {name}: {hint}"

    async def aclose(self) -> None:
        await self.outages.stop()
        client = self.client
        with awaiting_outside():
            if client.state is UaClientState.CONNECTED:
                await client.disconnect()
            else:
                with contextlib.suppress(*_LOST):
                    await client.close_session()
                client.disconnect_socket()

    # -- outages ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.client.state is UaClientState.CONNECTED

    @property
    def gaps(self) -> list[ConnectionGap]:
        return self.outages.gaps

    async def _check_namespaces(self) -> None:
        names = await self.read_value(_ua.node_id(ua.ObjectIds.Server_NamespaceArray), "check")
        if names != self._namespaces:
            log.error("%s: the server's namespaces changed: %s", self.where, names)

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (real seconds, on any loop) for the connection to be up."""
        if self.connected:
            return True
        async with self.client.subscribe_state() as states:
            try:
                await states.wait_for_state(UaClientState.CONNECTED, timeout=timeout_s)
            except TimeoutError:
                return False
        return True

    # -- requests -----------------------------------------------------------------------
    def _check(self, what: str) -> None:
        if not self.connected:
            lost_at = self.outages.lost_at
            since = f" since process time {lost_at:.0f}" if lost_at else ""
            raise OpcUaDisconnectedError(
                f"{self.where}: disconnected; reconnecting to {self.url}{since}; "
                f"{what} was not sent; try again once the connection is back"
            )

    def _lost(
        self, what: str, exc: BaseException, *, changes_nothing: bool = False
    ) -> OpcUaConnectionLostError:
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            cause = f"no reply within {self.timeout_s:g} s"
        if changes_nothing:
            advice = (
                "it changes nothing on the device: try again once the connection is back "
                "(is the server still running?)"
            )
        else:
            advice = "its outcome is unknown: check the device before repeating it"
        return OpcUaConnectionLostError(
            f"{self.where}: connection to {self.url} lost during {what} ({cause}); {advice}"
        )

    async def request(self, send: Callable[[UaClient], Awaitable[T]], what: str) -> T:
        """``send(uaclient)``: one request that changes nothing on the device (a browse,
        a translation), sent only while connected; a failure on the way raises
        :class:`OpcUaConnectionLostError` naming the endpoint, never a raw asyncua or
        socket error."""
        self._check(what)
        try:
            with self.outside():
                return await send(self.client.uaclient)
        except _LOST as exc:
            raise self._lost(what, exc, changes_nothing=True) from exc

    async def call(
        self, object_id: ua.NodeId, method_id: ua.NodeId, args: list[ua.Variant], what: str
    ) -> list[Any]:
        """Call a method by its cached NodeIds (one round trip); its output values."""
        self._check(what)
        request = ua.CallMethodRequest(ObjectId=object_id, MethodId=method_id, InputArguments=args)
        try:
            with self.outside():
                (result,) = await self.client.uaclient.call([request])
        except _LOST as exc:
            raise self._lost(what, exc) from exc
        if not result.StatusCode.is_good():
            raise error_for(result.StatusCode, message_of(result), self.where, what)
        return [variant.Value for variant in result.OutputArguments or []]

    async def read_data(self, node_ids: list[ua.NodeId], what: str) -> list[ua.DataValue]:
        """Read the values of ``node_ids`` (one round trip); Bad statuses raise."""
        self._check(what)
        try:
            with self.outside():
                values = await self.client.uaclient.read_attributes(node_ids, ua.AttributeIds.Value)
        except _LOST as exc:
            raise self._lost(what, exc, changes_nothing=True) from exc
        for node_id, value in zip(node_ids, values, strict=True):
            if value.StatusCode is not None and not value.StatusCode.is_good():
                name = value.StatusCode.name
                raise InstrumentError(f"{self.where}: {what}: {node_id.to_string()} is {name}")
        return values

    async def read_value(self, node_id: ua.NodeId, what: str) -> Any:
        (value,) = await self.read_data([node_id], what)
        return value.Value.Value if value.Value is not None else None

    async def subscribe(
        self,
        node_ids: list[ua.NodeId],
        on_change: Callable[[ua.NodeId, Any, ua.DataValue], None],
        *,
        queue_size: int = 100,
    ) -> None:
        """Data-change notifications of ``node_ids`` (restored after a reconnect)."""
        period_ms = 0.0 if self.virtual else 500.0
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=period_ms,
            RequestedLifetimeCount=10_000 if self.virtual else 60,
            RequestedMaxKeepAliveCount=5_000 if self.virtual else 20,
            MaxNotificationsPerPublish=10_000,
            PublishingEnabled=True,
            Priority=0,
        )
        nodes = [self.client.get_node(node_id) for node_id in node_ids]
        self._check("subscribe")
        try:
            with awaiting_outside():
                subscription = await self.client.create_subscription(params, _Handler(on_change))
                await subscription.subscribe_data_change(nodes, queuesize=queue_size)
        except _LOST as exc:
            raise self._lost("subscribe", exc, changes_nothing=True) from exc
