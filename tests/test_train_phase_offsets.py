"""Phase-offset training data: 5-minute bars → 15-minute series at offsets 0, 5 and 10 min, one sequence each,
split on the same timestamps; validation on offset 0 only; the CLI flag and the protocol keys reach the library."""

import json

import numpy as np
import pandas as pd
import pytest

from evaluation import stages as st
from evaluation.protocol import BASELINES, ProtocolError, load_protocol, resolve_data, resolve_train_data
from evaluation.run import plan
from kronos_synth.cli import main
from kronos_synth.data.sources import phase_klines_for
from kronos_synth.train import prepare_training_data

LB, HZ = 24, 8  # windows of 33 bars: a few hundred per symbol and offset


START = pd.Timestamp("2024-01-01 06:00")  # days start at 00:00 after the first: 15-minute bins at :00, :15, …


def five_minute_bars(days: float, seed: int, symbols=("AAA", "BBB")) -> pd.DataFrame:
    """Random-walk 5-minute bars in January 2024 without jumps or zero volume (cleaning keeps every row)."""
    rng = np.random.default_rng(seed)
    n = int(days * 288)
    frames = []
    for s in symbols:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
        open_ = np.append(close[0], close[:-1])
        frames.append(pd.DataFrame({
            "symbol": s, "timestamps": pd.date_range(START, periods=n, freq="5min"), "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 1e-3, n)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 1e-3, n)), "close": close,
            "volume": rng.uniform(1, 10, n)}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def csv5(tmp_path_factory):
    path = tmp_path_factory.mktemp("phase") / "two_5m.csv"
    five_minute_bars(4, seed=0).to_csv(path, index=False)
    return str(path)


def _prepare(src, **kw):
    return prepare_training_data([src], freq="15min", lookback=LB, horizon=HZ, max_val_windows=10_000, **kw)


def _labels(stamps: np.ndarray) -> pd.DatetimeIndex:
    """Bar start times back from the time features (minute, hour, weekday, day, month) of January 2024 bars."""
    s = stamps.reshape(-1, 5).astype(int)
    return pd.DatetimeIndex([pd.Timestamp(2024, m, d, h, mi) for mi, h, _, d, m in s])


def test_phase_offsets_give_about_ratio_times_the_train_windows(csv5):
    plain, log = _prepare(csv5), []
    phased = _prepare(csv5, phase_offsets=True, log=log.append)
    phases = phased.sources[0].to_dict()["phase_offsets"]
    assert [p["offset"] for p in phases] == ["0min", "5min", "10min"]
    assert phases[0]["train_windows"] == len(plain.train) == 2 * (384 - 77 - 32 - 33 + 1)  # 486
    for p in phases[1:]:  # the other phases lose at most one bar at each end of the train period
        assert phases[0]["train_windows"] - 4 <= p["train_windows"] <= phases[0]["train_windows"]
    assert len(phased.train) == sum(p["train_windows"] for p in phases)
    assert 2.95 <= len(phased.train) / len(plain.train) <= 3.0
    assert phased.describe()["phase_offsets"] is True and "phase_offsets" not in plain.describe()
    assert "phase_offsets" not in plain.sources[0].to_dict()
    assert len(log) == 1 and "0min, 5min, 10min" in log[0]


def test_no_train_window_of_any_offset_reaches_the_test_period(csv5):
    td = _prepare(csv5, phase_offsets=True)
    sym = td.sources[0].symbols
    assert len({(s["train_last"], s["test_first"]) for s in sym}) == 1  # both symbols: the same split
    train_end = pd.Timestamp(sym[0]["train_last"]) + pd.Timedelta("15min")  # end of offset 0's last train bar
    test_first = pd.Timestamp(sym[0]["test_first"])
    rows = td.train.starts[:, None] + np.arange(td.window)
    starts = _labels(td.train.stamps[rows[:, 0]])
    ends = _labels(td.train.stamps[rows[:, -1]]) + pd.Timedelta("15min")
    assert ends.max() == train_end and train_end <= test_first - (LB + HZ) * pd.Timedelta("15min")
    # every offset contributes windows, and a window never mixes offsets (its bars are 15 min apart)
    assert set(starts.minute % 15) == {0, 5, 10}
    gaps = np.diff(td.train.stamps[rows][..., 0], axis=1) % 15
    assert (gaps == 0).all()


def test_validation_is_identical_with_and_without_phase_offsets(csv5):
    plain, phased = _prepare(csv5), _prepare(csv5, phase_offsets=True)
    for name in ("rows", "stamps", "starts"):
        np.testing.assert_array_equal(getattr(plain.val, name), getattr(phased.val, name))
    # offset 0 comes first in the train set, exactly as without the option
    n = len(plain.train.rows)
    np.testing.assert_array_equal(plain.train.rows, phased.train.rows[:n])
    np.testing.assert_array_equal(plain.train.starts, phased.train.starts[: len(plain.train)])
    assert len(phased.val) == len(plain.val) == 2 * (77 - 33 + 1)


def test_phase_offsets_do_nothing_on_bars_that_are_not_finer(tmp_path):
    df = five_minute_bars(4, seed=1, symbols=("AAA",))
    df["timestamps"] = pd.date_range("2024-01-01", periods=len(df), freq="15min")
    path = tmp_path / "a_15m.csv"
    df.to_csv(path, index=False)
    log = []
    phased = _prepare(str(path), phase_offsets=True, log=log.append)
    assert len(phased.train) == len(_prepare(str(path)).train)
    assert [p["offset"] for p in phased.sources[0].phases] == ["0min"]
    assert log == [f"phase offsets: no bars finer than 15min in {path} — one series per source (offset 0)"]
    frames, _ = phase_klines_for("daily", str(path))  # not intraday: one series
    assert list(frames) == [pd.Timedelta(0)]


def test_cli_flag_reaches_training_json(csv5, tmp_path, capsys):
    out = tmp_path / "tok"
    with pytest.raises(SystemExit) as e:
        main(["train", "tokenizer", "--data", csv5, "--freq", "15min", "--phase-offsets", "--lookback", str(LB),
              "--horizon", str(HZ), "--steps", "2", "--eval-every", "2", "--batch-size", "8", "--config", "tiny",
              "--out", str(out), "--no-progress"])
    assert e.value.code == 0, capsys.readouterr().err
    data = json.loads((out / "training.json").read_text())["data"]
    assert data["phase_offsets"] is True
    assert [p["offset"] for p in data["sources"][0]["phase_offsets"]] == ["0min", "5min", "10min"]
    assert data["train_windows"] == sum(p["train_windows"] for p in data["sources"][0]["phase_offsets"])
    assert "phase offsets 0min, 5min, 10min" in capsys.readouterr().err


def _folder_protocol(tmp_path, five: pd.DataFrame, fifteen_days: float):
    """A folder protocol over *_15m.csv files (the first `fifteen_days` of the 5-minute bars, resampled)."""
    from kronos_synth.data import resample_klines

    folder = tmp_path / "data"
    folder.mkdir()
    for s, part in five.groupby("symbol"):
        part.drop(columns="symbol").to_csv(folder / f"{s}_5m.csv", index=False)
        f15 = resample_klines(part.assign(amount=part["volume"] * part["close"]), "15min")
        f15 = f15[f15["timestamps"] < START + pd.Timedelta(days=fifteen_days)]
        f15.drop(columns="symbol").to_csv(folder / f"{s}_15m.csv", index=False)
    toml = tmp_path / "tiny-15m.toml"
    toml.write_text('name = "tiny-15m"\ndata = "*_15m.csv"\ndata_dir = true\nfreq = "15min"\n'
                    f'window = {HZ}\nlookback = {LB}\ngenerators = ["kronos"]\n'
                    '[kronos]\ninit = "scratch"\ntrain_data = "*_5m.csv"\nphase_offsets = true\n')
    proto = load_protocol(str(toml), quick=True)
    return proto, folder, resolve_data(proto, str(folder))[0]


def test_protocol_trains_on_train_data_at_every_offset(tmp_path):
    proto, folder, source = _folder_protocol(tmp_path, five_minute_bars(4, seed=2), fifteen_days=4)
    train_source, train_files = resolve_train_data(proto, str(folder))
    assert [f.rsplit("/", 1)[1] for f in train_files] == ["AAA_5m.csv", "BBB_5m.csv"]
    ctx = st.StageContext(proto=proto, out=str(tmp_path / "out"), source=source, train_source=train_source)
    td = st.training_data(ctx)
    assert td.phase_offsets and [p["offset"] for p in td.sources[0].phases] == ["0min", "5min", "10min"]
    assert td.validation == "train-tail"  # the protocol's checkpoints are never chosen on its test period
    assert 2.9 <= len(td.train) / td.sources[0].phases[0]["train_windows"] <= 3.0
    summary = st._training_data_summary(ctx, td)["training_data"]
    assert summary["phase_offsets"] and summary["train_windows"] == len(td.train)
    with pytest.raises(ProtocolError, match="matches no file"):
        resolve_train_data({**proto, "kronos": {**proto["kronos"], "train_data": "*_1m.csv"}}, str(folder))


def test_train_data_that_reaches_the_evaluation_test_period_is_refused(tmp_path):
    # the 15-minute files stop after 3 days: the 6 days of 5-minute bars (their first ~3.2 days train, the
    # train period's tail validates) train into the 15-minute files' test period (from day ~2.4)
    proto, folder, source = _folder_protocol(tmp_path, five_minute_bars(6, seed=2), fifteen_days=3)
    ctx = st.StageContext(proto=proto, out=str(tmp_path / "out"), source=source,
                          train_source=resolve_train_data(proto, str(folder))[0])
    with pytest.raises(ProtocolError, match="inside the evaluation's test period"):
        st.training_data(ctx)


def test_phase_offsets_and_train_data_rerun_the_training_stages_only():
    a = {s.name: s.key for s in plan(load_protocol("goog-daily", quick=True))}
    for over in ({"phase_offsets": True}, {"train_data": "sp500-daily"}):
        b = {s.name: s.key for s in plan(load_protocol("goog-daily", quick=True, overrides={"kronos": over}))}
        changed = {n for n in a if a[n] != b[n]}
        assert "tokenizer" in changed and "predictor" in changed and "generate" in changed
        assert not changed & {"data", "calibration", *(f"baseline:{g}" for g in BASELINES),
                              *(f"evaluate:{g}" for g in BASELINES)}
    # at their defaults the keys are those of a protocol without the options (finished stages stay valid)
    proto = load_protocol("goog-daily", quick=True)
    assert proto["kronos"]["phase_offsets"] is False and proto["kronos"]["train_data"] == ""
    for key in ("phase_offsets", "train_data"):
        del proto["kronos"][key]
    assert {s.name: s.key for s in plan(proto)} == a
