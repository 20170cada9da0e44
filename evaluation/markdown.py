"""Writing benchmark results into the Markdown docs."""

from __future__ import annotations

import re
from pathlib import Path


def replace_section(path: str | Path, heading: str, text: str) -> None:
    """Replace the `heading` section of a Markdown file — up to the next `## ` heading — or append it."""
    path = Path(path)
    old = path.read_text() if path.exists() else "# Performance\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    path.write_text(new)
