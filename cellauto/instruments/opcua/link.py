"""What both LADS adapters share: options, connection, resolved nodes, operations."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cellauto.clock import Clock
from cellauto.instruments.opcua.connection import ConnectionGap, GapCallback, OpcUaConnection
from cellauto.instruments.opcua.operations import OperationRunner
from cellauto.instruments.opcua.resolve import DeviceNodes, resolve_device
from cellauto.instruments.opcua.security import ClientSecurity

__all__ = ["DeviceLink", "LinkOptions"]

_COMMAND_PATHS = {
    "Commands": "own:Commands",
    "GetOperation": "own:Commands/own:GetOperation",
    "LastOperation": "own:Commands/own:LastOperation",
}


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
