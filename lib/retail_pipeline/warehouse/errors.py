"""The loader's errors: each message is one line that says what to fix."""

from __future__ import annotations


class WarehouseError(RuntimeError):
    """The load failed (server unreachable, SQL error, a check failed): nothing was changed."""

    exit_code = 1


class WarehouseInputError(WarehouseError):
    """The load cannot start: a bad warehouse URL, a missing run report or curated file."""

    exit_code = 2


def first_line(error: BaseException) -> str:
    """A database error's first line (drivers add context lines and carets below it)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
