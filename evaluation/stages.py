"""The stages of a benchmark protocol as plain functions: `fn(ctx, **params) -> summary dict`.

`ctx` is a `StageContext`: the merged protocol (`proto`), the output folder (`out`), the data source
string the data layer understands (`source`), its files and the data of `kronos.train_data`. Heavy
outputs (checkpoints, Parquet sets) go to `out/work/`; per-generator evaluation reports to
`out/generators/<name>/`. Summaries are small JSON-able dicts that the runner stores in `stages.json`
and the report reads. The context is not part of a stage's key: the runner hashes the settings.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.protocol import stage_seed

#: where the protocols' Kronos training validates: the train period's tail, never the test period it is scored on
#: (a protocol without a test period, stocks-timegan, sets `training_validation = "held-out"`)
VALIDATION = "train-tail"
#: the per-generator evaluate stages; the peer metrics run in their own stage (`peers_stage`) over every generator
EVAL_METRICS = ("discriminative", "tstr", "diversity", "validity", "stylized")


@dataclass(frozen=True)
class StageContext:
    """What every stage of one protocol run gets besides its own parameters.

    `proto`: the merged protocol (`evaluation.protocol.load_protocol`); `out`: the results folder;
    `source`: the data string `kronos_synth.data.sources.klines_for` understands (an embedded dataset
    name or a glob); `files`: the files behind it; `train_source`: the data of `kronos.train_data`
    (what Kronos trains on instead of `source`), None when unset."""

    proto: dict[str, Any]
    out: str
    source: str
    files: list[str] = field(default_factory=list)
    train_source: str | None = None


# ---------------------------------------------------------------------------------------------
# shared helpers


def work_dir(ctx: StageContext, *parts: str) -> Path:
    return Path(ctx.out, "work", *parts)


def eval_preset(proto: dict):
    """The frequency preset with the protocol's window as horizon (e.g. 72 bars at 1h, so TSTR (60, 12) fits)."""
    from kronos_synth.data.frequency import get_preset

    return dataclasses.replace(get_preset(proto["freq"]), horizon=int(proto["window"]))


def lookback(proto: dict) -> int:
    from kronos_synth.data.frequency import get_preset

    return int(proto.get("lookback") or get_preset(proto["freq"]).lookback)


def sample_period_windows(proto: dict, frame, period: str, n: int, seed: int = 0):
    """`n` seeded windows (lookback + window bars) of the protocol's train or test period, split as every
    evaluation splits it (gap of one window); all of them when fewer exist. For the benchmark scripts."""
    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.splits import extract_windows, split_by_time

    window = int(proto["window"])
    train, test = split_by_time(clean_klines(frame, eval_preset(proto)).frame,
                                test_fraction=float(proto["test_fraction"]), gap=window)
    w = extract_windows({"train": train, "test": test}[period], lookback(proto) + window)
    return w.take(np.sort(np.random.default_rng(seed).choice(len(w), min(n, len(w)), replace=False)))


def real_frame(ctx: StageContext):
    """The real K-lines at the protocol's frequency (read once by the data stage, then from its pickle)."""
    import pandas as pd

    cache = work_dir(ctx, "real.pkl")
    if cache.is_file():
        return pd.read_pickle(cache)
    from kronos_synth.data.sources import klines_for

    return klines_for(ctx.proto["freq"], ctx.source)[0]


def eval_seed(proto: dict) -> int:
    """One seed for every evaluation of a protocol: the same real samples and classifier seeds for all
    generators and the calibration rows, so rows are comparable."""
    return stage_seed(proto["seed"], "evaluation")


def _json_file(path: Path, obj: Any) -> None:
    from kronos_synth.report import json_safe

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(obj), indent=2, sort_keys=True, default=str) + "\n")


def trained_dirs(ctx: StageContext) -> tuple[str, str]:
    """(predictor, tokenizer) folders: the protocol's trained ones, or the embedded default as it is (zero-shot)."""
    if ctx.proto["kronos"]["init"] == "zero-shot":
        return _embedded_dirs()
    return str(work_dir(ctx, "predictor")), str(work_dir(ctx, "tokenizer"))


def _embedded_dirs() -> tuple[str, str]:
    from kronos_synth.model.pretrained import default_model_dir

    return str(default_model_dir() / "model"), str(default_model_dir() / "tokenizer")


def selects(proto: dict) -> bool:
    """A fine-tune of the embedded default meets its starting point on validation (`select_stage`)."""
    return proto["kronos"]["init"] == "embedded" and proto["kronos"].get("select") == "validation"


