"""A protocol's release tests: checked when it is defined, frozen into the run's
``release_plan`` record when a batch starts.

``Protocol(..., release_tests=[ReleaseTest(name="sterility", method="Ph. Eur. 2.6.27",
spec=Qualitative(accept=("no growth",)), sample="final product")], product="CAR-T")``.
The models live with the records (:mod:`cellauto.records.release_plan`): the record
carries them, so a verdict can be recomputed from the batch record alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cellauto.errors import ProtocolDefinitionError
from cellauto.identity.containers import ContainerPlan
from cellauto.records.release_plan import (
    Normalise,
    PercentOf,
    PerKg,
    Qualitative,
    ReleasePlan,
    ReleaseTest,
    slug_clash,
)
from cellauto.review.qc_run import sample_matches

if TYPE_CHECKING:
    from cellauto.protocols.definition import Protocol
    from cellauto.protocols.params import Params

__all__ = [
    "Normalise",
    "PerKg",
    "PercentOf",
    "Qualitative",
    "ReleaseTest",
    "check_release_tests",
    "release_plan",
    "sample_matches",
]


def _check_samples(
    protocol: str, tests: Sequence[ReleaseTest], plans: Sequence[ContainerPlan]
) -> None:
    keys = {key for plan in plans for key in (plan.key, *plan.keys())}
    for test in tests:
        if test.sample is not None and test.sample not in keys:
            raise ProtocolDefinitionError(
                f"protocol {protocol!r}: release test {test.name!r} samples {test.sample!r},"
                " which is not a declared container; containers: "
                + (", ".join(sorted(keys)) or "none (declare containers=)")
            )


def check_release_tests(
    protocol: str,
    tests: Sequence[ReleaseTest],
    params: type[Params],
    containers: Sequence[ContainerPlan] | Callable[[Any], Sequence[ContainerPlan]],
) -> list[ReleaseTest]:
    """The protocol's release tests, or ProtocolDefinitionError naming what is wrong:
    a name given twice, two names whose result-id slugs are alike ("CD4+"/"CD4-"), a
    ``sample`` that is not a declared container (checked here for a list of containers,
    when the run starts for a function of the parameters), a ``PerKg.weight_param`` that
    is not a parameter."""
    names: set[str] = set()
    for test in tests:
        if not isinstance(test, ReleaseTest):
            raise ProtocolDefinitionError(
                f"protocol {protocol!r}: release_tests holds {test!r}, not a ReleaseTest"
            )
        if test.name in names:
            raise ProtocolDefinitionError(
                f"protocol {protocol!r}: release test {test.name!r} is declared twice"
            )
        names.add(test.name)
        weight = test.normalise.weight_param if isinstance(test.normalise, PerKg) else None
        if weight is not None and weight not in params.model_fields:
            raise ProtocolDefinitionError(
                f"protocol {protocol!r}: release test {test.name!r} normalises per kg of"
                f" {weight!r}, which is not a parameter; parameters: "
                + ", ".join(params.model_fields)
            )
    clash = slug_clash([test.name for test in tests])
    if clash is not None:
        raise ProtocolDefinitionError(
            f"protocol {protocol!r}: release tests {clash[0]!r} and {clash[1]!r} would"
            f" share the QC result id part {clash[2]!r}; name them apart by letters or"
            " digits (e.g. 'CD4 positive', 'CD4 negative')"
        )
    if not callable(containers):
        _check_samples(protocol, tests, containers)
    return list(tests)


def release_plan(protocol: Protocol[Any], params: Params) -> ReleasePlan:
    """The ``release_plan`` record of a new run of ``protocol`` with ``params`` (its
    tests' samples checked against the containers these parameters make)."""
    if protocol.release_tests and callable(protocol.containers):
        _check_samples(protocol.name, protocol.release_tests, protocol.container_plans(params))
    coi = getattr(params, "coi", None)
    return ReleasePlan(
        product=protocol.product,
        coi=str(coi) if coi is not None else None,
        tests=list(protocol.release_tests),
    )
