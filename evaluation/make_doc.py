"""Write docs/benchmarks.md from the committed protocol results (evaluation/results/<protocol>/report.json).

    python -m evaluation.make_doc [--results evaluation/results] [--out docs/benchmarks.md]

Everything but the plain-words reading is generated; the reading block between the
`<!-- reading -->` markers of an existing file is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from evaluation.protocol import BASELINES, KRONOS, RESULTS_DIR, ROUNDTRIP
from evaluation.report import (
    CALIBRATION_ROWS,
    ROW_LABELS,
    VALIDITY_COLUMNS,
    fmt,
    num,
    pct,
    stylized_score,
    table,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"
PROTOCOLS = ("sp500-daily", "nasdaq-daily", "goog-daily", "eurusd-1h", "crypto-15m")
GENERATORS = (KRONOS, ROUNDTRIP, *BASELINES)
READING_START, READING_END = "<!-- reading -->", "<!-- /reading -->"
READING_PLACEHOLDER = "_The plain-words reading of these results is written by hand after the full runs._"


def load_results(results: Path) -> dict[str, dict]:
    out = {}
    for p in PROTOCOLS:
        f = results / p / "report.json"
        if f.is_file():
            out[p] = json.loads(f.read_text())
    return out


ZERO_SHOT_PROTOCOLS = (*PROTOCOLS, "heldout-15m")


def load_zero_shot(results: Path) -> dict[str, dict]:
    """Reports of `python -m evaluation.run NAME --zero-shot` (and the zero-shot-only heldout-15m protocol)."""
    out = {}
    for p in ZERO_SHOT_PROTOCOLS:
        f = results / "zero-shot" / p / "report.json"
        if f.is_file():
            out[p] = json.loads(f.read_text())
    return out


def _kurtosis(rep: dict, g: str) -> tuple[float, float] | None:
    rows = ((rep["generators"].get(g) or {}).get("stylized") or {}).get("rows", [])
    row = next((r for r in rows if r["name"] == "excess_kurtosis"), None)
    return (row["real"], row["synthetic"]) if row else None


def _zero_shot(zs: dict[str, dict], full: dict[str, dict]) -> list[str]:
    if not zs:
        return []
    lines = ["## Zero-shot: the embedded default with no fine-tuning", "",
             "The pretrained default model (docs/pretraining.md) as it is, on each protocol's data, beside the block "
             "bootstrap fitted to the protocol's train period and, where the protocol has run, Kronos fine-tuned "
             "from the same default (Table 1). `heldout-15m`: the 16 instruments the pretraining corpus held out "
             "whole. From `python -m evaluation.run NAME --zero-shot` (results in evaluation/results/zero-shot/).",
             ""]
    body = []
    for p, rep in zs.items():
        h = rep["headline"]["discriminative_error"]
        kurt = _kurtosis(rep, KRONOS)
        fine = (full.get(p) or {}).get("headline", {}).get("discriminative_error", {}).get(KRONOS)
        body.append([p, fmt(h.get(KRONOS)), fmt(fine) if fine else "—", fmt(h.get("bootstrap")),
                     fmt(h.get("real (train period)")),
                     f"{kurt[1]:.1f} / {kurt[0]:.1f} ({kurt[1] / kurt[0]:.0%})" if kurt else "n/a",
                     stylized_score((rep["generators"].get(KRONOS) or {}).get("stylized"))])
    lines += table(["protocol", "Kronos zero-shot", "Kronos fine-tuned", "block bootstrap", "real (train period)",
                    "excess kurtosis generated / real", "stylized facts within real-vs-real"], body)
    return lines


def _forecast_calibration(res: dict[str, dict], zs: dict[str, dict]) -> list[str]:
    """One row per protocol × forecaster: the horizon return's CRPS, PIT-KS and coverage, the realised volatility's
    90 % coverage (Kronos: the protocol's fine-tuned model; heldout-15m: the embedded default zero-shot)."""
    reps = {p: r["forecast_calibration"] for p, r in res.items() if r.get("forecast_calibration")}
    for p, r in zs.items():
        if p not in reps and r.get("forecast_calibration"):
            reps[p] = r["forecast_calibration"]
    if not reps:
        return []
    lines = ["## Calibration of conditional paths", "",
             "200 real test-period contexts per protocol, 50 sampled continuations of each "
             "([protocol.md](protocol.md#10-calibration-of-conditional-paths)); the H-bar return (H = the protocol's "
             "window) and the realised volatility over H bars. Coverage of the central 50 % / 90 % intervals: ideal "
             "0.50 / 0.90, lower = paths too narrow. PIT-KS: 0 = calibrated. CRPS in log-return units (compare "
             "within a protocol). `Kronos T=…`: the temperature whose 90 % coverage on validation contexts (tail "
             "of the train period) was nearest 0.90. heldout-15m: the embedded default, zero-shot.", ""]
    body = []
    for p, fc in reps.items():
        h = max(r["horizon"] for r in fc["rows"])
        gens = list(dict.fromkeys(r["generator"] for r in fc["rows"]))
        for g in gens:
            ret = next((r for r in fc["rows"] if (r["generator"], r["target"], r["horizon"]) == (g, "return", h)), None)
            vol = next((r for r in fc["rows"] if (r["generator"], r["target"], r["horizon"]) == (g, "realized_vol", h)),
                       None)
            if ret is None:
                continue
            label = ROW_LABELS.get(g) or g.replace("kronos", "Kronos", 1)
            body.append([p, h, label, num(ret["crps"], 4), num(ret["pit_ks"], 3), num(ret["coverage_50"], 2),
                         f"**{num(ret['coverage_90'], 2)}**" if g == KRONOS else num(ret["coverage_90"], 2),
                         num(vol["coverage_90"], 2) if vol else "n/a"])
    lines += table(["protocol", "H", "forecaster", "CRPS", "PIT-KS", "coverage 50 %", "coverage 90 %",
                    "realised vol. coverage 90 %"], body)
    return lines


def _stocks(results: Path) -> list[str]:
    """The stocks-timegan table: measured rows beside the published ones."""
    f = results / "stocks-timegan" / "report.json"
    if not f.is_file():
        return []
    from evaluation.stocks_timegan import LABELS, published_rows

    rep = json.loads(f.read_text())
    s = rep["protocol"]["stocks"]

    def ms(d):
        if not d or d.get("mean") is None:
            return "—"
        return f"{d['mean']:.3f}" + (f" ± {d['sd']:.3f}" if d.get("sd") is not None else "")

    lines = ["## TimeGAN \"Stocks\": our rows beside the published ones", "",
             "The published setting (`python -m evaluation.run stocks-timegan`, evaluation/stocks_timegan.py): TimeGAN's "
             "`stock_data.csv` (daily GOOG 2004–2019, Apache-2.0), windows of 24 bars, min–max over the file, rows "
             f"{'reversed as the reference loader does' if s['order'] == 'reversed' else 'in time order'}, every "
             "generator trained on the whole file and generating as many windows as there are real ones (3 661). "
             "Discriminative: |accuracy − 0.5| of TimeGAN's post-hoc GRU classifier (80/20 split, "
             f"{s['disc_iterations']} iterations); predictive: MAE of a GRU trained on synthetic windows to predict "
             f"the next Volume, tested on real ({s['pred_iterations']} iterations). Both lower is better; mean ± sd "
             f"over {s['seeds']} rounds (fresh sample and metric seed each). Column mapping: our generators model "
             "OHLCV + amount (amount approximated as volume × mean price for training); Adj_Close equals Close on "
             "every row of the file, so a generated window's Adj_Close is its Close. Published rows: TimeGAN "
             "(Yoon, Jarrett & van der Schaar, NeurIPS 2019, Table 2), TimeVAE (Desai et al., 2021, as reported by "
             "Diffusion-TS), Diffusion-TS (Yuan & Qiao, ICLR 2024, Table 1).", ""]
    order = [g for g in [*rep["protocol"]["generators"], "real"] if g in rep["measured"]]
    rows = [[LABELS.get(g, g), ms(rep["measured"][g]["discriminative"]), ms(rep["measured"][g]["predictive"])]
            for g in order]
    lines += table(["generator", "discriminative", "predictive"], rows + published_rows())
    base = rep.get("baselines", {})
    if base:
        lines += ["Our baselines' budgets (fit on one core): " + "; ".join(
            f"{ROW_LABELS.get(b, b)} {num(r.get('fit_wall_time_s'), 0)} s" for b, r in base.items()) + ".", ""]
    return lines


def _scenarios(results: Path) -> list[str]:
    """The conditioned-generation and crypto-panel tables (reading: docs/scenarios.md)."""
    out = []
    for name, title, cmd in (("scenarios", "Conditioned generation and the stress pack",
                              "python -m evaluation.bench_scenarios"),
                             ("crypto-panel", "Coupled panels (crypto-panel)",
                              "python -m evaluation.run crypto-panel --data-dir DIR")):
        f = results / name / "report.md"
        if not f.is_file():
            continue
        text = f.read_text()
        out += [f"## {title}", "", f"`{cmd}`; what the rows mean and how to read them: [scenarios.md](scenarios.md).",
                "", text[text.index("|"):].strip(), ""]
    return out


def _rel(path: Path, doc: Path) -> str:
    return os.path.relpath(path, doc.parent).replace(os.sep, "/")


def _keep_reading(doc: Path) -> str:
    if doc.is_file():
        text = doc.read_text()
        if READING_START in text and READING_END in text:
            return text.split(READING_START, 1)[1].split(READING_END, 1)[0].strip("\n")
    return READING_PLACEHOLDER


def _headline(res: dict[str, dict], key: str, rows: tuple[str, ...]) -> list[str]:
    names = list(res)
    body = []
    for r in rows:
        cells = [fmt(res[p]["headline"][key].get(r)) for p in names]
        if any(c != "n/a" for c in cells):
            body.append([ROW_LABELS.get(r, r), *cells])
    return table(["row", *names], body)


def _wall_rows(res: dict[str, dict]) -> list[list]:
    groups = [("data split", lambda n: n == "data"), ("tokenizer fine-tune", lambda n: n == "tokenizer"),
              ("predictor fine-tune", lambda n: n == "predictor"), ("Kronos generation", lambda n: n == "generate"),
              ("tokenizer round trip", lambda n: n == "roundtrip"),
              *[(f"{ROW_LABELS[b]} fit + sample", lambda n, b=b: n == f"baseline:{b}") for b in BASELINES],
              ("calibration rows", lambda n: n == "calibration"),
              ("evaluation (all generators)", lambda n: n.startswith("evaluate:")),
              ("sampling sweep (all settings)", lambda n: n.startswith("sweep:"))]
    rows = []
    for label, match in groups:
        cells = []
        for p in res:
            vals = [v for n, v in res[p]["wall_times_s"].items() if match(n) and v is not None]
            cells.append(num(sum(vals), 0) if vals else "–")
        rows.append([label, *cells])
    rows.append(["sum of stage times", *[num(res[p]["total_stage_time_s"], 0) for p in res]])
    rows.append(["elapsed (summed over runs; stages in parallel)", *[num(res[p]["elapsed_s"], 0) for p in res]])

    def main_run(p):  # the run that did most of the work
        return max(res[p]["runs"], key=lambda r: len(r["ran"])) if res[p]["runs"] else None

    rows.append(["workers / torch threads", *[f"{r['jobs']} / {r['threads']}" if (r := main_run(p)) else "–"
                                              for p in res]])
    return rows


def _settings(res: dict[str, dict]) -> list[str]:
    keys = [("window (bars)", lambda q: q["window"]),
            ("Kronos init", lambda q: q["kronos"]["init"]),
            ("Kronos representation", lambda q: q["kronos"]["representation"]),
            ("tokenizer steps / lr", lambda q: f"{q['kronos']['tokenizer_steps']} / {q['kronos']['tokenizer_lr']:g}"),
            ("predictor steps / lr", lambda q: f"{q['kronos']['predictor_steps']} / {q['kronos']['predictor_lr']:g}"),
            ("Kronos sequences (T, top-p)", lambda q: f"{q['kronos']['n']} ({q['kronos']['temperature']:g}, "
                                                       f"{q['kronos']['top_p']:g})"),
            ("Kronos gaps (generate --gaps)", lambda q: q["kronos"].get("gaps", "model")),
            ("baseline sequences", lambda q: q["baselines"]["n"]),
            ("TimeGAN ae / sup / joint iterations",
             lambda q: "{} / {} / {}".format(*(q["baselines"]["timegan"].get(k, "default")
                                                for k in ("ae_steps", "sup_steps", "steps")))),
            ("TimeVAE max epochs", lambda q: q["baselines"]["timevae"].get("steps", "default")),
            ("Diffusion-TS steps / sampling steps",
             lambda q: f"{q['baselines']['diffusion-ts'].get('steps', 'default')} / "
                       f"{q['baselines']['diffusion-ts'].get('sampling_steps', 'default')}"),
            ("evaluation n per set", lambda q: q["evaluation"]["n"]),
            ("repeats / epochs", lambda q: f"{q['evaluation']['repeats']} / {q['evaluation']['epochs']}"),
            ("TSTR real test windows (max)", lambda q: q["evaluation"]["n_test_tstr"]),
            ("sweep n / repeats", lambda q: f"{q['sweep']['n']} / {q['sweep']['repeats']}" if q["sweep"]["enabled"]
             else "off"),
            ("seed", lambda q: q["seed"])]
    protos = {p: res[p]["protocol"] if p in res else _protocol(p) for p in PROTOCOLS}
    rows = [[label, *[str(f(q)) for q in protos.values()]] for label, f in keys]

    def kept(p: str) -> str:  # the select stage's choice (runs before it kept the fine-tune unasked)
        tr = res.get(p, {}).get("training", {})
        sel = tr.get("select")
        if not sel:
            return "fine-tuned (no selection)"
        if all(tr.get(n, {}).get("best_step") == 0 for n in ("tokenizer", "predictor")):
            return "embedded (no fine-tuning step beat it on validation)"  # both stages kept their step-0 weights
        v = sel["validation"]
        return (f"{sel['model']} ({num(v['fine-tuned']['discriminative_error'])} / "
                f"{num(v['embedded']['discriminative_error'])})")

    rows.append(["Kronos model kept on validation (disc. error fine-tuned / default)", *[kept(p) for p in protos]])
    return table(["setting", *protos], rows)


def _protocol(name: str) -> dict:
    from evaluation.protocol import load_protocol

    return load_protocol(name)


def render(res: dict[str, dict], doc: Path, results: Path, zero_shot: dict[str, dict] | None = None) -> str:
    missing = [p for p in PROTOCOLS if p not in res]
    lines = ["# Benchmarks", "",
             "Kronos (fine-tuned per market from the embedded default model, the fine-tune kept where it beats the "
             "default on validation) against TimeGAN, TimeVAE, Diffusion-TS, "
             "GARCH(1,1)-t and a block bootstrap, plus the tokenizer round trip (real test windows encoded and "
             "decoded: what tokenization alone costs), on five dataset × frequency protocols. Every number comes "
             "from `python -m evaluation.run PROTOCOL` (files in `evaluation/protocols/`) and this page from "
             "`python -m evaluation.make_doc`; see [protocol.md](protocol.md) for the metrics. Cells are mean ± "
             "95 % half width over the protocol's repeats.", ""]
    if any(r["protocol"].get("quick") for r in res.values()):
        lines += ["**These results come from `--quick` runs (toy sizes): they show that the pipeline works, "
                  "not how good any generator is.**", ""]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]
    lines += ["## Reading", "", READING_START, _keep_reading(doc), READING_END, ""]
    if res:
        lines += _results(res, doc, results)
    else:
        lines += ["No results yet: run the protocols, then `python -m evaluation.make_doc`.", ""]
    lines += _zero_shot(zero_shot or {}, res)
    lines += _forecast_calibration(res, zero_shot or {})
    lines += _stocks(results)
    lines += _scenarios(results)
    lines += _settings_section(res)
    lines += ["## Reproduce", "", "```bash",
              *[f"python -m evaluation.run {p}" + (" --data-dir DIR" if p == "crypto-15m" else "")
                for p in PROTOCOLS],
              "python -m evaluation.run stocks-timegan   # --data-dir FOLDER with stock_data.csv",
              "python -m evaluation.run crypto-panel --data-dir DIR   # coupled panels (docs/scenarios.md)",
              "python -m evaluation.bench_scenarios      # conditioned generation and the stress pack",
              "python -m evaluation.make_doc", "```", "",
              "Each run is resumable (stages.json in its results folder); `--quick` runs a protocol end to end at "
              "toy size into evaluation/results/quick/. crypto-15m reads Binance 15-minute `*_15m.csv` files from "
              "`--data-dir` (not shipped with the package; default: `CRYPTO_DATA_DIR` in evaluation/protocol.py "
              "when that folder exists) and is skipped with one line without them; see "
              "[CONTRIBUTING.md](../CONTRIBUTING.md).", ""]
    return "\n".join(lines)


