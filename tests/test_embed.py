"""Embeddings and cluster scores against scikit-learn."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.metrics import silhouette_score

from mnistlab import embed


def blobs(n=300, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 5
    centers = torch.randn(5, d, generator=g) * 3
    return centers[labels] + torch.randn(n, d, generator=g), labels


def test_pca_matches_sklearn_up_to_sign():
    x, _ = blobs()
    ours = embed.pca(x, k=3)
    sk = SkPCA(n_components=3).fit(x.numpy())
    np.testing.assert_allclose(ours.explained_variance_ratio.numpy(), sk.explained_variance_ratio_, rtol=1e-4)
    sk_coords = sk.transform(x.numpy())
    for i in range(3):
        sign = np.sign(np.dot(ours.coords[:, i].numpy(), sk_coords[:, i]))
        np.testing.assert_allclose(ours.coords[:, i].numpy(), sign * sk_coords[:, i], atol=1e-3)


def test_pca_signs_are_fixed():
    x, _ = blobs()
    a, b = embed.pca(x, 2), embed.pca(-x, 2)  # negating the data flips the SVD's signs
    comps = a.components
    assert (comps.gather(1, comps.abs().argmax(1, keepdim=True)) > 0).all()
    torch.testing.assert_close(a.components, b.components)


def test_silhouette_matches_sklearn():
    x, labels = blobs()
    assert embed.silhouette(x, labels, chunk=64) == pytest.approx(silhouette_score(x.numpy(), labels.numpy()), abs=1e-6)


def test_silhouette_of_a_singleton_class_is_zero_like_sklearn():
    x = torch.tensor([[0.0], [0.1], [5.0]])
    labels = torch.tensor([0, 0, 1])
    assert embed.silhouette(x, labels) == pytest.approx(silhouette_score(x.numpy(), labels.numpy()))


def test_silhouette_needs_two_classes():
    with pytest.raises(ValueError, match="at least two classes"):
        embed.silhouette(torch.rand(5, 2), torch.zeros(5, dtype=torch.long))


def test_covering_units_take_each_class_best_first_the_clearest_class_first():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7], [0.2, 0.95]])  # (D=4, C=2)
    assert embed.covering_units(scores, 2).tolist() == [3, 0]  # class 1's best (0.95) beats class 0's (0.9)
    assert embed.covering_units(scores, 4).tolist() == [3, 0, 1, 2]  # then the second bests: 0.8, then 0.7
    # Fewer units than classes: the classes some unit singles out best, whatever their index.
    many = torch.full((3, 10), 0.5)
    many[0, 0], many[1, 8], many[2, 9] = 0.6, 0.99, 0.97
    assert embed.covering_units(many, 2).tolist() == [1, 2]


def test_subspace_silhouettes_finds_the_informative_units():
    x, labels = blobs(d=4)
    noise = torch.randn(len(x), 12, generator=torch.Generator().manual_seed(1))
    acts = torch.cat([x, noise], 1)  # units 0-3 carry the classes, 4-15 are noise
    res = embed.subspace_silhouettes(acts, labels, torch.arange(16), ks=[4], draws=20)
    assert res.random.shape == (1, 20)
    assert res.beats_random().item() == 1.0


@pytest.mark.slow
def test_umap_and_tsne_give_seeded_2d_maps():
    x, labels = blobs(n=200)
    a, b = embed.umap(x, seed=0), embed.umap(x, seed=0)
    assert a.shape == (200, 2) and torch.equal(a, b)
    t = embed.tsne(x, seed=0, perplexity=10)
    assert t.shape == (200, 2)
    assert embed.silhouette(t, labels) > 0.5  # well-separated blobs stay separated


UMAP_IN_A_FRESH_PROCESS = """
import hashlib, json, torch
from mnistlab import embed
x = torch.rand(60, 5, generator=torch.Generator().manual_seed(0))
emb = embed.umap(x, n_neighbors=5)
from numba.core.dispatcher import Dispatcher
import sys
stats = [o.stats for n, m in list(sys.modules.items()) if n.startswith("umap") for o in vars(m).values()
         if isinstance(o, Dispatcher)]
print(json.dumps({"sha": hashlib.sha256(emb.numpy().tobytes()).hexdigest(),
                  "hits": sum(sum(s.cache_hits.values()) for s in stats),
                  # Signatures given as strings compile when umap is imported, before its cache
                  # is on (a few small functions); the rest compile when first called.
                  "lazy_misses": sum(n for s in stats for sig, n in s.cache_misses.items()
                                     if not isinstance(sig, str))}))
"""


@pytest.mark.slow
def test_umap_compiles_once_and_the_cached_code_gives_the_same_embedding(tmp_path):
    """A second process loads umap-learn's functions from Numba's cache and embeds the same bits."""
    env = {**os.environ, "MNISTLAB_CACHE": str(tmp_path / "cache"), "MNISTLAB_NUMBA_CACHE": str(tmp_path / "numba")}
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", UMAP_IN_A_FRESH_PROCESS], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert list((tmp_path / "numba").rglob("*.nbi")), "nothing was written to Numba's cache"
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.nbi"))
    assert first["lazy_misses"] > 0  # compiled, and stored
    assert second["hits"] > 0 and second["lazy_misses"] == 0  # loaded, nothing compiled again
    assert second["sha"] == first["sha"]


def test_the_beats_random_rule_can_fail_when_the_chosen_units_are_the_noise():
    """Chapter 4's verdict: a choice beats most random subsets at every k. Planted both ways: the informative
    units chosen first give 'holds'; the noise units chosen first give 'does not hold'."""
    from mnistlab import claims, stats

    x, labels = blobs(d=4)
    noise = torch.randn(len(x), 12, generator=torch.Generator().manual_seed(1))
    acts = torch.cat([x, noise], 1)  # units 0-3 carry the classes, 4-15 are noise
    draws = 20

    def verdict(ranking):
        shares = embed.subspace_silhouettes(acts, labels, ranking, ks=[2, 4], draws=draws).beats_random()
        worst = stats.proportion(round(shares.min().item() * draws), draws, of="random draws")
        return claims.greater("beats", "beats most random subsets at every k", worst, than=0.5, spec=".0%").verdict

    assert verdict(torch.arange(16)) == "holds"
    assert verdict(torch.cat([torch.arange(4, 16), torch.arange(4)])) == "contradicted"
