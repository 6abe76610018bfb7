"""Passwords for the CLI: typed at the terminal (never echoed) or read from stdin.

Never an argument, never logged. With ``--password-stdin`` each password is one line
of stdin (the trailing newline dropped), in the order the command documents; without
it the terminal is asked (a new password twice), and with no terminal the command is
refused as bad input before anything is written.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TextIO

from cellauto.errors import BadInputError

__all__ = ["Passwords"]


class Passwords:
    """Where this command's passwords come from."""

    def __init__(
        self,
        from_stdin: bool,
        *,
        stdin: TextIO | None = None,
        ask: Callable[[str], str] = getpass.getpass,
    ) -> None:
        self._from_stdin = from_stdin
        self._stdin = stdin
        self._ask = ask
        self._lines = 0

    def _input(self) -> TextIO:
        return sys.stdin if self._stdin is None else self._stdin

    def check_available(self) -> None:
        """Refuse now (nothing written) if there is no way to ask for a password."""
        if not self._from_stdin and not self._input().isatty():
            raise BadInputError(
                "no terminal to type the password at; give --password-stdin and pass the "
                "password(s) on stdin, one per line"
            )

    def current(self, prompt: str) -> str:
        """A password the person has (one stdin line, or typed once)."""
        if self._from_stdin:
            return self._line(prompt)
        self.check_available()
        return self._ask(f"{prompt}: ")

    def new(self, prompt: str) -> str:
        """A password being chosen (one stdin line, or typed twice and compared)."""
        if self._from_stdin:
            return self._line(prompt)
        self.check_available()
        first = self._ask(f"{prompt}: ")
        if self._ask(f"{prompt} (again): ") != first:
            raise BadInputError("the two passwords typed differ; nothing was changed")
        return first

    def _line(self, what: str) -> str:
        line = self._input().readline()
        self._lines += 1
        if not line:
            raise BadInputError(f"--password-stdin: stdin ended before line {self._lines} ({what})")
        return line[:-1] if line.endswith("\n") else line
