"""What a report must record to be reproducible: package versions and input file hashes."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from kronos_synth.data.hashing import sha256_file  # noqa: F401 (re-exported)

PACKAGES = ("kronos-synth", "torch", "numpy", "pandas", "scipy", "scikit-learn", "pyarrow", "matplotlib")


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out




def input_hashes(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of a file, or of every Parquet part and the manifest of a dataset folder (relative names)."""
    p = Path(path)
    if p.is_file():
        return {p.name: sha256_file(p)}
    if p.is_dir():
        files = sorted([*p.glob("part-*.parquet"), *p.glob("_manifest.json")]) or sorted(p.glob("*.parquet"))
        return {f.name: sha256_file(f) for f in files}
    return {}
