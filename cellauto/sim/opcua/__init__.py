"""Simulated instruments served over OPC UA with the LADS address space.

``serve_bioreactor(sim)``, ``serve_processor(sim)``, ``serve_cytometer(sim)`` and
``serve_storage(sim)`` run a real asyncua server for a simulated instrument on the
running loop (virtual or real); adapters in :mod:`cellauto.instruments.opcua` (or any
OPC UA client) connect to ``server.url``.
:func:`create_certificates` makes the certificates a secured server and its clients
use (:class:`ServerSecurity`).
"""

from cellauto.sim.opcua.bioreactor import BioreactorServer, serve_bioreactor
from cellauto.sim.opcua.cytometer import CytometerServer, serve_cytometer
from cellauto.sim.opcua.operations import OperationLog, operation_log
from cellauto.sim.opcua.processor import ProcessorServer, serve_processor
from cellauto.sim.opcua.security import (
    CertificateFiles,
    ServerSecurity,
    create_certificates,
    trust,
)
from cellauto.sim.opcua.server import SimOpcUaServer, free_port
from cellauto.sim.opcua.storage import StorageServer, serve_storage

__all__ = [
    "BioreactorServer",
    "CertificateFiles",
    "CytometerServer",
    "OperationLog",
    "ProcessorServer",
    "ServerSecurity",
    "SimOpcUaServer",
    "StorageServer",
    "create_certificates",
    "free_port",
    "operation_log",
    "serve_bioreactor",
    "serve_cytometer",
    "serve_processor",
    "serve_storage",
    "trust",
]
