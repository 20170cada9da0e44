"""The validation period: generate from the train period's head, score against its tail, never read the test period."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from kronos_synth.cli import cli
from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.datasets import load_dataset
from kronos_synth.data.frequency import get_preset
from kronos_synth.data.panels import aligned_panel
from kronos_synth.data.splits import split_by_time, split_part
from kronos_synth.generate.contexts import build_context_pool
from kronos_synth.metrics.evaluate import EvaluationInputError, evaluate_all, split_real

LB, H = 40, 10


@pytest.fixture(scope="module")
def goog():
    return load_dataset("goog-daily")


def test_train_head_is_the_train_part_split_once_more(goog):
    frame = clean_klines(goog, "daily").frame
    train = split_by_time(frame, test_fraction=0.2, gap=LB + H)[0]
    head = split_part(frame, "train-head", test_fraction=0.2, gap=LB + H)
    pd.testing.assert_frame_equal(head, split_by_time(train, test_fraction=0.2, gap=LB + H)[0])
    assert len(head) == len(train) - (LB + H) - round(0.2 * len(train))
    assert split_part(frame, "all", gap=LB + H) is frame


def test_head_contexts_end_before_the_validation_windows_and_those_before_the_test_period(goog):
    preset = get_preset("daily")
    pool = build_context_pool(goog, preset, LB, H, split="train-head")
    val = split_real(goog, freq=preset, window=H, period="validation")
    test = split_real(goog, freq=preset, window=H)
    val_first, test_first = (pd.Timestamp(int(x.test.spans()[:, 0].min())) for x in (val, test))
    assert pd.Timestamp(pool.timestamps.max()) < val_first  # a context's last bar precedes the first validation bar
    assert pd.Timestamp(int(val.test.spans()[:, 1].max())) < test_first  # nothing of the test period is scored
    assert val.frame["timestamps"].max() < test_first  # nor kept
    assert len(val.test) < len(test.train)
    with pytest.raises(EvaluationInputError, match="period must be one of test, validation"):
        split_real(goog, freq=preset, window=H, period="holdout")


def test_panels_take_the_head_of_the_shared_timeline():
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2024-01-01", periods=400, freq="15min")
    rows = []
    for sym in ("AAA", "BBB"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, len(stamps))))
        rows.append(pd.DataFrame({"timestamps": stamps, "open": close, "high": close * 1.001, "low": close * 0.999,
                                  "close": close, "volume": 1.0 + rng.random(len(stamps)), "symbol": sym}))
    klines = pd.concat(rows, ignore_index=True)
    klines["amount"] = klines["volume"] * klines["close"]
    train = aligned_panel(klines, ("AAA", "BBB"), "15min", split="train", gap=8)
    head = aligned_panel(klines, ("AAA", "BBB"), "15min", split="train-head", gap=8)
    n = len(train.timestamps)
    np.testing.assert_array_equal(head.timestamps, train.timestamps[:n - round(0.2 * n) - 8])
    val = aligned_panel(klines, ("AAA", "BBB"), "15min", split="validation", gap=8)
    np.testing.assert_array_equal(val.timestamps, train.timestamps[n - round(0.2 * n):])


def test_evaluate_scores_the_validation_period_from_the_cli(goog, tmp_path):
    runner = CliRunner()
    gen = runner.invoke(cli, ["generate", "--n", "24", "--freq", "daily", "--data", "goog-daily", "--lookback", "40",
                              "--horizon", "30", "--split", "train-head", "--out", str(tmp_path / "synth"),
                              "--no-progress"])
    assert gen.exit_code == 0, gen.output
    ev = runner.invoke(cli, ["evaluate", "validity", "--real", "goog-daily", "--synthetic", str(tmp_path / "synth"),
                             "--period", "validation", "--out", str(tmp_path / "rep")])
    assert ev.exit_code == 0, ev.output
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Real validation windows used" in text
    bad = runner.invoke(cli, ["evaluate", "validity", "--real", "goog-daily", "--synthetic", str(tmp_path / "synth"),
                              "--period", "holdout", "--out", str(tmp_path / "rep2")])
    assert bad.exit_code == 2 and "holdout" in bad.output and not (tmp_path / "rep2").exists()


def test_evaluate_all_records_the_period(goog):
    preset = get_preset("daily")
    rng = np.random.default_rng(1)
    test = split_real(goog, freq=preset, window=35)
    syn = test.train.values[rng.choice(len(test.train), 40, replace=False)]
    res = evaluate_all(goog, syn, freq="daily", metrics=("validity",), period="validation", calibration=False)
    assert res.settings["period"] == "validation" and "validation period" in res.settings["real_windows"]
    assert pd.Timestamp(res.data["real_test_period"][1]) < pd.Timestamp(int(test.test.spans()[:, 0].min()))


def test_validation_reports_name_their_calibration_rows_by_period(goog, tmp_path):
    from kronos_synth.metrics.calibration import DISJOINT_HALVES, TRAIN_PERIOD, row_label
    from kronos_synth.metrics.evaluate import summary_lines
    from kronos_synth.report import write_report

    assert row_label(DISJOINT_HALVES) == DISJOINT_HALVES and row_label(TRAIN_PERIOD, "test") == TRAIN_PERIOD
    syn = split_real(goog, freq=get_preset("daily"), window=35).train.values[:60]
    res = evaluate_all(goog, syn, freq="daily", metrics=("discriminative",), period="validation", repeats=1,
                       epochs=1, n=40, tsne=False)
    assert set(res.discriminative) >= {TRAIN_PERIOD, DISJOINT_HALVES}  # report.json keys stay the same
    lines = "\n".join(summary_lines(res))
    assert "real (validation, disjoint halves)" in lines and "real (train period's head)" in lines
    assert "(test, disjoint halves)" not in lines
    write_report(res, str(tmp_path / "rep"), real_source="goog-daily")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| real (validation, disjoint halves) |" in md and "(test, disjoint halves)" not in md