def model_dirs(ctx: StageContext) -> tuple[str, str]:
    """The (predictor, tokenizer) that samples: `trained_dirs`, or the embedded default where the select stage
    found it better on validation than its fine-tune."""
    chosen = work_dir(ctx, "selected.json")
    if selects(ctx.proto) and chosen.is_file() and json.loads(chosen.read_text())["model"] == "embedded":
        return _embedded_dirs()
    return trained_dirs(ctx)


# ---------------------------------------------------------------------------------------------
# data and Kronos


def data_stage(ctx: StageContext) -> dict:
    """Load, clean and split the real data exactly as every evaluation does; record the periods."""
    from evaluation.protocol import sha256_file
    from kronos_synth.data.sources import klines_for
    from kronos_synth.metrics.evaluate import split_real

    proto = ctx.proto
    frame = klines_for(proto["freq"], ctx.source)[0]
    cache = work_dir(ctx, "real.pkl")
    cache.parent.mkdir(parents=True, exist_ok=True)
    frame.to_pickle(cache)  # later stages skip parsing the files again
    real = split_real(frame, freq=eval_preset(proto), window=int(proto["window"]),
                      test_fraction=float(proto["test_fraction"]))
    symbols = sorted(str(s) for s in np.unique(real.test.symbols))
    return {"source": ctx.source, "files": {Path(f).name: sha256_file(f) for f in ctx.files},
            "symbols": symbols, "rows": int(len(real.frame)), "train_windows": len(real.train),
            "test_windows": len(real.test),
            "train_period": [str(np.min(real.train.timestamps)), str(np.max(real.train.timestamps))],
            "test_period": [str(np.min(real.test.timestamps)), str(np.max(real.test.timestamps))]}


def _loop_summary(res) -> dict:
    r = res.result
    return {"steps_done": r.steps_done, "total_steps": r.total_steps, "stopped_early": r.stopped_early,
            "best_step": r.best_step, "best_val_loss": r.best_val_loss, "train_wall_time_s": r.wall_time_s,
            "first_val_loss": next((h.get("val_loss") for h in r.history if h.get("val_loss") is not None), None)}


def representation_spec(k: dict) -> str | dict:
    """The protocol's representation for training: a name, or with `kronos.center_returns` a dict."""
    if k.get("center_returns"):
        return {"representation": k["representation"], "center_returns": True}
    return k["representation"]


def training_data(ctx: StageContext):
    """Train-period windows for Kronos (lookback + window + 1 bars); the test period is never read. Validation
    windows (`kronos.val_windows` evenly spaced) come from the train period's tail, split once more at the test
    fraction ("train-tail", as the spread stage's validation contexts): they choose the saved checkpoint, so
    they must not be the windows the evaluation scores.

    `kronos.train_data` (`ctx.train_source`) replaces the protocol's data for training only, e.g. 5-minute
    files for a 15-minute protocol; `kronos.phase_offsets` then adds their bars at every bin offset."""
    from kronos_synth.train import prepare_training_data

    proto = ctx.proto
    k = proto["kronos"]
    td = prepare_training_data([ctx.train_source or ctx.source], freq=proto["freq"],
                               lookback=lookback(proto), horizon=int(proto["window"]),
                               test_fraction=float(proto["test_fraction"]), representation=representation_spec(k),
                               max_val_windows=int(k["val_windows"]), phase_offsets=bool(k.get("phase_offsets")),
                               validation=ctx.proto.get("training_validation", VALIDATION))
    if ctx.train_source:
        _check_train_period(ctx, td)
    return td


def _market(symbol: str) -> str:
    """`BTCUSDT_5m` and `BTCUSDT_15m` → `BTCUSDT`: file stems of one market at two bar sizes."""
    import re

    return re.sub(r"[_\-.]\d+(min|m|t|h|d|w)$", "", symbol, flags=re.IGNORECASE)


def _check_train_period(ctx: StageContext, td) -> None:
    """Training on other files (`kronos.train_data`) must still end before the evaluation's test period, per
    market: the split is made on those files' own rows, so a longer history there could reach into it."""
    import pandas as pd

    from evaluation.protocol import ProtocolError
    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.schema import SYMBOL, TIMESTAMPS
    from kronos_synth.data.splits import split_by_time

    proto = ctx.proto
    cleaned = clean_klines(real_frame(ctx), eval_preset(proto)).frame
    test = split_by_time(cleaned, test_fraction=float(proto["test_fraction"]), gap=int(proto["window"]))[1]
    test_first = test.groupby(test[SYMBOL].astype(str).map(_market))[TIMESTAMPS].min()
    bar = eval_preset(proto).timedelta
    for sym in td.sources[0].symbols:
        first = test_first.get(_market(sym["symbol"]))
        if sym["train_last"] is not None and first is not None and pd.Timestamp(sym["train_last"]) + bar > first:
            raise ProtocolError(f"{proto['name']}: kronos.train_data {sym['symbol']} trains until "
                                f"{sym['train_last']}, inside the evaluation's test period (from {first})")


