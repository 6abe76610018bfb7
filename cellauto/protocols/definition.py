"""How a protocol is written: a :class:`Protocol` object and its steps.

A step is a plain async function. Its first parameter receives the
:class:`~cellauto.protocols.context.Run`; every other parameter is equipment,
looked up on the line by the parameter's name and checked against its annotation
(an instrument interface), as pytest does with fixtures. The function's name and
docstring become the step's wording in the batch record.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from enum import StrEnum
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    TypeVar,
    cast,
    overload,
)

from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import ProtocolDefinitionError
from cellauto.identity.containers import ContainerPlan
from cellauto.instruments.base import Instrument
from cellauto.protocols.bom import Material, check_materials
from cellauto.protocols.params import Params, ParamsT
from cellauto.protocols.release_tests import ReleaseTest, check_release_tests
from cellauto.protocols.spec import CheckPolicy, Spec

if TYPE_CHECKING:
    from cellauto.protocols.context import Run

__all__ = ["MaterialInput", "Protocol", "ResumePolicy", "StepDefinition"]

StepFunction = Callable[..., Awaitable[Any]]
ContainerPlans = Sequence[ContainerPlan] | Callable[[Any], Sequence[ContainerPlan]]
"""A protocol's containers: a list, or a function of its parameters (a bag count)."""

_P = TypeVar("_P", bound=Params)
_Equipment = ParamSpec("_Equipment")
_Result = TypeVar("_Result")
_Step = Callable[Concatenate["Run[_P]", _Equipment], Coroutine[Any, Any, _Result]]
"""A step of a ``Protocol[P]``: ``async def step(run: Run[P], <equipment>...)``."""


class ResumePolicy(StrEnum):
    """How a step may be resumed after a controller crash."""

    RERUN = "rerun"  # safe to run again from the start
    RECONCILE = "reconcile"  # ask the instrument what it did, then continue or wait
    OPERATOR = "operator"  # hold and let an operator decide


class MaterialInput(BaseModel):
    """A starting material the procedure receives, identified by a parameter's value.

    ``MaterialInput("apheresis bag", identity_param="coi")``: the bag's label must
    carry the chain-of-identity id given as the ``coi`` parameter. Simulated lines
    place such a labelled container on the line.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    identity_param: str
    din_param: str | None = Field(
        None, description="the parameter holding the ISBT 128 DIN on the bag's label"
    )
    description: str = ""
    material: Literal["apheresis", "pbmc", "nk_cells", "t_cells"] = "t_cells"
    label: Callable[[str], str] | None = Field(
        None, exclude=True, description="prints the identifier as on the label (barcode data)"
    )

    container_param: str | None = Field(
        None,
        description="the parameter giving the container's id on the line (where this "
        "batch's bag is, on a line holding several batches' bags); default: ``name``",
    )

    def label_data(self, identifier: str) -> str:
        return self.label(identifier) if self.label else identifier

    def container_id(self, params: object) -> str:
        """Where this batch's container is on the line: its id."""
        if self.container_param is None:
            return self.name
        return str(getattr(params, self.container_param))


