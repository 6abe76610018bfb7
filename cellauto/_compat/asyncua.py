"""asyncua's internals that cellauto uses, in one place (asyncua is pinned: see TESTED).

* **Real-time timers.** asyncua waits with ``asyncio.sleep`` and ``wait_for`` on the
  running loop: request and connect timeouts, the keep-alive probe, the reconnect
  back-off, secure-channel renewal, the stale-subscription check, and on the server
  the session watchdog, the activation grace period and the publishing loop. Every one
  of them means real time (asyncua has no process time), but on a
  :class:`~cellauto.clock.ScaledTimeEventLoop` a loop second is ``1/scale`` real
  seconds: at ``--speed 600`` a 10 s request timeout lapsed after 17 ms.
  :func:`use_real_time_timers` gives asyncua's client and server modules an
  ``asyncio`` whose ``sleep`` and ``wait_for`` take real seconds
  (:func:`cellauto.clock.real_seconds`), so everything configured on a ``Client`` or
  ``Server`` (``timeout``, ``watchdog_intervall``, ``reconnect_max_delay``,
  ``session_timeout``, ``secure_channel_timeout``, ...) keeps its documented meaning,
  in real seconds, and what goes on the wire (TimeoutHint, RequestedSessionTimeout,
  RequestedLifetime) stays what it says. On a real or virtual loop nothing changes.
* The client's stale-subscription check period (``Client._stale_check_interval``).
* The server's per-connection session watchdog period
  (``UaProcessor._watchdog_interval``), its message dispatch
  (``UaProcessor._process_message``) and channel policy (``UaProcessor._connection``),
  the connections it accepts (``InternalServer.asyncio_transports``), its 1 Hz clock
  task (``InternalServer.time_task``), its sessions
  kept for a reconnect (``InternalServer._external_sessions``), and the standard
  address space's node table (``AddressSpace._nodes``,
  ``InternalServer.load_standard_address_space``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import types
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import asyncua.client.client
import asyncua.client.ua_client
import asyncua.common.utils
import asyncua.server.address_space
import asyncua.server.internal_server
import asyncua.server.internal_subscription
import asyncua.server.uaprocessor
from asyncua import Client, Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.security_policies import SecurityPolicyNone

from cellauto._compat._check import check_dependency, internal
from cellauto.clock import real_seconds

__all__ = [
    "TESTED",
    "address_space_nodes",
    "check",
    "connections",
    "discovery_only_when_unsecured",
    "external_sessions",
    "on_each_connection",
    "replace_standard_address_space",
    "republish_only_what_is_kept",
    "set_session_watchdog",
    "set_stale_check_interval",
    "stop_clock_task",
    "use_real_time_timers",
]

log = logging.getLogger(__name__)

#: asyncua versions these internals were tested with.
TESTED = ("2.1.0",)

#: asyncua's modules whose ``asyncio.sleep`` / ``wait_for`` are network or session time.
TIMED_MODULES = (
    "asyncua.client.client",
    "asyncua.client.ua_client",
    "asyncua.client.ua_session",
    "asyncua.common.subscription",
    "asyncua.server.binary_server_asyncio",
    "asyncua.server.internal_server",
    "asyncua.server.internal_session",
    "asyncua.server.internal_subscription",
    "asyncua.server.server",
    "asyncua.server.uaprocessor",
)

_PROCESSOR = "asyncua.server.uaprocessor.UaProcessor"
_ISERVER = "asyncua.server.internal_server.InternalServer"

INTERNALS = (
    *(internal(name, "asyncio") for name in TIMED_MODULES),
    internal("asyncua.client.ua_client", "wait_for"),
    internal("asyncua.client.client.Client", "_stale_check_interval", instance=True),
    internal(_PROCESSOR, "_watchdog_interval", instance=True),
    internal(_PROCESSOR, "_process_message"),
    internal(_PROCESSOR, "_connection", instance=True),
    internal(_ISERVER, "asyncio_transports", instance=True),
    internal(_ISERVER, "time_task", instance=True),
    internal(_ISERVER, "_external_sessions", instance=True),
    internal(_ISERVER, "load_standard_address_space"),
    internal(
        "asyncua.server.internal_subscription.InternalSubscription",
        "_not_acknowledged_results",
        instance=True,
    ),
    internal("asyncua.server.address_space.AddressSpace", "_nodes", instance=True),
)


def check(installed: str | None = None) -> str:
    """Refuse an untested asyncua, or one lacking an internal used here."""
    return check_dependency("asyncua", TESTED, INTERNALS, module="asyncua", installed=installed)


check()


# -- real-time timers ---------------------------------------------------------------------
async def _real_sleep(delay: float, result: Any = None) -> Any:
    return await asyncio.sleep(real_seconds(delay), result)


async def _real_wait_for(aw: Awaitable[Any], timeout: float | None) -> Any:  # noqa: ASYNC109  # asyncio.wait_for's signature
    return await asyncio.wait_for(aw, None if timeout is None else real_seconds(timeout))


def _real_time_asyncio() -> types.ModuleType:
    """``asyncio`` as asyncua's modules see it: ``sleep`` and ``wait_for`` in real seconds."""
    proxy = types.ModuleType("asyncio", "asyncio; sleep and wait_for in real seconds (cellauto)")
    proxy.__dict__.update({k: v for k, v in vars(asyncio).items() if not k.startswith("__")})
    proxy.__dict__.update(sleep=_real_sleep, wait_for=_real_wait_for)
    proxy.__dict__["__getattr__"] = lambda name: getattr(asyncio, name)
    return proxy


