"""Low-dimensional views of a layer, and how well they keep the digits apart.

A layer's activations on N images are N points in a D-dimensional space (D = the
layer's width). This module maps them to 2-D for a picture, and scores how well
points of the same digit stay together:

* :func:`pca` — the linear view: project on the directions of largest variance;
* :func:`tsne` and :func:`umap` — non-linear views that keep neighbours together
  (scikit-learn's t-SNE and umap-learn, with a fixed seed);
* :func:`silhouette` — a cluster-quality score in [-1, 1] for points and labels;
* :func:`subspace_silhouettes` — the silhouette of a chosen subset of units against
  many random subsets of the same size.

All functions take tensors (N, D) and return tensors or small dataclasses.

>>> x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1]])
>>> round(silhouette(x, torch.tensor([0, 0, 1, 1])), 2)
0.99
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistlab.checks import as_units, check_positive_int


@dataclass(frozen=True)
class PCA:
    """A principal component analysis.

    coords: (N, k) the points projected on the first k components.
    components: (k, D) unit-length directions, largest variance first; the sign of
        each is fixed so that its largest-magnitude entry is positive.
    explained_variance_ratio: (k,) share of the total variance along each component.
    """

    coords: torch.Tensor
    components: torch.Tensor
    explained_variance_ratio: torch.Tensor


def pca(x: torch.Tensor, k: int = 2) -> PCA:
    """The first ``k`` principal components of points ``x`` (N, D), by an SVD."""
    x = as_units(x).double()
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k must be between 1 and min(N, D) = {min(x.shape)}, got {k}")
    centered = x - x.mean(0)
    _, s, vh = torch.linalg.svd(centered, full_matrices=False)
    comps = vh[:k]  # (k, D)
    # An SVD's signs are arbitrary; fix them so the same data always gives the same picture.
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * signs
    var = s**2
    return PCA(
        coords=(centered @ comps.T).float(),
        components=comps.float(),
        explained_variance_ratio=(var[:k] / var.sum()).float(),
    )


def tsne(x: torch.Tensor, seed: int = 0, perplexity: float = 30.0) -> torch.Tensor:
    """A 2-D t-SNE embedding of ``x`` (N, D) → (N, 2), scikit-learn's, PCA-initialised."""
    from sklearn.manifold import TSNE

    x = as_units(x).float()
    if len(x) <= 3 * perplexity:
        raise ValueError(
            f"t-SNE with perplexity {perplexity} needs more than {3 * perplexity:.0f} points, got {len(x)}"
        )
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x.numpy())
    return torch.from_numpy(emb).float()


ENV_NUMBA = "MNISTLAB_NUMBA_CACHE"


def numba_folder() -> Path:
    """Where umap-learn's compiled code is kept: a folder only this user can write, outside the cache.

    Numba unpickles the index files of its cache, so whoever can write that folder can
    make the next UMAP run any code. mnistlab's cache may be shared or restored from
    elsewhere (its own entries are never unpickled and are refused unless they read
    back as what the library writes), so Numba's cache is not kept there: it is
    ``<temp>/mnistlab-numba-<uid>``, made mode 0700, and used only while it is a real
    folder owned by this user that nobody else can write. It is lost at a reboot, which
    costs one compilation (about 10 s on two cores). ``$MNISTLAB_NUMBA_CACHE`` names
    another folder, held to the same rule.
    """
    chosen = os.environ.get(ENV_NUMBA)
    return Path(chosen).absolute() if chosen else Path(tempfile.gettempdir()) / f"mnistlab-numba-{os.getuid()}"


def private_folder(path: Path) -> str | None:
    """Make ``path`` a folder only this user can use; return why it cannot be trusted, or None."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
    except OSError as err:
        return f"cannot make {path}: {err.strerror or err}"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder"
    if st.st_uid != os.getuid():
        return f"{path} belongs to another user"
    if st.st_mode & 0o077:
        return f"{path} can be used by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def umap_learn():
    """umap-learn, with its Numba functions kept in Numba's on-disk cache.

    umap-learn marks only one of its Numba functions for Numba's cache, so every kernel
    of a book build compiled the ones a UMAP needs again (the first UMAP of a process
    took 14 s on two cores, 5 s with the cache). This turns that cache on for
    the others, in :func:`numba_folder` (``mnistlab cache clear`` empties it; a folder
    that others could write is not used, with a warning, and the code is compiled in
    each process). Numba keys an entry on the function's source file, its argument
    types and the processor it compiled for, and loads the machine code it would
    otherwise compile, so the embeddings are the same bits on the same machine.
    """
    with warnings.catch_warnings():
        # umap-learn imports tqdm.auto, which warns in a notebook without ipywidgets; we show no bars.
        warnings.filterwarnings("ignore", message="IProgress not found")
        import umap as module
    import numba
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    dispatchers = [
        obj
        for name, mod in list(sys.modules.items())
        if name == "umap" or name.startswith("umap.")
        for obj in list(vars(mod).values())
        if isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache)
    ]
    folder = numba_folder()
    untrusted = private_folder(folder) if dispatchers else None
    if untrusted is not None:
        warnings.warn(f"umap-learn's compiled code is not cached: {untrusted}", RuntimeWarning, stacklevel=2)
    elif dispatchers:
        previous = numba.config.CACHE_DIR  # read when a function's cache is made
        numba.config.CACHE_DIR = str(folder)
        try:
            for dispatcher in dispatchers:
                dispatcher.enable_caching()
        finally:
            numba.config.CACHE_DIR = previous
    return module


def umap(x: torch.Tensor, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> torch.Tensor:
    """A 2-D UMAP embedding of ``x`` (N, D) → (N, 2), umap-learn's, seeded (so single-threaded)."""
    umap_module = umap_learn()
    x = as_units(x).float()
    if len(x) <= n_neighbors:
        raise ValueError(f"UMAP with n_neighbors={n_neighbors} needs more than {n_neighbors} points, got {len(x)}")
    with warnings.catch_warnings():
        # A seed makes umap-learn run on one thread and say so; that is the point of the seed.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        reducer = umap_module.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1)
        emb = reducer.fit_transform(x.numpy())
    return torch.from_numpy(emb).float()


