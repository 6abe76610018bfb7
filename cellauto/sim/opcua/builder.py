"""Building an address space in code: string NodeIds that are browse paths, one AddNodes.

Each node's NodeId is ``ns=<ours>;s=<parent path>/<browse name>`` (see
:mod:`cellauto.instruments.opcua.lads`). Nodes are collected and added in one
``AddNodes`` call on the server's internal session (parents before children), then
the method callbacks are registered: about 20 ms for a device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua import Server, ua

from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.lads import NAMESPACE_URIS
from cellauto.sim.opcua._nodesets import DI_TYPES, LADS_TYPES

__all__ = ["Namespaces", "SpaceBuilder", "argument"]

_OID = ua.ObjectIds


@dataclass(frozen=True)
class Namespaces:
    """Namespace indexes on one server."""

    own: int
    di: int
    machinery: int
    amb: int
    lads: int

    @classmethod
    async def register(cls, server: Server) -> Namespaces:
        indexes = [await server.register_namespace(uri) for uri in NAMESPACE_URIS]
        return cls(*indexes)

    def lads_type(self, name: str) -> ua.NodeId:
        """A LADS type's NodeId by browse name (``"FunctionalUnitType"``)."""
        return _ua.node_id(LADS_TYPES[name], self.lads)

    def di_node(self, name: str) -> ua.NodeId:
        """A DI node's NodeId by browse name (``"DeviceSet"``, ``"FunctionalGroupType"``)."""
        return _ua.node_id(DI_TYPES[name], self.di)


def argument(
    name: str, vtype: ua.VariantType | ua.NodeId, description: str = "", *, array: bool = False
) -> ua.Argument:
    """A method argument (ua.Argument) with a name, a data type and a description."""
    datatype = vtype if isinstance(vtype, ua.NodeId) else _ua.node_id(vtype.value)
    return ua.Argument(
        Name=name,
        DataType=datatype,
        ValueRank=1 if array else -1,
        ArrayDimensions=[0] if array else [],
        Description=ua.LocalizedText(description),
    )


def _type_id(typedef: int | ua.NodeId | None) -> ua.NodeId:
    if isinstance(typedef, ua.NodeId):
        return typedef
    return _ua.node_id(typedef) if typedef else ua.NodeId()


