"""`kronos-synth augment`: real train windows + synthetic sequences, tagged, shuffled, written atomically."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kronos_synth.data.augment import (
    AugmentError,
    augment,
    augment_training_set,
    read_augmented,
    write_augmented,
)
from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.readers import read_klines
from kronos_synth.data.splits import split_by_time
from kronos_synth.data.synthetic import ParquetSequenceWriter, read_synthetic, sequences_to_frame


def _real_csv(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.r_[100.0, c[:-1]]
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.005, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.005, n))
    ts = pd.bdate_range("2010-01-01", periods=n)
    pd.DataFrame(dict(timestamps=ts, open=o, high=h, low=lo, close=c, volume=rng.uniform(1e3, 2e3, n))).to_csv(
        path, index=False)
    return str(path)


def _synthetic(out, n=120, h=35, seed=1):
    rng = np.random.default_rng(seed)
    c = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, h)), 1))
    o = c * (1 + rng.normal(0, 0.001, (n, h)))
    vals = np.stack([o, np.maximum(o, c) * 1.001, np.minimum(o, c) * 0.999, c, np.full((n, h), 7.0),
                     np.full((n, h), 350.0)], -1)
    ts = np.array([pd.bdate_range("2011-01-03", periods=h).to_numpy()] * n)
    w = ParquetSequenceWriter(out, n=n, sequences_per_part=64,
                              metadata={"generator": "kronos", "model": "tiny", "freq": "daily", "seed": seed})
    for k in w.pending_parts():
        a, b = w.part_range(k)
        w.write_part(k, sequences_to_frame(vals[a:b], ts[a:b], np.arange(a, b), "SYN", ts[a:b, 0]))
    return str(out)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug")
    return _real_csv(root / "real.csv"), _synthetic(root / "syn")


def test_counts_provenance_and_values(inputs):
    real, syn = inputs
    aug = augment_training_set(real, syn, ratio=0.5, max_real=80, seed=3)
    assert (aug.n_real, aug.n_synthetic, aug.window) == (80, 40, 35)
    f = aug.frame
    assert len(f) == 120 * 35 and sorted(f["sample_id"].unique()) == list(range(120))
    # Real rows are exactly the real bars starting at window_start.
    src = pd.read_csv(real, parse_dates=["timestamps"]).set_index("timestamps")
    one = f[(f["origin"] == "real")].groupby("sample_id").head(35)
    sid = one["sample_id"].iloc[0]
    rows = f[f["sample_id"] == sid]
    start = rows["window_start"].iloc[0]
    np.testing.assert_allclose(rows["close"].to_numpy(), src.loc[start:, "close"].to_numpy()[:35])
    assert rows["sequence_id"].isna().all() and rows["generator"].isna().all() and (rows["source"] == real).all()
    # Synthetic rows are the synthetic dataset's bars of their sequence id.
    ds = read_synthetic(syn).frame
    srows = f[f["origin"] == "synthetic"]
    assert (srows["generator"] == "kronos:tiny").all() and srows["window_start"].isna().all()
    sid = int(srows["sequence_id"].iloc[0])
    got = srows[srows["sequence_id"] == sid].sort_values("step")
    np.testing.assert_array_equal(got["open"].to_numpy(), ds.loc[ds["sequence_id"] == sid, "open"].to_numpy())
    assert srows.groupby("sample_id")["sequence_id"].first().is_unique  # drawn without replacement
    # Shuffled: origins are interleaved, not a real block followed by a synthetic block.
    origins = aug.origins()
    assert (origins == "synthetic").sum() == 40 and not (origins[:80] == "real").all()
    assert 5 < (origins[:60] == "synthetic").sum() < 35  # roughly a third of any stretch is synthetic
    assert aug.to_array().shape == (120, 35, 6)


def test_real_windows_come_from_the_train_period_only(inputs):
    real, syn = inputs
    aug = augment_training_set(real, syn, ratio=0.1, seed=0)
    frame = clean_klines(read_klines(real), "daily").frame
    train, test = split_by_time(frame, test_fraction=0.2, gap=35)
    last_train = train["timestamps"].max()
    real_rows = aug.frame[aug.frame["origin"] == "real"]
    assert real_rows["timestamp"].max() == last_train  # every train window is used (stride 1) …
    assert real_rows["timestamp"].max() < test["timestamps"].min()  # … and none reaches the test period
    assert aug.n_real == len(train) - 35 + 1
    assert aug.n_synthetic == round(0.1 * aug.n_real)


def test_seeded_and_deterministic_bytes(inputs, tmp_path):
    real, syn = inputs
    a = augment(real, syn, ratio=1, max_real=50, seed=5, out=str(tmp_path / "a.parquet"))
    augment(real, syn, ratio=1, max_real=50, seed=5, out=str(tmp_path / "b.parquet"))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    c = augment_training_set(real, syn, ratio=1, max_real=50, seed=6)
    assert not np.array_equal(a.origins(), c.origins())
    back = read_augmented(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(back.frame, a.frame, check_dtype=False)
    assert back.metadata["ratio"] == 1.0 and back.metadata["n_synthetic"] == 50
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_window_cuts_synthetic_sequences_and_csv_roundtrip(inputs, tmp_path):
    real, syn = inputs
    aug = augment(real, syn, ratio=2, max_real=10, window=20, seed=0, out=str(tmp_path / "t.csv"))
    assert aug.window == 20 and aug.n_synthetic == 20
    back = read_augmented(tmp_path / "t.csv")
    assert back.frame["step"].max() == 19 and set(back.frame["origin"]) == {"real", "synthetic"}
    np.testing.assert_allclose(back.to_array(), aug.to_array())
    ds = read_synthetic(syn).frame
    sid = int(aug.frame.loc[aug.frame["origin"] == "synthetic", "sequence_id"].iloc[0])
    first20 = ds[(ds["sequence_id"] == sid) & (ds["step"] < 20)]["close"].to_numpy()
    got = aug.frame[aug.frame["sequence_id"] == sid]["close"].to_numpy()
    np.testing.assert_array_equal(got, first20)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(ratio=-0.5), "ratio must be"),
    (dict(ratio=1.0), "generate more"),           # 195 real windows, only 120 synthetic sequences
    (dict(ratio=0.5, window=40), "longer than the synthetic"),
    (dict(ratio=0.5, max_real=0), "max_real must be"),
])
def test_bad_arguments_raise_input_errors(inputs, kwargs, needle):
    real, syn = inputs
    with pytest.raises(AugmentError, match=needle):
        augment_training_set(real, syn, **kwargs)


def test_failed_write_keeps_the_old_file(inputs, tmp_path):
    real, syn = inputs
    out = tmp_path / "keep.parquet"
    out.write_bytes(b"old")
    with pytest.raises(AugmentError):
        augment(real, syn, ratio=5, out=str(out))
    assert out.read_bytes() == b"old"
    with pytest.raises(AugmentError, match="is a folder"):
        write_augmented(augment_training_set(real, syn, ratio=0.1), tmp_path)


def _cli(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "kronos_synth.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)  # a guard against hangs; a loaded CI box can take minutes to import torch


def test_cli_writes_and_reports_errors_in_one_line(inputs, tmp_path):
    real, syn = inputs
    r = _cli("augment", "--real", real, "--synthetic", syn, "--ratio", "0.5", "--max-real", "20", "--format",
             "csv", "--out", "mix.dat", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "20 real + 10 synthetic windows of 35 bars" in r.stdout
    assert pd.read_csv(tmp_path / "mix.dat")["origin"].value_counts().to_dict() == {"real": 700, "synthetic": 350}
    bad = _cli("augment", "--real", real, "--synthetic", str(tmp_path / "none"), "--ratio", "1", "--out", "x.parquet",
               cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.parquet").exists()
