"""`evaluate` end to end: real train-period windows written as a schema-v1 dataset play "synthetic"."""

import json
import os

import numpy as np
import pytest

from kronos_synth.cli import main
from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.sources import load_klines
from kronos_synth.data.splits import extract_windows, split_by_time
from kronos_synth.data.synthetic import ParquetSequenceWriter, read_synthetic, sequences_to_frame
from kronos_synth.metrics.evaluate import evaluate_all
from kronos_synth.report import write_report


def _write_real_as_synthetic(out, *, n=120, lookback=96, horizon=35, seed=0) -> str:
    """Train-period sp500 windows (context + continuation) written like a generator's output."""
    df = clean_klines(load_klines("sp500-daily"), "daily").frame
    train, _ = split_by_time(df, test_fraction=0.2, gap=horizon)
    w = extract_windows(train, lookback + horizon, stride=2)
    idx = np.sort(np.random.default_rng(seed).choice(len(w), n, replace=False))
    meta = {"generator": "real-train-period", "freq": "daily", "lookback": lookback, "horizon": horizon,
            "seed": seed}
    writer = ParquetSequenceWriter(out, n=n, sequences_per_part=50, metadata=meta)
    for k in writer.pending_parts():
        a, b = writer.part_range(k)
        sel = idx[a:b]
        writer.write_part(k, sequences_to_frame(w.values[sel, lookback:], w.timestamps[sel, lookback:],
                                                np.arange(a, b), w.symbols[sel], w.timestamps[sel, lookback - 1]))
    return str(out)


@pytest.mark.slow
def test_evaluate_all_end_to_end(tmp_path, capsys):
    syn = _write_real_as_synthetic(tmp_path / "syn")
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "all", "--real", "sp500-daily", "--synthetic", syn, "--out", str(out), "--n", "120",
              "--repeats", "2", "--epochs", "1", "--no-progress"])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "discriminative [paper] real (test, disjoint halves)" in printed and "report:" in printed
    for f in ("report.md", "report.json", "tsne.png", "pca.png", "returns_kde.png", "stylized_acf.png"):
        assert (out / f).stat().st_size > 1000, f
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["discriminative"]) == {"synthetic", "real (train period)", "real (test, disjoint halves)",
                                          "shuffled bars"}
    assert len(rep["tstr"]["synthetic"]["runs"]) == 2
    assert rep["settings"]["window"] == 35 and rep["settings"]["tstr_lookback"] == 30
    assert rep["data"]["n_synthetic_used"] == 120 and rep["data"]["n_real_test_used"] == 120
    assert rep["provenance"]["real_sha256"] and len(rep["provenance"]["synthetic_sha256"]) == 4  # 3 parts + manifest
    assert rep["provenance"]["versions"]["torch"]
    # the "synthetic" sequences ARE train windows and their real continuations:
    assert rep["memorization"]["share_below_real_p1"] == 1.0
    assert all(abs(b["gap"]) < 1e-12 for b in rep["drift"]["buckets"])
    assert rep["validity"][0]["invalid_bars"] == 0
    md = (out / "report.md").read_text()
    assert "shuffled bars" in md and "TRTR" in md and "Hill tail index" in md and "![tsne.png](tsne.png)" in md


def test_evaluate_refuses_mismatched_synthetic(tmp_path, capsys):
    syn = _write_real_as_synthetic(tmp_path / "syn", n=20, horizon=30)  # daily windows are 35 bars
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "tstr", "--real", "sp500-daily", "--synthetic", syn, "--freq", "daily",
              "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "30 bars" in err
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "stylized", "--real", "eurusd-1h", "--synthetic", syn, "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "1h bars" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_same_seed_same_report_bytes(tmp_path):
    ds = read_synthetic(_write_real_as_synthetic(tmp_path / "syn", n=60))
    real = load_klines("sp500-daily")
    texts = []
    for k in range(2):
        res = evaluate_all(real, ds, metrics=("discriminative", "validity", "stylized"), n=60, repeats=1, epochs=1,
                           seed=7)
        files = write_report(res, str(tmp_path / f"r{k}"), real_source="sp500-daily",
                             synthetic_source=str(tmp_path / "syn"))
        texts.append((open(files.json, "rb").read(), open(files.markdown, "rb").read(),
                      open(os.path.join(tmp_path / f"r{k}", "stylized_acf.png"), "rb").read()))
    assert texts[0] == texts[1]


def test_discriminative_split_uses_the_times_of_both_sets(tmp_path):
    syn = read_synthetic(_write_real_as_synthetic(tmp_path / "syn", n=120))
    spans = syn.spans()
    bars = syn.generated().sort_values(["sequence_id", "step"])
    first = bars.groupby("sequence_id")["timestamp"].min().to_numpy().astype("int64")
    assert spans.shape == (120, 2) and (spans[:, 0] == first).all() and (spans[:, 1] > spans[:, 0]).all()
    res = evaluate_all(load_klines("sp500-daily"), syn, metrics=("discriminative",), n=120, repeats=1, epochs=1,
                       calibration=False)
    split = res.discriminative["synthetic"].settings["split"]
    assert "real, synthetic by time" in split
    # a bare array without times: the synthetic side falls back to random halves
    res = evaluate_all(load_klines("sp500-daily"), syn.to_array(("open", "high", "low", "close", "volume", "amount")),
                       freq="daily", metrics=("discriminative",), n=120, repeats=1, epochs=1, calibration=False)
    assert "real by time" in res.discriminative["synthetic"].settings["split"]
    assert "synthetic: random halves" in res.discriminative["synthetic"].settings["split"]


def test_peers_group_reports_every_row(tmp_path):
    ds = read_synthetic(_write_real_as_synthetic(tmp_path / "syn", n=120))
    res = evaluate_all(load_klines("sp500-daily"), ds, metrics=("peers",), n=120, repeats=1, seed=3)
    assert list(res.peers) == ["synthetic", "real (train period)", "real (test, disjoint halves)", "shuffled bars"]
    syn, shuffled = res.peers["synthetic"], res.peers["shuffled bars"]
    # the "synthetic" sequences are real train-period windows: closer to the test windows than shuffled bars
    # (not close everywhere: sp500's train period holds calmer and wilder regimes than its test period)
    assert syn.context_fid.score.mean < shuffled.context_fid.score.mean
    assert syn.w1_at(1).w1_scaled < shuffled.w1_at(1).w1_scaled
    assert syn.context_fid.n_reference == res.data["n_real_train_used"] == 120
    files = write_report(res, str(tmp_path / "r"), real_source="sp500-daily", synthetic_source=str(tmp_path / "syn"))
    rep = json.loads(open(files.json).read())
    assert rep["peers"]["synthetic"]["w1"][2]["k"] == 20 and rep["settings"]["peer_repeats"] == 1
    md = open(files.markdown).read()
    assert "## Peer metrics" in md and "Context-FID embedding" in md and "| shuffled bars |" in md
