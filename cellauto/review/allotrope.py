"""A run's cell counts as Allotrope-style cell-counting JSON (ASM).

Followed: the Allotrope Simple Model (ASM) for cell counting, manifest
``http://purl.allotrope.org/manifests/cell-counting/REC/2024/09/cell-counting.manifest``
(REC/2024/09), as the open-source ``allotropy`` converters write it. The nesting and the
field names are that schema's:

``cell counting aggregate document`` → ``device system document`` (device identifier,
model number, equipment serial number, product manufacturer, firmware version),
``data system document`` (software name and version, ASM converter name), and
``cell counting document`` (one per count) → ``analyst`` and ``measurement aggregate
document`` → ``measurement document`` (measurement identifier, measurement time,
``sample document`` (sample identifier, batch identifier), ``device control aggregate
document``, ``processed data aggregate document`` → ``processed data document`` with
``viability (cell counter)`` in %, ``viable cell density (cell counter)`` and ``total cell
density (cell counter)`` in (10^6 cells)/mL, ``average total cell diameter`` in µm and,
in its ``data processing document``, the ``cell density dilution factor``).

"Allotrope-style": the document is not validated against the schema file here (no
Allotrope library is a dependency), and ``total cell count`` — the number of cells the
counter saw in its field — is written only when the count reports it (``total_cells``);
the simulated counter reports densities only. A density in cells/mL is divided by 10^6
for the schema's unit. Measurement identifiers are ``<run_id>-<record seq>``, so each
points at its record.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from cellauto import __version__
from cellauto.records import Journal, Record
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn
from cellauto.records.kinds import RecordKind
from cellauto.records.models import utc_from_epoch_s
from cellauto.review.measurements import run_records

__all__ = ["ASM_MANIFEST", "cell_counting_document", "write_cell_counts"]

ASM_MANIFEST = (
    "http://purl.allotrope.org/manifests/cell-counting/REC/2024/09/cell-counting.manifest"
)
COUNT_METHOD = "count"
MILLION_CELLS_PER_ML = "(10^6 cells)/mL"


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit}


def _iso(seconds: float) -> str:
    return utc_from_epoch_s(seconds).isoformat().replace("+00:00", "Z")


def _number(result: dict[str, Any], key: str) -> float | None:
    value = result.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _measurement(record: Record, result: dict[str, Any], batch_id: str) -> dict[str, Any]:
    processed: dict[str, Any] = {}
    viability = _number(result, "viability_pct")
    if viability is not None:
        processed["viability (cell counter)"] = _quantity(viability, "%")
    for key, name in (
        ("viable_cells_per_ml", "viable cell density (cell counter)"),
        ("total_cells_per_ml", "total cell density (cell counter)"),
    ):
        density = _number(result, key)
        if density is not None:
            processed[name] = _quantity(density / 1e6, MILLION_CELLS_PER_ML)
    for key, name in (("total_cells", "total cell count"), ("viable_cells", "viable cell count")):
        count = _number(result, key)
        if count is not None:
            processed[name] = _quantity(count, "cell")
    diameter = _number(result, "mean_diameter_um")
    if diameter is not None:
        processed["average total cell diameter"] = _quantity(diameter, "µm")
    dilution = _number(result, "dilution")
    if dilution is not None:
        processed["data processing document"] = {
            "cell density dilution factor": _quantity(dilution, "(unitless)")
        }
    counted_at = _number(result, "counted_at_process_time_s") or record.process_time_s
    sample = {"sample identifier": str(result.get("sample_id") or ""), "batch identifier": batch_id}
    return {
        "measurement identifier": f"{record.run_id}-{record.seq}",
        "measurement time": _iso(counted_at),
        "sample document": sample,
        "device control aggregate document": {
            "device control document": [{"device type": "cell counter"}]
        },
        "processed data aggregate document": {"processed data document": [processed]},
    }


def cell_counting_document(records: Iterable[Record]) -> dict[str, Any]:
    """The ASM document of every successful cell count (``count``) in ``records``.

    ``records`` must include the run's ``run_started`` (the counter's identity and the
    batch's identifiers) and its ``instrument_response`` records.
    """
    started: rec.RunStarted | None = None
    counts: list[tuple[Record, rec.InstrumentResponse]] = []
    for record in records:
        payload = record.payload
        if isinstance(payload, rec.RunStarted):
            started = payload
        elif (
            isinstance(payload, rec.InstrumentResponse)
            and payload.ok
            and payload.method == COUNT_METHOD
            and isinstance(payload.result, dict)
        ):
            counts.append((record, payload))
    if started is None:
        raise ValueError("the records hold no run_started record: pass the whole run")
    params = started.parameters
    batch_id = str(params.get("din") or params.get("coi") or started.run_id)
    devices = sorted({p.instrument for _, p in counts})
    identity = started.instruments.get(devices[0]) if len(devices) == 1 else None
    device: dict[str, Any] = {"device identifier": ", ".join(devices) or "counter"}
    if identity is not None:
        device |= {
            "model number": identity.model,
            "equipment serial number": identity.serial,
            "product manufacturer": identity.vendor,
            "firmware version": identity.firmware,
        }
    documents = []
    for record, payload in counts:
        result = payload.result
        analyst = str(result.get("operator") or started.operator)
        doc = _measurement(record, result, batch_id)
        serial = result.get("instrument_serial")
        if serial:
            doc["device control aggregate document"]["device control document"][0][
                "equipment serial number"
            ] = str(serial)
        doc["device control aggregate document"]["device control document"][0][
            "device identifier"
        ] = payload.instrument
        documents.append(
            {"analyst": analyst, "measurement aggregate document": {"measurement document": [doc]}}
        )
    return {
        "$asm.manifest": ASM_MANIFEST,
        "cell counting aggregate document": {
            "device system document": device,
            "data system document": {
                "software name": "cellauto",
                "software version": __version__,
                "ASM converter name": "cellauto.review.allotrope",
                "ASM converter version": __version__,
                "ASM file identifier": f"{started.run_id}-cell-counts.json",
            },
            "cell counting document": documents,
        },
    }


_KINDS = [RecordKind.RUN_STARTED.value, RecordKind.INSTRUMENT_RESPONSE.value]


def write_cell_counts(source: Journal | Conn, run_id: str, path: Path) -> Path:
    """Write the run's cell counts to ``path`` as ASM cell-counting JSON."""
    document = cell_counting_document(run_records(source, run_id, _KINDS))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return path
