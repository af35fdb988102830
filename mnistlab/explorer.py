"""Every unit's card as data: what the book's unit explorer shows, computed as the chapters compute it.

A neuron card (chapter 4) shows one unit; the explorer page shows any of them at a click,
from data computed while the book builds. For every unit of both hidden layers of
chapter 2's network, and every feature of chapter 8's sparse autoencoder on
``fc1_post``, a :class:`Card` holds

* what it reads, as a pixel image: a ``fc1_post`` unit's incoming weights; for a
  ``fc2_post`` unit ``W1ᵀ w`` and for a feature ``W1ᵀ d`` (its weights, or its
  direction, carried back through ``fc1`` ignoring that layer's ReLU, as chapter 8
  draws a feature);
* its class means, selectivity index, one-vs-rest AUC per digit and firing rate on the
  test images (:func:`mnistlab.analysis.unit_profile`, chapter 4);
* its most activating test images;
* what ablating it does to each digit's test accuracy: mean ablation by the
  validation mean for units (chapter 5's table), the feature scaled to zero with the
  SAE's error kept for features (chapter 8's edit).

:func:`unit_cards` and :func:`feature_cards` compute; :func:`payload` turns cards into
the JSON the page reads (images as small PNGs, light and dark).
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, replace

import matplotlib
import numpy as np
import torch
from PIL import Image
from torch import nn

from mnistlab import analysis, choose, dictionary, features, style
from mnistlab import interventions as iv
from mnistlab.data import Dataset
from mnistlab.hooks import run_with_cache
from mnistlab.models import input_weights

TOP_K = 8  # most activating test images per card, as chapter 4's cards show
# Chapter 8's dictionary: 128 features on fc1_post, the sparsest of these L1 coefficients
# that keeps KEEP of the network's loss on the validation images (against mean ablation).
SAE_LAYER = "fc1_post"
SAE_CONFIG = dictionary.SAEConfig(width=128)
L1S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
KEEP = 0.9


@dataclass(frozen=True)
class Card:
    """One unit or feature: what it reads, what it responds to, what removing it costs.

    layer: the hook point (``"fc1_post"``, ``"fc2_post"``) or ``"SAE"``; profile: chapter 4's
    :class:`mnistlab.analysis.UnitProfile` on the test images (its unit, class means,
    selectivity, AUC per digit, firing rate, top inputs); pixels: (784,) what it reads in
    pixel space; ablation: (10,) the change in each digit's test accuracy when it is
    ablated (negative: the digit loses).
    """

    layer: str
    profile: analysis.UnitProfile
    pixels: torch.Tensor
    ablation: torch.Tensor


def _pixel_readers(model: nn.Module, layer: str) -> torch.Tensor:
    """(D, 784): what each unit of ``layer`` reads in pixel space (see the module's docstring)."""
    if layer not in ("fc1_post", "fc2_post") or model.config.arch != "mlp":
        raise ValueError(f"the explorer shows fc1_post and fc2_post of the MLP, got {layer!r} of a {model.config.arch}")
    if layer == "fc1_post":
        return input_weights(model, layer)
    return (model.fc2.weight @ model.fc1.weight).detach().cpu()


def _cards(layer: str, acts: torch.Tensor, labels: torch.Tensor, pixels: torch.Tensor, ablation: torch.Tensor):
    return [Card(layer, analysis.unit_profile(acts, labels, u, k=TOP_K), pixels[u], ablation[u])
            for u in range(acts.shape[1])]


def unit_cards(model: nn.Module, data: Dataset, layer: str) -> list[Card]:
    """A card for every unit of ``layer`` (``fc1_post`` or ``fc2_post``), on the test images."""
    pixels = _pixel_readers(model, layer)
    _, cache = run_with_cache(model, data.x_test, names=[layer])
    acts = cache[layer]
    mean = choose.ablation_values(model, layer, data.validation, "mean", rows=len(data.x_test))
    table = iv.ablation_table(model, data.x_test, data.y_test, layer, values=mean)
    return _cards(layer, acts, data.y_test, pixels, table.delta)


def chosen_sae(model: nn.Module, data: Dataset) -> tuple[float, dictionary.SparseAutoencoder]:
    """Chapter 8's dictionary: the sparsest of :data:`L1S` keeping :data:`KEEP` of the loss on validation images.

    The SAEs come from the cache when chapter 8 trained them in this build.
    """
    acts = {name: run_with_cache(model, x, names=[SAE_LAYER])[1][SAE_LAYER]
            for name, x in (("train", data.x_train), ("val", data.x_val))}
    mean = acts["val"].mean(0)
    kept = {}
    for l1 in L1S:
        sae = dictionary.load_or_train_sae(acts["train"], replace(SAE_CONFIG, l1=l1)).sae
        lr = features.loss_recovered(model, SAE_LAYER, sae, data.x_val, data.y_val, acts["val"], mean)
        kept[l1] = (lr.recovered, sae)
    passing = [l1 for l1 in L1S if kept[l1][0] >= KEEP]
    if not passing:
        raise RuntimeError(f"no SAE of L1 coefficients {L1S} keeps {KEEP:.0%} of the loss on the validation images")
    return max(passing), kept[max(passing)][1]


def feature_cards(model: nn.Module, sae: dictionary.SparseAutoencoder, data: Dataset) -> list[Card]:
    """A card for every feature of ``sae`` (trained on ``fc1_post``), on the test images."""
    _, cache = run_with_cache(model, data.x_test, names=[SAE_LAYER])
    acts = cache[SAE_LAYER]
    codes = sae.encode(acts).detach()
    pixels = (model.fc1.weight.detach().T @ sae.W_dec.detach()).T.cpu()  # (features, 784)
    edits = [features.feature_edit(sae, acts, f, 0.0) for f in range(sae.width)]
    table = iv.edit_table(model, data.x_test, data.y_test, SAE_LAYER, edits)
    return _cards("SAE", codes, data.y_test, pixels, table.delta)


# --- the page's JSON ---------------------------------------------------------------------


def _png_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pixel_codes(pixels: torch.Tensor) -> dict:
    """A (784,) pixel image as 784 bytes: code 0..255 is ``pixels`` on the symmetric scale ±``scale``.

    The page colours code ``k`` with entry ``k`` of the diverging colour map for its mode
    (:func:`colour_maps`), as matplotlib does for a map of 256 colours.
    """
    w = pixels.double().numpy()
    scale = float(np.abs(w).max()) or 1.0
    codes = np.floor((w / scale + 1) / 2 * 256).clip(0, 255).astype(np.uint8)
    return {"scale": scale, "codes": base64.b64encode(codes.tobytes()).decode("ascii")}


def colour_maps() -> dict[str, list[str]]:
    """The diverging colour map of the book's figures, 256 colours, for each colour mode."""
    from mnistlab.render import DARK_CMAPS

    def hexes(name):
        return [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps[name].resampled(256)(np.arange(256))]

    return {"light": hexes(style.DIVERGING), "dark": hexes(DARK_CMAPS[style.DIVERGING])}


def _digit(image: torch.Tensor) -> str:
    """A test image as a greyscale PNG, ink dark on white (the page inverts it in dark mode)."""
    ink = image.double().numpy().reshape(28, 28)
    return _png_uri((255 * (1 - ink)).round().clip(0, 255).astype(np.uint8))


def _numbers(t: torch.Tensor) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in t.double().tolist()]


