"""Fidelity: can a small classifier tell real from synthetic sequences? (EVALUATION §3 and §9).

Inputs are normalized feature arrays (n, T, F) from `features.prepare_features`.
`protocol="paper"` is the Kronos-paper protocol (score = test classification error, 0.5 is best);
`protocol="timegan"` reproduces the classic TimeGAN metric code (score = |0.5 − accuracy|, 0 is best).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from kronos_synth.metrics._nets import LastStateRNN, StepwiseRNN, fit_epochs, predict
from kronos_synth.metrics.stats import Estimate, estimate, repeat_seeds, seeded_torch, torch_threads

PROTOCOLS = ("paper", "timegan")


@dataclass
class DiscriminativeRun:
    """One repeat: accuracies on the held-out test set (label 1 = real)."""

    seed: int
    error: float
    accuracy: float
    accuracy_real: float
    accuracy_synthetic: float
    #: |0.5 − accuracy| — the TimeGAN convention, from the same predictions
    timegan_score: float
    n_train: int
    n_test: int


@dataclass
class DiscriminativeResult:
    protocol: str
    #: the headline number: test error (paper) or |0.5 − accuracy| (timegan)
    score: Estimate
    error: Estimate
    accuracy_real: Estimate
    accuracy_synthetic: Estimate
    timegan_score: Estimate
    runs: list[DiscriminativeRun] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def score_name(self) -> str:
        return "test error (0.5 = indistinguishable)" if self.protocol == "paper" else "|0.5 − accuracy| (0 = best)"

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "score_name": self.score_name, "score": self.score.to_dict(),
                "error": self.error.to_dict(), "accuracy_real": self.accuracy_real.to_dict(),
                "accuracy_synthetic": self.accuracy_synthetic.to_dict(),
                "timegan_score": self.timegan_score.to_dict(), "runs": [asdict(r) for r in self.runs],
                "settings": self.settings}


def _check(real: np.ndarray, synthetic: np.ndarray) -> None:
    if real.ndim != 3 or synthetic.ndim != 3 or real.shape[1:] != synthetic.shape[1:]:
        raise ValueError(f"real {real.shape} and synthetic {synthetic.shape} must be (n, T, F) of equal T, F")


def _run(real_tr, syn_tr, real_te, syn_te, *, seed, cell, hidden, lr, batch_size, epochs=None,
         iterations=None) -> DiscriminativeRun:
    n_feat = real_tr.shape[-1]
    with seeded_torch(seed) as gen:
        model = LastStateRNN(n_feat, hidden, 1, cell=cell)

        def bce(logit, y):
            return F.binary_cross_entropy_with_logits(logit.squeeze(-1), y)

        if epochs is not None:
            x = np.concatenate([real_tr, syn_tr])
            y = np.concatenate([np.ones(len(real_tr)), np.zeros(len(syn_tr))])
            fit_epochs(model, x, y, bce, epochs=epochs, batch_size=batch_size, lr=lr, generator=gen)
        else:
            # TimeGAN: each iteration draws a batch of real and a batch of synthetic sequences.
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            rt = torch.as_tensor(real_tr, dtype=torch.float32)
            st = torch.as_tensor(syn_tr, dtype=torch.float32)
            ones, zeros = torch.ones(min(batch_size, len(rt))), torch.zeros(min(batch_size, len(st)))
            model.train()
            for _ in range(iterations):
                ri = torch.randperm(len(rt), generator=gen)[:batch_size]
                si = torch.randperm(len(st), generator=gen)[:batch_size]
                loss = bce(model(rt[ri]), ones) + bce(model(st[si]), zeros)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    pr = predict(model, real_te)[:, 0] > 0
    ps = predict(model, syn_te)[:, 0] > 0
    acc_r, acc_s = float(pr.mean()), float((~ps).mean())
    acc = float((pr.sum() + (~ps).sum()) / (len(pr) + len(ps)))
    return DiscriminativeRun(seed, 1 - acc, acc, acc_r, acc_s, abs(0.5 - acc), len(real_tr) + len(syn_tr),
                             len(pr) + len(ps))


def discriminative_score(real: np.ndarray, synthetic: np.ndarray, *, protocol: str = "paper",
                         n: int | None = None, repeats: int = 5, seed: int = 0, epochs: int = 20,
                         iterations: int = 2000, threads: int | None = None,
                         progress: bool = False) -> DiscriminativeResult:
    """Train a real-vs-synthetic classifier `repeats` times; report the score with a 95 % t-interval.

    paper: each set is split into halves first (no sequence in train and test); n + n sequences from the
    first halves train, another n + n from the second halves test; LSTM(32) + linear on the last hidden
    state, BCE, Adam 5e-4, batch 64, `epochs` epochs. n defaults to the largest balanced size.
    timegan: 80/20 split of each set, GRU with ⌊F/2⌋ units, `iterations` steps of batch 128 (+128), Adam 1e-3.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    real, synthetic = np.asarray(real, np.float32), np.asarray(synthetic, np.float32)
    _check(real, synthetic)
    n_feat = real.shape[-1]
    runs = []
    seeds = repeat_seeds(seed, repeats)
    with torch_threads(threads):
        for s in tqdm(seeds, desc=f"discriminative ({protocol})", disable=not progress, leave=False):
            rng = np.random.default_rng(s)
            pr, ps = rng.permutation(len(real)), rng.permutation(len(synthetic))
            if protocol == "paper":
                hr, hs = len(real) // 2, len(synthetic) // 2
                m = min(hr, hs) if n is None else min(n, hr, hs)
                if m < 2:
                    raise ValueError("need at least 4 real and 4 synthetic sequences")
                runs.append(_run(real[pr[:m]], synthetic[ps[:m]], real[pr[hr:hr + m]], synthetic[ps[hs:hs + m]],
                                 seed=s, cell="lstm", hidden=32, lr=5e-4, batch_size=64, epochs=epochs))
            else:
                if n is not None:
                    pr, ps = pr[:n], ps[:n]
                cr, cs = int(0.8 * len(pr)), int(0.8 * len(ps))
                runs.append(_run(real[pr[:cr]], synthetic[ps[:cs]], real[pr[cr:]], synthetic[ps[cs:]],
                                 seed=s, cell="gru", hidden=max(1, n_feat // 2), lr=1e-3, batch_size=128,
                                 iterations=iterations))
    if protocol == "paper":
        settings = {"protocol": "paper", "classifier": "LSTM(hidden=32) + linear on last hidden state",
                    "loss": "BCE", "optimizer": "Adam", "lr": 5e-4, "batch_size": 64, "epochs": epochs,
                    "split": "halves first; n+n train from first halves, n+n test from second halves"}
    else:
        settings = {"protocol": "timegan", "classifier": f"GRU(hidden={max(1, n_feat // 2)}) + linear",
                    "loss": "BCE", "optimizer": "Adam", "lr": 1e-3, "batch_size": 128,
                    "iterations": iterations, "split": "80/20 per set"}
    settings.update(repeats=repeats, seed=seed, repeat_seeds=seeds, n_requested=n, length=int(real.shape[1]),
                    n_features=n_feat, n_real_available=int(len(real)), n_synthetic_available=int(len(synthetic)))
    err = estimate([r.error for r in runs])
    tg = estimate([r.timegan_score for r in runs])
    return DiscriminativeResult(protocol, err if protocol == "paper" else tg, err,
                                estimate([r.accuracy_real for r in runs]),
                                estimate([r.accuracy_synthetic for r in runs]), tg, runs, settings)


@dataclass
class PredictiveResult:
    """TimeGAN predictive score: train-on-synthetic one-step-ahead GRU, MAE on real (lower is better)."""

    mae: Estimate
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"mae": self.mae.to_dict(), "settings": self.settings}


