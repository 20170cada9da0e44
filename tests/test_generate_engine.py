import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_synth.data.errors import InputError
from kronos_synth.data.synthetic import ParquetSequenceWriter, read_synthetic
from kronos_synth.generate.api import generate_dataset
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.model import Kronos, KronosTokenizer
from tests._tiny import TOK, save_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A seeded random tokenizer + predictor pair saved as a kronos-synth model folder."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


CALL = {"n", "out", "data", "dataset", "model", "tokenizer", "ray", "progress", "log"}


def _gen(tiny_model, out, **kw):
    args = dict(n=24, freq="daily", dataset="goog-daily", model=tiny_model, lookback=40, horizon=10,
                seed=3, dtype="fp32", out=str(out), progress=False)
    args.update(kw)
    settings = {k: v for k, v in args.items() if k not in CALL}
    return generate_dataset(GenerationConfig(**settings), **{k: v for k, v in args.items() if k in CALL})


def test_same_seed_same_data_across_batch_sizes(tiny_model, tmp_path):
    s16 = _gen(tiny_model, tmp_path / "a", batch_size=16, sequences_per_part=10)
    s256 = _gen(tiny_model, tmp_path / "b", batch_size=256, sequences_per_part=10)
    a, b = read_synthetic(tmp_path / "a").frame, read_synthetic(tmp_path / "b").frame
    pd.testing.assert_frame_equal(a, b)
    assert a["sequence_id"].nunique() == 24 and len(a) == 24 * 10
    assert s16.sequences == s256.sequences == 24
    # another seed gives other data
    _gen(tiny_model, tmp_path / "c", seed=4)
    c = read_synthetic(tmp_path / "c").frame
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


def test_path_temperature_spread_is_batch_invariant_and_widens_path_volatility(tiny_model, tmp_path):
    """Per-path temperatures: same bytes at any batch size; the spread of the paths' volatility around
    their context's grows with it, while the typical path's volatility stays about where it was."""
    # The embedded default (a random tiny predictor's tokens have no volatility a temperature could widen).
    kw = dict(n=256, samples_per_context=16, contexts_per_symbol=16, horizon=20, model=None, tokenizer=None)
    _gen(tiny_model, tmp_path / "a", batch_size=16, temperature_spread=0.6, **kw)
    _gen(tiny_model, tmp_path / "b", batch_size=256, temperature_spread=0.6, **kw)
    a, b = read_synthetic(tmp_path / "a"), read_synthetic(tmp_path / "b")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.metadata["temperature_spread"] == 0.6
    _gen(tiny_model, tmp_path / "c", temperature_spread=0.0, **kw)
    c = read_synthetic(tmp_path / "c")
    assert "temperature_spread" not in c.metadata  # plain runs keep their keys

    def log_path_vol(frame):  # (contexts, 16): sequences k·16 … k·16 + 15 continue context k
        r = np.diff(np.log(frame["close"].to_numpy().reshape(-1, 20)), axis=1)
        return np.log(r.std(axis=1)).reshape(-1, 16)

    va, vc = log_path_vol(a.frame), log_path_vol(c.frame)
    within_a, within_c = (v - v.mean(1, keepdims=True) for v in (va, vc))
    assert within_a.std() > 1.2 * within_c.std()
    assert abs(np.median(va) - np.median(vc)) < 0.5 * within_c.std()