class StepDefinition(BaseModel):
    """One step (an ISA-88 phase) and what it declares."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    function: StepFunction = Field(exclude=True)
    description: str = ""
    unit_procedure: str | None = None
    operation: str | None = None
    equipment: dict[str, type[Instrument]] = Field(default_factory=dict, exclude=True)
    checks: dict[str, Spec] = Field(default_factory=dict)
    resume: ResumePolicy = ResumePolicy.OPERATOR
    max_duration_h: float | None = Field(None, gt=0)
    max_hold_h: float | None = Field(None, gt=0)
    expected_duration_h: float | Callable[[Any], float] = Field(0.0, exclude=True)
    on_timeout: CheckPolicy = CheckPolicy.HOLD

    def estimate_h(self, params: Params) -> float:
        """Expected duration for these parameters (a number, or a function of params)."""
        value = self.expected_duration_h
        try:
            hours = float(value(params) if callable(value) else value)
        except Exception as exc:
            raise ProtocolDefinitionError(
                f"step {self.name!r}: expected_duration_h could not be computed from the "
                f"parameters: {type(exc).__name__}: {exc}"
            ) from None
        return max(0.0, hours)

    @property
    def path(self) -> list[str]:
        """ISA-88 path: unit procedure, operation, phase (omitting absent levels)."""
        return [p for p in (self.unit_procedure, self.operation, self.name) if p]


class Protocol(Generic[ParamsT]):
    """A named, versioned procedure with typed parameters and ordered steps.

    Generic in its parameters model: ``Protocol("car-t", version="1", params=CarTParams)``
    is a ``Protocol[CarTParams]``, whose steps take a ``Run[CarTParams]`` (or a bare
    ``Run``, if they read no protocol-specific parameter).
    """

    @overload
    def __init__(
        self: Protocol[Params],
        name: str,
        *,
        version: str,
        description: str = "",
        inputs: list[MaterialInput] | None = None,
        materials: list[Material] | None = None,
        containers: ContainerPlans | None = None,
        release_tests: list[ReleaseTest] | None = None,
        product: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        name: str,
        *,
        version: str,
        params: type[ParamsT],
        description: str = "",
        inputs: list[MaterialInput] | None = None,
        materials: list[Material] | None = None,
        containers: ContainerPlans | None = None,
        release_tests: list[ReleaseTest] | None = None,
        product: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        name: str,
        *,
        version: str,
        params: type[Params] = Params,
        description: str = "",
        inputs: list[MaterialInput] | None = None,
        materials: list[Material] | None = None,
        containers: ContainerPlans | None = None,
        release_tests: list[ReleaseTest] | None = None,
        product: str | None = None,
    ) -> None:
        if not name or not version:
            raise ProtocolDefinitionError("a Protocol needs a non-empty name and version")
        if not (isinstance(params, type) and issubclass(params, Params)):
            raise ProtocolDefinitionError(
                f"protocol {name!r}: params must be a subclass of cellauto.Params, got {params!r}"
            )
        self.name = name
        self.version = version
        # The overloads tie ParamsT to ``params`` (Params when it is not given).
        self.params = cast("type[ParamsT]", params)
        self.description = description
        self.inputs = list(inputs or [])
        for material in self.inputs:
            for what, param in (
                ("identity_param", material.identity_param),
                ("din_param", material.din_param),
                ("container_param", material.container_param),
            ):
                if param is not None and param not in params.model_fields:
                    raise ProtocolDefinitionError(
                        f"protocol {name!r}: input {material.name!r} names {what} "
                        f"{param!r}, which is not a parameter; parameters: "
                        + ", ".join(params.model_fields)
                    )
        #: The containers the run makes (a list, or a function of the parameters).
        self.containers: ContainerPlans = containers if containers is not None else []
        if self.containers and not any(m.din_param for m in self.inputs):
            raise ProtocolDefinitionError(
                f"protocol {name!r} declares containers, whose identities derive from the "
                "batch's DIN: name the parameter holding it with "
                "MaterialInput(..., din_param='din')"
            )
        #: The bill of materials (:mod:`cellauto.protocols.bom`): checked before a run starts.
        self.materials = check_materials(name, materials or [])
        #: The release tests a batch must pass (written as the run's ``release_plan``).
        self.release_tests = check_release_tests(name, release_tests or [], params, self.containers)
        #: The product's name on the certificate of analysis (default: the protocol's).
        self.product = product or name
        self.steps: list[StepDefinition] = []
        self.source_file: str | None = None
        self.source_sha256: str | None = None

    def __repr__(self) -> str:
        return f"<Protocol {self.name} {self.version}: {len(self.steps)} steps>"

    @overload
    def step(
        self, func: _Step[ParamsT, _Equipment, _Result], /
    ) -> _Step[ParamsT, _Equipment, _Result]: ...

    @overload
    def step(
        self,
        *,
        name: str | None = None,
        unit_procedure: str | None = None,
        operation: str | None = None,
        checks: dict[str, Spec] | None = None,
        resume: ResumePolicy | str = ResumePolicy.OPERATOR,
        max_duration_h: float | None = None,
        max_hold_h: float | None = None,
        expected_duration_h: float | Callable[[ParamsT], float] | None = None,
        on_timeout: CheckPolicy | str = CheckPolicy.HOLD,
    ) -> Callable[[_Step[ParamsT, _Equipment, _Result]], _Step[ParamsT, _Equipment, _Result]]: ...

    def step(
        self,
        func: StepFunction | None = None,
        *,
        name: str | None = None,
        unit_procedure: str | None = None,
        operation: str | None = None,
        checks: dict[str, Spec] | None = None,
        resume: ResumePolicy | str = ResumePolicy.OPERATOR,
        max_duration_h: float | None = None,
        max_hold_h: float | None = None,
        expected_duration_h: float | Callable[[Any], float] | None = None,
        on_timeout: CheckPolicy | str = CheckPolicy.HOLD,
    ) -> Callable[..., Any]:
        """Register an async function as the next step. Usable bare or with options."""

        def register(function: StepFunction) -> StepFunction:
            step_name = name or function.__name__
            if not inspect.iscoroutinefunction(function):
                raise ProtocolDefinitionError(
                    f"protocol {self.name!r} step {step_name!r}: a step must be 'async def'"
                )
            if any(s.name == step_name for s in self.steps):
                raise ProtocolDefinitionError(
                    f"protocol {self.name!r}: step {step_name!r} is defined twice"
                )
            try:
                definition = StepDefinition(
                    name=step_name,
                    function=function,
                    description=inspect.cleandoc(function.__doc__ or ""),
                    unit_procedure=unit_procedure,
                    operation=operation,
                    equipment=_equipment_of(self.name, step_name, function),
                    checks=dict(checks or {}),
                    resume=ResumePolicy(resume),
                    max_duration_h=max_duration_h,
                    max_hold_h=max_hold_h,
                    expected_duration_h=(
                        expected_duration_h
                        if expected_duration_h is not None
                        else (max_duration_h or 0.0)
                    ),
                    on_timeout=CheckPolicy(on_timeout),
                )
            except ValueError as exc:
                raise ProtocolDefinitionError(
                    f"protocol {self.name!r} step {step_name!r}: {exc}"
                ) from None
            self.steps.append(definition)
            return function

        if func is not None:
            return register(func)
        return register

    def equipment(self) -> dict[str, type[Instrument]]:
        """Every piece of equipment the steps need: name -> interface."""
        needed: dict[str, type[Instrument]] = {}
        for step in self.steps:
            for eq_name, interface in step.equipment.items():
                known = needed.setdefault(eq_name, interface)
                if known is not interface:
                    raise ProtocolDefinitionError(
                        f"protocol {self.name!r}: equipment {eq_name!r} is a "
                        f"{known.__name__} in one step and a {interface.__name__} in step "
                        f"{step.name!r}; use one interface per equipment name"
                    )
        return needed

    def estimate_h(self, params: Params) -> list[float]:
        """Expected duration of each step, in hours, for these parameters."""
        return [step.estimate_h(params) for step in self.steps]

    def container_plans(self, params: Params) -> list[ContainerPlan]:
        """The containers a run with ``params`` makes (``containers=`` evaluated)."""
        declared = self.containers
        try:
            return list(declared(params) if callable(declared) else declared)
        except Exception as exc:
            raise ProtocolDefinitionError(
                f"protocol {self.name!r}: containers= could not be computed from the "
                f"parameters: {type(exc).__name__}: {exc}"
            ) from None


def _equipment_of(protocol: str, step: str, function: StepFunction) -> dict[str, type[Instrument]]:
    where = f"protocol {protocol!r} step {step!r}"
    params = list(inspect.signature(function).parameters.values())
    if not params:
        raise ProtocolDefinitionError(f"{where}: the first parameter must receive the run")
    try:
        hints = _equipment_hints(function, {param.name for param in params[1:]})
    except Exception as exc:
        raise ProtocolDefinitionError(f"{where}: cannot resolve annotations: {exc}") from None
    equipment: dict[str, type[Instrument]] = {}
    for param in params[1:]:
        interface = hints.get(param.name)
        if not (isinstance(interface, type) and issubclass(interface, Instrument)):
            raise ProtocolDefinitionError(
                f"{where}: parameter {param.name!r} must be annotated with an instrument "
                f"interface (e.g. CellCounter), got {interface!r}"
            )
        equipment[param.name] = interface
    return equipment


def _equipment_hints(function: StepFunction, names: set[str]) -> dict[str, Any]:
    """The annotations of the parameters ``names``, resolved as ``typing.get_type_hints`` does.

    Only those: the run's annotation (``Run[CarTParams]``, perhaps a string naming a
    params class local to a test function) is for the type checker and never evaluated.
    """
    annotations = {k: v for k, v in inspect.get_annotations(function).items() if k in names}
    holder = types.SimpleNamespace(__annotations__=annotations)
    namespace = getattr(inspect.unwrap(function), "__globals__", {})
    return typing.get_type_hints(holder, globalns=namespace)
