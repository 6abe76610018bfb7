"""The HTTP status of each refusal the site's functions raise.

401: the password was wrong; 403: the person may not (permission, training, signing
their own entry, a locked account); 404: no such run, task or record; 409: the state
does not allow it now (a task no longer open, a command the run's state refuses, a batch
already disposed of, a review act the deviation's or result's state or the
review rules refuse); 422: bad input; 503: the journal is busy or damaged.
"""

from __future__ import annotations

from cellauto.errors import (
    AccountDisabledError,
    AccountLockedError,
    AuthenticationError,
    BadInputError,
    CellautoError,
    JournalError,
    PasswordExpiredError,
    PermissionRefusedError,
    ReleaseRefusedError,
    ReviewRefusedError,
    RunNotFoundError,
    SignatureRefusedError,
    StateCommandError,
    TaskNotOpenError,
    TrainingRequiredError,
)

__all__ = ["status_of"]

_STATUS: tuple[tuple[type[CellautoError], int], ...] = (
    (RunNotFoundError, 404),
    (AuthenticationError, 401),
    (AccountLockedError, 403),
    (AccountDisabledError, 403),
    (PasswordExpiredError, 403),
    (PermissionRefusedError, 403),
    (TrainingRequiredError, 403),
    (SignatureRefusedError, 403),
    (TaskNotOpenError, 409),
    (StateCommandError, 409),
    (ReleaseRefusedError, 409),
    (ReviewRefusedError, 409),
    (BadInputError, 422),
    (JournalError, 503),
)


def status_of(error: CellautoError) -> int:
    """The HTTP status that answers ``error`` (the first class of the table it is)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500
