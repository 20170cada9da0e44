"""An exclusive lock on an output folder, so two writers never interleave their parts in one dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kronos_synth.data.errors import InputError

LOCK_FILE = ".kronos-synth.lock"


@contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Create `out` if needed and hold an exclusive (flock) lock on it for the block; a second process asking
    for the same folder gets an `InputError` at once. A folder this call created is removed again when the
    block fails before writing anything into it, so bad input leaves nothing behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder — choose a folder path for the output")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{out}: cannot create the folder (a parent in the path is a file) — "
                         "choose another output path") from None
    except PermissionError:
        raise InputError(f"{out}: cannot create the folder (permission denied) — choose another output path") from None
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the run key still refuses mixed settings
        fcntl = None
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{out}: another process is writing to this folder — wait for it to finish or "
                             "choose another output folder") from None
    ok = False
    try:
        yield out
        ok = True
    finally:
        try:
            if created and not ok and {p.name for p in out.iterdir()} <= {LOCK_FILE}:
                (out / LOCK_FILE).unlink(missing_ok=True)
                out.rmdir()
        finally:
            os.close(fd)  # releases the lock