def payload(cards: dict[str, list[Card]], images: torch.Tensor, labels: torch.Tensor, about: dict) -> dict:
    """The explorer's JSON: ``{"about", "digit_colors", "colour_maps", "layers": {name: [card, ...]}, "images"}``.

    ``images``, ``labels``: the test split the cards index into; each test image a card
    shows is stored once, under its index. Numbers are kept at full
    their full precision, so the page rounds for display exactly as Python's format does; NaN (a dead unit's
    selectivity) becomes null.
    """
    layers = {}
    for name, layer_cards in cards.items():
        layers[name] = []
        for c in layer_cards:
            p = c.profile
            layers[name].append({
                "unit": p.unit,
                "pixels": _pixel_codes(c.pixels),
                "class_means": _numbers(p.class_means),
                "selectivity": _numbers(torch.tensor([p.selectivity], dtype=torch.float64))[0],
                "auc": _numbers(p.auc),
                "firing_rate": float(p.firing_rate),
                "top": {"index": p.top_inputs.tolist(), "labels": labels[p.top_inputs].tolist(),
                        "values": _numbers(p.top_values)},
                "ablation": _numbers(c.ablation),
            })
    shown = sorted({i for layer_cards in cards.values() for c in layer_cards for i in c.profile.top_inputs.tolist()})
    return {"about": about, "digit_colors": list(style.DIGIT_COLORS), "colour_maps": colour_maps(), "layers": layers,
            "images": {str(i): _digit(images[i]) for i in shown}}


def html(data: dict) -> str:
    """The explorer as a block of HTML: where the card goes, and the data it is drawn from.

    The JSON sits in the page itself (``<script type="application/json">``), so the page
    works opened from disk as well as served, with no request at all; ``explorer.js``
    (the book's Sphinx extension ``explorer``) draws the cards from it.
    """
    text = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return ('<div id="unit-explorer"><p>The unit explorer needs JavaScript.</p></div>\n'
            f'<script type="application/json" id="unit-explorer-data">{text}</script>')


class Widget:
    """The explorer as a notebook displays it: :func:`html` of ``data``, marked as a widget's data.

    The mark (in the output's metadata) tells the book's notebook check to compare the
    data by its structure (keys, types, lengths): its numbers describe one training run,
    and the explorer's own tests check them against the library.
    """

    def __init__(self, data: dict):
        self.data = data

    def _repr_mimebundle_(self, include=None, exclude=None):
        from mnistlab.glue import META

        return {"text/html": html(self.data), "text/plain": "<unit explorer>"}, {META: {"compare": "structure"}}


__all__ = ["KEEP", "L1S", "SAE_CONFIG", "SAE_LAYER", "TOP_K", "Card", "Widget", "chosen_sae", "feature_cards", "html",
           "payload", "unit_cards"]
