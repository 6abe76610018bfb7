"""The exception hierarchy: every cellauto error is a :class:`CellautoError`.

Each message names what was wrong, where (step, instrument, field) and what to do.
"""

from __future__ import annotations


class CellautoError(Exception):
    """Root of every error cellauto raises on purpose."""


class BadInputError(CellautoError):
    """Input refused before anything was written (parameters, files, line, CLI)."""


class ProtocolDefinitionError(BadInputError):
    """A protocol module is malformed: missing object, bad step signature, duplicate step."""


class ParameterError(BadInputError):
    """A protocol parameter is unknown, missing or outside its bounds."""


class EquipmentError(BadInputError):
    """The line lacks equipment a protocol needs, or has it with the wrong interface."""


class MaterialRefusedError(BadInputError):
    """A material or lot cannot be used: not defined, not released, expired, not enough."""


class ReviewRefusedError(BadInputError):
    """An act of review refused (a deviation's transition, a QC result, an import)."""


class ReleaseRefusedError(ReviewRefusedError):
    """A batch release refused; ``problems`` lists every reason."""

    def __init__(self, message: str, problems: list[object] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class EquipmentRefusedError(EquipmentError):
    """An instrument is not fit for use: unknown to the registry, out of service or
    calibration, or its identity read at connect differs from the registry's."""


class StateCommandError(CellautoError):
    """An ISA-88 command is not allowed in the run's current state."""

    def __init__(self, command: str, state: str, allowed: list[str]) -> None:
        self.command = command
        self.state = state
        self.allowed = allowed
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"command {command!r} is not allowed in state {state!r}; "
            f"allowed in {state!r}: {allowed_text}"
        )


class JournalError(CellautoError):
    """The run journal cannot be opened, written or read."""


class JournalNotFoundError(JournalError, BadInputError):
    """No journal file where one was named (read-only commands never create one)."""


class JournalOpenError(JournalError, BadInputError):
    """The named journal cannot be used: a missing folder, not a cellauto journal, wrong version."""


class JournalDamagedError(JournalOpenError):
    """The journal file is damaged (fails SQLite's integrity check) or is not a database;
    it is refused before anything is written to it."""


class SigningKeyError(JournalError, BadInputError):
    """The journal's signing key (or the public key to verify with) cannot be read,
    created, or is not the key the journal is signed with."""


class RunNotFoundError(JournalError, BadInputError):
    """No run with that id (or id prefix) is in the journal."""


class RunOwnedError(JournalError, BadInputError):
    """The run has a live controller (another process, or another journal in this one):
    a second controller is refused before anything is written."""


class FencedError(JournalError):
    """Another controller took the run over: this controller's records for it are refused,
    and it must stop driving the run's instruments."""


class InstrumentError(CellautoError):
    """An instrument refused a command, failed, or is unreachable."""


class OutcomeUnknownError(InstrumentError):
    """A command was sent but the connection failed before its reply: it may or may not
    have been carried out (a resumed run lists it as in doubt)."""


class OutOfRangeError(InstrumentError, ValueError):
    """A command argument lies outside the instrument's limits; the message names the limit."""


class IdentityMismatchError(CellautoError):
    """A chain-of-identity check failed: the scanned id does not match the expected one."""


class StepError(CellautoError):
    """A protocol step failed; wraps the original error with the step's name."""


class ResumeError(BadInputError):
    """A run cannot be resumed as asked (ended, unknown, or its protocol or line changed)."""


class PeopleError(BadInputError):
    """An act of a person was refused (sign-in, permission, training, signature, task).

    The refusal itself is journaled as a site record before this is raised: Part 11
    §11.300(d) wants every attempt, failed ones included, on the record."""


class AuthenticationError(PeopleError):
    """The user name or the password is wrong (the message never says which)."""


class AccountLockedError(PeopleError):
    """The account is locked (too many failed sign-ins, or by an administrator)."""


class AccountDisabledError(PeopleError):
    """The account is disabled; its name is never given to anyone else."""


class PasswordExpiredError(PeopleError):
    """The password expired or was set by an administrator: it must be changed first."""


class PasswordPolicyError(PeopleError):
    """A new password does not meet the site's password policy."""


class PermissionRefusedError(PeopleError):
    """The person's roles do not grant the permission the act needs."""


class TrainingRequiredError(PeopleError):
    """The person has no valid training record for the protocol or SOP of the act."""


class SignatureRefusedError(PeopleError):
    """A signature was refused: its target is missing or changed, or the signer may not
    sign it (self-verification, another run's task, ...)."""


class TaskNotOpenError(PeopleError):
    """The operator task was already answered, expired or withdrawn."""
