"""OPC UA (LADS) adapters: instruments reached through asyncua.

Each adapter is created by an async factory that connects, finds the LADS device
(``DI:DeviceSet`` → device → ``FunctionalUnitSet`` → unit), caches the NodeIds it needs
and subscribes to what it reads::

    bioreactor = await OpcUaBioreactor.connect(
        "opc.tcp://10.0.0.5:4840/cellauto/bioreactor",
        security="Basic256Sha256", certificate="pki/runner.der",
        private_key="pki/runner.key.pem", server_certificate="pki/bioreactor.der",
        user="runner", password=secret, clock=clock, on_gap=journal_gap,
    )

The vocabulary (namespaces, browse names, NodeId scheme) is in :mod:`.lads`; the
simulated servers are in :mod:`cellauto.sim.opcua`.
"""

from cellauto.instruments.opcua.bioreactor import OpcUaBioreactor
from cellauto.instruments.opcua.connection import (
    ConnectionGap,
    GapCallback,
    OpcUaConnectionLostError,
    OpcUaDisconnectedError,
)
from cellauto.instruments.opcua.cryo_storage import OpcUaCryoStorage
from cellauto.instruments.opcua.cytometer import OpcUaFlowCytometer
from cellauto.instruments.opcua.link import ConnectOptions, LinkOptions
from cellauto.instruments.opcua.processor import OpcUaCellProcessor
from cellauto.instruments.opcua.security import ClientSecurity

__all__ = [
    "ClientSecurity",
    "ConnectOptions",
    "ConnectionGap",
    "GapCallback",
    "LinkOptions",
    "OpcUaBioreactor",
    "OpcUaCellProcessor",
    "OpcUaConnectionLostError",
    "OpcUaCryoStorage",
    "OpcUaDisconnectedError",
    "OpcUaFlowCytometer",
]
