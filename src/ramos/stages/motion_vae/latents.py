"""Latent-space analysis of a trained motion VAE: maps, clusters, interpolation, projector export.

:func:`analyze_latents` encodes the windows of a prepared data set with the posterior mean and writes
``<out>/latents.md`` with PNGs under ``<out>/latents/``: PCA and t-SNE maps coloured by label and by
length, k-means clusters (size, most common labels/captions, length distribution, a rendered medoid
per cluster: "what are the most common motions", seen from the latent side), a latent
interpolation between two motions, and the latents in TensorBoard's embedding projector format.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from ramos.utils.atomic import atomic_dir, atomic_path, write_json, write_text

log = logging.getLogger(__name__)


@dataclass
class EncodedSet:
    """Posterior means of a set of windows and what is known about each window."""

    mu: np.ndarray  # (N, D)
    logvar: np.ndarray  # (N, D)
    indices: np.ndarray  # (N,) window indices in the data set
    labels: list[str]  # first label per window ("" when unlabelled)
    captions: list[str]  # first caption per window ("" when none)
    lengths: np.ndarray  # (N,) valid frames


@torch.no_grad()
def encode_windows(vae: Any, windows: np.ndarray, lengths: np.ndarray, batch_size: int = 256,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) of ``windows`` (N, W, J, 3) metres with valid ``lengths`` (N,), batched."""
    mus, logvars = [], []
    w = windows.shape[1]
    for a in tqdm(range(0, len(windows), batch_size), desc="encode", disable=not progress or None):
        x = torch.as_tensor(np.asarray(windows[a:a + batch_size], dtype=np.float32))
        mask = torch.arange(w)[None, :] < torch.as_tensor(np.asarray(lengths[a:a + batch_size]))[:, None]
        mu, logvar = vae.encode(x, mask)
        mus.append(mu.numpy())
        logvars.append(logvar.numpy())
    return np.concatenate(mus), np.concatenate(logvars)


def encode_dataset(vae: Any, data: Any, split: str = "train", max_windows: int | None = 3000, seed: int = 0,
                   progress: bool = False) -> EncodedSet:
    """Encode a split (or ``"all"``) of a :class:`~ramos.motion.dataset.MotionDataset`; at most
    ``max_windows`` windows, drawn at random (t-SNE and the plots stay readable and fast)."""
    idx = np.arange(len(data)) if split == "all" else data.split_indices(split)
    if len(idx) == 0:
        raise ValueError(f"{data.path}: split {split!r} has no windows")
    if max_windows is not None and len(idx) > max_windows:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_windows, replace=False))
    lengths = np.asarray(data.lengths[idx])
    mu, logvar = encode_windows(vae, data.windows[idx], lengths, progress=progress)
    labels = [(data.meta[i].get("labels") or [""])[0] for i in idx]
    captions = [(data.meta[i].get("captions") or [""])[0] for i in idx]
    return EncodedSet(mu, logvar, idx, labels, captions, lengths)


# --- maps -------------------------------------------------------------------------------------------------
def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA projection and the explained variance ratio of every component."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(x.shape[0], x.shape[1])).fit(x)
    return pca.transform(x)[:, :2], pca.explained_variance_ratio_


def tsne_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (on the first 50 principal components, the usual speed-up)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x50 = PCA(n_components=min(50, *x.shape)).fit_transform(x) if x.shape[1] > 50 else x
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x50)