def _results(res: dict[str, dict], doc: Path, results: Path) -> list[str]:
    lines: list[str] = []
    rows = (*GENERATORS, *CALIBRATION_ROWS)
    lines += ["## Table 1 — fidelity: discriminative error", "",
              "Test error of the LSTM real-vs-synthetic classifier: 0.5 = indistinguishable, 0 = trivially detected. "
              "The classifier trains and tests on windows from disjoint time blocks (no bar in both; "
              "[protocol.md](protocol.md#3-fidelity-the-discriminative-score)). Calibration rows: `disjoint halves` must be ≈ 0.5, `shuffled bars` ≈ 0; `real (train period)` shows "
              "how far apart the two real periods already are.", ""]
    lines += _headline(res, "discriminative_error", rows)
    lines += ["## Table 2 — usefulness: TSTR", "",
              "Forecaster trained on each set, tested on real test-period windows; IC / RankIC of the predicted "
              "price paths (the paper's metric). `real (train period) / TRTR` trains on as many real "
              "train-period windows as the generators' rows use synthetic ones; the `tokenizer round trip` row "
              "trains on decoded train-period windows (TRTR through the tokenizer; its other rows use decoded "
              "test-period windows).", "", "### 2a — price IC", ""]
    lines += _headline(res, "tstr_price_ic", rows)
    lines += ["### 2b — price RankIC", ""]
    lines += _headline(res, "tstr_price_rank_ic", rows)

    lines += ["## Diversity", "", "k-NN coverage (k = 5) of flattened normalized sequences: precision = share "
              "of synthetic sequences inside the real manifold, recall = share of real sequences the synthetic "
              "set covers.", ""]
    body = []
    for g in GENERATORS:
        cells = []
        for p in res:
            d = (res[p]["generators"].get(g) or {}).get("diversity")
            cells.append(f"{num(d['precision'], 2)} / {num(d['recall'], 2)}" if d else "n/a")
        if any(c != "n/a" for c in cells):
            body.append([ROW_LABELS[g], *cells])
    lines += table(["generator (precision / recall)", *res], body)
    for p in res:
        for name in res[p].get("plots", {}).get("diversity", []):
            f = results / p / name
            if f.is_file():
                lines += [f"![{p}: {name}]({_rel(f, doc)})", ""]

    lines += ["## Stylized facts scorecard", "", "Cell: stylized facts on which the generator is within the real-vs-real "
              "baseline |real test − real train|, out of the facts scored. Per-fact values are in each protocol's "
              "report.md.", ""]
    body = [[ROW_LABELS[g], *[stylized_score((res[p]["generators"].get(g) or {}).get("stylized")) for p in res]]
            for g in GENERATORS]
    lines += table(["generator", *res], [b for b in body if any(c != "n/a" for c in b[1:])])

    lines += ["## Bar validity", "", "Share of raw (unrepaired) bars: any rule broken / OHLC geometry "
              "(high below max(open, close) or low above min(open, close)) / amount ÷ volume outside [low, high].",
              ""]
    body = []
    for g in GENERATORS:
        cells = []
        for p in res:
            v = next((x for x in (res[p]["generators"].get(g) or {}).get("validity", [])
                      if not x["label"].startswith("real")), None)
            geo = max((v or {}).get("shares", {}).get(c) or 0.0 for c in VALIDITY_COLUMNS[:2]) if v else None
            cells.append(f"{pct(v, None)} / ≥ {geo:.2%} / {pct(v, VALIDITY_COLUMNS[3])}" if v else "n/a")
        if any(c != "n/a" for c in cells):
            body.append([ROW_LABELS[g], *cells])
    lines += table(["generator (any / geometry / VWAP)", *res], body)

    sw = {p: r["sweep"] for p, r in res.items() if r.get("sweep")}
    if sw:
        lines += ["## Sampling sweep", "", f"Kronos at temperature × top-p; best = {next(iter(sw.values()))['criterion']}.", ""]
        body = [[p, f"T = {s['best']['temperature']:g}, top-p = {s['best']['top_p']:g}" if s["best"] else "n/a",
                 num(s["best"]["discriminative_error"]) if s["best"] else "n/a",
                 num(s["best"]["price_rank_ic"]) if s["best"] else "n/a",
                 num(s["best"]["knn_recall"]) if s["best"] else "n/a"] for p, s in sw.items()]
        lines += table(["dataset", "best setting", "disc. error", "price RankIC", "k-NN recall"], body)
        for p in sw:
            f = results / p / "sweep_tradeoff.png"
            if f.is_file():
                lines += [f"![{p}: sweep]({_rel(f, doc)})", ""]

    lines += ["## Wall time", "", "Seconds per stage on the benchmark machine (2 CPU cores); worker stages run "
              "two at a time, so the elapsed time is below the sum.", ""]
    lines += table(["stage", *res], _wall_rows(res))

    return lines


