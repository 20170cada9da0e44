"""Fidelity: can a small classifier tell real from synthetic sequences? (docs/protocol.md §3).

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

from kronos_synth.data.errors import InputError
from kronos_synth.metrics._nets import LastStateRNN, StepwiseRNN, fit_epochs, predict
from kronos_synth.metrics.stats import Estimate, estimate, repeat_seeds, seeded_torch, torch_threads

PROTOCOLS = ("paper", "timegan")
#: how the paper protocol splits sets with times (recorded by the benchmark runner: a change reruns evaluations)
SPLIT = "time-blocks-v2"


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


def _block_edges(starts: np.ndarray, lo: int, hi: int, n_blocks: int, min_len: int) -> np.ndarray:
    """Edges of at most `n_blocks` blocks holding about equally many window starts, each ≥ `min_len` long."""
    edges = [float(lo)]
    for e in np.quantile(starts, np.linspace(0, 1, n_blocks + 1)[1:-1]):
        if e - edges[-1] >= min_len:
            edges.append(float(e))
    while len(edges) > 1 and hi - edges[-1] < min_len:
        edges.pop()
    return np.array(edges + [float(hi)])


def time_block_sides(spans: list[np.ndarray | None], n_blocks: int, rng: np.random.Generator
                     ) -> tuple[list[np.ndarray | None], int]:
    """Per-window side (0 = classifier train, 1 = test, -1 = dropped) from time blocks; one draw per call.

    `spans` holds (n, 2) [first bar, last bar] times per set (None: the set has no times). Sets whose
    periods overlap share one cutting of their joint period into at most `n_blocks` blocks of about
    equal window counts, each at least twice the longest window; a random half of the blocks (redrawn
    until every set has ≥ 25 % of its windows on each side) is the train side. A window that starts on
    one side and ends on the other is dropped, so no bar of a test window was seen in training —
    overlapping stride-1 windows split at random leak (a test window is a one-bar shift of a training
    window), which lets the classifier recognise the real period by heart.
    Returns the sides (None where a set has no times or its period is too short for two blocks) and the
    fewest blocks used.
    """
    arrs = [None if s is None else np.asarray(s, np.int64).reshape(-1, 2) for s in spans]
    periods = sorted((int(a[:, 0].min()), int(a[:, 1].max()), i) for i, a in enumerate(arrs)
                     if a is not None and len(a))
    clusters: list[list[int]] = []  # set indices whose periods overlap (transitively)
    reach = None
    for lo, hi, i in periods:
        if reach is None or lo > reach:
            clusters.append([])
            reach = hi
        clusters[-1].append(i)
        reach = max(reach, hi)
    out: list[np.ndarray | None] = [None] * len(spans)
    fewest = 0
    for members in clusters:
        lo = min(int(arrs[i][:, 0].min()) for i in members)
        hi = max(int(arrs[i][:, 1].max()) for i in members) + 1
        longest = max(int((arrs[i][:, 1] - arrs[i][:, 0]).max()) + 1 for i in members)
        edges = _block_edges(np.concatenate([arrs[i][:, 0] for i in members]), lo, hi, n_blocks, 2 * longest)
        k = len(edges) - 1
        fewest = k if fewest == 0 else min(fewest, k)
        if k < 2:
            continue
        where = {i: (np.clip(np.searchsorted(edges, arrs[i][:, 0], side="right") - 1, 0, k - 1),
                     np.clip(np.searchsorted(edges, arrs[i][:, 1], side="right") - 1, 0, k - 1)) for i in members}
        for _ in range(100):
            block_side = np.zeros(k, np.int64)
            block_side[rng.permutation(k)[k // 2:]] = 1
            sides = {i: np.where(block_side[b0] == block_side[b1], block_side[b0], -1) for i, (b0, b1) in where.items()}
            if all(min((v == 0).sum(), (v == 1).sum()) >= 0.25 * (v >= 0).sum() for v in sides.values()):
                break
        for i, v in sides.items():
            out[i] = v
    return out, fewest


def _halves(side: np.ndarray | None, n_items: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices, shuffled: by time side when known, else random halves."""
    if side is None:
        p = rng.permutation(n_items)
        h = n_items // 2
        return p[:h], p[h:2 * h]
    return rng.permutation(np.flatnonzero(side == 0)), rng.permutation(np.flatnonzero(side == 1))


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


