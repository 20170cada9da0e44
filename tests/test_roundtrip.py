"""The tokenizer round trip (`metrics.roundtrip`, `kronos-synth evaluate roundtrip`)."""

import json

import numpy as np
import pytest
from _train_util import tiny_tokenizer

from kronos_synth.cli import main
from kronos_synth.data.errors import InputError
from kronos_synth.data.sources import load_klines
from kronos_synth.metrics.roundtrip import evaluate_roundtrip, roundtrip_bars
from kronos_synth.metrics.validity import bar_validity
from kronos_synth.model.pretrained import load_tokenizer
from kronos_synth.model.representation import Geometry, Levels
from kronos_synth.train import prepare_training_data


def _windows(rng, n=6, t=60):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, t)), axis=1))
    open_ = close * np.exp(rng.normal(0, 0.002, (n, t)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.003, (n, t))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.003, (n, t))))
    vol = rng.lognormal(10, 1, (n, t))
    return np.stack([open_, high, low, close, vol, vol * (open_ + high + low + close) / 4], -1)


class IdentityTokenizer:
    """Encodes a window as itself: isolates the round trip's plumbing (slicing, anchors, batching)."""

    s1_bits = s2_bits = 1

    def to(self, device):
        return self

    def eval(self):
        return self

    def encode(self, x, half=True):
        return x, x

    def decode(self, ids, half=True):
        return ids[0]


@pytest.mark.parametrize("rep", [Geometry(clip=50.0, soft=0.0), Geometry(clip=50.0, soft=2.0), Levels(clip=50.0)])
def test_identity_round_trip_returns_the_real_horizon(rng, rep):
    w = _windows(rng)
    out = roundtrip_bars(IdentityTokenizer(), rep, w, 40, batch_size=4)  # batches of 4 + 2
    assert out.shape == (6, 20, 6) and out.dtype == np.float64
    np.testing.assert_allclose(out, w[:, 40:], rtol=2e-4)
    np.testing.assert_array_equal(out, roundtrip_bars(None, rep, w, 40))  # no tokenizer: the same


def test_the_clip_is_what_the_representation_alone_loses(rng):
    w = _windows(rng)
    w[:, 45:, :4] *= 1.3  # a 30 % jump into the horizon, far beyond the clip
    out = roundtrip_bars(None, Geometry(clip=5.0, soft=0.0), w, 40)
    jump = np.log(out[:, 5, 3] / out[:, 4, 3])
    assert (jump < 0.1).all()  # clipped to 5 sigma of the lookback
    np.testing.assert_allclose(out[:, 6:, 3] / out[:, 5:-1, 3], w[:, 46:, 3] / w[:, 45:-1, 3], rtol=1e-4)


def test_trained_geometry_tokenizer_round_trip_is_valid_and_deterministic(tmp_path, rng):
    td = prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=16,
                               representation="geometry")
    tiny_tokenizer(tmp_path / "tok", td, steps=8)
    bundle = load_tokenizer(str(tmp_path / "tok"))
    w = _windows(rng, n=20, t=50)
    a = roundtrip_bars(bundle.tokenizer, bundle.representation, w, 40, batch_size=7)
    b = roundtrip_bars(bundle.tokenizer, "geometry", w, 40)  # a name works too
    assert a.shape == (20, 10, 6) and bar_validity(a).invalid_bars == 0
    np.testing.assert_allclose(a, b, rtol=1e-5)  # batch size does not matter (up to float32 kernels)
    assert not np.allclose(a, w[:, 40:], rtol=1e-3)  # a tiny tokenizer really is lossy


def test_bad_windows_are_input_errors(rng):
    w = _windows(rng)
    with pytest.raises(InputError, match="windows must be"):
        roundtrip_bars(None, Levels(), w[..., :5], 40)
    with pytest.raises(InputError, match="lookback 60"):
        roundtrip_bars(None, Levels(), w, 60)


def test_evaluate_roundtrip_of_the_representation_alone():
    res = evaluate_roundtrip(None, Geometry(), load_klines("goog-daily"), lookback=40, horizon=10, n=40,
                             repeats=1, epochs=1, calibration=False)
    s = res.summary
    assert s["n"] == 40 and s["invalid_share"] == 0.0 and s["codebook_usage"] == {}
    assert list(res.evaluation.discriminative) == ["tokenizer round trip"]
    assert np.isfinite(s["excess_kurtosis"]["real"]) and np.isfinite(s["excess_kurtosis"]["representation_only"])


def _cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_cli_roundtrip_of_the_embedded_model_writes_a_report(tmp_path, capsys):
    out = tmp_path / "rt"
    code, stdout, err = _cli(["evaluate", "roundtrip", "--real", "goog-daily", "--n", "16", "--repeats", "1",
                              "--epochs", "1", "--no-calibration", "--no-progress", "--out", str(out)], capsys)
    assert code == 0, err
    assert "tokenizer round trip: discriminative error" in stdout and "codebook usage" in stdout
    doc = json.loads((out / "report.json").read_text())
    rt = doc["data"]["roundtrip"]
    assert rt["n"] == 16 and rt["codebook_usage"]["s1"]["vocab"] == 256
    assert doc["settings"]["representation"] == {"representation": "geometry", "clip": 6.0, "soft": 2.0,
                                                  "gap_floor": 0.25, "center_returns": True}
    assert doc["settings"]["lookback"] == 96 and doc["settings"]["horizon"] == 35  # the daily preset's window
    assert (out / "report.md").read_text().startswith("# Evaluation")


@pytest.mark.parametrize("extra, needle", [
    (["--real", "no_such_file.csv"], "no_such_file.csv"),
    (["--real", "goog-daily", "--model", "no/such/folder/x"], "no/such/folder/x"),
    (["--real", "goog-daily", "--horizon", "3000"], "too few rows to split"),
    (["--real", "goog-daily", "--horizon", "400"], "need at least 4"),
    (["--real", "goog-daily", "--test-fraction", "1.5"], "--test-fraction"),
    (["--real", "goog-daily", "--freq", "15min"], "coarser than --freq"),
    (["--real", "goog-daily", "--freq", "fortnightly"], "unknown frequency"),
])
def test_cli_roundtrip_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, needle):
    code, _, err = _cli(["evaluate", "roundtrip", "--out", str(tmp_path / "o"), "--no-progress", *extra], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert "Traceback" not in err
