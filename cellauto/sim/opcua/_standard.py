"""The standard OPC UA address space, built once per process and cloned per server.

``Server.init()`` spends about 2 s building the ~6,200 nodes of namespace 0 from
asyncua's generated code (``standard_address_space.fill_address_space``), and
importing the DI, Machinery, AMB and LADS nodesets (:mod:`._nodesets`, ~1,300 nodes)
takes about 1 s more. A simulated line, and its tests, start many servers, so the
nodes are built once (in a worker thread) into a private template and each server
receives a clone (~0.1 s). The template with the nodesets is made from a server
whose namespace array is that of every device server (:data:`NAMESPACE_URIS` after
the application URI), so the cloned nodes' namespace indexes are the server's own:

* every node gets its own ``NodeData``, attribute dict and reference list (servers add
  and delete references and write attribute values independently);
* attribute values that are mutable objects (arrays and structures, ~700 of them, e.g.
  ``ServerStatus``, ``NamespaceArray``; asyncua mutates some of them in place) are deep
  copies, made by unpickling one blob; scalars and the immutable attribute values are
  shared.

This relies on asyncua 2.1's ``InternalServer.load_standard_address_space`` hook and
``AddressSpace._nodes``, reached through :mod:`cellauto._compat.asyncua` (which
refuses an untested asyncua at import).
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
from cellauto.instruments.opcua.lads import NAMESPACE_URIS
from cellauto.sim.opcua._nodesets import import_nodesets

__all__ = ["use_standard_template"]

log = logging.getLogger(__name__)

_VALUE = ua.AttributeIds.Value
_IMMUTABLE = (str, int, float, bool, bytes, type(None))


class _Template:
    def __init__(self, nodes: dict[ua.NodeId, NodeData]) -> None:
        self.nodes = nodes
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


def _standard_nodes() -> dict[ua.NodeId, NodeData]:
    from asyncua.server.standard_address_space import standard_address_space

    space = AddressSpace()
    service = NodeManagementService(space)
    standard_address_space.fill_address_space(service)  # type: ignore[no-untyped-call]  # generated
    return dict(asyncua_compat.address_space_nodes(space))


def _nodes_with_nodesets() -> dict[ua.NodeId, NodeData]:
    """Namespace 0 and the imported nodesets, from a server that is never started."""

    async def build() -> dict[ua.NodeId, NodeData]:
        server = Server()

        async def standard() -> dict[ua.NodeId, NodeData]:
            # built afresh, not cloned from the namespace-0 template: a process serving
            # LADS devices never needs that one (~0.1 s and its memory saved)
            return _standard_nodes()

        asyncua_compat.replace_standard_address_space(server, standard)
        await server.init()
        for uri in NAMESPACE_URIS:
            await server.register_namespace(uri)
        await import_nodesets(server)
        return dict(asyncua_compat.address_space_nodes(server.iserver.aspace))

    return asyncio.run(build())  # in a worker thread: a loop of its own


_BUILDERS = {False: _standard_nodes, True: _nodes_with_nodesets}
_locks = {False: threading.Lock(), True: threading.Lock()}
_templates: dict[bool, _Template] = {}


def _cloned_nodes(*, with_nodesets: bool) -> dict[ua.NodeId, NodeData]:
    with _locks[with_nodesets]:
        template = _templates.get(with_nodesets)
        if template is None:
            template = _templates[with_nodesets] = _Template(_BUILDERS[with_nodesets]())
    # ~60,000 new objects: without this, they trigger collections that walk every
    # object alive (other servers' address spaces included), several times slower
    collecting = gc.isenabled()
    gc.disable()
    try:
        return template.clone()
    finally:
        if collecting:
            gc.enable()


def use_standard_template(server: Server, *, with_nodesets: bool = True) -> bool:
    """Make ``server.init()`` take its nodes from the process-wide template.

    With ``with_nodesets`` the template holds the DI/Machinery/AMB/LADS nodesets too;
    register :data:`NAMESPACE_URIS`, in that order, right after ``init()``. Returns
    whether the nodesets come with the template.
    """

    async def load() -> dict[ua.NodeId, NodeData]:
        return await asyncio.to_thread(_cloned_nodes, with_nodesets=with_nodesets)

    asyncua_compat.replace_standard_address_space(server, load)
    return with_nodesets