class SpaceBuilder:
    """Collects the nodes of one device; :meth:`commit` adds them to the server."""

    def __init__(self, server: Server, ns: Namespaces) -> None:
        self.server = server
        self.ns = ns
        self._items: list[ua.AddNodesItem] = []
        self._references: list[ua.AddReferencesItem] = []
        self._callbacks: list[tuple[ua.NodeId, Callable[..., Any]]] = []

    def node_id(self, path: str) -> ua.NodeId:
        return _ua.node_id(path, self.ns.own)

    def _child(
        self, parent: str | ua.NodeId, name: ua.QualifiedName, path: str | None
    ) -> tuple[ua.NodeId, str]:
        parent_id = parent if isinstance(parent, ua.NodeId) else self.node_id(parent)
        if path is None:
            path = name.Name if isinstance(parent, ua.NodeId) else f"{parent}/{name.Name}"
        return parent_id, path

    def _add(
        self,
        parent: str | ua.NodeId,
        name: ua.QualifiedName,
        node_class: ua.NodeClass,
        attributes: Any,
        *,
        reference: int,
        typedef: int | ua.NodeId | None,
        path: str | None = None,
    ) -> str:
        parent_id, path = self._child(parent, name, path)
        shown = attributes.DisplayName
        if shown is None or not shown.Text:  # an empty LocalizedText is truthy: look inside
            attributes.DisplayName = ua.LocalizedText(name.Name)
        self._items.append(
            ua.AddNodesItem(
                ParentNodeId=parent_id,
                ReferenceTypeId=_ua.node_id(reference),
                RequestedNewNodeId=self.node_id(path),
                BrowseName=name,
                NodeClass=node_class,
                NodeAttributes=attributes,
                TypeDefinition=_type_id(typedef),
            )
        )
        return path

    def add_object(
        self,
        parent: str | ua.NodeId,
        name: ua.QualifiedName,
        *,
        folder: bool = False,
        organizes: bool = False,
        display_name: str = "",
        description: str = "",
        path: str | None = None,
        typedef: ua.NodeId | None = None,
    ) -> str:
        """An object; its path is ``<parent>/<name>`` unless ``path`` is given.

        ``typedef``: its type (e.g. ``ns.lads_type("FunctionalUnitType")``; default
        FolderType or BaseObjectType). Children a type declares are not instantiated:
        each device adds the ones it has.
        """
        attributes = ua.ObjectAttributes(EventNotifier=0, Description=ua.LocalizedText(description))
        if display_name:
            attributes.DisplayName = ua.LocalizedText(display_name)
        return self._add(
            parent,
            name,
            ua.NodeClass.Object,
            attributes,
            reference=_OID.Organizes if organizes else _OID.HasComponent,
            typedef=typedef or (_OID.FolderType if folder else _OID.BaseObjectType),
            path=path,
        )

    def add_variable(
        self,
        parent: str | ua.NodeId,
        name: ua.QualifiedName,
        value: Any,
        vtype: ua.VariantType,
        *,
        writable: bool = False,
        prop: bool = False,
        typedef: int | None = None,
        datatype: ua.NodeId | None = None,
        array: bool = False,
        description: str = "",
    ) -> str:
        access = ua.AccessLevel.CurrentRead.mask
        if writable:
            access |= ua.AccessLevel.CurrentWrite.mask
        attributes = ua.VariableAttributes(
            Value=ua.Variant(value, vtype, is_array=array),
            DataType=datatype or _ua.node_id(vtype.value),
            ValueRank=1 if array else -1,
            # None encodes as a null array, as before; asyncua's annotation omits it.
            ArrayDimensions=[0] if array else None,  # type: ignore[arg-type]
            AccessLevel=access,
            UserAccessLevel=access,
            Description=ua.LocalizedText(description),
        )
        default_type = _OID.PropertyType if prop else _OID.BaseDataVariableType
        return self._add(
            parent,
            name,
            ua.NodeClass.Variable,
            attributes,
            reference=_OID.HasProperty if prop else _OID.HasComponent,
            typedef=typedef or default_type,
        )

    def add_analog(
        self,
        parent: str,
        name: ua.QualifiedName,
        value: float,
        *,
        unit_id: int,
        unit: str,
        eu_range: tuple[float, float] | None = None,
        writable: bool = False,
        description: str = "",
    ) -> str:
        """A Double variable of AnalogUnitRangeType with EngineeringUnits (and EURange)."""
        typedef = _OID.AnalogUnitRangeType if eu_range else _OID.AnalogUnitType
        path = self.add_variable(
            parent, name, value, ua.VariantType.Double,
            writable=writable, typedef=typedef, description=description,
        )  # fmt: skip
        units = ua.EUInformation(
            NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
            UnitId=unit_id,
            DisplayName=ua.LocalizedText(unit),
            Description=ua.LocalizedText(unit),
        )
        eu = ua.QualifiedName("EngineeringUnits", 0)
        self.add_variable(path, eu, units, ua.VariantType.ExtensionObject, prop=True,
                          datatype=_ua.node_id(_OID.EUInformation))  # fmt: skip
        if eu_range is not None:
            low, high = eu_range
            self.add_variable(
                path, ua.QualifiedName("EURange", 0), ua.Range(Low=low, High=high),
                ua.VariantType.ExtensionObject, prop=True, datatype=_ua.node_id(_OID.Range),
            )  # fmt: skip
        return path

    def add_method(
        self,
        parent: str,
        name: ua.QualifiedName,
        callback: Callable[..., Any],
        inputs: list[ua.Argument],
        outputs: list[ua.Argument],
        *,
        description: str = "",
    ) -> str:
        attributes = ua.MethodAttributes(
            Executable=True, UserExecutable=True, Description=ua.LocalizedText(description)
        )
        path = self._add(
            parent, name, ua.NodeClass.Method, attributes,
            reference=_OID.HasComponent, typedef=None,
        )  # fmt: skip
        for label, arguments in (("InputArguments", inputs), ("OutputArguments", outputs)):
            if arguments:
                self.add_variable(
                    path, ua.QualifiedName(label, 0), arguments, ua.VariantType.ExtensionObject,
                    prop=True, datatype=_ua.node_id(_OID.Argument), array=True,
                )  # fmt: skip
        self._callbacks.append((self.node_id(path), callback))
        return path

    def organize(self, source: str, target: ua.NodeId) -> None:
        """An Organizes reference from ``source`` to ``target`` (e.g. a method elsewhere)."""
        self._references.append(
            ua.AddReferencesItem(
                SourceNodeId=self.node_id(source),
                ReferenceTypeId=_ua.node_id(_OID.Organizes),
                IsForward=True,
                TargetNodeId=target,
                TargetNodeClass=ua.NodeClass.Method,
            )
        )

    async def commit(self) -> None:
        """Add every collected node (in order), the references, then the callbacks."""
        session = self.server.iserver.isession
        items, self._items = self._items, []
        for item, result in zip(items, await session.add_nodes(items), strict=True):
            if not result.StatusCode.is_good():
                raise RuntimeError(f"adding {item.RequestedNewNodeId}: {result.StatusCode}")
        references, self._references = self._references, []
        for status in await session.add_references(references) if references else []:
            status.check()
        for node_id, callback in self._callbacks:
            session.add_method_callback(node_id, callback)
        self._callbacks = []
