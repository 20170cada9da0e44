"""docs/protocol.md §6: joint t-SNE / PCA embeddings, return KDE and k-NN coverage of real vs synthetic."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import gaussian_kde
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors


@dataclass
class DiversityResult:
    n_real: int
    n_synthetic: int
    #: share of synthetic points inside some real point's k-NN ball (fidelity-style coverage)
    precision: float
    #: share of real points inside some synthetic point's k-NN ball (diversity-style coverage)
    recall: float
    k: int
    pca_explained: list[float] = field(default_factory=list)
    # embeddings (not in to_dict: plots only)
    pca_real: np.ndarray | None = None
    pca_synthetic: np.ndarray | None = None
    tsne_real: np.ndarray | None = None
    tsne_synthetic: np.ndarray | None = None
    kde_grid: np.ndarray | None = None
    kde_real: np.ndarray | None = None
    kde_synthetic: np.ndarray | None = None
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"n_real": self.n_real, "n_synthetic": self.n_synthetic, "precision": self.precision,
                "recall": self.recall, "k": self.k, "pca_explained": self.pca_explained,
                "settings": self.settings}


def knn_coverage(real: np.ndarray, synthetic: np.ndarray, k: int = 5) -> tuple[float, float]:
    """k-NN precision and recall (Kynkäänniemi et al. 2019) of flattened sequences."""
    def radii(x):
        d, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        return d[:, -1]  # column 0 is the point itself

    def inside(points, centers, r):
        # A point is covered when it lies within the k-NN radius of any center.
        d = np.sqrt(np.maximum(((points ** 2).sum(1)[:, None] - 2 * points @ centers.T
                                + (centers ** 2).sum(1)[None, :]), 0.0))
        return float((d <= r[None, :]).any(axis=1).mean())

    rr, rs = radii(real), radii(synthetic)
    return inside(synthetic, real, rr), inside(real, synthetic, rs)


def standardized_returns(real_close: np.ndarray, synthetic_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled close-to-close log returns of both sets, standardized with the REAL mean/std so a
    volatility mismatch stays visible."""
    r = np.diff(np.log(np.asarray(real_close, np.float64)), axis=1).reshape(-1)
    s = np.diff(np.log(np.asarray(synthetic_close, np.float64)), axis=1).reshape(-1)
    r, s = r[np.isfinite(r)], s[np.isfinite(s)]
    mu, sd = r.mean(), r.std()
    return (r - mu) / sd, (s - mu) / sd


def diversity(real: np.ndarray, synthetic: np.ndarray, *, real_close: np.ndarray | None = None,
              synthetic_close: np.ndarray | None = None, max_n: int = 1000, perplexity: float = 30.0,
              k: int = 5, seed: int = 0, tsne: bool = True) -> DiversityResult:
    """Joint PCA and t-SNE on the union of ≤ max_n real and ≤ max_n synthetic normalized sequences
    (n, T, F) — never fitted separately — plus k-NN coverage and, given raw closes, the return KDE."""
    rng = np.random.default_rng(seed)
    r = np.asarray(real, np.float64)
    s = np.asarray(synthetic, np.float64)
    r = r[np.sort(rng.permutation(len(r))[:max_n])].reshape(min(len(r), max_n), -1)
    s = s[np.sort(rng.permutation(len(s))[:max_n])].reshape(min(len(s), max_n), -1)
    both = np.concatenate([r, s])
    pca = PCA(n_components=2, random_state=seed).fit(both)
    emb = pca.transform(both)
    out = DiversityResult(len(r), len(s), *knn_coverage(r, s, k), k=k,
                          pca_explained=[float(v) for v in pca.explained_variance_ratio_],
                          pca_real=emb[:len(r)], pca_synthetic=emb[len(r):])
    if tsne:
        perp = min(perplexity, (len(both) - 1) / 3)  # sklearn requires perplexity < n_samples
        t = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(both)
        out.tsne_real, out.tsne_synthetic = t[:len(r)], t[len(r):]
    if real_close is not None and synthetic_close is not None:
        zr, zs = standardized_returns(real_close, synthetic_close)
        grid = np.linspace(-6, 6, 241)
        out.kde_grid, out.kde_real, out.kde_synthetic = grid, gaussian_kde(zr)(grid), gaussian_kde(zs)(grid)
    out.settings = {"max_n": max_n, "perplexity": perplexity, "tsne": tsne, "k": k, "seed": seed,
                    "embedding_input": "flattened normalized sequences (§2), joint fit on real ∪ synthetic",
                    "kde": "pooled close log returns standardized with the real mean/std"}
    return out
