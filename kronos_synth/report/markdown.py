"""The Markdown tables of an evaluation report: every number with its interval, every setting printed."""

from __future__ import annotations

import json
import math

import numpy as np

from kronos_synth.metrics.calibration import DISJOINT_HALVES, TRAIN_PERIOD, row_label


def _n(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, list | tuple | np.ndarray):
        return "[" + ", ".join(_n(v, digits) for v in x) + "]"
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if x != 0 and (abs(x) < 10 ** -digits or abs(x) >= 1e5):
        return f"{x:.{digits}g}" if abs(x) >= 1e5 else f"{x:.2e}"
    return f"{x:.{digits}f}"


def _cell(x) -> str:
    return str(x).replace("|", "\\|")  # a literal | (as in |0.5 − acc|) would end the cell


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out + [""]


def render_markdown(result, *, title: str, plots: list[str], provenance: dict) -> str:
    s, d = result.settings, result.data
    lines = [f"# {title}", ""]
    period = "validation" if s.get("period") == "validation" else "test"  # validation: the train period's tail
    lines += [f"Real {period} windows used: {d['n_real_test_used']} of {d['n_real_test_available']} "
              f"({period} period {d['real_test_period'][0]} … {d['real_test_period'][1]}); "
              f"synthetic sequences used: {d['n_synthetic_used']} of {d['n_synthetic_available']}; "
              f"window {s['window']} bars at {s['freq']}. Intervals are 95 % t-intervals over "
              f"{s['repeats']} repeats (± half width).", ""]
    if result.notes:
        lines += ["**Notes**", ""] + [f"- {n}" for n in result.notes] + [""]

    period = s.get("period", "test")
    if result.discriminative:
        proto = s["protocol"]
        first = next(iter(result.discriminative.values()))
        lines += [f"## Fidelity: discriminative score ({'paper protocol' if proto == 'paper' else 'TimeGAN protocol'})",
                  "", f"Score: {first.score_name}. Calibration rows: `{row_label(DISJOINT_HALVES, period)}` must be "
                  "≈ 0.5 error, `shuffled bars` ≈ 0.", ""]
        rows = [[row_label(name, period), str(r.score), str(r.error), str(r.accuracy_real), str(r.accuracy_synthetic),
                 str(r.timegan_score), r.runs[0].n_train, r.runs[0].n_test]
                for name, r in result.discriminative.items()]
        lines += _table(["row", "score", "test error", "acc. real", "acc. synthetic", "|0.5 − acc| (TimeGAN conv.)",
                         "n train (real + syn.)", "n test (real + syn.)"], rows)
        lines += [f"Settings: `{json.dumps(first.settings, default=str)}`", ""]
    if result.predictive is not None:
        lines += ["### TimeGAN predictive score (train on synthetic, MAE on real; lower is better)", "",
                  f"MAE: {result.predictive.mae}", "",
                  f"Settings: `{json.dumps(result.predictive.settings, default=str)}`", ""]

    if result.tstr:
        lines += ["## Usefulness: TSTR", "", f"Forecaster windows: lookback {s['tstr_lookback']}, horizon "
                  f"{s['tstr_horizon']}. `{row_label(TRAIN_PERIOD, period)}` is TRTR (same number of real train "
                  "windows).", ""]
        rows = [[row_label(name, period), r.train_on, str(r.price_ic), str(r.price_rank_ic), str(r.return_ic), str(r.return_rank_ic),
                 str(r.mse), r.runs[0].n_train, r.runs[0].n_test] for name, r in result.tstr.items()]
        lines += _table(["row", "trained on", "price IC", "price RankIC", "return IC", "return RankIC",
                         "MSE (norm.)", "n train (real + syn.)", "n test (real + syn.)"], rows)
        lines += [f"Settings: `{json.dumps(next(iter(result.tstr.values())).settings, default=str)}`", ""]

    if result.diversity is not None:
        dv = result.diversity
        lines += ["## Diversity", "", *_table(
            ["n real", "n synthetic", f"k-NN precision (k={dv.k})", f"k-NN recall (k={dv.k})", "PCA variance (PC1, PC2)"],
            [[dv.n_real, dv.n_synthetic, _n(dv.precision), _n(dv.recall), _n(dv.pca_explained)]])]
        lines += [f"Settings: `{json.dumps(dv.settings, default=str)}`", ""]
    if result.memorization is not None:
        m = result.memorization
        lines += ["## Memorization", "", *_table(
            ["share of synthetic closer than real 1st pct.", "real p1 distance", "real median", "synthetic median",
             "n train windows"],
            [[_n(m.share_below_real_p1), _n(m.real_p1), _n(m.real_median), _n(m.synthetic_median), m.n_train]]),
            "≈ 0.01 means no copying; near 1 means the generator reproduces training windows.", ""]

    if result.validity:
        checks = list(dict.fromkeys(c for v in result.validity for c in v.counts))
        lines += ["## Validity (share of bars)", ""]
        rows = [[v.label, v.n_bars, *[f"{v.shares[c]:.4%} ({v.counts[c]})" if c in v.counts else "n/a"
                                      for c in checks], f"{v.invalid_share:.4%}"] for v in result.validity]
        lines += _table(["set", "bars", *checks, "any"], rows)
    if result.seam is not None:
        sm = result.seam
        lines += ["## Seam (first generated open / last context close − 1)", "", *_table(
            ["n", "mean |gap| synthetic", "mean |gap| real next bar", "KS statistic", "KS p-value",
             "synthetic q01/q50/q99", "real q01/q50/q99"],
            [[sm.n, _n(sm.synthetic_mean_abs_gap, 5), _n(sm.real_mean_abs_gap, 5), _n(sm.ks_statistic),
              _n(sm.ks_pvalue), _n([sm.synthetic_quantiles[k] for k in ("q01", "q50", "q99")], 5),
              _n([sm.real_quantiles[k] for k in ("q01", "q50", "q99")], 5)]])]
    if result.drift is not None:
        dr = result.drift
        lines += ["## Trend-conditional drift", "", f"Slope of (generated − real horizon return) on trend: "
                  f"{_n(dr.slope)} (negative = mean-reversion bias), n = {dr.n}.", ""]
        lines += _table(["trend quintile", "trend range", "n", "generated return", "real return", "gap"],
                        [[b.bucket + 1, f"{_n(b.trend_low, 4)} … {_n(b.trend_high, 4)}", b.n,
                          _n(b.generated_return, 5), _n(b.real_return, 5), _n(b.gap, 5)] for b in dr.buckets])
    if result.stylized is not None:
        st = result.stylized
        lines += ["## Stylized facts (close log returns, not z-scored)", "",
                  f"max lag {st.max_lag}; vector facts show |difference| as the mean over lags; baseline = "
                  "|real test − real train period|.", ""]
        lines += _table(["fact", "real", "synthetic", "|difference|", "real-vs-real baseline"],
                        [[r.description, _n(r.real), _n(r.synthetic), _n(r.abs_diff), _n(r.baseline)]
                         for r in st.rows])

    if result.peers:
        lines += _peer_lines(result.peers, period)

    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += ["## Settings", "", *_table(["setting", "value"], [[k, f"`{json.dumps(v, default=str)}`"]
                                                                 for k, v in sorted(s.items())])]
    lines += ["## Inputs and versions", "", *_table(["item", "value"],
                                                     [[k, f"`{json.dumps(v, default=str)}`"]
                                                      for k, v in sorted(provenance.items())])]
    return "\n".join(lines)