def _training_data_summary(ctx: StageContext, td) -> dict:
    """What the model trained on, when it is not simply the protocol's data (absent otherwise)."""
    k = ctx.proto["kronos"]
    if not (k.get("train_data") or k.get("phase_offsets")):
        return {}
    return {"training_data": {"source": td.sources[0].label, "phase_offsets": bool(k.get("phase_offsets")),
                              "train_windows": len(td.train), "val_windows": len(td.val),
                              "by_offset": td.sources[0].phases}}


def tokenizer_stage(ctx: StageContext) -> dict:
    """Fine-tune the embedded tokenizer (or train one from scratch) on the train period."""
    from kronos_synth.model.pretrained import default_model_dir
    from kronos_synth.train import TokenizerTrainingConfig, train_tokenizer

    proto = ctx.proto
    k = proto["kronos"]
    init = str(default_model_dir() / "tokenizer") if k["init"] == "embedded" else None
    td = training_data(ctx)
    config = TokenizerTrainingConfig(
        freq=proto["freq"], init=init, config=None if init else "small", steps=int(k["tokenizer_steps"]),
        batch_size=int(k["tokenizer_batch_size"]), lr=float(k["tokenizer_lr"]),
        seed=stage_seed(proto["seed"], "tokenizer"), eval_every=int(k["eval_every"]), patience=int(k["patience"]),
        representation=representation_spec(k), tail_weight=float(k.get("tokenizer_tail_weight", 0.0)),
        validation=ctx.proto.get("training_validation", VALIDATION))
    res = train_tokenizer(td, work_dir(ctx, "tokenizer"), config, progress=False)
    out = _loop_summary(res)
    out.update(init=init or "scratch (small config)", representation=representation_spec(k),
               codebook_usage=res.extra.get("codebook_usage", {}).get("val"), **_training_data_summary(ctx, td))
    return out


def predictor_stage(ctx: StageContext) -> dict:
    """Fine-tune the embedded predictor (or train from scratch) on the trained tokenizer's codes."""
    from kronos_synth.model.pretrained import default_model_dir
    from kronos_synth.train import PredictorTrainingConfig, train_predictor

    proto = ctx.proto
    k = proto["kronos"]
    init = str(default_model_dir() / "model") if k["init"] == "embedded" else None
    predictor, tokenizer = model_dirs(ctx)
    td = training_data(ctx)
    config = PredictorTrainingConfig(
        freq=proto["freq"], init=init, config=None if init else "small", steps=int(k["predictor_steps"]),
        batch_size=int(k["predictor_batch_size"]), lr=float(k["predictor_lr"]),
        seed=stage_seed(proto["seed"], "predictor"), eval_every=int(k["eval_every"]), patience=int(k["patience"]),
        # absent key: the reference loss, as the runs made before the key existed
        teacher_forcing=bool(k.get("predictor_teacher_forcing", False)),
        s2_lr_scale=float(k.get("predictor_s2_lr_scale", 1.0)),
        validation=ctx.proto.get("training_validation", VALIDATION))
    res = train_predictor(td, predictor, config, tokenizer=tokenizer, progress=False)
    out = _loop_summary(res)
    out.update(init=init or "scratch (small config)", **_training_data_summary(ctx, td))
    return out


def _generate(ctx: StageContext, out: Path, *, n: int, temperature: float, top_p: float, seed: int,
              temperature_spread: float = 0.0, volatility_spread: float = 0.0, data: str | None = None,
              dirs: tuple[str, str] | None = None) -> dict:
    from kronos_synth.generate.api import generate_dataset
    from kronos_synth.generate.config import GenerationConfig

    proto = ctx.proto
    predictor, tokenizer = dirs or model_dirs(ctx)
    config = GenerationConfig(freq=proto["freq"], lookback=lookback(proto), horizon=int(proto["window"]),
                              temperature=float(temperature), top_p=float(top_p), seed=seed, split="train",
                              temperature_spread=float(temperature_spread), volatility_spread=float(volatility_spread),
                              batch_size=int(proto["kronos"]["batch_size"]), device="cpu",
                              gaps=proto["kronos"].get("gaps", "model"))
    summary = generate_dataset(config, n=int(n), out=str(out), data=data or ctx.source, model=predictor,
                               tokenizer=tokenizer, progress=False)
    return summary.to_dict()


