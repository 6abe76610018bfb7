"""The protocol runner: authoring API, ISA-88 states, execution and loading."""

from cellauto.protocols.bom import Material, measured, per_batch, per_param
from cellauto.protocols.context import Run
from cellauto.protocols.definition import MaterialInput, Protocol, ResumePolicy, StepDefinition
from cellauto.protocols.execution import Execution, RunOutcome
from cellauto.protocols.loader import load_protocol
from cellauto.protocols.params import Params, SimDefault
from cellauto.protocols.release_tests import PercentOf, PerKg, Qualitative, ReleaseTest
from cellauto.protocols.runner import Runner
from cellauto.protocols.spec import CheckPolicy, CheckResult, Spec
from cellauto.protocols.states import Command, State

__all__ = [
    "CheckPolicy",
    "CheckResult",
    "Command",
    "Execution",
    "Material",
    "MaterialInput",
    "Params",
    "PerKg",
    "PercentOf",
    "Protocol",
    "Qualitative",
    "ReleaseTest",
    "ResumePolicy",
    "Run",
    "RunOutcome",
    "Runner",
    "SimDefault",
    "Spec",
    "State",
    "StepDefinition",
    "load_protocol",
    "measured",
    "per_batch",
    "per_param",
]
