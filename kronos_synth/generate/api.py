"""`generate_dataset`: the one call behind `kronos-synth generate`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kronos_synth.data.errors import InputError
from kronos_synth.data.locking import output_lock
from kronos_synth.data.sources import klines_for
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.panel import build_generator
from kronos_synth.generate.ray_engine import RayConfig
from kronos_synth.generate.summary import GenerationSummary
from kronos_synth.model.pretrained import load_model_pair


def _field_error(name: str, message: str) -> InputError:
    return InputError(f"{name} {message}", param=name)


def generate_dataset(
    config: GenerationConfig,
    *,
    n: int,
    out: str,
    data: str | None = None,
    dataset: str | None = None,
    model: str | None = None,
    tokenizer: str | None = None,
    ray: RayConfig | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> GenerationSummary:
    """Load model and data, sample n sequences (with `config.panel`: n panels of one sequence per symbol) with
    `config`, write them to `out` (resuming a same-settings
    run). `ray` shards the parts over Ray workers (docs/scale-out.md); the output is byte-identical to the
    in-process run for the same settings. `data` is a file or embedded dataset name (`dataset`: a name
    only); neither: the embedded dataset of the frequency.

    >>> generate_dataset(GenerationConfig(freq="daily"), n=1000, out="synth/")  # doctest: +SKIP
    """
    if n <= 0:
        raise _field_error("n", f"must be a positive number of sequences, got {n}")
    if data is not None and dataset is not None:
        raise InputError("dataset and data cannot both be given (data also takes the name of an embedded set)",
                         param=("dataset", "data"))
    if ray is not None:
        from kronos_synth.generate.ray_session import require_ray

        require_ray()  # first: a missing extra is one line and costs no loading
    with output_lock(out):  # a second writer to the same folder is refused, not interleaved
        klines, source = klines_for(config.freq, data if data is not None else dataset)
        pair = load_model_pair(model, tokenizer)
        # With Ray the device is the workers'; the driver builds a CPU generator only to check the input.
        gen = build_generator(pair, klines, dataclasses.replace(config, device="cpu") if ray else config,
                              source=source)
        lines = [f"model: {pair.model_id} (tokenizer: {pair.tokenizer_id}); data: {source}", gen.dtype_note,
                 f"{len(gen.pool)} real contexts of {gen.lookback} bars ({config.split} split) → {n} sequences of "
                 f"{gen.horizon} bars"]
        if config.panel:
            a = len(config.panel)
            lines[2] = (f"{len(gen.pool) // a} panel contexts of {gen.lookback} bars on shared timestamps "
                        f"({config.split} split, {', '.join(config.panel)}) → {n} panels of {a} sequences of "
                        f"{gen.horizon} bars, coupling: {config.coupling}")
            n *= a  # the writers count sequences
        if gen.conditioned is not None:
            cw = gen.conditioned
            lines.append(f"condition {cw.resolved.describe()}: {int(cw.mask.sum())} of {len(cw.windows)} real windows "
                         f"meet it; their {len(gen.pool)} contexts are continued, up to {config.max_tries} tries each")
        if ray is not None:
            from kronos_synth.generate.ray_engine import generate_on_ray

            # The dtype note comes from the workers (their device decides dtype auto).
            return generate_on_ray(pair, klines, config, out=out, n=n, source=source, config=ray,
                                   progress=progress, log=log,
                                   on_start=lambda: [log(line) for line in (lines[0], lines[2])])
        # Notes are printed once every check has passed, so bad input stays one line.
        return gen.write(out, n, progress=progress, on_start=lambda: [log(line) for line in lines])
