"""The standard OPC UA address space, built once per process and cloned per server.

``Server.init()`` spends about 2 s building the ~6,200 nodes of namespace 0 from
asyncua's generated code (``standard_address_space.fill_address_space``). A simulated
line, and its tests, start many servers, so the nodes are built once (in a worker
thread) into a private template and each server receives a clone (~0.1 s):

* every node gets its own ``NodeData``, attribute dict and reference list (servers add
  and delete references and write attribute values independently);
* attribute values that are mutable objects (arrays and structures, ~700 of them, e.g.
  ``ServerStatus``, ``NamespaceArray``; asyncua mutates some of them in place) are deep
  copies, made by unpickling one blob; scalars and the immutable attribute values are
  shared.

This relies on asyncua 2.1's ``InternalServer.load_standard_address_space`` hook and
``AddressSpace._nodes``, reached through :mod:`cellauto._compat.asyncua`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import pickle
import threading

from asyncua import Server, ua
from asyncua.server.address_space import (
    AddressSpace,
    AttributeValue,
    NodeData,
    NodeManagementService,
)

from cellauto._compat import asyncua as asyncua_compat

__all__ = ["use_standard_template"]

log = logging.getLogger(__name__)

_VALUE = ua.AttributeIds.Value
_IMMUTABLE = (str, int, float, bool, bytes, type(None))


class _Template:
    def __init__(self) -> None:
        space = AddressSpace()
        from asyncua.server.standard_address_space import standard_address_space

        service = NodeManagementService(space)
        standard_address_space.fill_address_space(service)  # type: ignore[no-untyped-call]  # generated
        self.nodes: dict[ua.NodeId, NodeData] = dict(asyncua_compat.address_space_nodes(space))
        self.mutable = [nid for nid, node in self.nodes.items() if self._is_mutable(node)]
        values = [self.nodes[nid].attributes[_VALUE].value for nid in self.mutable]
        self.blob = pickle.dumps(values, pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def _is_mutable(node: NodeData) -> bool:
        attribute = node.attributes.get(_VALUE)
        if attribute is None or attribute.value is None or attribute.value.Value is None:
            return False
        return not isinstance(attribute.value.Value.Value, _IMMUTABLE)

    def clone(self) -> dict[ua.NodeId, NodeData]:
        nodes: dict[ua.NodeId, NodeData] = {}
        for nid, source in self.nodes.items():
            node = NodeData(nid)
            node.attributes = {
                # AttributeValue.value is DataValue | None; asyncua's __init__ says DataValue.
                a: AttributeValue(v.value)  # type: ignore[arg-type]
                for a, v in source.attributes.items()
            }
            node.references = list(source.references)
            nodes[nid] = node
        for nid, value in zip(self.mutable, pickle.loads(self.blob), strict=True):
            nodes[nid].attributes[_VALUE].value = value
        return nodes


_lock = threading.Lock()
_template: _Template | None = None


def _cloned_nodes() -> dict[ua.NodeId, NodeData]:
    global _template
    with _lock:
        if _template is None:
            _template = _Template()
        template = _template
    # ~60,000 new objects: without this, they trigger collections that walk every
    # object alive (other servers' address spaces included), several times slower
    collecting = gc.isenabled()
    gc.disable()
    try:
        return template.clone()
    finally:
        if collecting:
            gc.enable()


def use_standard_template(server: Server) -> None:
    """Make ``server.init()`` take namespace 0 from the process-wide template."""
    asyncua_compat.replace_standard_address_space(server, lambda: asyncio.to_thread(_cloned_nodes))