def test_volatility_spread_scales_each_paths_moves_and_keeps_its_shape(tiny_model, tmp_path):
    """Same tokens, each path's price moves (gap, body, wicks) times its scale; volume untouched; E[scale²] = 1."""
    from kronos_synth.generate.sampler import path_volatility_scales

    kw = dict(n=64, samples_per_context=8, contexts_per_symbol=8, horizon=12, model=None, tokenizer=None)
    _gen(tiny_model, tmp_path / "a", volatility_spread=0.4, **kw)
    _gen(tiny_model, tmp_path / "c", **kw)
    a, c = read_synthetic(tmp_path / "a"), read_synthetic(tmp_path / "c")
    assert a.metadata["volatility_spread"] == 0.4 and "volatility_spread" not in c.metadata
    scale = path_volatility_scales(0.4, 3, np.arange(64))
    ra, rc = (np.diff(np.log(d.frame["close"].to_numpy().reshape(64, 12)), axis=1) for d in (a, c))
    np.testing.assert_allclose(ra, rc * scale[:, None], rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(a.frame["volume"].to_numpy(), c.frame["volume"].to_numpy())
    big = path_volatility_scales(0.4, 3, np.arange(40_000))
    assert abs((big ** 2).mean() - 1) < 0.01 and abs(np.log(big).std() - 0.4) < 0.005
    with pytest.raises(InputError, match="volatility_spread needs a model of the geometry representation"):
        _gen(tiny_model, tmp_path / "t", volatility_spread=0.4)  # the tiny model is of the levels representation


def test_shared_context_prefill_gives_the_per_row_result(tiny_model, tmp_path, monkeypatch):
    """Samples of one context share one prefill; each row still gets exactly its alone-result."""
    import kronos_synth.generate.sampler as sampler

    calls = []
    real = sampler.KronosCache.rows

    def spy(self, lo, hi):
        calls.append(hi - lo)
        return real(self, lo, hi)

    monkeypatch.setattr(sampler.KronosCache, "rows", spy)
    _gen(tiny_model, tmp_path / "a", batch_size=12, samples_per_context=4)
    assert calls and max(calls) <= 3  # 12 rows = 3 contexts × 4 samples: 3 prefill rows, not 12
    monkeypatch.setattr(sampler.KronosCache, "rows", real)
    _gen(tiny_model, tmp_path / "b", batch_size=1, samples_per_context=4)
    a, b = read_synthetic(tmp_path / "a").frame, read_synthetic(tmp_path / "b").frame
    pd.testing.assert_frame_equal(a, b)
    # the four samples of a context differ from each other
    first = a[a["sequence_id"] < 4].pivot(index="step", columns="sequence_id", values="close")
    assert first.T.drop_duplicates().shape[0] == 4


def test_killed_run_resumes_to_exactly_n(tiny_model, tmp_path, monkeypatch):
    original = ParquetSequenceWriter.write_part
    calls = {"n": 0}

    def dying_write(self, index, frame, extra_metadata=None):
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the run is killed after its first two parts
        calls["n"] += 1
        return original(self, index, frame, extra_metadata)

    monkeypatch.setattr(ParquetSequenceWriter, "write_part", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _gen(tiny_model, tmp_path / "a", sequences_per_part=5)
    monkeypatch.setattr(ParquetSequenceWriter, "write_part", original)
    summary = _gen(tiny_model, tmp_path / "a", sequences_per_part=5)
    assert summary.parts_skipped == 2 and summary.parts_written == 3
    resumed = read_synthetic(tmp_path / "a").frame
    ids = resumed.groupby("sequence_id").size()
    assert list(ids.index) == list(range(24)) and (ids == 10).all()
    _gen(tiny_model, tmp_path / "b", sequences_per_part=5)
    pd.testing.assert_frame_equal(resumed, read_synthetic(tmp_path / "b").frame)


def test_output_is_schema_v1_with_calendar_and_context(tiny_model, tmp_path):
    _gen(tiny_model, tmp_path / "a", include_context=True, repair=True)
    ds = read_synthetic(tmp_path / "a")
    f = ds.frame
    assert ds.metadata["generator"] == "kronos" and ds.metadata["lookback"] == 40
    assert ds.metadata["temperature"] == 1.0 and ds.metadata["top_p"] == 0.95 and ds.metadata["seed"] == 3
    assert len(ds.metadata["model_sha256"]) == 64
    assert f["step"].min() == -40 and f["step"].max() == 9
    one = f[f["sequence_id"] == 0]
    ts = pd.DatetimeIndex(one["timestamp"])
    assert ts.is_monotonic_increasing and (ts.day_of_week < 5).all()  # business days continue
    gen = one[one["step"] >= 0]
    assert (gen["timestamp"] > gen["context_end"]).all()
    last_ctx = one.loc[one["step"] == -1]
    assert (last_ctx["timestamp"] == last_ctx["context_end"]).all()
    assert (f["symbol"] == "GOOG").all()
    # --repair: every bar valid in the output
    g = ds.generated()
    assert (g["high"] >= g[["open", "close"]].max(axis=1)).all()
    assert (g["low"] <= g[["open", "close"]].min(axis=1)).all()
    assert (g[["volume", "amount"]] >= 0).all().all()


def test_dataset_reads_with_duckdb(tiny_model, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    _gen(tiny_model, tmp_path / "a")
    con = duckdb.connect()
    rows = con.execute(
        f"select count(*), count(distinct sequence_id), min(step), max(step) "
        f"from read_parquet('{tmp_path / 'a'}/part-*.parquet')").fetchone()
    assert rows == (240, 24, 0, 9)
    desc = con.execute(f"describe select * from read_parquet('{tmp_path / 'a'}/part-*.parquet')").fetchall()
    types = {r[0]: r[1] for r in desc}
    assert types["sequence_id"] == "BIGINT" and types["step"] == "INTEGER"
    assert types["timestamp"].startswith("TIMESTAMP") and types["close"] == "DOUBLE"


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kronos_synth.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                        "HOME": str(cwd or "/tmp")})


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--n", "0"], "--n must be a positive"),
        (["--freq", "13min"], "13min"),
        (["--lookback", "5000"], "--lookback 5000 is longer than the model's context"),
        (["--freq", "5min"], "no embedded dataset has 5min bars"),
        (["--lookback", "0"], "--lookback must be a positive whole number"),
        (["--horizon", "0"], "--horizon must be a positive whole number"),
        (["--horizon", "600"], "--horizon 600 is longer than the model's context of 512 bars"),
        (["--lookback", "513"], "--lookback 513 is longer than the model's context"),
        (["--contexts-per-symbol", "0"], "--contexts-per-symbol must be a positive"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["--seed", "-1"], "--seed must be ≥ 0"),
        (["--device", "tpu"], "--device 'tpu' is unknown to torch"),
        (["--dtype", "fp16"], "--dtype 'fp16' is unknown"),
        (["--temperature-spread", "wide"], "expected a number or 'auto', got 'wide'"),
        (["--temperature-spread", "2.5"], "--temperature-spread must be in [0, 2]"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tiny_model, tmp_path, extra, needle):
    args = ["generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--out", str(tmp_path / "o")]
    for i in range(0, len(extra), 2):  # override
        j = args.index(extra[i]) if extra[i] in args else None
        if j is None:
            args += extra[i:i + 2]
        else:
            args[j + 1] = extra[i + 1]
    r = _cli(*args, cwd=tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr and needle in lines[0], r.stderr


@pytest.mark.slow
def test_auto_spread_is_chosen_on_validation_contexts_and_recorded(tiny_model, tmp_path):
    r = _cli("generate", "--n", "8", "--freq", "daily", "--model", tiny_model, "--lookback", "40", "--horizon", "10",
             "--temperature-spread", "auto", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("temperature spread "))
    chosen = float(line.split()[2].rstrip(":"))
    assert "lowest realised-volatility CRPS on 100 validation contexts (0: " in line and chosen in (0, 0.15, 0.3, 0.45, 0.6)
    assert read_synthetic(tmp_path / "o").metadata.get("temperature_spread", 0.0) == chosen


def test_lookback_longer_than_every_clean_segment(tiny_model, tmp_path):
    # 300 daily bars with a 100 % price jump in the middle: cleaning splits them into two segments of 150
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    close[150:] *= 2.0
    df = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=300), "open": close, "high": close * 1.01,
                       "low": close * 0.99, "close": close, "volume": 1000.0})
    df.to_csv(tmp_path / "jump.csv", index=False)
    r = _cli("generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--data", str(tmp_path / "jump.csv"),
             "--split", "all", "--lookback", "200", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "jump.csv" in r.stderr and "longer than every clean segment" in r.stderr and "150 bars" in r.stderr
    assert not (tmp_path / "o").exists()


def test_mismatched_tokenizer_and_foreign_output_folder(tiny_model, tmp_path):
    torch.manual_seed(1)
    KronosTokenizer(**{**TOK, "s1_bits": 6, "s2_bits": 6}).save_pretrained(tmp_path / "tok6")
    r = _cli("generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--tokenizer",
             str(tmp_path / "tok6"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "s1_bits" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    base = ["generate", "--n", "4", "--freq", "daily", "--lookback", "30", "--horizon", "5", "--model",
            tiny_model, "--out", str(tmp_path / "run"), "--dtype", "fp32"]
    first = _cli(*base, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    other = _cli(*base, "--seed", "9", cwd=tmp_path)
    assert other.returncode == 2 and "different run" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_bf16_and_fp32_sample_the_same_distribution(tiny_model):
    model = Kronos.from_pretrained(tiny_model)
    g = torch.Generator().manual_seed(0)
    s1 = torch.randint(0, 16, (64, 50), generator=g)
    s2 = torch.randint(0, 16, (64, 50), generator=g)
    stamp = torch.zeros(64, 50, 5)
    with torch.no_grad():
        p32 = torch.softmax(model.decode_s1(s1, s2, stamp)[0], -1)
        p16 = torch.softmax(model.to(torch.bfloat16).decode_s1(s1, s2, stamp)[0].float(), -1)
    tv = 0.5 * (p32 - p16).abs().sum(-1)
    assert tv.mean() < 0.02 and tv.max() < 0.1


def test_out_under_a_regular_file_is_one_line_and_leaves_nothing(tiny_model, tmp_path):
    (tmp_path / "file").write_text("x")
    r = _cli("generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--out",
             str(tmp_path / "file" / "o"), cwd=tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "a parent in the path is a file" in lines[0], r.stderr
    assert (tmp_path / "file").read_text() == "x"


def test_bad_input_leaves_no_output_folder(tiny_model, tmp_path):
    r = _cli("generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--lookback", "5000",
             "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and not (tmp_path / "o").exists()


def test_second_concurrent_writer_is_refused(tiny_model, tmp_path):
    from kronos_synth.data.locking import output_lock

    with output_lock(tmp_path / "o"):  # another writer holds the folder
        r = _cli("generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--out", str(tmp_path / "o"),
                 cwd=tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "another process is writing" in lines[0], r.stderr
    assert not any((tmp_path / "o").glob("part-*"))
    _gen(tiny_model, tmp_path / "o")  # once released, the folder is usable
    assert read_synthetic(tmp_path / "o").n_sequences == 24


def test_rerun_of_a_finished_run_says_it_is_complete(tiny_model, tmp_path):
    _gen(tiny_model, tmp_path / "a", sequences_per_part=10)
    again = _gen(tiny_model, tmp_path / "a", sequences_per_part=10)
    assert again.generated == 0 and again.parts_skipped == 3
    assert again.line() == f"24 sequences, 240 bars already complete in {tmp_path / 'a'} (3 parts); nothing to generate"


def test_gapless_contexts_give_bars_that_open_at_the_previous_close(tiny_model, tmp_path):
    """Exchange K-lines whose every open is the previous close: with gaps="context" the generated bars open
    at the previous close too, the first at the context's last close; closes are the model's, unchanged."""
    from kronos_synth.data import load_dataset

    df = load_dataset("crypto-15m")
    df = (df.frame if hasattr(df, "frame") else df)
    df = df[df["symbol"] == "BTCUSDT"].iloc[:400].copy()
    df["open"] = np.r_[df["open"].iloc[0], df["close"].to_numpy()[:-1]]  # a strictly gapless market
    df["high"] = np.maximum(df["high"], df["open"])
    df["low"] = np.minimum(df["low"], df["open"])
    csv = tmp_path / "btc.csv"
    df.to_csv(csv, index=False)
    kw = dict(freq="15min", dataset=None, data=str(csv), include_context=True, repair=True)
    _gen(tiny_model, tmp_path / "ctx", **kw)
    _gen(tiny_model, tmp_path / "raw", gaps="model", **kw)
    a, b = read_synthetic(tmp_path / "ctx"), read_synthetic(tmp_path / "raw")
    assert a.metadata["gaps"] == "context" and "gaps" not in b.metadata  # runs from before keep their keys
    fa = a.frame.sort_values(["sequence_id", "step"])
    fb = b.frame.sort_values(["sequence_id", "step"])
    np.testing.assert_array_equal(fa["close"].to_numpy(), fb["close"].to_numpy())
    o, c = fa["open"].to_numpy().reshape(24, -1), fa["close"].to_numpy().reshape(24, -1)
    np.testing.assert_array_equal(o[:, 1:], c[:, :-1])  # context bars (steps < 0) and generated ones alike
    assert (fb["open"].to_numpy().reshape(24, -1)[:, -10:] != c[:, -11:-1]).all()  # the model's own opens
    h, lo = fa["high"].to_numpy(), fa["low"].to_numpy()
    assert (h >= np.maximum(fa["open"], fa["close"])).all() and (lo <= np.minimum(fa["open"], fa["close"])).all()


def test_contexts_with_gaps_keep_the_models_opens(tiny_model, tmp_path):
    _gen(tiny_model, tmp_path / "ctx")
    _gen(tiny_model, tmp_path / "raw", gaps="model")
    a, b = read_synthetic(tmp_path / "ctx").frame, read_synthetic(tmp_path / "raw").frame
    pd.testing.assert_frame_equal(a, b)  # GOOG daily opens gap: nothing changes