def _peer_lines(peers: dict, period: str = "test") -> list[str]:
    """The metrics other papers publish, one row per comparison (docs/protocol.md §7, "Peer metrics")."""
    first = next(iter(peers.values()))
    lags = [w.k for w in first.w1]
    lines = ["## Peer metrics (Context-FID, correlational, return W1, signature MMD)", "",
             f"Distances to the real {'validation' if period == 'validation' else 'test'} windows; ideal 0 (signature "
             f"p-value: not small). The `{row_label(TRAIN_PERIOD, period)}` and `{row_label(DISJOINT_HALVES, period)}` "
             "rows are the real-vs-real scale; `shuffled bars` must score far "
             f"from it (not on the correlational score, which ignores bar order). W1 in units of the real "
             f"k-return std; ACF and leverage: mean |difference| over lags 1…{first.max_lag}.", ""]
    rows = []
    for name, p in peers.items():
        w1 = {w.k: w.w1_scaled for w in p.w1}
        rows.append([row_label(name, period), "n/a" if p.context_fid is None else str(p.context_fid.score), _n(p.correlational, 4),
                     *[_n(w1.get(k)) for k in lags], _n(p.acf_returns), _n(p.acf_abs_returns), _n(p.leverage),
                     _n(p.gain_loss_ratio), _n(p.signature.mmd2, 4), _n(p.signature.p_value), p.n_real, p.n_synthetic])
    lines += _table(["row", "Context-FID", "correlational", *[f"W1/std k={k}" for k in lags], "ACF r", "ACF |r|",
                     "leverage", "gain/loss ratio", "signature MMD²", "signature p", "n real", "n compared"], rows)
    if first.context_fid is not None:
        lines += [f"Context-FID embedding: `{json.dumps(first.context_fid.settings, default=str)}`", ""]
    lines += [f"Signature: `{json.dumps(first.signature.settings, default=str)}`; "
              f"other settings: `{json.dumps(first.settings, default=str)}`", ""]
    return lines