def generate_stage(ctx: StageContext) -> dict:
    """Sample the protocol's Kronos set (contexts from the train period)."""
    proto = ctx.proto
    k = proto["kronos"]
    return _generate(ctx, work_dir(ctx, "kronos"), n=k["n"], temperature=k["temperature"], top_p=k["top_p"],
                     seed=stage_seed(proto["seed"], "generate"), **path_spreads(ctx))


def select_stage(ctx: StageContext) -> dict:
    """Keep the fine-tune only where it beats its starting point on VALIDATION: the fine-tuned pair and the
    embedded default each sample `selection.n` continuations of contexts from the train period's head, scored
    by the discriminative error against the real windows of its tail (the part the training validated on;
    the test period is never read). Spreads set to "auto" sample at 0 here (they are chosen afterwards for
    the kept model). Ties keep the fine-tune."""
    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.splits import split_by_time
    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.metrics.evaluate import evaluate_all

    proto, k, sel = ctx.proto, ctx.proto["kronos"], ctx.proto["selection"]
    tf = float(proto["test_fraction"])
    clean = clean_klines(real_frame(ctx), eval_preset(proto)).frame
    train = split_by_time(clean, test_fraction=tf, gap=lookback(proto) + int(proto["window"]))[0]
    folder = work_dir(ctx, "select")
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train_period.parquet"  # its own last test_fraction is the validation period
    train.to_parquet(data, index=False)
    spreads = {x: 0.0 if k[x] == "auto" else float(k[x]) for x in ("temperature_spread", "volatility_spread")}
    kw = _eval_kwargs(proto)
    kw.update(n=int(sel["n"]), repeats=int(sel["repeats"]), tsne=False)
    rows = {}
    for name, dirs in (("fine-tuned", trained_dirs(ctx)), ("embedded", _embedded_dirs())):
        out = folder / name
        gen = _generate(ctx, out, n=int(sel["n"]), temperature=k["temperature"], top_p=k["top_p"],
                        seed=stage_seed(proto["seed"], "select"), data=str(data), dirs=dirs, **spreads)
        res = evaluate_all(train, read_synthetic(out), metrics=("discriminative",), calibration=False, **kw)
        e = res.discriminative["synthetic"].error
        rows[name] = {"discriminative_error": e.mean, "half_width": e.half_width,
                      "n_validation_windows": res.data["n_real_test_used"], "generation_wall_time_s": gen["wall_time_s"]}
    model = "embedded" if rows["embedded"]["discriminative_error"] > rows["fine-tuned"]["discriminative_error"] \
        else "fine-tuned"
    out = {"model": model, "validation": rows,
           "line": f"kept the {model} model: validation discriminative error fine-tuned "
                   f"{rows['fine-tuned']['discriminative_error']:.3f}, embedded default "
                   f"{rows['embedded']['discriminative_error']:.3f}"}
    _json_file(work_dir(ctx, "selected.json"), out)
    return out


def path_spreads(ctx: StageContext) -> dict[str, float]:
    """The protocol's per-path spreads (temperature_spread, volatility_spread): its numbers, and for "auto" the
    spread stage's choices."""
    k = ctx.proto["kronos"]
    auto = [x for x in ("temperature_spread", "volatility_spread") if k[x] == "auto"]
    chosen = json.loads(work_dir(ctx, "spread.json").read_text()) if auto else {}
    return {"temperature_spread": float(chosen["spread"] if k["temperature_spread"] == "auto" else k["temperature_spread"]),
            "volatility_spread": float(chosen["volatility"]["spread"] if k["volatility_spread"] == "auto"
                                       else k["volatility_spread"])}


