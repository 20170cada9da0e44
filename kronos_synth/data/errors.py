"""Errors for bad user input. The CLI turns every `InputError` into one line on stderr and exit 2."""

from __future__ import annotations


class InputError(ValueError):
    """Base class of every error caused by what the user passed in (files, arguments, folders)."""


class KlineDataError(InputError):
    """A K-line file or frame that cannot be used as it is.

    The message is one line: file, column, first offending row (0-based data row), what is
    wrong and what to do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.file, self.column, self.row, self.hint, self.reason = file, column, row, hint, message
        where = []
        if file is not None:
            where.append(str(file))
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        text = (": ".join([", ".join(where), message]) if where else message).rstrip(".")
        if hint:
            text += f" — {hint.rstrip('.')}"
        super().__init__(text.replace("\n", " "))
