"""Starting material as it arrives at a simulated line: labelled, with a realistic make-up."""

from __future__ import annotations

from collections.abc import Mapping

from cellauto.identity.containers import ContainerIdentity
from cellauto.identity.isbt128 import din_barcode
from cellauto.protocols.definition import MaterialInput
from cellauto.protocols.params import Params
from cellauto.sim.feeders import TUMOUR_ANTIGEN_STIMULUS
from cellauto.sim.material import Container
from cellauto.sim.patients import POPULATIONS, PatientProfile, StartingMaterial

__all__ = ["MATERIAL_PRESETS", "material_container", "patient_container", "starting_materials"]


#: What arrives at the line, by kind of starting material: each population's typical
#: patient (:mod:`cellauto.sim.patients`, where these values live once).
MATERIAL_PRESETS: dict[str, dict[str, float]] = {
    population.material: population.typical.starting_material.model_dump(exclude={"material"})
    for population in POPULATIONS.values()
}


def material_container(container_id: str, material: str, label: str = "") -> Container:
    """A container of ``material`` (a MATERIAL_PRESETS kind) as it arrives, labelled."""
    return patient_container(
        container_id, StartingMaterial(material=material, **MATERIAL_PRESETS[material]), label
    )


def patient_container(container_id: str, material: StartingMaterial, label: str = "") -> Container:
    """A container of one patient's starting ``material`` as it arrives, labelled."""
    viable = material.viable_cells
    viability = material.viability_pct
    return Container(
        container_id=container_id,
        viable_cells=viable,
        dead_cells=viable * (100.0 - viability) / viability,
        volume_ml=material.volume_ml,
        t_cell_fraction=material.t_cell_fraction,
        nk_fraction=material.nk_fraction,
        cd4_fraction=material.cd4_fraction,
        monocyte_fraction=material.monocyte_fraction,
        nk_cd16_fraction=material.nk_cd16_fraction,
        nk_cd8_fraction=material.nk_cd8_fraction,
        nk_cd56_negative_fraction=material.nk_cd56_negative_fraction,
        antigen_stimulus=TUMOUR_ANTIGEN_STIMULUS if material.material == "tumour_digest" else 0.0,
        label=label,
    )


def starting_materials(
    inputs: list[MaterialInput],
    params: Params,
    identities: Mapping[str, ContainerIdentity] | None = None,
    *,
    patient: PatientProfile | None = None,
) -> list[Container]:
    """A labelled container for each declared input, as it would arrive at the line.

    An input of the material ``patient`` gives is that patient's (its
    ``starting_material``); any other input is the material's preset.

    An input with a ``din_param`` carries the DIN (with its flag) and product code of
    its declared identity in ``identities`` (flag 00 and no product code if it has
    none) besides the chain-of-identity barcode.
    """
    made = []
    for material in inputs:
        label = material.label_data(str(getattr(params, material.identity_param)))
        where = material.container_id(params)
        if patient is not None and patient.starting_material.material == material.material:
            container = patient_container(where, patient.starting_material, label)
        else:
            container = material_container(where, material.material, label)
        if material.din_param is not None:
            identity = (identities or {}).get(material.name)
            if identity is not None:
                container.barcodes = (identity.din_data(), identity.product_data(), label)
            else:
                din = str(getattr(params, material.din_param))
                container.barcodes = (din_barcode(din), label)
        made.append(container)
    return made
