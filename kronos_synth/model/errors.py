"""Errors for checkpoints the user points us at (folders, hub ids, config files)."""

from __future__ import annotations

from kronos_synth.data.errors import InputError


class KronosCheckpointError(InputError):
    """A checkpoint that cannot be loaded as it is: one line naming the file, key or parameter at fault."""

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None,
                 param: str | tuple[str, ...] | None = None) -> None:
        self.source, self.hint, self.reason = source, hint, message
        text = f"{source}: {message}" if source else message
        text = text.rstrip(".")
        if hint:
            text += f" — {hint.rstrip('.')}"
        super().__init__(text.replace("\n", " "), param=param)
