"""The small post-hoc networks and the one training loop the fidelity/usefulness metrics share."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LastStateRNN(nn.Module):
    """RNN (LSTM or GRU) over a sequence; a linear head on the last step's hidden state."""

    def __init__(self, n_in: int, hidden: int, n_out: int, *, cell: str = "lstm", layers: int = 1) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(n_in, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class StepwiseRNN(nn.Module):
    """RNN with a linear head on every step (TimeGAN's one-step-ahead predictive model)."""

    def __init__(self, n_in: int, hidden: int, n_out: int, *, cell: str = "gru") -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


def fit_epochs(model: nn.Module, x: np.ndarray, y: np.ndarray, loss_fn, *, epochs: int, batch_size: int,
               lr: float, generator: torch.Generator) -> None:
    """Plain minibatch training: `epochs` passes over shuffled data with Adam."""
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(xt), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    xt = torch.as_tensor(x, dtype=torch.float32)
    outs = [model(xt[i:i + batch_size]) for i in range(0, len(xt), batch_size)]
    return torch.cat(outs).numpy().astype(np.float64)