def _scatter_pair(xy: np.ndarray, labels: list[str], lengths: np.ndarray, title: str, path: Path) -> Path:
    """Two panels: points coloured by label (legend) and by length (colour bar)."""
    fig = Figure(figsize=(13, 5.5), dpi=90)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    vocab = sorted(set(labels))
    cmap = _category_colours(len(vocab))
    for k, lab in enumerate(vocab):
        sel = np.array([lb == lab for lb in labels])
        ax1.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap[k], label=lab or "(none)", alpha=0.8, linewidths=0)
    ax1.set_title(f"{title}: by label")
    ax1.legend(fontsize=7, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    sc = ax2.scatter(xy[:, 0], xy[:, 1], s=6, c=lengths, cmap="viridis", alpha=0.8, linewidths=0)
    fig.colorbar(sc, ax=ax2, label="length (frames)")
    ax2.set_title(f"{title}: by length")
    for ax in (ax1, ax2):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


def _category_colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    base = colormaps["tab20"].colors + colormaps["tab20b"].colors
    return [base[i % len(base)] for i in range(n)]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")
    return path


# --- clusters ------------------------------------------------------------------------------------------------
@dataclass
class Cluster:
    """One k-means cluster of latents."""

    index: int
    size: int
    top_labels: list[tuple[str, int]]
    top_captions: list[tuple[str, int]]
    lengths: np.ndarray
    medoid: int  # position (in the encoded set) of the member closest to the centroid


def kmeans_clusters(enc: EncodedSet, k: int, seed: int = 0) -> tuple[list[Cluster], np.ndarray]:
    """k-means on the posterior means; clusters sorted by size (largest first) and the assignment."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(enc.mu)))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(enc.mu)
    order = np.argsort(-np.bincount(km.labels_, minlength=k), kind="stable")
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    assign = rank[km.labels_]
    clusters = []
    for c in range(k):
        members = np.flatnonzero(assign == c)
        centre = km.cluster_centers_[order[c]]
        medoid = int(members[np.argmin(((enc.mu[members] - centre) ** 2).sum(1))])
        clusters.append(Cluster(
            c, len(members),
            Counter(enc.labels[i] or "(none)" for i in members).most_common(3),
            Counter(enc.captions[i] for i in members if enc.captions[i]).most_common(3),
            enc.lengths[members], medoid,
        ))
    return clusters, assign


def _length_hist(clusters: list[Cluster], window: int, path: Path) -> Path:
    fig = Figure(figsize=(8, 0.6 + 0.55 * len(clusters)), dpi=90)
    ax = fig.add_subplot(1, 1, 1)
    ax.boxplot([c.lengths for c in clusters], vert=False, widths=0.6,
               tick_labels=[f"cluster {c.index} (n={c.size})" for c in clusters])
    ax.invert_yaxis()
    ax.set_xlim(0, window + 5)
    ax.set_xlabel("window length (frames)")
    ax.set_title("length distribution per cluster")
    fig.tight_layout()
    return _save(fig, path)


# --- interpolation ---------------------------------------------------------------------------------------------
@torch.no_grad()
def interpolate(vae: Any, z0: np.ndarray, z1: np.ndarray, steps: int = 5) -> np.ndarray:
    """Decoded motions (steps, W, J, 3) along the straight line from ``z0`` to ``z1``."""
    a = torch.linspace(0, 1, steps)[:, None]
    z = (1 - a) * torch.as_tensor(z0)[None] + a * torch.as_tensor(z1)[None]
    return vae.decode(z.float()).numpy()


def pick_pair(enc: EncodedSet, seed: int = 0) -> tuple[int, int]:
    """Two full-length windows with different labels (positions in the encoded set); the two most
    common labels when possible, so the interpolation goes between familiar motions."""
    full = np.flatnonzero(enc.lengths >= enc.lengths.max())
    pool = full if len(full) >= 2 else np.arange(len(enc.mu))
    counts = Counter(enc.labels[i] for i in pool).most_common()
    rng = np.random.default_rng(seed)
    if len(counts) >= 2:
        a = rng.choice([i for i in pool if enc.labels[i] == counts[0][0]])
        b = rng.choice([i for i in pool if enc.labels[i] == counts[1][0]])
        return int(a), int(b)
    a, b = rng.choice(pool, 2, replace=False)
    return int(a), int(b)


# --- projector ---------------------------------------------------------------------------------------------------
def export_projector(enc: EncodedSet, assign: np.ndarray, out: Path) -> Path:
    """Write the latents, with label/length/cluster metadata, for TensorBoard's projector."""
    from torch.utils.tensorboard import SummaryWriter

    with atomic_dir(out) as tmp:
        writer = SummaryWriter(log_dir=str(tmp))
        meta = [[lab or "(none)", str(int(n)), str(int(c))] for lab, n, c in zip(enc.labels, enc.lengths, assign)]
        writer.add_embedding(torch.as_tensor(enc.mu), metadata=meta, metadata_header=["label", "length", "cluster"],
                             tag="motion_vae_latents")
        writer.close()
    return out


# --- the report -----------------------------------------------------------------------------------------------------
def analyze_latents(vae: Any, data: Any, out_dir: str | os.PathLike[str], split: str = "train", k: int = 8,
                    max_windows: int | None = 3000, seed: int = 0, tsne: bool = True,
                    vae_path: str | None = None, progress: bool = True) -> Path:
    """Write ``<out_dir>/latents.md`` (+ ``latents/*.png``, ``latents/projector/``, ``latents/summary.json``)."""
    from ramos.motion.render import render_grid

    out = Path(out_dir)
    fig_dir = out / "latents"
    fig_dir.mkdir(parents=True, exist_ok=True)
    enc = encode_dataset(vae, data, split, max_windows, seed, progress)
    n, d = enc.mu.shape
    log.info("encoded %d windows of %s (%s)", n, data.path, split)

    xy_pca, evr = pca_2d(enc.mu)
    _scatter_pair(xy_pca, enc.labels, enc.lengths,
                  f"PCA (PC1 {100 * evr[0]:.0f}%, PC2 {100 * evr[1]:.0f}% of variance)", fig_dir / "pca.png")
    if tsne and n >= 5:
        _scatter_pair(tsne_2d(enc.mu, seed), enc.labels, enc.lengths, "t-SNE", fig_dir / "tsne.png")

    clusters, assign = kmeans_clusters(enc, k, seed)
    _length_hist(clusters, data.window, fig_dir / "cluster_lengths.png")
    medoids = [c.medoid for c in clusters]
    render_grid([np.asarray(data.windows[enc.indices[m]])[: enc.lengths[m]] for m in medoids], data.skeleton,
                fig_dir / "cluster_medoids.png",
                titles=[f"cluster {c.index}: {enc.labels[c.medoid] or '?'}" for c in clusters], n_frames=8)

    a, b = pick_pair(enc, seed)
    steps = 5
    path = interpolate(vae, enc.mu[a], enc.mu[b], steps)
    length = int(min(enc.lengths[a], enc.lengths[b]))
    titles = [f"{enc.labels[a] or 'A'}" if s == 0 else f"{enc.labels[b] or 'B'}" if s == steps - 1
              else f"{s / (steps - 1):.2f}" for s in range(steps)]
    render_grid([p[:length] for p in path], data.skeleton, fig_dir / "interpolation.png", titles=titles, n_frames=8)

    export_projector(enc, assign, fig_dir / "projector")

    # Active units: latent dimensions whose posterior mean varies over the data (posterior collapse check).
    active = int((enc.mu.var(0) > 0.01).sum())
    summary = {"vae": vae_path, "dataset": os.fspath(data.path), "split": split, "windows": n, "latent_dim": d,
               "active_dims": active, "pca_explained_top10": evr[:10].round(4).tolist(),
               "clusters": [{"cluster": c.index, "size": c.size, "top_labels": c.top_labels,
                             "top_captions": c.top_captions, "length_median": float(np.median(c.lengths)),
                             "length_min": int(c.lengths.min()), "length_max": int(c.lengths.max())} for c in clusters]}
    write_json(fig_dir / "summary.json", summary)
    report = out / "latents.md"
    write_text(report, _markdown(summary, clusters, enc, (a, b), evr, tsne and n >= 5))
    return report


def _markdown(summary: dict[str, Any], clusters: list[Cluster], enc: EncodedSet, pair: tuple[int, int],
              evr: np.ndarray, has_tsne: bool) -> str:
    n, d = enc.mu.shape
    lines = [
        "# Motion VAE latent space",
        "",
        f"VAE checkpoint `{summary['vae']}`, data set `{summary['dataset']}`, split `{summary['split']}`: "
        f"{n} windows encoded to their posterior means ({d} dimensions). "
        f"{summary['active_dims']} of {d} dimensions are active (posterior-mean variance > 0.01); "
        f"the first two principal components hold {100 * evr[0]:.1f}% and {100 * evr[1]:.1f}% of the variance, "
        f"the first ten {100 * evr[:10].sum():.1f}%.",
        "",
        "## Maps",
        "",
        "![PCA](latents/pca.png)",
        "",
    ]
    if has_tsne:
        lines += ["![t-SNE](latents/tsne.png)", ""]
    lines += [
        "## The most common motions (k-means clusters of the latents)",
        "",
        f"k-means with k = {len(clusters)} on the posterior means, clusters sorted by size.",
        "",
        "| cluster | windows | share | most common labels | most common captions | length median (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for c in clusters:
        labs = ", ".join(f"{lab} ({cnt})" for lab, cnt in c.top_labels)
        caps = ", ".join(f"\"{cap}\" ({cnt})" for cap, cnt in c.top_captions) or "-"
        lines.append(f"| {c.index} | {c.size} | {100 * c.size / n:.1f}% | {labs} | {caps} | "
                     f"{np.median(c.lengths):.0f} ({c.lengths.min()}-{c.lengths.max()}) |")
    purity = sum(c.top_labels[0][1] for c in clusters) / n
    lines += [
        "",
        f"Label purity of the clusters (share of windows carrying their cluster's most common label): "
        f"{100 * purity:.1f}%.",
        "",
        "Medoid of each cluster (the window closest to its centre), 8 frames over its length:",
        "",
        "![cluster medoids](latents/cluster_medoids.png)",
        "",
        "![lengths per cluster](latents/cluster_lengths.png)",
        "",
        "## Interpolation",
        "",
        f"Decoded along the straight line between the latents of a `{enc.labels[pair[0]] or '?'}` window "
        f"(top row) and a `{enc.labels[pair[1]] or '?'}` window (bottom row); middle rows at 25, 50 and 75 %.",
        "",
        "![interpolation](latents/interpolation.png)",
        "",
        "## Embedding projector",
        "",
        "`tensorboard --logdir reports/latents/projector`, tab *Projector*: every window's latent with "
        "its label, length and cluster as metadata.",
        "",
        "Numbers: `latents/summary.json`.",
        "",
    ]
    return "\n".join(lines)
