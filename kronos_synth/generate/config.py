"""`GenerationConfig`: every setting of a generation run, each default written once.

The library (`generate_dataset`, `Generator`, Ray workers) takes this frozen dataclass; the CLI builds its
options' defaults from it; the Parquet metadata of a run is derived from it (`metadata`). Errors name
the field (`InputError.param`), and the CLI shows the matching flag.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import FrequencyPreset, get_preset
from kronos_synth.generate.sampler import SamplingConfig

SPLITS = ("train", "test", "all")
#: settings that decide how the run executes, not what it writes (same bytes at any value; dtype is
#: recorded as resolved, since bf16 and fp32 give different bars)
EXECUTION_ONLY = ("batch_size", "device", "dtype", "sequences_per_part")


def _error(name: str, message: str) -> InputError:
    return InputError(f"{name} {message}", param=name)


@dataclass(frozen=True)
class GenerationConfig:
    """Settings of one generation run (contexts from real data → `n` synthetic sequences)."""

    freq: str
    lookback: int | None = None  # context bars; None: the frequency preset's
    horizon: int | None = None  # generated bars; None: the frequency preset's
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 0  # 0 = off
    seed: int = 0
    split: str = "train"  # where contexts come from: train, test or all of the data
    test_fraction: float = 0.2
    contexts_per_symbol: int | None = None  # evenly spaced contexts per symbol; None: every window
    samples_per_context: int = 1
    batch_size: int = 512
    device: str = "auto"
    dtype: str = "auto"
    repair: bool = False
    include_context: bool = False
    sequences_per_part: int | None = None  # None: max(batch size, 1024)

    def __post_init__(self) -> None:
        object.__setattr__(self, "freq", get_preset(self.freq).name)
        for name in ("lookback", "horizon", "contexts_per_symbol", "sequences_per_part"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise _error(name, f"must be a positive whole number (or unset for the default), got {value!r}")
        if self.seed < 0:
            raise _error("seed", f"must be ≥ 0, got {self.seed}")
        for name in ("samples_per_context", "batch_size"):
            if getattr(self, name) < 1:
                raise _error(name, f"must be positive, got {getattr(self, name)}")
        if self.split not in SPLITS:
            raise _error("split", f"must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if not 0 < self.test_fraction < 1:
            raise _error("test_fraction", f"must be between 0 and 1, got {self.test_fraction}")
        self.sampling  # noqa: B018 — validates temperature, top_k, top_p

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of one setting (for CLI option defaults)."""
        return next(f.default for f in fields(cls) if f.name == name)

    @property
    def preset(self) -> FrequencyPreset:
        return get_preset(self.freq)

    @property
    def window(self) -> tuple[int, int]:
        """(lookback, horizon), with the preset's where unset."""
        return int(self.lookback or self.preset.lookback), int(self.horizon or self.preset.horizon)

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    @property
    def part_size(self) -> int:
        """Sequences per Parquet part."""
        return int(self.sequences_per_part or max(self.batch_size, 1024))

    def metadata(self) -> dict[str, Any]:
        """The settings a run's Parquet metadata records (window resolved; execution-only settings left out)."""
        out = {k: v for k, v in asdict(self).items() if k not in EXECUTION_ONLY}
        out["lookback"], out["horizon"] = self.window
        return out
