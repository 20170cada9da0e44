"""TimeGAN-style generator (Yoon, Jarrett & van der Schaar, NeurIPS 2019), in PyTorch.

Five GRU networks: embedder X→H, recovery H→X, generator Z→E, supervisor H→H (one layer
fewer) and discriminator H→logit per step; sigmoid outputs except the discriminator. Inputs are
scale-free windows min–max scaled to [0, 1]; noise is uniform per step and feature.

Training in three phases:
1. autoencoder: 10·sqrt(MSE(X, recovery(embedder(X))));
2. supervised: MSE(H[1:], supervisor(H)[:-1]) — next-step dynamics in latent space;
3. joint: per iteration two generator+embedder updates, then one discriminator update that only
   steps while its loss > 0.15. Generator loss = adversarial on supervisor(E) and on E
   + 100·sqrt(supervised) + 100·moment loss (batch mean and std of generated vs real);
   the embedder adds 0.1·supervised to its reconstruction loss.

Original: hidden 24, 3 layers, batch 128, 50 000 iterations per phase (options `layers=3,
ae_steps=50000, sup_steps=50000, steps=50000`). CPU default: 2 layers and, per phase, as many
iterations as ~12 minutes of one core allow at the window length (`iterations`: 583 at T=96,
1 429 at T=35; the first CPU plan was ~2 000 / 2 000 / 4 000 (docs/baselines.md), but a joint
iteration at T=96 is ≈ 20 recurrent passes of 96 sequential steps with backward, ~0.9 s of one
core, so that would take over an hour). The joint phase shares the embedder pass between the generator and embedder
updates and runs the supervisor and discriminator once over concatenated batches (same maths,
~35 % less time per iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kronos_synth.baselines._torch import TorchBaseline, TorchOptions, batches, progress_bar


class _RNN(nn.Module):
    """GRU stack + per-step linear head (sigmoid unless `logits`)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, layers: int, logits: bool = False) -> None:
        super().__init__()
        self.gru = nn.GRU(d_in, hidden, num_layers=max(1, layers), batch_first=True)
        self.head = nn.Linear(hidden, d_out)
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.gru(x)[0])
        return y if self.logits else torch.sigmoid(y)


# Default iterations per phase × (window + 7) (see `iterations`): ~12 minutes of one core.
STEPS_BUDGET = 60_000
STEPS_CAP = 4_000


@dataclass(frozen=True)
class TimeGANOptions(TorchOptions):
    """TimeGAN's fit settings (CPU-sized; the original's in the module doc)."""

    hidden: int = 24  # GRU width
    layers: int = 2  # GRU layers (the supervisor has one fewer)
    batch: int = 128
    lr: float = 1e-3  # Adam, every network
    gamma: float = 1.0  # weight of the adversarial loss on the generator's own latents
    steps: int | None = None  # joint iterations; None: the budget-sized default (`iterations`)
    ae_steps: int | None = None  # autoencoder iterations; None: as `steps`
    sup_steps: int | None = None  # supervised iterations; None: as `steps`
    log_every: int = 50  # loss history every N iterations

    def check(self) -> None:
        super().check()
        self._count("hidden", "layers", "batch", "log_every")
        self._count("steps", "ae_steps", "sup_steps", unset=True)
        self._number("lr", above=0)
        self._number("gamma", at_least=0)


