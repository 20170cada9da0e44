"""The TimeGAN "Stocks" benchmark: the published setting, so our rows sit beside the literature's.

    python -m evaluation.run stocks-timegan [--data-dir FOLDER_WITH_stock_data.csv]

Setting (TimeGAN, NeurIPS 2019; reused by TimeVAE and Diffusion-TS): daily GOOG bars of the TimeGAN
repository's `stock_data.csv` (Open, High, Low, Close, Adj_Close, Volume; no dates), windows of 24
bars cut at stride 1 by the reference loop (`range(0, len − 24)`: 3 661 windows), min–max scaled over
the whole file ((x − min) / (max − min + 1e-7)), the reference loader's row reversal (`order`). Every
generator trains on the file and generates as many windows as there are real ones; the metrics are
the TimeGAN code's discriminative score (|acc − 0.5| of a GRU classifier, 80/20 split) and predictive
score (MAE of a GRU trained on synthetic windows predicting the next Volume, tested on real).

Column mapping. kronos-synth generators model OHLCV + amount. The file's amount is missing, so it is
approximated as volume × (O + H + L + C) / 4 for training; Adj_Close equals Close on every row of the
file (checked by the data stage), so a generated window's Adj_Close is its Close. The scored feature
order is the published one: Open, High, Low, Close, Adj_Close, Volume (Volume last: the predictive
target). The file has no dates: Kronos's time features get consecutive weekdays from 2004-08-19 (the
first GOOG session), approximate by a few holidays a year.

Seeds. Each trained generator is fitted once (seed 0); each of the `seeds` evaluation rounds samples a
fresh set with its own seed and trains the metric networks with their own seed. Rows are mean ± sd
over the rounds, as the papers report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation import stages as st
from evaluation.protocol import GAPS, KRONOS, ProtocolError, stage_seed

FILE = "stock_data.csv"
FILE_SHA256 = "134b8a00eb4eefa3242dd7ae85144082da80dedf75a1a656d5d08f97cd95277a"
STOCK_COLUMNS = ("Open", "High", "Low", "Close", "Adj_Close", "Volume")
FIRST_SESSION = "2004-08-19"
#: published rows (mean ± sd): discriminative |acc − 0.5|, predictive MAE; None where a paper gives no sd
PUBLISHED = {
    "TimeGAN (Yoon et al., NeurIPS 2019)": ((0.102, 0.021), (0.038, 0.001)),
    "TimeVAE (Desai et al., 2021)": ((0.145, None), (0.039, None)),
    "Diffusion-TS (Yuan & Qiao, ICLR 2024)": ((0.067, 0.015), (0.036, 0.000)),
    "real data": (None, (0.036, None)),
}
#: Diffusion-TS's further Stocks numbers (Table 1 of the paper)
PUBLISHED_DIFFUSION_TS_EXTRA = {"context_fid": 0.147, "correlational": 0.004}


def stock_file(ctx: st.StageContext) -> Path:
    return Path(ctx.files[0])


def read_stock_file(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in STOCK_COLUMNS if c not in frame.columns]
    if missing:
        raise ProtocolError(f"{path}: no column(s) {missing} — expected the TimeGAN file with {', '.join(STOCK_COLUMNS)}")
    return frame[list(STOCK_COLUMNS)].astype(np.float64)


def stock_klines(raw: pd.DataFrame) -> pd.DataFrame:
    """The file as kronos-synth K-lines (weekday timestamps, symbol GOOG, amount approximated)."""
    ts = pd.bdate_range(FIRST_SESSION, periods=len(raw))
    o, h, lo, c, v = (raw[k].to_numpy() for k in ("Open", "High", "Low", "Close", "Volume"))
    return pd.DataFrame({"timestamps": ts, "symbol": "GOOG", "open": o, "high": h, "low": lo, "close": c,
                         "volume": v, "amount": v * (o + h + lo + c) / 4})


def reference_windows(values: np.ndarray, seq_len: int) -> np.ndarray:
    """(N, F) rows → (N − seq_len, seq_len, F) windows, the reference loop `range(0, len(data) − seq_len)`."""
    return np.stack([values[i:i + seq_len] for i in range(len(values) - seq_len)])


def published_features(bars: np.ndarray) -> np.ndarray:
    """(n, T, 6) OHLCVA → (n, T, 6) Open, High, Low, Close, Adj_Close (= Close), Volume."""
    b = np.asarray(bars, np.float64)
    return b[..., [0, 1, 2, 3, 3, 4]]


def scaled(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, order: str) -> np.ndarray:
    """Min–max over the file as the reference code does it; `reversed` flips each window in time (the reference
    loader reverses the rows before cutting, which yields the same windows, each read backwards)."""
    out = (np.asarray(x, np.float64) - lo) / (hi - lo + 1e-7)
    return out[:, ::-1] if order == "reversed" else out


# ---------------------------------------------------------------------------------------------
# stages


def data_stage(ctx: st.StageContext) -> dict:
    """Check the file, write it as K-lines for the generators, keep the scaling and the real windows."""
    from evaluation.protocol import sha256_file

    path = stock_file(ctx)
    sha = sha256_file(path)
    raw = read_stock_file(path)
    if not np.allclose(raw["Adj_Close"], raw["Close"], rtol=1e-9, atol=0):
        raise ProtocolError(f"{path}: Adj_Close differs from Close — the Adj_Close = Close mapping does not hold")
    work = st.work_dir(ctx)
    work.mkdir(parents=True, exist_ok=True)
    stock_klines(raw).to_csv(work / "stocks.csv", index=False)
    values = raw.to_numpy()
    np.savez(work / "scaling.npz", lo=values.min(0), hi=values.max(0))
    real = reference_windows(values, int(ctx.proto["window"]))
    np.save(work / "real.npy", real)
    return {"file": str(path), "sha256": sha, "expected_sha256": FILE_SHA256, "rows": len(raw),
            "windows": len(real), "adj_close_equals_close": True, "order": ctx.proto["stocks"]["order"]}


def _kline_ctx(ctx: st.StageContext) -> st.StageContext:
    """The stage context whose data are the K-lines the data stage wrote (Kronos trains on those)."""
    # the published setting has no test period: the held-out fraction is validation only
    proto = {**ctx.proto, "test_fraction": float(ctx.proto["stocks"]["kronos_val_fraction"]),
             "training_validation": "held-out"}
    return st.StageContext(proto=proto, out=ctx.out, source=str(st.work_dir(ctx, "stocks.csv")),
                           files=[str(st.work_dir(ctx, "stocks.csv"))])


def tokenizer_stage(ctx: st.StageContext) -> dict:
    return st.tokenizer_stage(_kline_ctx(ctx))


def predictor_stage(ctx: st.StageContext) -> dict:
    return st.predictor_stage(_kline_ctx(ctx))


def kronos_stage(ctx: st.StageContext) -> dict:
    """One generated set per round: contexts anywhere in the file (the published setting has no test period)."""
    from kronos_synth.data.schema import FEATURES
    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.generate.api import generate_dataset
    from kronos_synth.generate.config import GenerationConfig

    proto, k = ctx.proto, ctx.proto["kronos"]
    n = len(np.load(st.work_dir(ctx, "real.npy"), mmap_mode="r"))
    predictor, tokenizer = st.model_dirs(ctx)
    out = {}
    for i in range(int(proto["stocks"]["seeds"])):
        folder = st.work_dir(ctx, "kronos", f"seed{i}")
        config = GenerationConfig(freq=proto["freq"], lookback=st.lookback(proto), horizon=int(proto["window"]),
                                  temperature=float(k["temperature"]), top_p=float(k["top_p"]),
                                  seed=stage_seed(proto["seed"], f"generate:{i}"), split="all",
                                  batch_size=int(k["batch_size"]), device="cpu", gaps=GAPS)
        summary = generate_dataset(config, n=n, out=str(folder), data=str(st.work_dir(ctx, "stocks.csv")),
                                   model=predictor, tokenizer=tokenizer, progress=False)
        np.save(st.work_dir(ctx, "kronos", f"seed{i}.npy"), read_synthetic(folder).to_array(FEATURES))
        d = summary.to_dict()
        out[f"seed{i}"] = {k: d.get(k) for k in ("wall_time_s", "raw_invalid_bar_rate")}
    return out


def baseline_stage(ctx: st.StageContext, name: str) -> dict:
    """Fit once on every window of the file (raw OHLCVA, the toolkit's scale-free form), then one set per round."""
    import time
    import warnings

    from kronos_synth.baselines import get_baseline
    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.splits import extract_windows

    proto = ctx.proto
    options = dict(proto["baselines"].get(name, {}))
    frame = clean_klines(pd.read_csv(st.work_dir(ctx, "stocks.csv"), parse_dates=["timestamps"]), "daily").frame
    windows = extract_windows(frame, int(proto["window"])).values
    n = len(np.load(st.work_dir(ctx, "real.npy"), mmap_mode="r"))
    model = get_baseline(name, **options)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = model.fit(windows, seed=stage_seed(proto["seed"], f"{name}:fit"))
    fit_s = time.perf_counter() - t0
    model.save(st.work_dir(ctx, "baselines", name, "model"))
    for i in range(int(proto["stocks"]["seeds"])):
        np.save(st.work_dir(ctx, "baselines", name, f"seed{i}.npy"),
                model.sample(n, seed=stage_seed(proto["seed"], f"{name}:sample:{i}")))
    rep = report.to_dict()
    rep.pop("history", None)
    return {"fit_wall_time_s": round(fit_s, 3), "n_windows": len(windows), "options": model.options, "fit": rep,
            "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)]}


def _sets(ctx: st.StageContext, generator: str) -> list[np.ndarray]:
    seeds = int(ctx.proto["stocks"]["seeds"])
    folder = st.work_dir(ctx, "kronos") if generator == KRONOS else st.work_dir(ctx, "baselines", generator)
    return [np.load(folder / f"seed{i}.npy") for i in range(seeds)]


def evaluate_stage(ctx: st.StageContext, generator: str) -> dict:
    """Discriminative and predictive score per round, on published features scaled over the file."""
    from kronos_synth.metrics.discriminative import discriminative_score, predictive_score

    proto = ctx.proto
    s = proto["stocks"]
    sc = np.load(st.work_dir(ctx, "scaling.npz"))
    real = scaled(np.load(st.work_dir(ctx, "real.npy")), sc["lo"], sc["hi"], s["order"])
    if generator == "real":
        # real data's own predictive score (train on real, test on real), and real-vs-real discrimination
        rng = np.random.default_rng(stage_seed(proto["seed"], "real-halves"))
        syn_sets = [real] * int(s["seeds"])
        halves = [np.array_split(rng.permutation(len(real)), 2) for _ in range(int(s["seeds"]))]
    else:
        syn_sets = [scaled(published_features(x), sc["lo"], sc["hi"], s["order"]) for x in _sets(ctx, generator)]
    disc, pred, invalid = [], [], []
    for i, syn in enumerate(syn_sets):
        seed = stage_seed(proto["seed"], f"metrics:{i}")
        if generator == "real":
            a, b = halves[i]
            d = discriminative_score(real[a], real[b], protocol="timegan", repeats=1, seed=seed,
                                     iterations=int(s["disc_iterations"]))
        else:
            d = discriminative_score(real, syn, protocol="timegan", repeats=1, seed=seed,
                                     iterations=int(s["disc_iterations"]))
            invalid.append(float(np.mean(~np.isfinite(syn).all(axis=(1, 2)))))
        p = predictive_score(real, syn, repeats=1, seed=seed, iterations=int(s["pred_iterations"]))
        disc.append(d.score.mean)
        pred.append(p.mae.mean)
    return {"discriminative": _mean_sd(disc), "predictive": _mean_sd(pred),
            "n_real": int(len(real)), "n_synthetic": int(len(syn_sets[0])),
            "discriminative_note": "real: one half of the real windows against the other" if generator == "real" else "",
            "non_finite_share": invalid}


def _mean_sd(v: list[float]) -> dict:
    a = np.asarray(v, np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else None, "values": a.tolist()}


# ---------------------------------------------------------------------------------------------
# plan and report


def plan_stages(proto: dict, files_sha256: dict[str, str]) -> list:
    from evaluation.protocol import embedded_sha256
    from evaluation.run import Stage, assign_keys
    from kronos_synth.baselines import NAMES as BASELINES

    base = {k: proto[k] for k in ("name", "freq", "window", "seed")}
    base.update(files_sha256=files_sha256, stocks=proto["stocks"])
    k = proto["kronos"]
    gens = list(proto["generators"])
    out = [Stage("data", data_stage, {}, outputs=("work/real.npy",))]
    if KRONOS in gens:
        train = {x: k[x] for x in ("representation", "init", "eval_every", "patience", "val_windows")}
        train.update(init_sha256=embedded_sha256(), center_returns=bool(k.get("center_returns")))
        out.append(Stage("tokenizer", tokenizer_stage, {"kronos": train, **{x: k[x] for x in k
                                                                             if x.startswith("tokenizer_")}},
                         ("data",), outputs=("work/tokenizer",), serial=True))
        out.append(Stage("predictor", predictor_stage, {x: k[x] for x in k if x.startswith("predictor_")},
                         ("tokenizer",), outputs=("work/predictor",), serial=True))
        out.append(Stage("generate", kronos_stage, {x: k[x] for x in ("temperature", "top_p", "batch_size")},
                         ("predictor",), outputs=("work/kronos",), serial=True))
    for b in BASELINES:
        if b in gens:
            out.append(Stage(f"baseline:{b}", baseline_stage, {"options": proto["baselines"].get(b, {})}, ("data",),
                             {"name": b}, (f"work/baselines/{b}",)))
    source = {KRONOS: "generate", **{b: f"baseline:{b}" for b in BASELINES}, "real": "data"}
    for g in [*gens, "real"]:
        out.append(Stage(f"evaluate:{g}", evaluate_stage, {}, (source[g],), {"generator": g}))
    return assign_keys(out, base)


LABELS = {KRONOS: "Kronos (fine-tuned on the file, conditional on its real contexts)", "timegan": "TimeGAN (ours)",
          "timevae": "TimeVAE (ours)", "diffusion-ts": "Diffusion-TS (ours)", "garch": "GARCH(1,1)-t (ours)",
          "bootstrap": "block bootstrap (ours)", "real": "real data (ours)"}


def _ms(d: dict | None, digits: int = 3) -> str:
    if not d or d.get("mean") is None:
        return "—"
    sd = d.get("sd")
    return f"{d['mean']:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None and math.isfinite(sd) else "")


def write_report(proto: dict, folder: Path, log: dict, names: list[str]) -> dict:
    stages = {n: e for n, e in log.get("stages", {}).items() if n in names}

    def result(name: str) -> Any:
        e = stages.get(name, {})
        return e.get("result") if e.get("status") == "finished" else None

    measured = {g: result(f"evaluate:{g}") for g in [*proto["generators"], "real"] if result(f"evaluate:{g}")}
    rep = {"protocol": {k: v for k, v in proto.items() if k != "file"}, "data": result("data"), "measured": measured,
           "published": {k: {"discriminative": v[0], "predictive": v[1]} for k, v in PUBLISHED.items()},
           "training": {n: result(n) for n in ("tokenizer", "predictor", "generate") if result(n)},
           "baselines": {n.split(":", 1)[1]: result(n) for n in stages if n.startswith("baseline:") and result(n)},
           "wall_times_s": {n: e.get("wall_time_s") for n, e in stages.items()}}
    (folder / "report.json").write_text(json.dumps(rep, indent=2, sort_keys=True, default=str) + "\n")
    (folder / "report.md").write_text("\n".join(render(rep)) + "\n")
    return rep


def published_rows() -> list[list[str]]:
    def cell(x):
        if x is None:
            return "—"
        m, sd = x
        return f"{m:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

    return [[name + " — published", cell(d), cell(p)] for name, (d, p) in PUBLISHED.items()]


def render(rep: dict) -> list[str]:
    s = rep["protocol"]["stocks"]
    lines = ["# stocks-timegan: the TimeGAN \"Stocks\" benchmark", "",
             f"Daily GOOG (TimeGAN's `stock_data.csv`), windows of {rep['protocol']['window']} bars, min–max over the "
             f"file, rows {'reversed as the reference loader does' if s['order'] == 'reversed' else 'in time order'}; "
             f"discriminative |acc − 0.5| (GRU, 80/20, {s['disc_iterations']} iterations) and predictive MAE (GRU on "
             f"synthetic → next Volume on real, {s['pred_iterations']} iterations); mean ± sd over {s['seeds']} rounds "
             "(fresh sample and metric seed each). Lower is better for both.", ""]
    order = [g for g in [*rep["protocol"]["generators"], "real"] if g in rep["measured"]]
    rows = [[LABELS.get(g, g), _ms(rep["measured"][g]["discriminative"]), _ms(rep["measured"][g]["predictive"])]
            for g in order]
    lines += ["| generator | discriminative | predictive |", "|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows + published_rows()]
    lines += ["", "The real-data row's discriminative score is one half of the real windows against the other.", ""]
    return lines
