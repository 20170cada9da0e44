"""`generate_dataset`: the one call behind `kronos-synth generate`."""

from __future__ import annotations

from collections.abc import Callable

from kronos_synth.data.errors import InputError
from kronos_synth.data.sources import klines_for
from kronos_synth.generate.generator import GenerationSummary, Generator
from kronos_synth.generate.sampler import SamplingConfig
from kronos_synth.model.pretrained import load_model_pair
from kronos_synth.model.representation import get_representation


def generate_dataset(
    *,
    n: int,
    freq: str,
    out: str,
    data: str | None = None,
    dataset: str | None = None,
    model: str | None = None,
    tokenizer: str | None = None,
    lookback: int | None = None,
    horizon: int | None = None,
    temperature: float = 1.0,
    top_p: float = 0.95,
    top_k: int = 0,
    seed: int = 0,
    split: str = "train",
    contexts_per_symbol: int | None = None,
    samples_per_context: int = 1,
    batch_size: int = 512,
    device: str = "auto",
    dtype: str = "auto",
    repair: bool = False,
    include_context: bool = False,
    sequences_per_part: int | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda line: None,
    engine: str = "local",
    address: str | None = None,
    num_workers: int | None = None,
    gpus_per_worker: float | None = None,
) -> GenerationSummary:
    """Load model and data, sample n sequences, write them to `out` (resuming a same-settings run).

    `engine="ray"` shards the parts over Ray workers (`address`, `num_workers`, `gpus_per_worker`; see
    docs/scale-out.md); its output is byte-identical to the local engine's for the same arguments.
    """
    if n <= 0:
        raise InputError(f"--n must be a positive number of sequences, got {n}")
    if data is not None and dataset is not None:
        raise InputError("pass either --data or --dataset, not both")
    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be local or ray, got {engine!r}")
    if engine == "local" and (address is not None or num_workers is not None or gpus_per_worker is not None):
        raise InputError("--address, --num-workers and --gpus-per-worker need --engine ray")
    if engine == "ray":
        from kronos_synth.ray_tasks import require_ray

        require_ray()  # first: a missing extra is one line and costs no loading
    sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    klines, source = klines_for(freq, data if data is not None else dataset)
    pair = load_model_pair(model, tokenizer)
    kwargs = dict(
        freq=freq, lookback=lookback, horizon=horizon, sampling=sampling,
        seed=seed, split=split, contexts_per_symbol=contexts_per_symbol,
        samples_per_context=samples_per_context, batch_size=batch_size, max_context=pair.max_context,
        device=device, dtype=dtype, repair=repair, include_context=include_context,
        representation=get_representation(pair.sidecar or None), model_id=pair.model_id, tokenizer_id=pair.tokenizer_id, source=source)
    # With Ray the device is the workers'; the driver builds a CPU generator only to check the input.
    gen = Generator(pair.model, pair.tokenizer, klines, **{**kwargs, "device": "cpu" if engine == "ray" else device})
    lines = [f"model: {pair.model_id} (tokenizer: {pair.tokenizer_id}); data: {source}", gen.dtype_note,
             f"{len(gen.pool)} real contexts of {gen.lookback} bars ({split} split) → {n} sequences of "
             f"{gen.horizon} bars"]
    if engine == "ray":
        from kronos_synth.generate.ray_engine import RayConfig, generate_on_ray

        config = RayConfig(address=address, num_workers=num_workers, gpus_per_worker=gpus_per_worker or 0.0)
        # The dtype note comes from the workers (their device decides `--dtype auto`).
        return generate_on_ray(pair, klines, kwargs, out=out, n=n, sequences_per_part=sequences_per_part,
                               config=config, progress=progress, log=log,
                               on_start=lambda: [log(line) for line in (lines[0], lines[2])])
    # Notes are printed once every check has passed, so bad input stays one line.
    return gen.write(out, n, sequences_per_part=sequences_per_part, progress=progress,
                     on_start=lambda: [log(line) for line in lines])