_REAL_TIME_ASYNCIO = _real_time_asyncio()
_plain_utils_wait_for = asyncua.common.utils.wait_for


async def _real_utils_wait_for(aw: Awaitable[Any], timeout: float | None) -> Any:  # noqa: ASYNC109
    return await _plain_utils_wait_for(aw, None if timeout is None else real_seconds(timeout))


def use_real_time_timers() -> None:
    """Make asyncua's client and server timers real seconds on any loop (idempotent)."""
    for name in TIMED_MODULES:
        module: Any = importlib.import_module(name)
        module.asyncio = _REAL_TIME_ASYNCIO
    ua_client: Any = asyncua.client.ua_client
    ua_client.wait_for = _real_utils_wait_for


def real_time_timers_in_use() -> bool:
    """Whether :func:`use_real_time_timers` is in effect (for tests)."""
    return all(importlib.import_module(n).asyncio is _REAL_TIME_ASYNCIO for n in TIMED_MODULES)


# -- client ------------------------------------------------------------------------------
def set_stale_check_interval(client: Client, seconds: float) -> None:
    """How often the client checks its subscriptions for staleness (asyncua: 0.5 s)."""
    client._stale_check_interval = seconds


# -- server ------------------------------------------------------------------------------
def set_session_watchdog(processor: Any, seconds: float) -> None:
    """The period of one connection's session watchdog (asyncua: 1 s, no public knob)."""
    processor._watchdog_interval = seconds


class _ConnectionHook(list[Any]):
    """The server's list of accepted transports; calls back with each one's processor."""

    def __init__(self, callback: Callable[[Any], None]) -> None:
        super().__init__()
        self.callback = callback

    def append(self, transport: Any) -> None:
        processor = getattr(transport.get_protocol(), "processor", None)
        if processor is not None:
            self.callback(processor)
        super().append(transport)


def on_each_connection(server: Server, callback: Callable[[Any], None]) -> None:
    """Call ``callback(processor)`` for each connection the server accepts, before it
    handles any message (set before ``server.start()``)."""
    server.iserver.asyncio_transports = _ConnectionHook(callback)


def discovery_only_when_unsecured(processor: Any, discovery: Collection[ua.NodeId]) -> None:
    """On a channel of security policy None, answer only the request types ``discovery``
    (GetEndpoints, FindServers); anything else gets ``BadSecurityPolicyRejected``.

    asyncua keeps every secure channel open to policy None (for discovery) and then
    serves sessions on it, even when no None endpoint is offered.
    """
    process = processor._process_message

    async def checked(typeid: ua.NodeId, *args: Any) -> Any:
        policy = processor._connection.security_policy
        if policy.URI == SecurityPolicyNone.URI and typeid not in discovery:
            log.warning("refused %s on an unsecured channel", typeid.to_string())
            raise ServiceError(ua.StatusCodes.BadSecurityPolicyRejected)
        return await process(typeid, *args)

    processor._process_message = checked


def connections(server: Server) -> list[Any]:
    """The transports of the connections the server has accepted and not yet closed."""
    return list(server.iserver.asyncio_transports)


async def stop_clock_task(server: Server) -> None:
    """Stop the server's 1 Hz ``ServerStatus`` clock task now (``server.stop()`` would
    wait out its sleep)."""
    iserver = server.iserver
    task = iserver.time_task
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        iserver.time_task = None


def external_sessions(server: Server) -> list[Any]:
    """Sessions the server keeps for a client to reconnect to (closed with the server)."""
    return list(getattr(server.iserver, "_external_sessions", {}).values())


def address_space_nodes(space: asyncua.server.address_space.AddressSpace) -> dict[Any, Any]:
    """The node table of an address space (NodeId -> NodeData)."""
    return space._nodes


def replace_standard_address_space(
    server: Server, load: Callable[[], Awaitable[dict[Any, Any]]]
) -> None:
    """Make ``server.init()`` take namespace 0's node table from ``load()`` instead of
    building it from asyncua's generated code."""
    iserver = server.iserver

    async def load_standard_address_space(shelf_file: Any = None) -> None:
        iserver.aspace._nodes = await load()

    iserver.load_standard_address_space = load_standard_address_space  # type: ignore[method-assign]


def republish_only_what_is_kept(server: Server) -> None:
    """Republish of a notification the server no longer keeps answers
    ``BadMessageNotAvailable`` (OPC UA Part 4, 5.13.6).

    asyncua 2.1.0's server answers an empty message instead; its client, restoring a
    subscription after a reconnect, republishes until told ``BadMessageNotAvailable``
    and so would loop forever whenever the session survived the cut (a lost reply).
    """
    service = server.iserver.subscription_service
    plain_republish = service.republish

    def republish(params: ua.RepublishParameters) -> ua.NotificationMessage:
        subscription = service.subscriptions.get(params.SubscriptionId)
        kept = getattr(subscription, "_not_acknowledged_results", None)  # private in 2.1.0
        if kept is not None and params.RetransmitSequenceNumber not in kept:
            raise ServiceError(ua.StatusCodes.BadMessageNotAvailable)
        return plain_republish(params)

    service.republish = republish  # type: ignore[method-assign]