def silhouette(x: torch.Tensor, labels: torch.Tensor, chunk: int = 2048) -> float:
    """Mean silhouette of points ``x`` (N, D) grouped by ``labels`` (N,), Euclidean.

    For each point, ``a`` is its mean distance to the other points of its class and
    ``b`` its mean distance to the points of the nearest other class; its silhouette is
    ``(b - a) / max(a, b)``: near 1 when classes form tight, separate clusters, near 0
    when they overlap. A point alone in its class scores 0 (scikit-learn's
    convention). All N points are used: the N × N distances are computed in chunks.
    """
    x = as_units(x).double()
    if labels.shape != (len(x),):
        raise ValueError(f"expected labels ({len(x)},), got shape {tuple(labels.shape)}")
    check_positive_int(chunk, "chunk")
    classes, inverse = labels.unique(return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"the silhouette needs at least two classes, got {classes.tolist()}")
    onehot = torch.nn.functional.one_hot(inverse, len(classes)).double()  # (N, C)
    size = onehot.sum(0)  # (C,)
    scores = []
    for start in range(0, len(x), chunk):
        xb, ob = x[start : start + chunk], onehot[start : start + chunk]
        mean_dist = torch.cdist(xb, x) @ onehot  # (B, C) summed distances to each class
        own_size = ob @ size  # (B,)
        a = (mean_dist * ob).sum(1) / (own_size - 1).clamp(min=1)
        others = (mean_dist / size).masked_fill(ob.bool(), float("inf"))
        b = others.min(1).values
        s = (b - a) / torch.maximum(a, b).clamp(min=1e-300)
        scores.append(s.where(own_size > 1, torch.zeros_like(s)))
    return torch.cat(scores).mean().item()


def covering_units(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` units chosen to cover the classes: each class's best unit, then each one's
    second best, and so on (a unit taken once); (k,) indices, in the order chosen.

    Within a round the classes go in order of how high that round's unit scores for them,
    so with fewer units than classes the choice favours the classes that some unit
    singles out most clearly, not the classes with the smallest index. A prefix of the
    result is the choice for a smaller ``k``.

    >>> scores = torch.tensor([[0.9, 0.5, 0.6], [0.6, 0.99, 0.5], [0.5, 0.6, 0.95]])  # unit u best for class u
    >>> covering_units(scores, 2)  # class 1's best unit scores highest, then class 2's
    tensor([1, 2])

    Args:
        scores: (D, C) per-unit, per-class scores, e.g. one-vs-rest AUCs.
    """
    n_units, n_classes = scores.shape
    if not 1 <= k <= n_units:
        raise ValueError(f"k must be between 1 and the number of units ({n_units}), got {k}")
    ranked = torch.sort(scores.T, dim=1, descending=True, stable=True)  # (C, D) per class, best unit first
    chosen: list[int] = []
    for r in range(n_units):  # round r: every class's r-th best unit
        order = torch.sort(ranked.values[:, r], descending=True, stable=True).indices  # clearest class first
        for unit in ranked.indices[order, r].tolist():
            if unit not in chosen:
                chosen.append(unit)
            if len(chosen) == k:
                return torch.tensor(chosen)
    return torch.tensor(chosen)


@dataclass(frozen=True)
class SubspaceScores:
    """Silhouettes of chosen unit subsets against random subsets of the same size.

    ks: (K,) subset sizes; chosen: (K,) silhouette of the chosen k units;
    random: (K, draws) silhouette of each random draw of k units.
    """

    ks: torch.Tensor
    chosen: torch.Tensor
    random: torch.Tensor

    def beats_random(self) -> torch.Tensor:
        """(K,) share of random draws that the chosen subset beats."""
        return (self.chosen[:, None] > self.random).float().mean(1)


def subspace_silhouettes(
    acts: torch.Tensor, labels: torch.Tensor, ranking: torch.Tensor, ks: list[int], draws: int = 50, seed: int = 0
) -> SubspaceScores:
    """Silhouette of the first k units of ``ranking`` vs ``draws`` random k-unit subsets, for each k.

    Args:
        acts: (N, D) activations; labels: (N,) digits.
        ranking: unit indices in order of preference; the chosen subset for k is ``ranking[:k]``.
    """
    acts = as_units(acts).float()
    width = acts.shape[1]
    if any(not 1 <= k <= min(width, len(ranking)) for k in ks):
        raise ValueError(f"every k must be between 1 and {min(width, len(ranking))}, got {ks}")
    gen = torch.Generator().manual_seed(seed)
    chosen, random = [], []
    for k in ks:
        chosen.append(silhouette(acts[:, ranking[:k]], labels))
        random.append([silhouette(acts[:, torch.randperm(width, generator=gen)[:k]], labels) for _ in range(draws)])
    return SubspaceScores(torch.tensor(ks), torch.tensor(chosen), torch.tensor(random))
