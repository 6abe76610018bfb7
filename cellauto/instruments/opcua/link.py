"""What the LADS adapters share: options, connection, resolved nodes, operations.

Every adapter's ``connect(url, **options)`` takes the :class:`ConnectOptions` (plus its
own), opens its :class:`DeviceLink` with :func:`open_link` and derives from
:class:`OpcUaAdapter` (``aclose``, ``async with``, ``gaps``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self, TypedDict

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cellauto.clock import Clock
from cellauto.instruments.base import Instrument, InstrumentIdentity
from cellauto.instruments.opcua.connection import ConnectionGap, GapCallback, OpcUaConnection
from cellauto.instruments.opcua.operations import OperationRunner
from cellauto.instruments.opcua.resolve import DeviceNodes, read_identity, resolve_device
from cellauto.instruments.opcua.security import ClientSecurity

__all__ = ["ConnectOptions", "DeviceLink", "LinkOptions", "OpcUaAdapter", "open_link"]

_COMMAND_PATHS = {
    "Commands": "own:Commands",
    "GetOperation": "own:Commands/own:GetOperation",
    "LastOperation": "own:Commands/own:LastOperation",
}


class ConnectOptions(TypedDict, total=False):
    """The keywords every adapter's ``connect`` takes (each optional).

    ``security="Basic256Sha256"`` (SignAndEncrypt) needs ``certificate`` and
    ``private_key``; ``server_certificate`` pins the server. ``clock``: the line's
    process clock (default: a wall-time clock made at connect). ``on_gap(started_
    process_time_s, ended_process_time_s, reason)`` is told of every outage. The rest,
    and every default: :class:`LinkOptions`.
    """

    security: Literal["none", "Basic256Sha256"]
    certificate: Path | str | None
    private_key: Path | str | None
    server_certificate: Path | str | None
    user: str | None
    password: str | None
    timeout_s: float
    clock: Clock | None
    on_gap: GapCallback | None
    reconnect_max_delay_s: float
    poll_interval_s: float
    retry_within_s: float
    outage_limit_s: float
    device: str | None
    unit: str | None


class LinkOptions(BaseModel):
    """How an adapter reaches its device (validated before anything is sent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^opc\.tcp://", description="the server's endpoint URL")
    security: Literal["none", "Basic256Sha256"] = "none"
    certificate: Path | None = Field(None, description="client certificate (DER or PEM)")
    private_key: Path | None = Field(None, description="its private key (PEM)")
    server_certificate: Path | None = Field(None, description="pins the server")
    user: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0, description="per request, real seconds on any clock")
    reconnect_max_delay_s: float = Field(
        10.0, gt=0, description="longest wait between attempts, real seconds"
    )
    poll_interval_s: float = Field(60.0, gt=0, description="operation safety-net poll")
    retry_within_s: float = Field(
        60.0, gt=0, description="resend a lost start if back by then (real seconds)"
    )
    outage_limit_s: float = Field(3600.0, gt=0, description="give up a running command after")
    device: str | None = Field(None, description="browse name under DeviceSet (None: the only)")
    unit: str | None = Field(None, description="functional unit (None: the only one)")

    def client_security(self) -> ClientSecurity:
        return ClientSecurity(
            security=self.security,
            certificate=self.certificate,
            private_key=self.private_key,
            server_certificate=self.server_certificate,
            user=self.user,
            password=self.password,
        )


class DeviceLink:
    """An open connection to one LADS device with its NodeIds resolved."""

    def __init__(self, conn: OpcUaConnection, nodes: DeviceNodes, options: LinkOptions) -> None:
        self.conn = conn
        self.nodes = nodes
        self.options = options
        self.operations = OperationRunner(
            conn,
            nodes["Commands"],
            nodes["GetOperation"],
            poll_interval_s=options.poll_interval_s,
            retry_within_s=options.retry_within_s,
            outage_limit_s=options.outage_limit_s,
        )

    @classmethod
    async def open(
        cls,
        interface_name: str,
        unit_paths: Mapping[str, str],
        options: LinkOptions,
        *,
        clock: Clock | None = None,
        on_gap: GapCallback | None = None,
    ) -> DeviceLink:
        """Connect, resolve the device's nodes, subscribe to its operations."""
        conn = OpcUaConnection(
            options.url,
            options.client_security(),
            where=interface_name,
            clock=clock or Clock(),
            timeout_s=options.timeout_s,
            reconnect_max_delay_s=options.reconnect_max_delay_s,
            on_gap=on_gap,
        )
        try:
            await conn.open()
            nodes = await resolve_device(
                conn, {**_COMMAND_PATHS, **unit_paths}, device=options.device, unit=options.unit
            )
            conn.where = f"{interface_name} {nodes.identity.serial}"
            link = cls(conn, nodes, options)
            await conn.subscribe([nodes["LastOperation"]], link.operations.notified)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.aclose()
            raise
        return link

    @property
    def gaps(self) -> list[ConnectionGap]:
        return self.conn.gaps

    async def aclose(self) -> None:
        await self.conn.aclose()


async def open_link(
    interface_name: str, unit_paths: Mapping[str, str], url: str, options: ConnectOptions
) -> DeviceLink:
    """Validate ``url`` and ``options`` (refused before anything is sent), then open."""
    unknown = sorted(set(options) - ConnectOptions.__optional_keys__)
    if unknown:  # as for a keyword the signature does not name
        raise TypeError(f"{interface_name} connect() got unexpected keywords: {unknown}")
    fields = dict(options)
    clock = options.get("clock")
    on_gap = options.get("on_gap")
    password = options.get("password")
    for name in ("clock", "on_gap", "password"):
        fields.pop(name, None)
    link_options = LinkOptions.model_validate(
        {
            **fields,
            "url": url,
            "password": SecretStr(password) if password is not None else None,
        }
    )
    return await DeviceLink.open(
        interface_name, unit_paths, link_options, clock=clock, on_gap=on_gap
    )


class OpcUaAdapter(Instrument):
    """Base of the OPC UA adapters: one :class:`DeviceLink`, closed with the adapter.

    Listed before the instrument interface (``class OpcUaCryoStorage(OpcUaAdapter,
    CryoStorage)``): the interface supplies ``interface_name``.
    """

    def __init__(self, link: DeviceLink) -> None:
        super().__init__(link.nodes.identity)
        self._link = link
        self._gaps_seen = len(link.gaps)

    async def identity_now(self) -> InstrumentIdentity:
        """The identity read at connect, read again after each reconnect."""
        gaps = len(self._link.gaps)
        if gaps != self._gaps_seen and self._link.nodes.identity_nodes:
            self.identity = await read_identity(self._link.conn, self._link.nodes.identity_nodes)
            self._gaps_seen = gaps
        return self.identity

    async def aclose(self) -> None:
        await self._link.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def gaps(self) -> list[ConnectionGap]:
        """Connection outages so far (also reported to ``on_gap``)."""
        return self._link.gaps