class TimeGANBaseline(TorchBaseline):
    name = "timegan"
    Options = TimeGANOptions

    def _build(self) -> nn.ModuleDict:
        h, n_layers, f = int(self.options["hidden"]), int(self.options["layers"]), 6
        return nn.ModuleDict({
            "embedder": _RNN(f, h, h, n_layers),
            "recovery": _RNN(h, h, f, n_layers),
            "generator": _RNN(f, h, h, n_layers),
            "supervisor": _RNN(h, h, h, n_layers - 1),
            "discriminator": _RNN(h, h, 1, n_layers, logits=True),
        })

    def iterations(self) -> tuple[int, int, int]:
        """(autoencoder, supervised, joint) iterations for the fitted window length.

        `steps=None` (default) sizes the run to the 15-minute budget: one iteration of all three
        phases costs about 0.0117·(T + 7)·layers/2 s of one core (measured 0.49 s at T=35,
        1.21 s at T=96), so steps = 60 000 / ((T + 7)·layers/2), at most 4 000 — about 12 minutes
        at any window. The count depends only on the options and the window, never on the clock,
        so a fit stays reproducible. `ae_steps` / `sup_steps` default to the same number.
        """
        o = self.options
        if o["steps"] is None:
            scale = (self.window + 7) * max(1, int(o["layers"])) / 2
            steps = max(1, min(STEPS_CAP, round(STEPS_BUDGET / scale)))
        else:
            steps = int(o["steps"])
        ae = int(o["ae_steps"]) if o["ae_steps"] is not None else steps
        sup = int(o["sup_steps"]) if o["sup_steps"] is not None else steps
        return ae, sup, steps

    def _noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.rand(n, self.window, 6, generator=gen)

    def _train(self, x: torch.Tensor, gen: torch.Generator,
               progress: bool) -> tuple[dict[str, float], dict[str, list[float]]]:
        o = self.options
        ae_steps, sup_steps, joint_steps = self.iterations()
        m: Any = self.nets
        lr, gamma = float(o["lr"]), float(o["gamma"])
        params = {k: list(m[k].parameters()) for k in m}
        opt_e = torch.optim.Adam(params["embedder"] + params["recovery"], lr=lr)
        opt_s = torch.optim.Adam(params["generator"] + params["supervisor"], lr=lr)
        opt_g = torch.optim.Adam(params["generator"] + params["supervisor"], lr=lr)
        opt_d = torch.optim.Adam(params["discriminator"], lr=lr)
        data = batches(x, int(o["batch"]), gen)
        hist: dict[str, list[float]] = {"ae": [], "supervised": [], "g": [], "g_moments": [], "d": [], "e": []}
        log_every = max(1, int(o["log_every"]))
        bar = progress_bar(ae_steps + sup_steps + joint_steps, progress, "timegan")

        def sup_loss(h: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(h[:, 1:], m["supervisor"](h)[:, :-1])

        for i in range(ae_steps):  # phase 1: autoencoder
            xb = next(data)
            loss = 10 * torch.sqrt(F.mse_loss(m["recovery"](m["embedder"](xb)), xb))
            opt_e.zero_grad()
            loss.backward()
            opt_e.step()
            if i % log_every == 0:
                hist["ae"].append(loss.item())
            bar.update()
        for i in range(sup_steps):  # phase 2: supervised next-step loss in latent space
            xb = next(data)
            with torch.no_grad():
                h = m["embedder"](xb)
            loss = sup_loss(h)
            opt_s.zero_grad()
            loss.backward()
            opt_s.step()
            if i % log_every == 0:
                hist["supervised"].append(loss.item())
            bar.update()

        bce = F.binary_cross_entropy_with_logits
        gs_params = params["generator"] + params["supervisor"]
        d_loss = torch.tensor(0.0)
        for i in range(joint_steps):  # phase 3: joint
            for _ in range(2):
                xb = next(data)
                # The generator step does not change the embedder, so the embedder step below reuses h.
                h = m["embedder"](xb)
                e_hat = m["generator"](self._noise(len(xb), gen))
                # one supervisor pass over generated and real latents (GRU rows are independent)
                h_hat, s_real = m["supervisor"](torch.cat([e_hat, h.detach()])).chunk(2)
                x_hat = m["recovery"](h_hat)
                # one discriminator pass over both fake batches (rows are independent)
                y_fake, y_fake_e = m["discriminator"](torch.cat([h_hat, e_hat])).chunk(2)
                moments = (torch.mean(torch.abs(torch.sqrt(x_hat.var(0, unbiased=False) + 1e-6)
                                                - torch.sqrt(xb.var(0, unbiased=False) + 1e-6)))
                           + torch.mean(torch.abs(x_hat.mean(0) - xb.mean(0))))
                g_loss = (bce(y_fake, torch.ones_like(y_fake)) + gamma * bce(y_fake_e, torch.ones_like(y_fake_e))
                          + 100 * torch.sqrt(F.mse_loss(h.detach()[:, 1:], s_real[:, :-1])) + 100 * moments)
                # gradients for the generator and supervisor only (skips recovery/discriminator weights)
                for p, g in zip(gs_params, torch.autograd.grad(g_loss, gs_params), strict=True):
                    p.grad = g
                opt_g.step()
                # embedder + recovery: reconstruction + 0.1·supervised (with the updated supervisor)
                e_loss = 10 * torch.sqrt(F.mse_loss(m["recovery"](h), xb)) + 0.1 * sup_loss(h)
                opt_e.zero_grad()
                e_loss.backward()
                opt_e.step()
            xb = next(data)
            with torch.no_grad():
                h = m["embedder"](xb)
                e_hat = m["generator"](self._noise(len(xb), gen))
                h_hat = m["supervisor"](e_hat)
            y_real, y_fake, y_fake_e = m["discriminator"](torch.cat([h, h_hat, e_hat])).chunk(3)
            d_loss = (bce(y_real, torch.ones_like(y_real)) + bce(y_fake, torch.zeros_like(y_fake))
                      + gamma * bce(y_fake_e, torch.zeros_like(y_fake_e)))
            if d_loss.item() > 0.15:  # keep the discriminator from overpowering the generator
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
            if i % log_every == 0:
                hist["g"].append(g_loss.item())
                hist["g_moments"].append(moments.item())  # generated vs real batch mean/std gap
                hist["d"].append(d_loss.item())
                hist["e"].append(e_loss.item())
            bar.update()
        bar.close()
        final = {k: v[-1] for k, v in hist.items() if v}
        return final, hist

    @torch.no_grad()
    def _generate(self, n: int, gen: torch.Generator) -> torch.Tensor:
        m: Any = self.nets
        return m["recovery"](m["supervisor"](m["generator"](self._noise(n, gen))))
