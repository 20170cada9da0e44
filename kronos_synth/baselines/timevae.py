"""TimeVAE-style generator (Desai et al., 2021), in PyTorch.

Encoder: three Conv1d layers (50 / 100 / 200 filters, kernel 3, stride 2, ReLU) → mean and
log-variance of a latent of size 8. Interpretable decoder = sum of
- level: one value per feature, constant over the window;
- trend: polynomial of degree `trend_degree` (2) in t/T, coefficients per feature;
- seasonality (optional, `seasons=[[num_seasons, len_per_season], …]`): one value per feature and
  season, repeated `len_per_season` steps and cycling — relative to the window start, so it is a
  bar-of-day pattern only if windows start at the same bar of the day (off by default);
- residual branch: dense → two ConvTranspose1d (100 / 50) → dense to (T, F).
Loss = 3.0 × (summed squared error + summed squared error of the feature-averaged series)
+ summed KL, summed per window and averaged over the batch (the sums set the balance).
Min–max scaling to [0, 1]; Adam 1e-3, learning rate halved on a 10-epoch plateau, early stop after
`patience` epochs without improvement of the epoch loss. Sampling: z ~ N(0, I), and (default,
`decoder_noise=True`) the Gaussian likelihood is sampled with a per-channel std estimated after
training (the RMS reconstruction residual on train windows); `decoder_noise=False` returns the
likelihood's mean as the paper does, which flattens channels that are nearly independent from bar to
bar (the amount channel collapsed to 0.18–0.45 of the real spread; docs/baselines.md).

Original: batch 16, up to 1 000 epochs over all windows (`batch=16, steps=1000,
epoch_windows=0`). CPU default: batch 64, ≤ 100 epochs of 2 000 random train windows each
(`epoch_windows`; stride-1 windows overlap almost entirely, and full passes over ~7 000 windows
of 96 bars did not fit the 10-minute budget on the shared CPU), patience 20.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kronos_synth.baselines._torch import TorchBaseline, TorchOptions, progress_bar
from kronos_synth.baselines.base import BaselineError, is_whole


def _conv_len(t: int, layers: int = 3) -> int:
    for _ in range(layers):
        t = (t + 2 - 3) // 2 + 1
    return t


class _TimeVAE(nn.Module):
    def __init__(self, t: int, f: int, latent: int, filters: list[int], trend_degree: int,
                 seasons: list[list[int]]) -> None:
        super().__init__()
        self.t, self.f = t, f
        chans = [f, *filters]
        self.encoder = nn.Sequential(*[m for a, b in zip(chans[:-1], chans[1:], strict=True)
                                       for m in (nn.Conv1d(a, b, 3, stride=2, padding=1), nn.ReLU())])
        self.l_enc = _conv_len(t, len(filters))
        flat = filters[-1] * self.l_enc
        self.mean, self.logvar = nn.Linear(flat, latent), nn.Linear(flat, latent)
        self.level = nn.Linear(latent, f)
        self.trend = nn.Linear(latent, f * trend_degree) if trend_degree > 0 else None
        lin = torch.arange(t, dtype=torch.float32) / t
        self.register_buffer("basis", torch.stack([lin ** (p + 1) for p in range(trend_degree)]), persistent=False)
        self.seasons = nn.ModuleList(nn.Linear(latent, f * s) for s, _ in seasons)
        for i, (s, per) in enumerate(seasons):
            self.register_buffer(f"season_idx{i}", (torch.arange(t) // per) % s, persistent=False)
        self.res_in = nn.Linear(latent, flat)
        rev = filters[::-1]
        self.res_deconv = nn.Sequential(*[m for a, b in zip(rev[:-1], rev[1:], strict=True)
                                          for m in (nn.ConvTranspose1d(a, b, 3, stride=2, padding=1,
                                                                       output_padding=1), nn.ReLU())])
        self.res_out = nn.Linear(rev[-1] * self.l_enc * 2 ** (len(filters) - 1), t * f)
        self.filters = filters

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x.transpose(1, 2)).flatten(1)
        return self.mean(h), self.logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        b = len(z)
        out = self.level(z)[:, None, :].expand(b, self.t, self.f)
        if self.trend is not None:
            coef = self.trend(z).view(b, self.f, -1)
            out = out + (coef @ self.basis).transpose(1, 2)
        for i, lin in enumerate(self.seasons):
            vals = lin(z).view(b, self.f, -1)
            out = out + vals[:, :, getattr(self, f"season_idx{i}")].transpose(1, 2)
        h = self.res_in(z).view(b, self.filters[-1], self.l_enc)
        out = out + self.res_out(self.res_deconv(h).flatten(1)).view(b, self.t, self.f)
        return out


@dataclass(frozen=True)
class TimeVAEOptions(TorchOptions):
    """TimeVAE's fit settings (CPU-sized; the original's in the module doc)."""

    latent: int = 8
    filters: tuple[int, ...] = (50, 100, 200)  # encoder Conv1d filters (the decoder mirrors the last two)
    trend_degree: int = 2
    seasons: tuple[tuple[int, int], ...] = ()  # (num_seasons, len_per_season) pairs; none by default
    recon_weight: float = 3.0
    batch: int = 64
    lr: float = 1e-3
    steps: int = 100  # maximum epochs
    patience: int = 20  # epochs without improvement before stopping
    epoch_windows: int = 2000  # random train windows per epoch; 0: all
    decoder_noise: bool = True  # sample the Gaussian likelihood (False: its mean, as the paper)

    def check(self) -> None:
        super().check()
        self._count("latent", "batch", "steps")
        self._count("trend_degree", "patience", "epoch_windows", minimum=0)
        self._number("recon_weight", "lr", above=0)
        if not self.filters or not all(is_whole(f) and f >= 1 for f in self.filters):
            raise BaselineError(f"filters must be a list of positive whole numbers, got {list(self.filters)!r}",
                                param="filters")
        if not all(isinstance(s, tuple) and len(s) == 2 and all(is_whole(v) and v >= 1 for v in s)
                   for s in self.seasons):
            raise BaselineError("seasons must be a list of [num_seasons, len_per_season] pairs of positive whole "
                                f"numbers, got {self.seasons!r}", param="seasons")
        if not isinstance(self.decoder_noise, bool):
            raise BaselineError(f"decoder_noise must be true or false, got {self.decoder_noise!r}",
                                param="decoder_noise")


class TimeVAEBaseline(TorchBaseline):
    name = "timevae"
    Options = TimeVAEOptions
    noise_std: list[float] | None = None  # per-channel likelihood std, set by fit when decoder_noise

    def _build(self) -> nn.ModuleDict:
        o = self.options
        return nn.ModuleDict({"vae": _TimeVAE(self.window, 6, int(o["latent"]), list(o["filters"]),
                                              int(o["trend_degree"]), [list(s) for s in o["seasons"]])})

    def _loss(self, vae: _TimeVAE, xb: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        mu, logvar = vae.encode(xb)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        xh = vae.decode(z)
        recon = ((xb - xh) ** 2).sum((1, 2)) + ((xb.mean(2) - xh.mean(2)) ** 2).sum(1)
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
        return (float(self.options["recon_weight"]) * recon + kl).mean(), recon.mean(), kl.mean()

    def _train(self, x: torch.Tensor, gen: torch.Generator,
               progress: bool) -> tuple[dict[str, float], dict[str, list[float]]]:
        o = self.options
        vae: Any = self.nets["vae"]  # type: ignore[index]
        opt = torch.optim.Adam(vae.parameters(), lr=float(o["lr"]))
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=10)
        batch, epochs, patience = int(o["batch"]), int(o["steps"]), int(o["patience"])
        hist: dict[str, list[float]] = {"loss": [], "recon": [], "kl": []}
        best, since = float("inf"), 0
        bar = progress_bar(epochs, progress, "timevae")
        per_epoch = int(o["epoch_windows"]) or len(x)
        for _ in range(epochs):
            # Stride-1 windows overlap almost entirely, so an epoch is a random subset of them.
            perm = torch.randperm(len(x), generator=gen)[:per_epoch]
            tot = [0.0, 0.0, 0.0]
            for i in range(0, len(perm), batch):
                idx = perm[i:i + batch]
                loss, recon, kl = self._loss(vae, x[idx], gen)
                opt.zero_grad()
                loss.backward()
                opt.step()
                for k, v in enumerate((loss, recon, kl)):
                    tot[k] += v.item() * len(idx)
            epoch = [v / len(perm) for v in tot]
            for k, v in zip(hist, epoch, strict=True):
                hist[k].append(v)
            sched.step(epoch[0])
            bar.update()
            bar.set_postfix(loss=f"{epoch[0]:.3f}")
            if best == float("inf") or epoch[0] < best - 1e-4 * abs(best):
                best, since = epoch[0], 0
            else:
                since += 1
                if since >= patience:  # early stopping on the epoch loss
                    break
        bar.close()
        self.noise_std = None
        if o["decoder_noise"]:
            vae.eval()
            with torch.no_grad():  # residual of the posterior mean, on ≤ 2 000 train windows
                xs = x[torch.randperm(len(x), generator=gen)[:2000]]
                resid = xs - vae.decode(vae.encode(xs)[0])
                self.noise_std = resid.pow(2).mean((0, 1)).sqrt().tolist()
        return {k: v[-1] for k, v in hist.items()} | {"epochs": float(len(hist["loss"]))}, hist

    def _save_state(self, path: Any) -> dict[str, Any]:
        return {**super()._save_state(path), "noise_std": self.noise_std}

    def _load_state(self, path: Any, config: dict[str, Any]) -> None:
        super()._load_state(path, config)
        self.noise_std = config.get("noise_std")

    @torch.no_grad()
    def _generate(self, n: int, gen: torch.Generator) -> torch.Tensor:
        vae: Any = self.nets["vae"]  # type: ignore[index]
        out = vae.decode(torch.randn(n, int(self.options["latent"]), generator=gen))
        if self.noise_std is not None:
            out = out + torch.randn(out.shape, generator=gen) * torch.tensor(self.noise_std)
        return out
