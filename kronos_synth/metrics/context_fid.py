"""Context-FID (Jeha et al., ICLR 2022, "PSA-GAN"; the fidelity number of Diffusion-TS and others).

The Fréchet distance between Gaussian fits of window embeddings, real vs synthetic. The embedding is a
small TS2Vec encoder (Yue et al., AAAI 2022) trained on REAL windows only (a reference set, by default
the real set itself) and max-pooled over time to one vector per window. Written from the two papers:

- input projection (linear, per bar) → timestamp masking (Bernoulli(p) mask on the projected vectors,
  training only) → dilated residual CNN (blocks of two kernel-3 convolutions with dilation 2^l, GELU
  before each) → per-bar representations;
- two overlapping random crops [a1, b1) and [a2, b2) of each batch (a1 ≤ a2 < b1 ≤ b2); the
  representations of the shared bars [a2, b1) must agree: hierarchical contrastive loss = instance-wise
  contrast (the same bar of other windows are the negatives) + temporal contrast (other bars of the same
  window are the negatives), averaged over the scales obtained by max-pooling over time by 2 until one
  step is left.

Inputs are raw bars (n, T, 6), normalized per sequence (docs/protocol.md §2) before encoding.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from kronos_synth.metrics.features import is_volume_free, normalize_sequences
from kronos_synth.metrics.stats import Estimate, estimate, repeat_seeds, seeded_torch, torch_threads


@dataclass(frozen=True)
class EncoderSettings:
    """The TS2Vec embedding of Context-FID: kept small so one fit takes seconds on one CPU thread."""

    hidden: int = 32
    output: int = 64
    #: residual blocks with dilations 1, 2, …, 2^(depth−1), plus one output block
    depth: int = 5
    iterations: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    #: probability that a bar's projected vector is kept by the timestamp mask
    mask_keep: float = 0.5
    #: weight of the instance-wise term (1 − alpha: temporal)
    alpha: float = 0.5
    dropout: float = 0.1
    #: shortest shared part of the two crops, as a share of the window
    min_overlap: float = 0.25


class _DilatedBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=dilation, dilation=dilation)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class TS2VecEncoder(nn.Module):
    """(B, T, F) → (B, T, output) per-bar representations (TS2Vec's encoder, small)."""

    def __init__(self, n_in: int, s: EncoderSettings, *, volume_free: bool = False, n_reference: int = 0) -> None:
        super().__init__()
        self.settings, self.volume_free, self.n_reference = s, volume_free, n_reference
        self.mask_keep = s.mask_keep
        self.project = nn.Linear(n_in, s.hidden)
        blocks = [_DilatedBlock(s.hidden, s.hidden, 2 ** i) for i in range(s.depth)]
        self.blocks = nn.Sequential(*blocks, _DilatedBlock(s.hidden, s.output, 2 ** s.depth))
        self.dropout = nn.Dropout(s.dropout)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h = self.project(x)
        if self.training:  # timestamp masking: the augmentation that makes the two views differ
            keep = torch.full(h.shape[:2], self.mask_keep).bernoulli(generator=generator)
            h = h * keep[..., None]
        return self.dropout(self.blocks(h.transpose(1, 2))).transpose(1, 2)


def _contrast(z: torch.Tensor, half: int) -> torch.Tensor:
    """InfoNCE over the middle axis of z (G, 2·half, C): row i's positive is row (i + half) mod 2·half,
    every other row of the same group a negative, itself excluded."""
    sim = z @ z.transpose(1, 2)
    eye = torch.eye(sim.shape[1], dtype=torch.bool)
    logp = F.log_softmax(sim.masked_fill(eye, float("-inf")), dim=-1)
    rows = torch.arange(2 * half)
    return -logp[:, rows, (rows + half) % (2 * half)].mean()


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """TS2Vec's loss of two views (B, T, C) of the same bars, averaged over max-pooled time scales."""
    total, scales = z1.new_zeros(()), 0
    while True:
        b, t = z1.shape[:2]
        if b > 1:  # instance-wise: at each time step, the other windows are the negatives
            total = total + alpha * _contrast(torch.cat([z1, z2], 0).transpose(0, 1), b)
        if t > 1:  # temporal: within each window, the other time steps are the negatives
            total = total + (1 - alpha) * _contrast(torch.cat([z1, z2], 1), t)
        scales += 1
        if t == 1:
            return total / scales
        z1 = F.max_pool1d(z1.transpose(1, 2), 2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), 2).transpose(1, 2)


