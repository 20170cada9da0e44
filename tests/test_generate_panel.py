"""Coupled multi-asset panels (`--panel`): shared-timestamp windows, the Gaussian copula of the uniforms,
return-ordered draws that keep each marginal, determinism, panel_id, bad panels."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_synth.data.datasets import load_dataset
from kronos_synth.data.errors import InputError
from kronos_synth.data.panels import gaussian_copula_correlation, panel_windows, parse_symbols
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.panel import PanelGenerator
from kronos_synth.generate.sampler import SamplingConfig, sample_from_logits
from kronos_synth.model.pretrained import load_model_pair
from tests._tiny import save_tiny_model

L, H = 32, 8


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return load_model_pair(save_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def two_indices() -> pd.DataFrame:
    """S&P 500 and NASDAQ daily (embedded): two symbols on one trading calendar."""
    return pd.concat([load_dataset("sp500-daily"), load_dataset("nasdaq-daily")], ignore_index=True)


def test_panel_windows_share_timestamps_and_split_by_date(two_indices):
    tr = panel_windows(two_indices, ("SPX", "IXIC"), "daily", L, split="train")
    te = panel_windows(two_indices, ("SPX", "IXIC"), "daily", L, split="test")
    assert tr.values.shape[1:] == (2, L, 6) and te.values.shape[1:] == (2, L, 6)
    assert tr.timestamps[-1, -1] < te.timestamps[0, 0]  # the same dates for both symbols
    # each window's bars are the symbols' own bars at the shared timestamps
    spx = two_indices[two_indices.symbol == "SPX"].set_index("timestamps")
    k = len(tr) // 2
    np.testing.assert_allclose(tr.values[k, 0, :, 3], spx.loc[tr.timestamps[k], "close"].to_numpy())


def test_copula_correlation_recovers_a_known_correlation():
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.6], [0.6, 1.0]])
    r = rng.multivariate_normal([0, 0], cov, size=(200, 400)) * 0.01  # (P, L, A)
    close = 100 * np.exp(np.cumsum(np.swapaxes(r, 1, 2), axis=-1))  # (P, A, L)
    ctx = np.repeat(close[..., None], 6, axis=-1)
    rho = gaussian_copula_correlation(ctx)
    assert rho.shape == (200, 2, 2) and np.allclose(np.diagonal(rho, axis1=1, axis2=2), 1.0)
    assert rho[:, 0, 1].mean() == pytest.approx(0.6, abs=0.02)


def test_return_ordered_draw_keeps_the_distribution_and_orders_by_score():
    torch.manual_seed(0)
    logits = torch.randn(1, 16).repeat(20000, 1)
    u = (np.arange(20000) + 0.5) / 20000
    score = torch.randn(16)
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=0.9)
    by_prob = sample_from_logits(logits, u, cfg).numpy()
    by_score = sample_from_logits(logits, u, cfg, order_by=score).numpy()
    # same kept set and the same frequencies (a stratified grid of uniforms): only the order differs
    np.testing.assert_allclose(np.bincount(by_prob, minlength=16), np.bincount(by_score, minlength=16), atol=2)
    assert (np.diff(score[by_score].numpy()) >= 0).all()  # a larger uniform never picks a lower score


def test_bin_then_token_draw_keeps_the_distribution():
    """The two-stage s1 draw of volume-coupled panels: the first uniform picks a bin (in bin order), the
    second a token inside it (in score order); each token still comes with its probability."""
    torch.manual_seed(1)
    v, n = 24, 200
    logits = torch.randn(1, v).repeat(n * n, 1)
    u1, u2 = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")  # stratified grid
    u1, u2 = u1.reshape(-1), u2.reshape(-1)
    score, bins = torch.randn(v), torch.randint(0, 5, (v,))
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=0.9)
    by_prob = sample_from_logits(logits, u1, cfg).numpy()
    two = sample_from_logits(logits, u1, cfg, order_by=score, bins=bins, inner_uniforms=u2).numpy()
    np.testing.assert_allclose(np.bincount(two, minlength=v), np.bincount(by_prob, minlength=v), atol=2 * n)
    assert set(two) == set(by_prob)  # the same kept tokens, none dropped by top-p
    grid = two.reshape(n, n)
    b = bins.numpy()[grid]
    assert (np.diff(b, axis=0) >= 0).all()  # a larger first uniform never picks a lower bin
    same_bin = np.diff(b, axis=1) == 0
    assert (np.diff(score.numpy()[grid], axis=1)[same_bin] >= 0).all()  # inside a bin: ascending score
    with pytest.raises(ValueError, match="inner_uniforms"):
        sample_from_logits(logits[:2], u1[:2], cfg, order_by=score, bins=bins)


def _panels(pair, klines, out, **kw):
    cfg = GenerationConfig(freq="daily", lookback=L, horizon=H, panel=("SPX", "IXIC"), samples_per_context=2,
                           contexts_per_symbol=40, dtype="fp32", seed=2, **kw)
    gen = PanelGenerator(pair, klines, cfg, source="indices")
    gen.write_panels(str(out), 12, progress=False)
    return gen, read_synthetic(out)


def test_panels_are_deterministic_at_any_batch_size_and_share_timestamps(pair, two_indices, tmp_path):
    gen, a = _panels(pair, two_indices, tmp_path / "a", batch_size=3)
    _, b = _panels(pair, two_indices, tmp_path / "b", batch_size=24)
    assert sorted(p.name for p in (tmp_path / "a").glob("part-*")) == sorted(p.name for p in (tmp_path / "b").glob("part-*"))
    for pa in sorted((tmp_path / "a").glob("part-*.parquet")):
        assert pa.read_bytes() == (tmp_path / "b" / pa.name).read_bytes()
    bars, symbols = a.to_panels()
    assert bars.shape == (12, 2, H, 6) and symbols == ("SPX", "IXIC")
    g = a.generated()
    assert (g.groupby("sequence_id")["panel_id"].first().to_numpy() == np.repeat(np.arange(12), 2)).all()
    per_panel = g.groupby(["panel_id", "step"])["timestamp"].nunique()
    assert (per_panel == 1).all()  # every asset of a panel has the same timestamps
    assert a.metadata["panel"] == ["SPX", "IXIC"] and a.metadata["coupling"] == "gaussian"
    assert a.metadata["token_order"].startswith("s1: 8 return-score bins")  # volume coupled too (the default)


def test_coupled_uniforms_follow_the_copula(pair, two_indices):
    cfg = GenerationConfig(freq="daily", lookback=L, horizon=H, panel=("SPX", "IXIC"), contexts_per_symbol=40,
                           dtype="fp32")
    gen = PanelGenerator(pair, two_indices, cfg, source="indices")
    ids = np.arange(20000)
    u = gen.coupled_uniforms(ids, step=3, stream=0)
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01  # still uniform
    from scipy.special import ndtri

    z = ndtri(u).reshape(-1, 2)
    rho = gen.copula[gen.context_index(ids[::2]) // 2, 0, 1]
    assert np.corrcoef(z.T)[0, 1] == pytest.approx(rho.mean(), abs=0.03)
    # a row's uniform depends only on its panel: computing it alone gives the same value
    assert gen.coupled_uniforms(np.array([7]), 3, 0)[0] == u[7]
    cfg0 = GenerationConfig(freq="daily", lookback=L, horizon=H, panel=("SPX", "IXIC"), contexts_per_symbol=40,
                            dtype="fp32", coupling="none")
    z0 = ndtri(PanelGenerator(pair, two_indices, cfg0, source="indices").coupled_uniforms(ids, 3, 0)).reshape(-1, 2)
    assert abs(np.corrcoef(z0.T)[0, 1]) < 0.03


def test_volume_coupling_is_deterministic_follows_its_copula_and_is_recorded(pair, two_indices, tmp_path):
    from scipy.special import ndtri

    from kronos_synth.generate.sampler import INNER_STREAM

    gen, a = _panels(pair, two_indices, tmp_path / "a", batch_size=3)  # the default
    _, b = _panels(pair, two_indices, tmp_path / "b", batch_size=24)
    for pa in sorted((tmp_path / "a").glob("part-*.parquet")):
        assert pa.read_bytes() == (tmp_path / "b" / pa.name).read_bytes()
    assert a.metadata["volume_coupling"] is True and "volume score" in a.metadata["token_order"]
    assert np.shape(a.metadata["volume_coupling_gain"]) == (2, 2)
    ids = np.arange(20000)
    z = ndtri(gen.coupled_uniforms(ids, step=3, stream=INNER_STREAM)).reshape(-1, 2)
    rho = gen.volume_copula[gen.context_index(ids[::2]) // 2, 0, 1]
    assert np.corrcoef(z.T)[0, 1] == pytest.approx(rho.mean(), abs=0.03)
    # its own copula, from the context's log-volume changes, not the returns'
    assert abs(gen.volume_correlation[:, 0, 1].mean() - gen.correlation[:, 0, 1].mean()) > 0.1
    assert not np.allclose(gen.volume_copula, gen.copula)
    # without it the settings (and so the run keys) are what they were
    _, c = _panels(pair, two_indices, tmp_path / "c", volume_coupling=False)
    assert "volume_coupling" not in c.metadata and c.metadata["token_order"] == "return score"


@pytest.mark.parametrize("panel, words", [
    (("SPX", "DAX"), "unknown symbol 'DAX'"),
    (("SPX",), "at least two symbols"),
    (("SPX", "SPX"), "repeat"),
])
def test_bad_panels_are_one_clear_error(pair, two_indices, panel, words):
    with pytest.raises(InputError, match=words):
        cfg = GenerationConfig(freq="daily", lookback=L, horizon=H, panel=panel)
        PanelGenerator(pair, two_indices, cfg)


def test_symbols_that_do_not_overlap_exit_2(tmp_path):
    early = load_dataset("sp500-daily").iloc[:1000]
    late = load_dataset("nasdaq-daily").iloc[3000:]
    pd.concat([early, late]).to_csv(tmp_path / "two.csv", index=False)
    model = save_tiny_model(tmp_path / "m")
    code = ("from kronos_synth.cli import main; main(['generate', '--n', '2', '--freq', 'daily', '--data', "
            f"'{tmp_path / 'two.csv'}', '--model', '{model}', '--panel', 'SPX,IXIC', '--out', '{tmp_path / 'o'}'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "do not overlap" in lines[0] and "SPX" in lines[0] and "IXIC" in lines[0]


def test_parse_symbols():
    assert parse_symbols(" BTC , ETH ") == ("BTC", "ETH")


def test_calibrated_copula_divides_by_the_gain_caps_and_stays_a_correlation():
    from kronos_synth.generate.panel import calibrated_copula

    target = np.array([[[1.0, 0.6, 0.5], [0.6, 1.0, 0.1], [0.5, 0.1, 1.0]]])
    gain = np.array([[1.0, 0.8, 0.8], [0.8, 1.0, 0.1], [0.8, 0.1, 1.0]])
    rho = calibrated_copula(target, gain)[0]
    assert rho[0, 1] == pytest.approx(0.75, abs=1e-6) and rho[0, 2] == pytest.approx(0.625, abs=1e-6)
    assert rho[1, 2] == pytest.approx(0.1, abs=1e-6)  # gain below the floor: the target is kept
    capped = calibrated_copula(np.array([[1.0, 0.9], [0.9, 1.0]]), np.array([[1.0, 0.8], [0.8, 1.0]]))
    assert capped[0, 1] == pytest.approx(0.98, abs=1e-3)  # 0.9 / 0.8 is capped
    assert np.allclose(np.diag(rho), 1.0) and np.linalg.eigvalsh(rho).min() > 0


def test_calibration_gain_is_recorded_and_deterministic(pair, two_indices):
    cfg = GenerationConfig(freq="daily", lookback=L, horizon=H, panel=("SPX", "IXIC"), contexts_per_symbol=40,
                           dtype="fp32")
    a = PanelGenerator(pair, two_indices, cfg, source="indices")
    b = PanelGenerator(pair, two_indices, cfg, source="indices")
    assert a.metadata["coupling_gain"] == b.metadata["coupling_gain"]
    assert a.gain.shape == (2, 2) and a.gain[0, 0] == pytest.approx(1.0)
    assert np.array_equal(a.copula, b.copula)


def test_cli_panel_generate_and_evaluate(tmp_path):
    both = pd.concat([load_dataset("sp500-daily"), load_dataset("nasdaq-daily")], ignore_index=True)
    both.to_csv(tmp_path / "both.csv", index=False)
    model = save_tiny_model(tmp_path / "m")

    def cli(*args):
        code = f"from kronos_synth.cli import main; main({list(args)!r})"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                              env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    r = cli("generate", "--n", "8", "--freq", "daily", "--data", str(tmp_path / "both.csv"), "--model", model,
            "--lookback", "32", "--horizon", "8", "--dtype", "fp32", "--panel", "SPX,IXIC",
            "--contexts-per-symbol", "20", "--out", str(tmp_path / "p"))
    assert r.returncode == 0, r.stderr
    assert "16 sequences" in r.stdout and "→ 8 panels of 2 sequences" in r.stderr
    r = cli("evaluate", "panel", "--real", str(tmp_path / "both.csv"), "--synthetic", str(tmp_path / "p"),
            "--repeats", "1", "--epochs", "1", "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("synthetic: mean pairwise corr") and "calibration: shuffled assets" in r.stdout
    import json

    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["symbols"] == ["SPX", "IXIC"] and doc["comparison"]["correlation"]["mean_pairwise_real"] > 0.7


def test_t_copula_keeps_uniform_marginals_and_adds_joint_tails(pair, two_indices):
    def uniforms(coupling):
        cfg = GenerationConfig(freq="daily", lookback=L, horizon=H, panel=("SPX", "IXIC"), contexts_per_symbol=40,
                               dtype="fp32", coupling=coupling)
        gen = PanelGenerator(pair, two_indices, cfg, source="indices", calibrate=False)
        return gen.coupled_uniforms(np.arange(40000), step=5, stream=0).reshape(-1, 2)

    ug, ut = uniforms("gaussian"), uniforms("t")
    for u in (ug, ut):
        assert np.histogram(u[:, 1], bins=10, range=(0, 1))[0].min() > 1700  # ≈ 2000 per tenth: uniform
    joint = [np.mean((u[:, 0] < 0.02) & (u[:, 1] < 0.02)) / 0.02 for u in (ug, ut)]
    assert joint[1] > joint[0] + 0.05  # both in their 2 % lower tail together: more often under the t copula


def test_a_panel_shares_one_volatility_scale(two_indices, tmp_path):
    """volatility_spread in a panel: both assets' returns times the panel's one scale, tokens unchanged."""
    from kronos_synth.generate.sampler import path_volatility_scales

    default = load_model_pair(None)  # the scale needs a geometry model (the tiny one is `levels`)
    _, plain = _panels(default, two_indices, tmp_path / "a")
    _, scaled = _panels(default, two_indices, tmp_path / "b", volatility_spread=0.4)
    r0, r1 = (np.diff(np.log(ds.to_panels()[0][..., 3]), axis=-1) for ds in (plain, scaled))  # (12, 2, H − 1)
    scale = path_volatility_scales(0.4, 2, np.arange(12) * 2)  # one draw per panel: its first sequence id
    np.testing.assert_allclose(r1, r0 * scale[:, None, None], rtol=1e-6, atol=1e-12)
