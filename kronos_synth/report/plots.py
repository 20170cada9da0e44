"""PNG plots of an evaluation (matplotlib Agg): real in red, synthetic in blue, labelled axes."""

from __future__ import annotations

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

REAL, SYN, BASE = "#d62728", "#1f77b4", "#7f7f7f"


def _wrap(title: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(title, width))


def save_figure(fig: Figure, path: str) -> str:
    """Lay out `fig`, write it to `path` as PNG (110 dpi, no timestamp: same figure → same bytes), close it
    and return `path`. Every report plot is written this way."""
    fig.tight_layout()
    # no timestamp in the PNG metadata, so the same evaluation writes the same bytes
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def embedding_plot(real: np.ndarray, synthetic: np.ndarray, path: str, *, title: str, method: str,
                   axis_labels: tuple[str, str] = ("component 1", "component 2")) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.scatter(real[:, 0], real[:, 1], s=7, alpha=0.5, c=REAL, label=f"real (n={len(real)})", linewidths=0)
    ax.scatter(synthetic[:, 0], synthetic[:, 1], s=7, alpha=0.5, c=SYN, label=f"synthetic (n={len(synthetic)})",
               linewidths=0)
    ax.set_xlabel(f"{method} {axis_labels[0]}".strip())
    ax.set_ylabel(f"{method} {axis_labels[1]}".strip())
    ax.set_title(_wrap(title, 62), fontsize=10)
    ax.legend(loc="best", markerscale=2.5, fontsize=8)
    return save_figure(fig, path)


def kde_plot(grid: np.ndarray, real: np.ndarray, synthetic: np.ndarray, path: str, *, title: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, log in zip(axes, (False, True), strict=True):
        ax.plot(grid, real, color=REAL, label="real")
        ax.plot(grid, synthetic, color=SYN, label="synthetic")
        ax.set_xlabel("close log return, standardized with the real mean/std")
        ax.set_ylabel("density (log scale)" if log else "density")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(max(1e-5, min(real.min(), synthetic.min(), 1e-3)), None)
        ax.legend(fontsize=8)
    axes[0].set_title("return KDE", fontsize=10)
    axes[1].set_title("tails", fontsize=10)
    fig.suptitle(_wrap(title, 110), fontsize=10)
    return save_figure(fig, path)


def stylized_plot(real: dict, synthetic: dict, train: dict, path: str, *, title: str) -> str:
    panels = [("acf_returns", "ACF of returns"), ("acf_abs_returns", "ACF of |returns|"),
              ("leverage", "leverage L(k)"), ("parkinson_acf", "ACF of Parkinson range volatility")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, name) in zip(axes.ravel(), panels, strict=True):
        lags = np.arange(1, len(real[key]) + 1)
        ax.axhline(0, color="black", lw=0.6)
        ax.plot(lags, real[key], "o-", color=REAL, ms=3, label="real (test period)")
        ax.plot(lags, synthetic[key], "s-", color=SYN, ms=3, label="synthetic")
        if train:
            ax.plot(lags, train[key], "--", color=BASE, lw=1, label="real (train period)")
        ax.set_xlabel("lag (bars)")
        ax.set_ylabel(name)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(_wrap(title, 110), fontsize=10)
    return save_figure(fig, path)


def write_plots(result, out_dir: str, label: str) -> list[str]:
    """All plots the result has data for; `label` is 'dataset, frequency, generator'."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    d = result.diversity
    if d is not None:
        n = f"n = {d.n_real} real + {d.n_synthetic} synthetic"
        if d.tsne_real is not None:
            paths.append(embedding_plot(d.tsne_real, d.tsne_synthetic, os.path.join(out_dir, "tsne.png"),
                                        title=f"joint t-SNE (perplexity {d.settings['perplexity']:g}) — {label}, {n}",
                                        method="t-SNE"))
        ev = d.pca_explained
        paths.append(embedding_plot(d.pca_real, d.pca_synthetic, os.path.join(out_dir, "pca.png"),
                                    title=f"joint PCA — {label}, {n}", method="",
                                    axis_labels=(f"PC1 ({ev[0]:.1%} var)", f"PC2 ({ev[1]:.1%} var)")))
        if d.kde_grid is not None:
            nk = f"n = {result.data['n_real_test_used']} real + {result.data['n_synthetic_used']} synthetic sequences"
            paths.append(kde_plot(d.kde_grid, d.kde_real, d.kde_synthetic, os.path.join(out_dir, "returns_kde.png"),
                                  title=f"pooled close log returns — {label}, {nk}"))
    s = result.stylized
    if s is not None:
        n = f"n = {s.real['n_sequences']} real + {s.synthetic['n_sequences']} synthetic"
        paths.append(stylized_plot(s.real, s.synthetic, s.real_train, os.path.join(out_dir, "stylized_acf.png"),
                                   title=f"stylized facts — {label}, {n}"))
    return paths
