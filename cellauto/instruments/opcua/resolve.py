"""Finding a LADS device's nodes once, at connect, by browse path.

NodeIds are never guessed: the adapter resolves the namespace indexes by URI, finds
the device under ``DI:DeviceSet`` and its functional unit under
``LADS:FunctionalUnitSet`` (by name, or the only one), then translates every browse
path it will use in one ``TranslateBrowsePathsToNodeIds`` request and caches the
NodeIds: afterwards each read or call is one round trip. Paths are written
``"lads:FunctionSet/own:TemperatureController/lads:CurrentValue"`` with the
namespace keys ``own`` (cellauto), ``di``, ``lads`` and ``ua`` (namespace 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from asyncua import ua

from cellauto.errors import InstrumentError
from cellauto.instruments.base import InstrumentIdentity
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.connection import OpcUaConnection
from cellauto.instruments.opcua.lads import CELLAUTO_URI, DI_URI, LADS_URI

__all__ = ["DeviceNodes", "browse_children", "read_identity", "resolve_device", "translate_paths"]

_HIERARCHICAL = _ua.node_id(ua.ObjectIds.HierarchicalReferences)


@dataclass(frozen=True)
class DeviceNodes:
    """The cached NodeIds of one device's functional unit."""

    namespaces: dict[str, int]
    device: ua.NodeId
    unit: ua.NodeId
    identity: InstrumentIdentity
    nodes: dict[str, ua.NodeId]
    identity_nodes: dict[str, ua.NodeId] = field(default_factory=dict)
    """The DI identification variables (vendor, model, serial, firmware): read again
    after a reconnect, since another device may answer behind the same endpoint."""

    def __getitem__(self, key: str) -> ua.NodeId:
        return self.nodes[key]


def _qualified(path: str, namespaces: Mapping[str, int]) -> list[ua.QualifiedName]:
    names = []
    for element in path.split("/"):
        key, _, name = element.partition(":")
        names.append(ua.QualifiedName(name, namespaces[key]))
    return names


async def translate_paths(
    conn: OpcUaConnection, start: ua.NodeId, paths: Mapping[str, str], ns: Mapping[str, int]
) -> dict[str, ua.NodeId]:
    browse_paths = [
        ua.BrowsePath(
            StartingNode=start,
            RelativePath=ua.RelativePath(
                Elements=[
                    ua.RelativePathElement(
                        ReferenceTypeId=_HIERARCHICAL,
                        IsInverse=False,  # type: ignore[arg-type]  # bool for codec marker ua.Boolean
                        IncludeSubtypes=True,  # type: ignore[arg-type]
                        TargetName=name,
                    )
                    for name in _qualified(path, ns)
                ]
            ),
        )
        for path in paths.values()
    ]
    results = await conn.request(
        lambda ua_client: ua_client.translate_browsepaths_to_nodeids(browse_paths), "resolve nodes"
    )
    found: dict[str, ua.NodeId] = {}
    missing = []
    for (key, path), result in zip(paths.items(), results, strict=True):
        if not result.StatusCode.is_good() or not result.Targets:
            missing.append(path)
            continue
        target = result.Targets[0].TargetId
        found[key] = ua.NodeId(target.Identifier, target.NamespaceIndex)
    if missing:
        raise InstrumentError(
            f"{conn.where}: {conn.url} lacks {', '.join(missing)} below {start.to_string()}; "
            "is it a cellauto LADS device of this kind?"
        )
    return found


async def browse_children(
    conn: OpcUaConnection, parent: ua.NodeId, *, skip_namespace: int | None = None
) -> dict[str, ua.NodeId]:
    """The objects below ``parent`` by browse name (those named in ``skip_namespace`` not)."""
    description = ua.BrowseDescription(
        NodeId=parent,
        BrowseDirection=ua.BrowseDirection.Forward,
        ReferenceTypeId=_HIERARCHICAL,
        IncludeSubtypes=True,
        NodeClassMask=ua.NodeClass.Object,
        ResultMask=ua.BrowseResultMask.All,
    )
    (result,) = await conn.request(
        lambda ua_client: ua_client.browse(ua.BrowseParameters(NodesToBrowse=[description])),
        "browse",
    )
    return {
        ref.BrowseName.Name: ref.NodeId
        for ref in result.References
        if ref.BrowseName.NamespaceIndex != skip_namespace
    }


def _pick(found: dict[str, ua.NodeId], wanted: str | None, what: str, where: str) -> ua.NodeId:
    if wanted is not None:
        if wanted not in found:
            known = ", ".join(found) or "none"
            raise InstrumentError(f"{where}: no {what} {wanted!r}; the server has: {known}")
        return found[wanted]
    if len(found) != 1:
        known = ", ".join(found) or "none"
        raise InstrumentError(f"{where}: name the {what} to use (device=/unit=); found: {known}")
    return next(iter(found.values()))


async def resolve_device(
    conn: OpcUaConnection,
    unit_paths: Mapping[str, str],
    *,
    device: str | None = None,
    unit: str | None = None,
) -> DeviceNodes:
    """Find the device and unit, read its DI identity and translate ``unit_paths``."""
    names: list[str] = await conn.read_value(
        _ua.node_id(ua.ObjectIds.Server_NamespaceArray), "read the namespace array"
    )
    missing = [uri for uri in (CELLAUTO_URI, DI_URI, LADS_URI) if uri not in names]
    if missing:
        raise InstrumentError(f"{conn.where}: {conn.url} has no namespace {', '.join(missing)}")
    ns = {"ua": 0, "own": names.index(CELLAUTO_URI), "di": names.index(DI_URI)}
    ns["lads"] = names.index(LADS_URI)
    objects = _ua.node_id(ua.ObjectIds.ObjectsFolder)
    device_set = (await translate_paths(conn, objects, {"set": "di:DeviceSet"}, ns))["set"]
    # DI's own DeviceSet also holds DI:DeviceFeatures (and DI:NetworkSet-like folders):
    # devices are named in their vendor's namespace, never in DI's
    devices = await browse_children(conn, device_set, skip_namespace=ns["di"])
    device_id = _pick(devices, device, "device", conn.where)
    unit_set = (await translate_paths(conn, device_id, {"set": "lads:FunctionalUnitSet"}, ns))[
        "set"
    ]
    unit_id = _pick(await browse_children(conn, unit_set), unit, "functional unit", conn.where)
    ident_paths = {
        "vendor": "di:Manufacturer",
        "model": "di:Model",
        "serial": "di:SerialNumber",
        "firmware": "di:SoftwareRevision",
    }
    ident_ids = await translate_paths(conn, device_id, ident_paths, ns)
    identity = await read_identity(conn, ident_ids)
    nodes = await translate_paths(conn, unit_id, unit_paths, ns)
    return DeviceNodes(
        namespaces=ns,
        device=device_id,
        unit=unit_id,
        identity=identity,
        nodes=nodes,
        identity_nodes=ident_ids,
    )


async def read_identity(
    conn: OpcUaConnection, ident_ids: Mapping[str, ua.NodeId]
) -> InstrumentIdentity:
    """The device's DI identification as it reads now."""
    values = await conn.read_data(list(ident_ids.values()), "read the device identification")
    fields = {}
    for key, value in zip(ident_ids, values, strict=True):
        raw = value.Value.Value if value.Value is not None else ""
        fields[key] = raw.Text if isinstance(raw, ua.LocalizedText) else str(raw or "")
    return InstrumentIdentity(**fields, adapter="opcua")
