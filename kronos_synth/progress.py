"""One rule for progress bars everywhere: shown on a terminal, quiet in pipes and CI."""

from __future__ import annotations

import os
import sys


def show_progress(progress: bool | None = None) -> bool:
    """`progress=None` means auto: a bar only when stderr is a terminal and CI is not set."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI") or os.environ.get("KRONOS_SYNTH_NO_PROGRESS"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
