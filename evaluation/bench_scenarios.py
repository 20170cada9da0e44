"""Conditioned generation and the stress pack, measured: hit rate, acceptance cost, and the conditioned set
against the real windows that meet the same condition (docs/scenarios.md).

    python -m evaluation.bench_scenarios [--data-dir DIR] [--quick] [--out evaluation/results/scenarios]

For each market (sp500-daily, embedded; crypto-15m, the Binance *_15m.csv files when --data-dir has
them; heldout-15m, the 16 instruments the pretraining corpus held out, when --heldout-dir has them) and
each condition, the embedded default model (zero-shot: no fine-tuning) generates `n` sequences from
the TEST-period contexts that meet the condition; they are scored against what really followed those
contexts (`metrics.scenario.scenario_report`: discriminative error, 3 repeats, and path quantiles) and,
for the stress pack, VaR / ES of the horizon return against the historical and GARCH estimates. The test
period is used because the embedded default was pretrained on the train periods of the embedded datasets.

Resumable: each generated set is a schema-v1 folder under OUT/work (resumes part by part) and each scored
row is kept in OUT/rows.json under the hash of its settings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from evaluation.protocol import CRYPTO_DATA_DIR, GAPS, RESULTS_DIR, settings_key

# market: (bar size, embedded dataset name or a file glob, the option naming the glob's folder)
MARKETS = {"sp500-daily": ("daily", "sp500-daily", None), "crypto-15m": ("15min", "*_15m.csv", "data_dir"),
           "heldout-15m": ("15min", "*-15m.*", "heldout_dir")}
CONDITIONS = ("volatility:0.9-1", "return:0-0.1", "regime:high-vol", "stress")
N_DEFAULT = 1000


def _variant(args) -> list[str]:
    """The non-default settings of a run, for row and folder names."""
    return ([f"split {args.split}"] * (args.split != "test") + [f"top-p {args.top_p:g}"] * (args.top_p != 1.0)
            + [f"T {args.temperature:g}"] * (args.temperature != 1.0)
            + [f"model {args.model_label}"] * bool(args.model) + [f"n {args.n}"] * (args.n != N_DEFAULT))


def _row(market: str, freq: str, data: str, condition: str, args, work: Path) -> dict:
    from kronos_synth.data.sources import klines_for
    from kronos_synth.generate.api import generate_dataset
    from kronos_synth.generate.config import GenerationConfig
    from kronos_synth.metrics.scenario import scenario_report

    scenario = condition if condition == "stress" else None
    config = GenerationConfig(freq=freq, split=args.split, seed=args.seed, samples_per_context=args.samples,
                              top_p=args.top_p, temperature=args.temperature, repair=True, gaps=GAPS, batch_size=256,
                              max_tries=args.max_tries, dtype="fp32", condition=None if scenario else condition,
                              scenario=scenario)
    out = work / "-".join([market, condition.replace(":", "_"), *(v.replace(" ", "-") for v in _variant(args)),
                           args.model_sha[:8]])
    t0 = time.perf_counter()
    summary = generate_dataset(config, n=args.n, out=str(out), data=data, model=args.model, tokenizer=args.tokenizer,
                               progress=False)
    gen_s = time.perf_counter() - t0
    klines, source = klines_for(freq, data)
    rep = scenario_report(str(out), klines, source=source, repeats=args.repeats, epochs=args.epochs,
                          stress=condition == "stress", seed=args.seed, n=args.n_eval)
    return {"summary": {"hits": summary.hits, "generated": summary.generated, "candidates": summary.candidates,
                        "hit_rate": summary.hit_rate, "acceptance_cost": summary.acceptance_cost,
                        "generation_s": round(gen_s, 1)}, "report": rep.to_dict(), "lines": rep.lines()}


def _model_sha(model: str | None) -> str:
    from kronos_synth.model.hub import resolve_checkpoint
    from kronos_synth.model.pretrained import default_model_dir, weights_sha256

    return weights_sha256(resolve_checkpoint(model) if model else default_model_dir() / "model")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(CRYPTO_DATA_DIR))
    ap.add_argument("--heldout-dir", default="corpus-src/heldout-15m",
                    help="the corpus's held-out instruments at 15 min (`python recipes/pretrain.py heldout-data`)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--n", type=int, default=N_DEFAULT)
    ap.add_argument("--samples", type=int, default=4, help="samples per context")
    ap.add_argument("--max-tries", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-eval", type=int, default=None, help="discriminative n per side (default: largest)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", default=None, help="market (repeatable)")
    ap.add_argument("--condition", action="append", default=None, help=f"condition (repeatable; default: {CONDITIONS})")
    ap.add_argument("--split", default="test", choices=["train", "test"],
                    help="period of the contexts and of the real windows they are compared with")
    ap.add_argument("--top-p", type=float, default=1.0, help="nucleus (the protocols use 1.0; the CLI default 0.95)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--model", default=None, help="predictor folder (default: the embedded default, zero-shot)")
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--model-label", default="fine-tuned", help="how rows with --model are named")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.samples, args.repeats, args.epochs, args.max_tries = 16, 2, 2, 1, 4
    out = Path(args.out or RESULTS_DIR / ("quick/scenarios" if args.quick else "scenarios"))
    out.mkdir(parents=True, exist_ok=True)
    rows_file = out / "rows.json"
    rows = json.loads(rows_file.read_text()) if rows_file.exists() else {}
    args.model_sha = _model_sha(args.model)  # rows and generated sets of another model are not reused
    for market, (freq, data, folder) in MARKETS.items():
        if args.only and market not in args.only:
            continue
        if folder:
            folder = getattr(args, folder)
            if not list(Path(folder).glob(data)):
                print(f"{market}: skipped — no {data} in {folder}")
                continue
            data = str(Path(folder) / data)
        for condition in args.condition or CONDITIONS:
            name = f"{market} · {condition}" + (f" ({', '.join(_variant(args))})" if _variant(args) else "")
            key = settings_key({k: getattr(args, k) for k in ("n", "samples", "max_tries", "repeats", "epochs",
                                                                "n_eval", "seed", "model_sha")}
                               | {"condition": condition} | ({"variant": _variant(args)} if _variant(args) else {}))
            if rows.get(name, {}).get("key") == key:
                print(f"{name}: done")
                continue
            t0 = time.perf_counter()
            res = _row(market, freq, data, condition, args, out / "work")
            rows[name] = {"key": key, **res, "seconds": round(time.perf_counter() - t0, 1)}
            rows_file.write_text(json.dumps(rows, indent=1, default=float))
            print(f"{name}: " + "\n    ".join(res["lines"]))
    write_report(out, rows, args)


def write_report(out: Path, rows: dict, args) -> None:
    lines = ["# Conditioned generation and the stress pack", "",
             "Embedded default model, zero-shot; contexts from the test period (rows marked `split train`: the "
             "train period, which the embedded default was pretrained on); each set against the real windows of the "
             "same period meeting the same condition; top-p 1.0 unless marked. `python -m evaluation.bench_scenarios`.", "",
             "| market · condition | real windows meeting it | hit rate | candidates per sequence | "
             "discriminative error | horizon return q05 / q50 / q95 (synthetic · real) | 1 % ES generated / historical / GARCH |",
             "|---|---:|---:|---:|---:|---|---|"]
    for name, r in rows.items():
        rep, s = r["report"], r["summary"]
        d = rep.get("discriminative")
        hw = d["error"]["half_width"] if d else None
        disc = "—" if not d else f"{d['error']['mean']:.3f}" + (f" ± {hw:.3f}" if hw is not None else " (one repeat)")
        sy, re_ = rep["synthetic"], rep["real"]
        q = (f"{sy['return_q05']:+.3f} / {sy['return_q50']:+.3f} / {sy['return_q95']:+.3f} · "
             f"{re_['return_q05']:+.3f} / {re_['return_q50']:+.3f} / {re_['return_q95']:+.3f}")
        es = "—"
        if rep.get("stress"):
            st = {x["set"]: x for x in rep["stress"]["rows"]}
            es = (f"{st['generated']['es_1']:.3f} / {st['historical (real continuations)']['es_1']:.3f} / "
                  f"{st['GARCH(1,1)-t']['es_1']:.3f} (ratio {rep['stress']['es1_ratio_to_historical']:.2f}"
                  + ("" if "es1_ratio_interval" not in rep["stress"] else
                     ", 95 % bootstrap {:.2f}–{:.2f}".format(*rep["stress"]["es1_ratio_interval"])) + ")")
        lines.append(f"| {name} | {rep['n_real']} | {100 * s['hit_rate']:.1f} % ({s['hits']}/{s['generated']}) | "
                     f"{s['acceptance_cost']:.2f} | {disc} | {q} | {es} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