def spread_stage(ctx: StageContext) -> dict:
    """Choose each "auto" per-path spread on VALIDATION contexts (the tail of the train period): the candidate
    with the lowest CRPS of the horizon's realised volatility (`choose_spread`); the temperature's first,
    then the volatility scale's at the chosen temperature spread."""
    from kronos_synth.generate.conditional import KronosForecaster
    from kronos_synth.metrics.forecast_calibration import SPREAD_GRID, choose_spread
    from kronos_synth.model.pretrained import load_model_pair

    proto, k = ctx.proto, ctx.proto["kronos"]
    pair = load_model_pair(*model_dirs(ctx))
    fc = proto["forecast_calibration"]  # the validation contexts and samples the temperature is compared on
    common = dict(freq=proto["freq"], lookback=lookback(proto), horizon=int(proto["window"]),
                  grid=k.get("spread_grid", SPREAD_GRID), n_contexts=int(fc["val_contexts"]),
                  samples=int(fc["samples"]), seed=stage_seed(proto["seed"], "spread"),
                  test_fraction=float(proto["test_fraction"]))
    fixed = {x: 0.0 if k[x] == "auto" else float(k[x]) for x in ("temperature_spread", "volatility_spread")}

    def at(**spreads: float):
        return KronosForecaster(pair, freq=proto["freq"], temperature=float(k["temperature"]), top_p=float(k["top_p"]),
                                batch_size=int(k["batch_size"]), device="cpu", progress=False, **{**fixed, **spreads})

    out: dict = {}
    if k["temperature_spread"] == "auto":
        choice = choose_spread(real_frame(ctx), lambda s: at(temperature_spread=s), **common)
        out.update(spread=choice.spread, validation=choice.rows, n_contexts=choice.n_contexts, line=choice.line())
        fixed["temperature_spread"] = choice.spread
    if k["volatility_spread"] == "auto":
        choice = choose_spread(real_frame(ctx), lambda s: at(volatility_spread=s), **common, label="volatility spread")
        out["volatility"] = {"spread": choice.spread, "validation": choice.rows, "n_contexts": choice.n_contexts,
                             "line": choice.line()}
    path = work_dir(ctx, "spread.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


def roundtrip_stage(ctx: StageContext) -> dict:
    """Encode → decode real windows (lookback + window bars) with the trained tokenizer; the decoded horizons
    are evaluated like a generator's output: what tokenization alone costs.

    TEST-period windows feed fidelity, diversity, validity and stylized facts. TSTR uses decoded TRAIN-period
    windows instead: a forecaster trained on decoded test windows would be tested on the windows it was
    trained on. So the TSTR row is "TRTR through the tokenizer", to be read against TRTR."""
    try:
        from kronos_synth.metrics.roundtrip import roundtrip_bars
    except ImportError as e:
        return {"skipped": f"kronos_synth.metrics.roundtrip is not available ({e}); the round-trip row is "
                           "left out"}
    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.splits import extract_windows, split_by_time
    from kronos_synth.model.pretrained import load_tokenizer

    proto = ctx.proto
    window, lb = int(proto["window"]), lookback(proto)
    cleaned = clean_klines(real_frame(ctx), eval_preset(proto)).frame
    # the periods `split_real` (hence every evaluation) uses: gap of one window before the test period
    train, test = split_by_time(cleaned, test_fraction=float(proto["test_fraction"]), gap=window)
    bundle = load_tokenizer(trained_dirs(ctx)[1])  # the trained tokenizer folder and its representation
    tok, rep = bundle.tokenizer, bundle.representation
    n = int(proto["evaluation"]["n"])
    out: dict[str, Any] = {"lookback": lb, "representation": rep.name}
    for period, frame in (("test", test), ("train", train)):
        windows = extract_windows(frame, lb + window)
        wins = windows.values
        if len(wins) < 4:
            return {"skipped": f"only {len(wins)} {period} windows of {lb + window} bars: no round-trip row"}
        rng = np.random.default_rng(stage_seed(proto["seed"], f"roundtrip:{period}"))
        pick = np.sort(rng.choice(len(wins), min(n, len(wins)), replace=False))
        bars = np.asarray(roundtrip_bars(tok, rep, wins[pick], lb, device="cpu"), dtype=np.float64)
        path = work_dir(ctx, "roundtrip", f"{period}.npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, bars)
        # first/last bar time of each decoded horizon: the discriminative split's time blocks
        np.save(path.with_name(f"{period}_time.npy"), windows.spans(lb)[pick])
        out[period] = {"path": str(path), "n": int(len(pick)), "n_available": int(len(wins))}
    return out


# ---------------------------------------------------------------------------------------------
# baselines


def baseline_stage(ctx: StageContext, name: str) -> dict:
    """Fit one baseline on the train windows and sample its set."""
    from kronos_synth.baselines.fitting import fit_baseline
    from kronos_synth.baselines.sampling import sample_to_dataset

    proto = ctx.proto
    options = dict(proto["baselines"].get(name, {}))
    steps = options.pop("steps", None)
    root = work_dir(ctx, "baselines", name)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_baseline(name, ctx.source, proto["freq"], root / "model", seed=stage_seed(proto["seed"], f"{name}:fit"),
                           steps=steps, window=int(proto["window"]), options=options)
    fit_s = time.perf_counter() - t0
    sample = sample_to_dataset(root / "model", int(proto["baselines"]["n"]), root / "data",
                               seed=stage_seed(proto["seed"], f"{name}:sample"))
    report = fit.report.to_dict()
    report.pop("history", None)
    return {"fit_wall_time_s": round(fit_s, 3), "sample_wall_time_s": sample.wall_time_s, "n": sample.n,
            "options": {**options, **({"steps": steps} if steps is not None else {})}, "fit": report,
            "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)]}


# ---------------------------------------------------------------------------------------------
# evaluation


def _eval_kwargs(proto: dict) -> dict:
    ev = proto["evaluation"]
    return dict(freq=eval_preset(proto), n=int(ev["n"]), repeats=int(ev["repeats"]), seed=eval_seed(proto),
                epochs=int(ev["epochs"]), test_fraction=float(proto["test_fraction"]),
                n_test_tstr=int(ev["n_test_tstr"]), max_plot=int(ev["max_plot"]), tsne=bool(ev["tsne"]))


def synthetic_input(ctx: StageContext, generator: str):
    """(synthetic set, path) of a generator: a schema-v1 dataset, or the round trip's bare array."""
    from evaluation.protocol import KRONOS, ROUNDTRIP
    from kronos_synth.data.synthetic import read_synthetic

    if generator == ROUNDTRIP:
        path = work_dir(ctx, "roundtrip", "test.npy")
        return (np.load(path) if path.is_file() else None), str(path)
    path = work_dir(ctx, "kronos") if generator == KRONOS else work_dir(ctx, "baselines", generator, "data")
    return read_synthetic(path), str(path)


def evaluate_stage(ctx: StageContext, generator: str) -> dict:
    """Every metric group of docs/protocol.md on one generator's set, without the calibration rows
    (computed once per protocol by `calibration_stage`); report, plots and embeddings to generators/<name>/."""
    from evaluation.protocol import ROUNDTRIP
    from kronos_synth.metrics.evaluate import evaluate_all
    from kronos_synth.report import write_report

    proto = ctx.proto
    synthetic, path = synthetic_input(ctx, generator)
    if synthetic is None:
        return {"skipped": f"{generator}: no synthetic set (its producing stage was skipped)"}
    frame = real_frame(ctx)
    if generator == ROUNDTRIP:  # see roundtrip_stage: TSTR on decoded train-period windows
        result = evaluate_all(frame, synthetic, metrics=tuple(m for m in EVAL_METRICS if m != "tstr"),
                              calibration=False, synthetic_time=np.load(work_dir(ctx, "roundtrip", "test_time.npy")),
                              **_eval_kwargs(proto))
        decoded_train = np.load(work_dir(ctx, "roundtrip", "train.npy"))
        result.tstr = evaluate_all(frame, decoded_train, metrics=("tstr",), calibration=False,
                                   **_eval_kwargs(proto)).tstr
        result.settings["metrics"] = list(EVAL_METRICS)
        result.data["synthetic_metadata"] = {"generator": "tokenizer round trip"}
        result.notes.append("tokenizer round trip: fidelity, diversity, validity and stylized facts use decoded "
                            "TEST-period windows; TSTR trains on decoded TRAIN-period windows (decoded test "
                            "windows would be tested on themselves), so its TSTR row is TRTR through the tokenizer")
    else:
        result = evaluate_all(frame, synthetic, metrics=EVAL_METRICS, calibration=False, **_eval_kwargs(proto))
    folder = Path(ctx.out, "generators", generator)
    write_report(result, str(folder), real_source=ctx.source,
                 synthetic_source="" if isinstance(synthetic, np.ndarray) else path, real_label=proto["name"])
    d = result.diversity
    if d is not None:  # the embeddings are plot-only (not in report.json); the combined figures need them
        arrays = {k: getattr(d, k) for k in ("pca_real", "pca_synthetic", "tsne_real", "tsne_synthetic", "kde_grid",
                                             "kde_real", "kde_synthetic") if getattr(d, k) is not None}
        np.savez_compressed(folder / "embeddings.npz", **arrays)
    return {"report": str(Path("generators", generator, "report.json"))}


def calibration_stage(ctx: StageContext) -> dict:
    """The calibration rows (real train period = TRTR for TSTR, disjoint halves, shuffled bars), once per
    protocol, with exactly the real samples and seeds `evaluate_all` uses for every generator."""
    from kronos_synth.metrics.calibration import discriminative_table, forecast_table
    from kronos_synth.metrics.evaluate import sample_indices, split_real  # same sampler → same real windows
    from kronos_synth.metrics.features import is_volume_free
    from kronos_synth.metrics.stats import repeat_seeds
    from kronos_synth.metrics.tstr import forecast_score

    proto = ctx.proto
    kw = _eval_kwargs(proto)
    preset, n = kw["freq"], kw["n"]
    real = split_real(real_frame(ctx), freq=preset, window=int(proto["window"]), test_fraction=kw["test_fraction"])
    volume_free = is_volume_free(real.test.values)
    s_real, _, s_model = repeat_seeds(kw["seed"], 3)  # evaluate_all's (real, synthetic, models) seeds
    test_idx, train_idx = sample_indices(len(real.test), n, s_real), sample_indices(len(real.train), n, s_real)
    real_test, real_train = real.test.values[test_idx], real.train.values[train_idx]
    disc = discriminative_table(real_test, None, real_train, seed=s_model, volume_free=volume_free,
                                protocol="paper", repeats=kw["repeats"], epochs=kw["epochs"],
                                real_test_time=real.test.spans()[test_idx], real_train_time=real.train.spans()[train_idx])
    tstr_test = real.test.values[sample_indices(len(real.test), kw["n_test_tstr"], s_real)]
    common = dict(lookback=preset.tstr_lookback, horizon=preset.tstr_horizon, seed=s_model, repeats=kw["repeats"],
                  epochs=kw["epochs"], n_test=None, include_volume=not volume_free)
    # TRTR trains on as many real train windows as a generator's TSTR uses synthetic ones (n).
    tstr = {"real (train period)": forecast_score(real.train.values, tstr_test, train_on="real train period (TRTR)",
                                                  n_train=n, **common)}
    tstr.update(forecast_table(tstr_test, None, None, **common))  # halves and shuffled rows
    result = {"discriminative": {k: v.to_dict() for k, v in disc.items()},
              "tstr": {k: v.to_dict() for k, v in tstr.items()},
              "n_real_test_used": int(len(real_test)), "n_real_train_used": int(len(real_train)),
              "volume_free": volume_free}
    _json_file(Path(ctx.out, "calibration.json"), result)
    return {"report": "calibration.json"}


def sweep_stage(ctx: StageContext, temperature: float, top_p: float) -> dict:
    """One sampling setting: a small Kronos set, then fidelity, TSTR and k-NN coverage (no t-SNE)."""
    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.metrics.evaluate import evaluate_all

    proto = ctx.proto
    sw = proto["sweep"]
    out = work_dir(ctx, "sweep", f"t{temperature:g}-p{top_p:g}")
    # one seed for all settings (common random numbers): differences come from the setting, not the draw
    gen = _generate(ctx, out, n=sw["n"], temperature=temperature, top_p=top_p,
                    seed=stage_seed(proto["seed"], "sweep"))
    kw = _eval_kwargs(proto)
    kw.update(n=int(sw["n"]), repeats=int(sw["repeats"]), epochs=int(sw["epochs"]), tsne=False)
    res = evaluate_all(real_frame(ctx), read_synthetic(out), metrics=("discriminative", "tstr", "diversity"),
                       calibration=False, **kw)
    d, t = res.discriminative["synthetic"], res.tstr["synthetic"]
    return {"temperature": temperature, "top_p": top_p, "n": res.data["n_synthetic_used"],
            "n_real_test": res.data["n_real_test_used"], "repeats": int(sw["repeats"]),
            "discriminative_error": d.error.mean, "discriminative_error_hw": d.error.half_width,
            "price_ic": t.price_ic.mean, "price_rank_ic": t.price_rank_ic.mean, "return_ic": t.return_ic.mean,
            "return_rank_ic": t.return_rank_ic.mean, "knn_precision": res.diversity.precision,
            "knn_recall": res.diversity.recall, "generation_wall_time_s": gen["wall_time_s"],
            "raw_invalid_bar_rate": gen["raw_invalid_bar_rate"]}


def forecast_calibration_stage(ctx: StageContext) -> dict:
    """Calibration of Kronos's conditional paths beside GARCH and the context bootstrap (docs/protocol.md).

    Each temperature of `forecast_calibration.temperatures` is first scored on VALIDATION contexts (the tail of
    the train period); the one whose 90 % coverage of the horizon return is nearest 0.90 (then lowest CRPS) is
    the protocol's calibrated temperature. The test period is scored at the protocol's temperature and, when
    it differs, at the calibrated one, so the choice never looks at the test period."""
    from kronos_synth.generate.conditional import KronosForecaster
    from kronos_synth.metrics.forecast_calibration import evaluate_calibration
    from kronos_synth.model.pretrained import load_model_pair
    from kronos_synth.report.calibration import write_calibration_report

    proto = ctx.proto
    fc, k = proto["forecast_calibration"], proto["kronos"]
    frame = real_frame(ctx)
    pair = load_model_pair(*model_dirs(ctx))
    lb, horizon = lookback(proto), int(proto["window"])
    seed = stage_seed(proto["seed"], "forecast-calibration")
    common = dict(freq=proto["freq"], lookback=lb, horizon=horizon, samples=int(fc["samples"]), seed=seed,
                  test_fraction=float(proto["test_fraction"]))

    def kronos(t: float) -> KronosForecaster:
        return KronosForecaster(pair, freq=proto["freq"], temperature=float(t), top_p=float(k["top_p"]),
                                **path_spreads(ctx), batch_size=int(k["batch_size"]),
                                device="cpu", progress=False)

    validation = []
    for t in fc["temperatures"]:
        res = evaluate_calibration(frame, {"kronos": kronos(t)}, references=(), period="validation",
                                   n_contexts=int(fc["val_contexts"]), **common)
        r = res.row("kronos", "return", horizon)
        validation.append({"temperature": float(t), "crps": r.crps, "pit_ks": r.pit_ks, "coverage_50": r.coverage_50,
                           "coverage_90": r.coverage_90, "n_contexts": r.n_contexts})
    chosen = min(validation, key=lambda v: (round(abs(v["coverage_90"] - 0.9), 3), v["crps"]))["temperature"]
    t0 = float(k["temperature"])
    forecasters = {"kronos": kronos(t0)}
    if chosen != t0:
        forecasters[f"kronos T={chosen:g}"] = kronos(chosen)
    res = evaluate_calibration(frame, forecasters, n_contexts=int(fc["contexts"]), **common)
    folder = Path(ctx.out, "forecast-calibration")
    write_calibration_report(res, str(folder), source=ctx.source, label=proto["name"])
    rows = [dataclasses.asdict(r) for r in res.rows]
    return {"report": "forecast-calibration/report.json", "temperature": t0, "calibrated_temperature": chosen,
            "validation": validation, "rows": rows, "n_contexts": res.data["n_contexts"], "samples": int(fc["samples"])}


def peers_stage(ctx: StageContext) -> dict:
    """The peer metrics (Context-FID, correlational, W1 of k-bar returns, ACF / leverage / gain-loss distances,
    signature MMD) of every generator and of the real-vs-real rows, on the real and synthetic samples every
    evaluation draws; one set of Context-FID encoders (trained on the real train-period sample) embeds all rows."""
    from kronos_synth.data.errors import InputError
    from kronos_synth.data.schema import FEATURES
    from kronos_synth.data.synthetic import SyntheticDataset
    from kronos_synth.metrics.calibration import SYNTHETIC, peer_table
    from kronos_synth.metrics.context_fid import fit_encoders
    from kronos_synth.metrics.evaluate import PEER_REPEATS, sample_indices, split_real
    from kronos_synth.metrics.features import is_volume_free
    from kronos_synth.metrics.stats import repeat_seeds

    proto = ctx.proto
    kw = _eval_kwargs(proto)
    n = kw["n"]
    real = split_real(real_frame(ctx), freq=kw["freq"], window=int(proto["window"]), test_fraction=kw["test_fraction"])
    volume_free = is_volume_free(real.test.values)
    s_real, s_syn, s_model = repeat_seeds(kw["seed"], 3)  # evaluate_all's (real, synthetic, models) seeds
    real_test = real.test.values[sample_indices(len(real.test), n, s_real)]
    real_train = real.train.values[sample_indices(len(real.train), n, s_real)]
    repeats = min(kw["repeats"], PEER_REPEATS)
    encoders = fit_encoders(real_train, repeats=repeats, seed=s_model, volume_free=volume_free)
    common = dict(seed=s_model, repeats=repeats, volume_free=volume_free, encoders=encoders)
    rows = {k: v.to_dict() for k, v in peer_table(real_test, None, real_train, **common).items()}
    generators, missing = {}, []
    for g in proto["generators"]:
        try:
            synthetic, _ = synthetic_input(ctx, g)
        except InputError:  # a finished stage's work/ output is gone (e.g. results copied without work/)
            synthetic = None
        if synthetic is None:
            missing.append(g)
            continue
        bars = synthetic.to_array(FEATURES) if isinstance(synthetic, SyntheticDataset) else np.asarray(synthetic)
        syn = bars[sample_indices(len(bars), n, s_syn)]
        generators[g] = peer_table(real_test, syn, None, calibration=False, **common)[SYNTHETIC].to_dict()
    _json_file(Path(ctx.out, "peers.json"), {"generators": generators, "calibration": rows, "repeats": repeats,
                                             "n_real_test_used": int(len(real_test)), "missing": missing})
    # generators without a set on this machine are named, not silently dropped (rerun their stage to add them)
    return {"report": "peers.json", "generators": sorted(generators), "missing_sets": missing}