def predictive_score(real: np.ndarray, synthetic: np.ndarray, *, repeats: int = 5, seed: int = 0,
                     iterations: int = 5000, n: int | None = None, threads: int | None = None,
                     progress: bool = False) -> PredictiveResult:
    """TimeGAN's predictive score: a GRU (⌊F/2⌋ units) reads features 0..F−2 and predicts the last feature
    one step ahead; trained on synthetic (batch 128, Adam 1e-3, `iterations` steps), MAE on all real."""
    real, synthetic = np.asarray(real, np.float32), np.asarray(synthetic, np.float32)
    _check(real, synthetic)
    n_feat = real.shape[-1]
    hidden = max(1, n_feat // 2)
    seeds = repeat_seeds(seed, repeats)
    maes = []
    with torch_threads(threads):
        for s in tqdm(seeds, desc="predictive (timegan)", disable=not progress, leave=False):
            syn = synthetic if n is None else synthetic[np.random.default_rng(s).permutation(len(synthetic))[:n]]
            x, y = torch.as_tensor(syn[:, :-1, :-1]), torch.as_tensor(syn[:, 1:, -1:])
            with seeded_torch(s) as gen:
                model = StepwiseRNN(n_feat - 1, hidden, 1, cell="gru")
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                model.train()
                for _ in range(iterations):
                    idx = torch.randperm(len(x), generator=gen)[:128]
                    loss = (model(x[idx]) - y[idx]).abs().mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            pred = predict(model, real[:, :-1, :-1])
            maes.append(float(np.abs(pred - real[:, 1:, -1:]).mean()))
    settings = {"model": f"GRU(hidden={hidden}) + linear per step", "target": "last feature, one step ahead",
                "loss": "MAE", "optimizer": "Adam", "lr": 1e-3, "batch_size": 128, "iterations": iterations,
                "repeats": repeats, "seed": seed, "repeat_seeds": seeds, "train": "synthetic", "test": "real"}
    return PredictiveResult(estimate(maes), settings)
