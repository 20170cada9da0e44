"""Corpus build (reader, cleaning, split, hold-out, embargo, manifest) and a tiny pretraining smoke run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _sim import bars_from_returns

from kronos_synth.cli import main
from kronos_synth.data.corpus import (
    CorpusConfig,
    Embargo,
    build_corpus,
    instrument_name,
    is_holdout,
    read_corpus_manifest,
)
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import get_preset


def _frame(n: int, freq: str, seed: int, start: str = "2022-01-03") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bars = bars_from_returns(rng.normal(0, 0.004, (1, n)), rng)[0]
    ts = pd.date_range(start, periods=n, freq=freq)
    return pd.DataFrame({"Time": ts, "Open": bars[:, 0], "High": bars[:, 1], "Low": bars[:, 2],
                         "Close": bars[:, 3], "Volume": bars[:, 4]})


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """Two source trees in the layouts the public corpora use."""
    root = tmp_path_factory.mktemp("src")
    binance = root / "binance"
    binance.mkdir()
    for i, sym in enumerate(["AAA_USDT", "BBB_USDT", "CCC_USDT"]):
        _frame(3000, "15min", i).rename(columns=str.lower).rename(columns={"time": "date"}).to_feather(
            binance / f"{sym}-15m.feather")
        _frame(2000, "1h", 10 + i).rename(columns=str.lower).rename(columns={"time": "date"}).to_feather(
            binance / f"{sym}-1h.feather")
        _frame(30, "7D", 20 + i).rename(columns=str.lower).rename(columns={"time": "date"}).to_feather(
            binance / f"{sym}-1w.feather")  # weekly: skipped
    markets = root / "markets"
    (markets / "forex" / "eurusd").mkdir(parents=True)
    (markets / "indices" / "spx").mkdir(parents=True)
    fx = _frame(1800, "4h", 30)
    fx.to_csv(markets / "forex" / "eurusd" / "EURUSD_H4.csv", sep="\t", index=False)  # tab-separated with header
    fx.iloc[:, :6].to_csv(markets / "forex" / "eurusd" / "AUDCAD240.csv", header=False, index=False,
                          date_format="%Y-%m-%d %H:%M")  # headerless MetaTrader export
    spx = _frame(1500, "1D", 31, start="2010-01-01")
    spx.loc[100, "Low"] = 0.0  # one broken bar: dropped, the file kept
    spx.to_parquet(markets / "indices" / "spx" / "USA500IDXUSD_D1.parquet")
    (markets / "indices" / "holdings.csv").write_text("Company,Weight\nApple,6.9\n")  # not K-lines
    fake = markets / "synthetic"  # a generated dataset left in the folder: never read as real data
    fake.mkdir()
    _frame(3000, "15min", 40).to_parquet(fake / "part-00000.parquet")
    (fake / "_manifest.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def corpus(sources: Path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus") / "c"
    config = CorpusConfig(holdout_fraction=0.2, seed=3, embargo=(Embargo.parse("USA500*@2011-01-01..2011-03-31"),))
    return out, build_corpus([f"crypto={sources / 'binance'}", str(sources / "markets")], out, config)


def test_instrument_names_strip_bar_size_suffixes() -> None:
    assert instrument_name("x/BTC_USDT-15m.feather") == "BTCUSDT"
    assert instrument_name("XAUUSD_D1.csv") == "XAUUSD"
    assert instrument_name("AAPLUSUSD_M15.csv") == "AAPLUSUSD"
    assert instrument_name("AUDCAD240.csv") == "AUDCAD"
    assert instrument_name("BTCUSDT_1h.csv.gz") == "BTCUSDT"


def test_holdout_hash_is_seeded_and_near_its_fraction() -> None:
    names = [f"SYM{i}" for i in range(4000)]
    share = np.mean([is_holdout(n, 0, 0.1) for n in names])
    assert 0.08 < share < 0.12
    assert [is_holdout(n, 0, 0.1) for n in names[:50]] == [is_holdout(n, 0, 0.1) for n in names[:50]]
    assert [is_holdout(n, 0, 0.1) for n in names] != [is_holdout(n, 1, 0.1) for n in names]


def test_manifest_lists_every_file_with_sha_counts_and_reason(corpus, sources: Path) -> None:
    out, manifest = corpus
    assert read_corpus_manifest(out) == json.loads((out / "manifest.json").read_text())
    kept = {f["path"]: f for f in manifest["files"]}
    skipped = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert len(kept) == 9 and len(skipped) == 5
    assert "synthetic dataset" in skipped["synthetic/part-00000.parquet"]
    assert all("weekly" in skipped[f"{s}_USDT-1w.feather"] for s in ("AAA", "BBB", "CCC"))
    assert "required column missing" in skipped["indices/holdings.csv"]
    f = kept["AAA_USDT-15m.feather"]
    assert f["sha256"] == hashlib.sha256((sources / "binance" / "AAA_USDT-15m.feather").read_bytes()).hexdigest()
    assert (f["instrument"], f["group"], f["freq"], f["rows_read"]) == ("AAAUSDT", "crypto", "15min", 3000)
    assert f["amount"].startswith("approximated")
    assert kept["forex/eurusd/AUDCAD240.csv"]["freq"] == "4h"  # headerless file read by position
    assert kept["forex/eurusd/EURUSD_H4.csv"]["group"] == "forex"
    spx = kept["indices/spx/USA500IDXUSD_D1.parquet"]
    assert spx["repaired"]["non_positive_price"] == 1
    n_embargo = int(((pd.date_range("2010-01-01", periods=1500) >= "2011-01-01")
                     & (pd.date_range("2010-01-01", periods=1500) <= "2011-03-31")).sum())
    assert spx["rows_embargoed"] == n_embargo == 90


def test_split_by_time_with_gap_and_whole_instruments_held_out(corpus) -> None:
    out, manifest = corpus
    for f in manifest["files"]:
        held = manifest["instruments"][f["instrument"]]["split"] == "holdout"
        assert ("holdout" in f) == held and ("train" in f) != held
        if "val" in f and f["val"]["rows"]:
            preset = get_preset(f["freq"])
            gap = pd.Timestamp(f["val"]["first"]) - pd.Timestamp(f["train"]["last"])
            assert gap >= preset.window * preset.timedelta  # one window of bars between the parts
    assert any(v["split"] == "holdout" for v in manifest["instruments"].values())
    # arrays: every window lies inside one instrument and its bars are consecutive in time
    for split, per in manifest["arrays"].items():
        for freq, counts in per.items():
            d = out / split / freq
            rows, ts = np.load(d / "rows.npy"), np.load(d / "timestamps.npy")
            starts, inst = np.load(d / "starts.npy"), np.load(d / "instrument.npy")
            assert rows.shape == (counts["rows"], 6) and len(starts) == len(inst) == counts["windows"]
            length = get_preset(freq).lookback + get_preset(freq).horizon + 1
            assert np.all(starts + length <= len(rows))
            assert np.all(np.diff(ts[starts[:, None] + np.arange(length)], axis=1) > 0)


def test_embargoed_bars_never_reach_the_arrays(corpus) -> None:
    out, manifest = corpus
    lo, hi = pd.Timestamp("2011-01-01").value, pd.Timestamp("2011-03-31").value
    for split in manifest["arrays"]:
        d = out / split / "daily"
        if d.is_dir():
            ts = np.load(d / "timestamps.npy")
            assert not np.any((ts >= lo) & (ts <= hi))


def test_corpus_cli_errors_are_one_line_exit_2(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["corpus", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "c")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such file or folder" in err
    with pytest.raises(SystemExit) as e:
        main(["corpus", "build", str(tmp_path), "--out", str(tmp_path / "c"), "--embargo", "EURUSD:2018"])
    assert e.value.code == 2 and "PATTERN@START..END" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="none of the 1 files .* gave usable K-lines"):
        build_corpus([str(bad)], tmp_path / "c-bad")
    assert not (tmp_path / "c-bad").exists() and not (tmp_path / "c-bad.partial").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a corpus folder"):
        build_corpus([str(tmp_path)], tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_balanced_draw_is_seeded_and_weighs_groups_equally(corpus) -> None:
    from kronos_synth.train.corpus import balanced_weights, load_corpus

    out, manifest = corpus
    td = load_corpus(out, max_val_windows=16)
    a, b = td.train.draw(0, 5, 8), td.train.draw(0, 5, 8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # 3 instruments of one group, 1 of another: each group gets half the probability
    inst = np.array([0] * 10 + [1] * 30 + [2] * 60 + [3] * 5)
    w = balanced_weights(inst, {0: "crypto", 1: "crypto", 2: "crypto", 3: "fx"})
    assert w.sum() == pytest.approx(1.0)
    assert w[inst == 3].sum() == pytest.approx(0.5)
    assert w[inst == 0].sum() == pytest.approx(w[inst == 2].sum()) == pytest.approx(1 / 6)


@pytest.mark.slow
def test_tiny_pretraining_on_a_corpus(corpus, tmp_path: Path) -> None:
    from kronos_synth.train import (
        PredictorTrainingConfig,
        TokenizerTrainingConfig,
        train_predictor,
        train_tokenizer,
    )
    from kronos_synth.train.corpus import load_corpus

    out, _ = corpus
    td = load_corpus(out, representation={"representation": "geometry", "center_returns": True},
                     max_val_windows=16)
    tok = train_tokenizer(td, tmp_path / "tok", TokenizerTrainingConfig(config="tiny", steps=6, batch_size=8,
                                                                        eval_every=3), progress=False)
    assert tok.result.finished and np.isfinite(tok.result.best_val_loss)
    side = json.loads((tmp_path / "tok" / "kronos_synth.json").read_text())
    assert side["freqs"] == list(td.freqs) and "freq" not in side
    pred = train_predictor(td, tmp_path / "pred", PredictorTrainingConfig(config="tiny", steps=6, batch_size=8,
                                                                          eval_every=3, lr=1e-3),
                           tokenizer=str(tmp_path / "tok"), progress=False)
    hist = pred.result.history
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]  # it learns something in 6 steps
    side = json.loads((tmp_path / "pred" / "kronos_synth.json").read_text())
    longest = max(get_preset(f).window for f in td.freqs)
    assert side["max_context"] == longest and side["freqs"] == list(td.freqs)
