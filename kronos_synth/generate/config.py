"""`GenerationConfig`: every setting of a generation run, each default written once.

The library (`generate_dataset`, `Generator`, Ray workers) takes this frozen dataclass; the CLI builds its
options' defaults from it; the Parquet metadata of a run is derived from it (`metadata`). Errors name
the field (`InputError.param`), and the CLI shows the matching flag.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from kronos_synth.data.conditions import SCENARIOS, parse_condition
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import FrequencyPreset, get_preset
from kronos_synth.data.panels import parse_symbols
from kronos_synth.generate.sampler import SamplingConfig

SPLITS = ("train", "test", "all", "train-head")
COUPLINGS = ("gaussian", "t", "none")
GAPS = ("context", "model")
T_COPULA_DF = 4  # degrees of freedom of the t copula (coupling "t")
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
    temperature_spread: float = 0.0  # σ of each path's log-temperature (generate/sampler.py path_temperatures)
    volatility_spread: float = 0.0  # σ of each path's log volatility scale (generate/sampler.py path_volatility_scales)
    seed: int = 0
    split: str = "train"  # where contexts come from: train, test, all of the data, or train-head (data.splits.split_part)
    test_fraction: float = 0.2
    contexts_per_symbol: int | None = None  # evenly spaced contexts per symbol; None: every window
    samples_per_context: int = 1
    batch_size: int = 512
    device: str = "auto"
    dtype: str = "auto"
    repair: bool = False
    include_context: bool = False
    sequences_per_part: int | None = None  # None: max(batch size, 1024)
    condition: str | None = None  # a scenario condition (data/conditions.py), e.g. "volatility:0.9-1"
    scenario: str | None = None  # a named scenario pack: "stress" (= condition regime:high-vol, VaR/ES report)
    max_tries: int = 64  # conditioned runs: candidate paths per sequence at most
    panel: tuple[str, ...] | None = None  # coupled multi-asset panels of these symbols (generate/panel.py)
    coupling: str = "gaussian"  # panels: "gaussian" or "t" copula of the context's returns, or "none"
    #: panels: couple the assets' log-volume changes too (a second coupled draw per step, generate/panel.py)
    volume_coupling: bool = True
    #: "context": where a context never gaps (every open = the previous close), the generated bars open at the
    #: previous close too; "model": opens as the model samples them (never exactly the previous close)
    gaps: str = "context"

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
        if not 0 <= self.volatility_spread <= 2:
            raise _error("volatility_spread", f"must be in [0, 2], got {self.volatility_spread}")
        if self.scenario is not None:
            if self.scenario not in SCENARIOS:
                raise _error("scenario", f"must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
            if self.condition not in (None, SCENARIOS[self.scenario]):
                raise InputError(f"scenario {self.scenario} is the condition {SCENARIOS[self.scenario]}; drop "
                                 "condition or scenario", param=("scenario", "condition"))
            object.__setattr__(self, "condition", SCENARIOS[self.scenario])
        if self.max_tries < 1:
            raise _error("max_tries", f"must be positive, got {self.max_tries}")
        if self.condition is not None:
            parse_condition(self.condition)
            if self.contexts_per_symbol is not None:
                raise InputError("condition and contexts_per_symbol cannot be combined: a condition chooses the "
                                 "contexts itself", param=("condition", "contexts_per_symbol"))
        if self.panel is not None:
            object.__setattr__(self, "panel", parse_symbols(self.panel))
            if self.condition is not None:
                raise InputError("condition and panel cannot be combined yet: condition single-asset runs, or "
                                 "generate panels unconditioned", param=("condition", "panel"))
        if self.gaps not in GAPS:
            raise _error("gaps", f"must be one of {', '.join(GAPS)}, got {self.gaps!r}")
        if self.coupling not in COUPLINGS:
            raise _error("coupling", f"must be one of {', '.join(COUPLINGS)}, got {self.coupling!r}")

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
        return SamplingConfig(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                              temperature_spread=self.temperature_spread)

    @property
    def part_size(self) -> int:
        """Sequences per Parquet part (panels: a whole number of panels)."""
        size = int(self.sequences_per_part or max(self.batch_size, 1024))
        return size if self.panel is None else -(-size // len(self.panel)) * len(self.panel)

    def metadata(self) -> dict[str, Any]:
        """The settings a run's Parquet metadata records (window resolved; execution-only settings left out)."""
        out = {k: v for k, v in asdict(self).items() if k not in EXECUTION_ONLY}
        # Scenario settings are recorded only when used, so plain runs keep the keys (and run keys) they had.
        if self.temperature_spread == 0:
            out.pop("temperature_spread")
        if self.volatility_spread == 0:
            out.pop("volatility_spread")
        if self.condition is None:
            out.pop("condition"), out.pop("max_tries")
        if self.scenario is None:
            out.pop("scenario")
        if self.gaps == "model":  # as every run before the setting existed: their keys stay
            out.pop("gaps")
        if self.panel is None or not self.volume_coupling or self.coupling == "none":  # recorded only where it acts
            out.pop("volume_coupling")
        if self.panel is None:
            out.pop("panel"), out.pop("coupling")
        else:
            out["panel"] = list(self.panel)
        out["lookback"], out["horizon"] = self.window
        return out