def _settings_section(res: dict[str, dict]) -> list[str]:
    lines = ["## Settings", "", "Everything below is smaller than the papers' and the originals' settings, to fit "
              "a 2-core CPU budget (measured times: wall-time table). The reductions, all in the protocol files:", "",
              "- Discriminative score: n ≤ 1 000 per class for training and as many for testing (paper: 3 000), "
              "the repeats of the settings table (paper: 5), 20 epochs as in the paper. When the test period holds fewer "
              "windows (sp500/nasdaq ≈ 970, goog ≈ 400, eurusd ≈ 930), all are used and the classes shrink to half "
              "of that; the report's `n train` column gives the count.",
              "- TSTR: trained on ≤ 2 000 sequences (paper: 6 000), same repeats; tested on ≤ 3 000 real test windows "
              "(crypto: ≤ 2 000).",
              "- Kronos: a short fine-tune of the embedded default model (small config, 4 layers, d_model 128) "
              "— 150 to 1 600 steps, settings table — not the paper's pre-trained Kronos-small/base/large. 6 000 sequences are "
              "generated, of which the evaluation samples its n. Training validates on the train period's tail (early "
              "stopping and the saved checkpoint), and the fine-tune samples only where it beats the embedded default "
              "on that tail (settings table, last row); the test period informs no choice. (Runs before 2026-12-08 "
              "validated on the test period.)",
              "- Baselines: 2 000 sequences each; iterations pinned in the protocol files (table below), below "
              "the budget-sized defaults of [baselines.md](baselines.md) (about 8–12 minutes of one core per "
              "model), which fit one model but not five plus Kronos and the evaluation in 15 minutes. Daily: "
              "TimeGAN 300 / 300 / 300 iterations, TimeVAE ≤ 100 epochs, Diffusion-TS 2 500 steps with 50 "
              "sampling steps; eurusd-1h and crypto-15m (windows of 72 and 96 bars cost 2–3× more per step) "
              "fewer. The originals train far longer (TimeGAN 50 000 iterations per phase, Diffusion-TS 10 000 "
              "steps with 500 sampling steps, TimeVAE up to 1 000 epochs): the learned baselines are "
              "under-trained; read their rows as 'what this budget buys', not as the published models.",
              "- Sweep: n = 500 per setting and one repeat: differences between neighbouring settings are mostly "
              "within the noise; the best setting is indicative.",
              "- Runs: two worker processes with one torch thread each (a second OpenMP thread on a busy core made "
              "training ~5× slower on this machine). Planned before the runs, from per-unit CPU timings: daily "
              "≈ 9–10 min, eurusd-1h ≈ 12–13 min, crypto-15m ≈ 15–16 min on two otherwise idle cores; measured "
              "times are in the wall-time table.", ""]
    lines += _settings(res)
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m evaluation.make_doc", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(RESULTS_DIR), help="folder with one subfolder per protocol")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    results, doc = Path(args.results).resolve(), Path(args.out).resolve()
    res = load_results(results)
    doc.write_text(render(res, doc, results, load_zero_shot(results)))
    print(f"{doc}: {len(res)} protocol(s) ({', '.join(res) or 'none'})")


if __name__ == "__main__":
    main()