def _crops(t: int, min_len: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """a1 ≤ a2 < b1 ≤ b2 with an overlap b1 − a2 of at least `min_len` bars."""
    length = int(rng.integers(min_len, t + 1))
    a2 = int(rng.integers(0, t - length + 1))
    b1 = a2 + length
    return int(rng.integers(0, a2 + 1)), a2, b1, int(rng.integers(b1, t + 1))


def _features(bars: np.ndarray, volume_free: bool) -> np.ndarray:
    return normalize_sequences(bars, include_volume=not volume_free).astype(np.float32)


def fit_encoder(reference: np.ndarray, *, settings: EncoderSettings = EncoderSettings(), seed: int = 0,
                volume_free: bool | None = None, threads: int | None = None) -> TS2VecEncoder:
    """Train a TS2Vec encoder on real raw bars (n, T, 6); seeded, global RNG untouched."""
    s = settings
    vf = is_volume_free(reference) if volume_free is None else volume_free
    x = torch.as_tensor(_features(reference, vf))
    n, t = x.shape[:2]
    rng = np.random.default_rng(seed)
    min_len = min(t, max(2, int(np.ceil(s.min_overlap * t))))
    with seeded_torch(seed) as gen, torch_threads(threads):
        enc = TS2VecEncoder(x.shape[-1], s, volume_free=vf, n_reference=n)
        opt = torch.optim.AdamW(enc.parameters(), lr=s.lr)
        enc.train()
        for _ in range(s.iterations):
            batch = x[torch.as_tensor(rng.choice(n, min(s.batch_size, n), replace=False))]
            a1, a2, b1, b2 = _crops(t, min_len, rng)
            z1 = enc(batch[:, a1:b1], gen)[:, a2 - a1:]
            z2 = enc(batch[:, a2:b2], gen)[:, :b1 - a2]
            loss = hierarchical_contrastive_loss(z1, z2, s.alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        enc.eval()
    return enc


@torch.no_grad()
def embed(encoder: TS2VecEncoder, bars: np.ndarray, *, batch_size: int = 512, threads: int | None = None) -> np.ndarray:
    """(n, T, 6) raw bars → (n, output) window embeddings: per-bar representations max-pooled over time."""
    x = torch.as_tensor(_features(bars, encoder.volume_free))
    encoder.eval()
    with torch_threads(threads):
        out = [encoder(x[i:i + batch_size]).amax(dim=1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """scipy's sqrtm and whether it found the matrix singular (it warns instead of failing)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        out = linalg.sqrtm(a)
    return out, any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) between Gaussian fits of two (n, d) samples."""
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean, singular = _sqrtm(s1 @ s2)
    if singular or not np.isfinite(covmean).all():  # few windows, collapsed embeddings: regularize
        off = eps * np.eye(len(s1))
        covmean, _ = _sqrtm((s1 + off) @ (s2 + off))
    if np.iscomplexobj(covmean):
        # the product of two PSD matrices has a real square root; imaginary parts are round-off
        if np.abs(covmean.imag).max() > 1e-3 * max(1.0, np.abs(covmean.real).max()):
            warnings.warn("Context-FID: large imaginary part in sqrtm(Σa Σb); the real part is used",
                          RuntimeWarning, stacklevel=2)
        covmean = covmean.real
    diff = mu1 - mu2
    # round-off can make an exact-zero distance slightly negative
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


@dataclass
class ContextFIDResult:
    """Context-FID over repeats (one encoder per repeat seed); 0 = identical Gaussian fits."""

    score: Estimate
    n_real: int
    n_synthetic: int
    n_reference: int
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"score": self.score.to_dict(), "n_real": self.n_real, "n_synthetic": self.n_synthetic,
                "n_reference": self.n_reference, "settings": self.settings}


def fit_encoders(reference: np.ndarray, *, repeats: int = 1, seed: int = 0,
                 settings: EncoderSettings = EncoderSettings(), volume_free: bool | None = None,
                 threads: int | None = None) -> list[TS2VecEncoder]:
    """One encoder per repeat seed (`stats.repeat_seeds`), to share between the rows of a table."""
    return [fit_encoder(reference, settings=settings, seed=s, volume_free=volume_free, threads=threads)
            for s in repeat_seeds(seed, repeats)]


def embedding_description(settings: EncoderSettings, n_reference: int, volume_free: bool) -> dict:
    """What the report prints about the embedding."""
    return {**asdict(settings), "encoder": "TS2Vec (Yue et al. 2022): linear projection, timestamp masking, "
            "dilated residual CNN; hierarchical contrastive loss (instance + temporal) on two overlapping crops",
            "pooling": "max over time", "trained_on": f"{n_reference} real reference windows",
            "features": "per-sequence normalized OHLC" + ("" if volume_free else " + log volume/amount"),
            "optimizer": "AdamW"}


def context_fid(real: np.ndarray, synthetic: np.ndarray, *, reference: np.ndarray | None = None,
                encoders: list[TS2VecEncoder] | None = None, repeats: int = 1, seed: int = 0,
                settings: EncoderSettings = EncoderSettings(), threads: int | None = None) -> ContextFIDResult:
    """Context-FID of raw bars (n, T, 6). The encoders train on `reference` (default: `real`), or are given
    (`fit_encoders`; their own settings and features then apply).

    Like every FID the value is biased upward at small n, so compare rows with the same numbers of windows.
    """
    if encoders is None:
        reference = real if reference is None else reference
        vf = any(is_volume_free(x) for x in (real, synthetic, reference))
        encoders = fit_encoders(reference, repeats=repeats, seed=seed, settings=settings, volume_free=vf,
                                threads=threads)
    e0 = encoders[0]
    scores = [frechet_distance(embed(e, real, threads=threads), embed(e, synthetic, threads=threads))
              for e in encoders]
    return ContextFIDResult(estimate(scores), int(len(real)), int(len(synthetic)), e0.n_reference,
                            {**embedding_description(e0.settings, e0.n_reference, e0.volume_free),
                             "repeats": len(encoders)})
