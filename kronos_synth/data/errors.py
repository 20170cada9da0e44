"""Errors for bad user input. The CLI turns every `InputError` into one line on stderr and exit 2."""

from __future__ import annotations


class InputError(ValueError):
    """Base class of every error caused by what the user passed in (files, arguments, folders).

    Messages name arguments as the Python API spells them (`eval_every must be positive, got 0`).
    `param` lists the argument names the message mentions, so a front end can show them in its own
    terms: the CLI prints each as the flag of its command (`kronos_synth.cli.in_cli_terms`).
    """

    def __init__(self, *args: object, param: str | tuple[str, ...] | None = None) -> None:
        super().__init__(*args)
        self.param = param

    @property
    def params(self) -> tuple[str, ...]:
        """The argument names of `param` as a tuple (empty when the message names none)."""
        if self.param is None:
            return ()
        return (self.param,) if isinstance(self.param, str) else tuple(self.param)


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
        param: str | tuple[str, ...] | None = None,
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
        super().__init__(text.replace("\n", " "), param=param)