class TooFewSequencesError(InputError):
    """Too few sequences for the classifier's train/test split (a ValueError, as before)."""


def discriminative_score(real: np.ndarray, synthetic: np.ndarray, *, protocol: str = "paper",
                         n: int | None = None, repeats: int = 5, seed: int = 0, epochs: int = 20,
                         iterations: int = 2000, threads: int | None = None, progress: bool = False,
                         real_time: np.ndarray | None = None, synthetic_time: np.ndarray | None = None,
                         n_blocks: int = 10) -> DiscriminativeResult:
    """Train a real-vs-synthetic classifier `repeats` times; report the score with a 95 % t-interval.

    paper: each set is split into halves first (no sequence in train and test); n + n sequences from the
    first halves train, another n + n from the second halves test; LSTM(32) + linear on the last hidden
    state, BCE, Adam 5e-4, batch 64, `epochs` epochs. n defaults to the largest balanced size.
    A set with times (`real_time`, `synthetic_time`: (n, 2) first/last bar times, e.g. int64 ns) is
    halved by time blocks instead (`time_block_sides`, new blocks each repeat): windows cut at stride 1
    from one period overlap, and a random split of them leaks.
    timegan: 80/20 split of each set, GRU with ⌊F/2⌋ units, `iterations` steps of batch 128 (+128), Adam 1e-3.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    real, synthetic = np.asarray(real, np.float32), np.asarray(synthetic, np.float32)
    _check(real, synthetic)
    n_feat = real.shape[-1]
    runs = []
    n_used_blocks = 0
    seeds = repeat_seeds(seed, repeats)
    with torch_threads(threads):
        for s in tqdm(seeds, desc=f"discriminative ({protocol})", disable=not progress, leave=False):
            rng = np.random.default_rng(s)
            if protocol == "paper":
                (side_r, side_s), n_used_blocks = time_block_sides([real_time, synthetic_time], n_blocks, rng)
                (r_tr, r_te), (s_tr, s_te) = _halves(side_r, len(real), rng), _halves(side_s, len(synthetic), rng)
                m = min(len(r_tr), len(r_te), len(s_tr), len(s_te))
                m = m if n is None else min(n, m)
                if m < 2:
                    raise TooFewSequencesError(
                        "need at least 4 real and 4 synthetic sequences, 2 on each side of the classifier's "
                        f"train/test split; the split leaves {len(r_tr)} + {len(r_te)} real and {len(s_tr)} + "
                        f"{len(s_te)} synthetic" + (f" (n = {n})" if n is not None and n < 2 else "")
                        + " — use more sequences or a longer real test period")
                runs.append(_run(real[r_tr[:m]], synthetic[s_tr[:m]], real[r_te[:m]], synthetic[s_te[:m]],
                                 seed=s, cell="lstm", hidden=32, lr=5e-4, batch_size=64, epochs=epochs))
            else:
                pr, ps = rng.permutation(len(real)), rng.permutation(len(synthetic))
                if n is not None:
                    pr, ps = pr[:n], ps[:n]
                cr, cs = int(0.8 * len(pr)), int(0.8 * len(ps))
                runs.append(_run(real[pr[:cr]], synthetic[ps[:cs]], real[pr[cr:]], synthetic[ps[cs:]],
                                 seed=s, cell="gru", hidden=max(1, n_feat // 2), lr=1e-3, batch_size=128,
                                 iterations=iterations))
    if protocol == "paper":
        timed = [name for name, t in (("real", real_time), ("synthetic", synthetic_time)) if t is not None]
        if timed and n_used_blocks >= 2:
            split = (f"halves first — {', '.join(timed)} by time: {n_used_blocks} time blocks, a random half "
                     "per repeat trains, windows crossing sides dropped"
                     + ("; synthetic: random halves" if synthetic_time is None else "")
                     + "; n+n train from the first halves, n+n test from the second")
        else:
            split = "halves first (random); n+n train from first halves, n+n test from second halves"
            if timed:
                split += " — the period is too short for time blocks"
        settings = {"protocol": "paper", "classifier": "LSTM(hidden=32) + linear on last hidden state",
                    "loss": "BCE", "optimizer": "Adam", "lr": 5e-4, "batch_size": 64, "epochs": epochs,
                    "split": split, "n_blocks": n_blocks}
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
