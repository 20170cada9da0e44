"""docs/protocol.md §5: the calibration rows as tests: real-vs-real must score ≈ 0.5, shuffled bars ≈ 0."""

import numpy as np
import pytest

from kronos_synth.data.sources import load_klines
from kronos_synth.data.splits import extract_windows
from kronos_synth.metrics.calibration import DISJOINT_HALVES, SHUFFLED, TRAIN_PERIOD, discriminative_table


@pytest.fixture(scope="module")
def sp500_windows() -> np.ndarray:
    return extract_windows(load_klines("sp500-daily"), 35).values


def test_discriminative_calibration_rows_on_sp500(sp500_windows):
    # 4996 windows → disjoint halves of 2498, each split again into train/test halves: n = 400 + 400.
    table = discriminative_table(sp500_windows, None, None, n=400, repeats=2, epochs=20, seed=0)
    assert set(table) == {DISJOINT_HALVES, SHUFFLED}
    halves, shuffled = table[DISJOINT_HALVES], table[SHUFFLED]
    assert 0.40 <= halves.error.mean <= 0.60
    assert shuffled.error.mean <= 0.15
    assert halves.runs[0].n_train == 800 and halves.runs[0].n_test == 800
    # the TimeGAN convention comes from the same predictions
    for run in halves.runs + shuffled.runs:
        assert run.timegan_score == pytest.approx(abs(0.5 - run.accuracy))
        assert run.error == pytest.approx(1 - run.accuracy)


def test_discriminative_detects_a_shifted_set(sp500_windows):
    # synthetic = the same windows with a doubled spread between high and low: trivially detectable
    fake = sp500_windows.copy()
    mid = (fake[..., 1] + fake[..., 2]) / 2
    fake[..., 1] = mid + 3 * (fake[..., 1] - mid)
    fake[..., 2] = mid + 3 * (fake[..., 2] - mid)
    table = discriminative_table(sp500_windows[:2000], fake[2000:4000], sp500_windows[2000:4000], n=300,
                                 repeats=1, epochs=15, seed=1)
    assert table["synthetic"].error.mean < 0.2
    assert TRAIN_PERIOD in table


def test_timegan_protocol_reports_abs_half_minus_accuracy(rng):
    from kronos_synth.metrics.discriminative import discriminative_score

    real = rng.normal(size=(200, 12, 4))
    fake = rng.normal(size=(200, 12, 4)) + 2.0
    res = discriminative_score(real, fake, protocol="timegan", repeats=2, iterations=150, seed=3)
    assert res.protocol == "timegan"
    assert res.score.mean == pytest.approx(res.timegan_score.mean)
    assert res.score.mean > 0.4  # shifted by 2 sigma: accuracy ≈ 1
    assert res.runs[0].n_test == 80
    assert res.settings["classifier"].startswith("GRU(hidden=2)")


def _stride1_spans(n: int, length: int, start: int = 0) -> np.ndarray:
    t = np.arange(start, start + n, dtype=np.int64)
    return np.stack([t, t + length - 1], 1)


def test_time_blocks_keep_train_and_test_windows_apart():
    from kronos_synth.metrics.discriminative import time_block_sides

    real, other = _stride1_spans(1000, 35), _stride1_spans(600, 35, start=200)  # overlapping periods
    far = _stride1_spans(500, 35, start=5000)  # a disjoint period gets blocks of its own
    (sr, so, none, sf), k = time_block_sides([real, other, None, far], 10, np.random.default_rng(0))
    assert none is None
    assert 2 <= k <= 10  # blocks of about equal window counts, each at least two windows (70 bars) long
    for side in (sr, so, sf):
        assert set(np.unique(side)) == {-1, 0, 1}
        assert (side >= 0).mean() > 0.7  # only windows crossing a train/test boundary are dropped
    # no bar of any test-side window lies inside any train-side window, across both overlapping sets
    spans = np.concatenate([real, other])
    sides = np.concatenate([sr, so])
    train_bars = np.zeros(2000, bool)
    for a, b in spans[sides == 0]:
        train_bars[a:b + 1] = True
    for a, b in spans[sides == 1]:
        assert not train_bars[a:b + 1].any()
    # too short a period for two blocks: no time split for that set
    (short,), k = time_block_sides([_stride1_spans(40, 35)], 10, np.random.default_rng(0))
    assert short is None and k < 2


def test_discriminative_score_splits_timed_sets_by_time(rng):
    from kronos_synth.metrics.discriminative import discriminative_score

    real, fake = rng.normal(size=(400, 12, 3)), rng.normal(size=(400, 12, 3))
    spans = _stride1_spans(400, 12)
    timed = discriminative_score(real, fake, repeats=2, epochs=2, seed=0, real_time=spans, synthetic_time=spans)
    plain = discriminative_score(real, fake, repeats=2, epochs=2, seed=0)
    assert "by time" in timed.settings["split"] and "random" in plain.settings["split"]
    # the dropped boundary windows and unequal block halves leave fewer than the random halves' 200 + 200
    assert all(r.n_train < plain.runs[0].n_train for r in timed.runs)
    assert plain.runs[0].n_train == 400
    again = discriminative_score(real, fake, repeats=2, epochs=2, seed=0, real_time=spans, synthetic_time=spans)
    assert [r.error for r in again.runs] == [r.error for r in timed.runs]  # seeded
