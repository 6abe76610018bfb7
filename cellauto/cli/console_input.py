"""The run console's one reader of stdin: each line to the question being asked.

One daemon thread reads stdin for the console, one line per question asked (so lines
on a pipe — ``--password-stdin`` — wait for their question, and lines typed at a
terminal early answer the next question, as in a shell). ``lock`` typed at any
question is a command (it ends the session) and the question is asked on. A line read
for a question that was called off meanwhile (its task answered at another terminal)
and not wanted by another question is dropped with a note, so that it can never
answer a later question by surprise. A dialog (a question, then a password) holds
:attr:`ConsoleInput.dialog`, so that two tasks open at once do not interleave.

A password is read without echo (``getpass``) when stdin is a terminal; from a pipe
it is just the next line. The prompt is printed by the reader (``input(prompt)``).
"""

from __future__ import annotations

import asyncio
import builtins
import getpass
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable

import anyio

__all__ = ["ConsoleInput"]

logger = logging.getLogger(__name__)

_EOF = object()


def _terminal() -> bool:
    """Stdin is a real terminal (a password is then read without echo)."""
    try:
        return sys.stdin.isatty() and os.isatty(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):  # a test's stream, a closed stdin
        return False


class ConsoleInput:
    """Lines of stdin for the questions of the run console (see the module doc)."""

    def __init__(self, on_command: Callable[[str], bool] | None = None) -> None:
        self._on_command = on_command
        self._waiter: asyncio.Future[str] | None = None
        self._ended = False
        self._reading = False
        self._wanted: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._prompt, self._secret = "", False
        self.dialog = anyio.Lock()
        """Held by one dialog at a time (a task's question and its password)."""

    @property
    def ended(self) -> bool:
        """Stdin has ended: nothing more can be asked."""
        return self._ended

    def _want_line(self, prompt: str, secret: bool) -> None:
        """Have the thread read one line (unless one is being read)."""
        if self._reading:
            return
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._read, name="cellauto-console", daemon=True)
            self._thread.start()
        self._reading = True
        self._wanted.put((prompt, secret))

    def _read(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            prompt, secret = self._wanted.get()
            try:
                if secret and _terminal():
                    line: object = getpass.getpass(prompt)
                else:
                    line = builtins.input(prompt)
            except EOFError:
                line = _EOF
            except Exception:  # stdin unusable: as the end of input
                logger.exception("reading the console failed")
                line = _EOF
            try:
                loop.call_soon_threadsafe(self._arrive, line)
            except RuntimeError:  # the loop has closed: the run is over
                return
            if line is _EOF:
                return

    def _arrive(self, line: object) -> None:
        self._reading = False
        waiter = self._waiter
        pending = waiter is not None and not waiter.done()
        if line is _EOF:
            self._ended = True
            if waiter is not None and pending:
                waiter.set_exception(EOFError())
            return
        assert isinstance(line, str)
        if self._on_command is not None and self._on_command(line.strip().lower()):
            if pending:
                self._want_line(self._prompt, self._secret)  # the question is still asked
            return
        if waiter is not None and pending:
            waiter.set_result(line)
        else:
            print("(nothing is asked now; the line is ignored)", file=sys.stderr, flush=True)

    async def line(self, prompt: str, *, secret: bool = False) -> str:
        """Print ``prompt`` and return the next line typed (EOFError at end of input)."""
        if self._ended:
            raise EOFError
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[str] = loop.create_future()
        self._waiter = waiter
        self._prompt, self._secret = prompt, secret
        try:
            self._want_line(prompt, secret)
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None
