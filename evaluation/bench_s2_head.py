"""How large are bars decoded from sampled codes, against bars decoded from the true codes?

    python -m evaluation.bench_s2_head crypto-15m [--model DIR] [--n 400]

Reads a finished protocol run (evaluation/results/NAME/work/{real.pkl,tokenizer,predictor}, or --model DIR
holding tokenizer/ and predictor/). On `n` train-period windows (lookback + window bars) the real codes are
replaced, at every horizon position at once, by one-step samples of the predictor given the true prefix;
the horizon is decoded and its size measured as the RMS of close log returns in units of the context's
return std (real data ≈ 1). A calibrated model keeps the size of the true codes; docs/models.md ("The s2
head") records the results. Also prints the s1/s2 cross-entropies on the horizon and the model's entropy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from evaluation.protocol import load_protocol
from evaluation.stages import lookback, sample_period_windows
from kronos_synth.model.kronos import Kronos
from kronos_synth.model.normalize import time_features
from kronos_synth.model.pretrained import read_sidecar
from kronos_synth.model.representation import get_representation
from kronos_synth.model.tokenizer import KronosTokenizer
from kronos_synth.train.predictor import causal_s2


def _entropy(logits: torch.Tensor) -> float:
    p = torch.softmax(logits.float(), -1)
    return float(-(p * torch.log(p + 1e-12)).sum(-1).mean())


def _ce(logits: torch.Tensor, target: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("protocol")
    ap.add_argument("--model", default=None,
                    help="folder with tokenizer/ and predictor/ (or model/, as the embedded default) [the run's work/]")
    ap.add_argument("--n", type=int, default=400)
    args = ap.parse_args()
    torch.set_num_threads(1)
    proto = load_protocol(args.protocol)
    run = Path("evaluation/results", proto["name"])
    mdir = Path(args.model) if args.model else run / "work"
    lb = lookback(proto)
    w = sample_period_windows(proto, pd.read_pickle(run / "work/real.pkl"), "train", args.n)
    x, stamps = w.values, torch.from_numpy(time_features(w.timestamps))
    tok = KronosTokenizer.from_pretrained(mdir / "tokenizer").eval()
    model = Kronos.from_pretrained(mdir / "predictor" if (mdir / "predictor").is_dir() else mdir / "model").eval()
    rep = get_representation(read_sidecar(mdir / "tokenizer") or None)
    stats = rep.fit(x[:, :lb])
    ctx_std = np.diff(np.log(x[:, :lb, 3]), axis=1).std(axis=1, keepdims=True)
    gen = torch.Generator().manual_seed(0)

    def size(closes: np.ndarray) -> float:
        r = np.diff(np.log(np.concatenate([x[:, lb - 1:lb, 3], closes], axis=1)), axis=1)
        return float(np.sqrt(((r / ctx_std) ** 2).mean()))

    def sample(logits: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits.float(), -1)
        return torch.multinomial(p.reshape(-1, p.shape[-1]), 1, generator=gen).view(p.shape[:-1])

    with torch.no_grad(), causal_s2(model):
        s1, s2 = tok.encode(torch.from_numpy(rep.transform(x, stats)), half=True)
        inputs = (s1[:, :-1], s2[:, :-1], stamps[:, :-1])
        l1, l2_true = model(*inputs, use_teacher_forcing=True, s1_targets=s1[:, 1:])
        s1_sampled = sample(l1)
        _, l2_sampled = model(*inputs, use_teacher_forcing=True, s1_targets=s1_sampled)

        def decoded(a1: torch.Tensor, a2: torch.Tensor) -> float:
            c1, c2 = s1.clone(), s2.clone()
            c1[:, lb:], c2[:, lb:] = a1[:, lb - 1:], a2[:, lb - 1:]
            z = tok.decode((c1, c2), half=True).float().numpy()
            return size(rep.inverse(z[:, lb:], stats)[..., 3])

        h = slice(lb - 1, None)  # logits predicting the horizon positions
        print(f"{proto['name']}: {len(x)} train-period windows, model {mdir}")
        print(f"  s1: cross-entropy {_ce(l1[:, h], s1[:, lb:]):.3f}, model entropy {_entropy(l1[:, h]):.3f}")
        print(f"  s2 given the true s1: cross-entropy {_ce(l2_true[:, h], s2[:, lb:]):.3f}, "
              f"model entropy {_entropy(l2_true[:, h]):.3f}")
        print("  horizon size (RMS close return / context std):")
        rows = [("real bars", size(x[:, lb:, 3])),
                ("true s1, true s2 (tokenizer round trip)", decoded(s1[:, 1:], s2[:, 1:])),
                ("true s1, s2 sampled given it", decoded(s1[:, 1:], sample(l2_true))),
                ("s1 sampled, s2 sampled given it (model)", decoded(s1_sampled, sample(l2_sampled)))]
        for label, value in rows:
            print(f"    {label:42s} {value:.3f}")


if __name__ == "__main__":
    main()
