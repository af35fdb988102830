"""mnistlab: the library behind the book *Looking inside an MNIST network*.

One module per concept:

* :mod:`mnistlab.scalar` — a micrograd-style scalar autograd engine (chapter 1)
* :mod:`mnistlab.data` — MNIST as in-memory tensors with a fixed split
* :mod:`mnistlab.models` — the MLP with named hook points
* :mod:`mnistlab.hooks` — reading and editing activations by name
* :mod:`mnistlab.train` — SGD training, cached on disk by :mod:`mnistlab.cache`
* :mod:`mnistlab.record` — activation snapshots and gradient norms while training
* :mod:`mnistlab.analysis` — pure functions from tensors to results
* :mod:`mnistlab.embed` — PCA, t-SNE, UMAP and cluster scores
* :mod:`mnistlab.interventions` — ablation, scaling and patching at hook points
* :mod:`mnistlab.superposition` — the toy model of superposition (chapter 8)
* :mod:`mnistlab.dictionary` — sparse autoencoders on a layer's activations (chapter 8)
* :mod:`mnistlab.features` — what an SAE's features are worth and what they cause (chapter 8)
* :mod:`mnistlab.attribution` — pixel attributions of a class's score (chapter 9)
* :mod:`mnistlab.sanity` — sanity checks and faithfulness of attribution maps (chapter 9)
* :mod:`mnistlab.visualise` — the input a unit likes best (chapter 9)
* :mod:`mnistlab.probes`, :mod:`mnistlab.similarity`, :mod:`mnistlab.circuits` — linear probes,
  representational similarity and unit matching, circuits read from the weights
* :mod:`mnistlab.compare` — the same measures for every trained variant
* :mod:`mnistlab.plots` and :mod:`mnistlab.style` — figures, apart from computing
* :mod:`mnistlab.glue` and :mod:`mnistlab.render` — numbers and figures into the prose, each
  figure drawn for the light and the dark page
* :mod:`mnistlab.explorer` — a card for every unit and feature, for the unit explorer page

Importing the package changes nothing global (thread counts, backend flags, environment
variables): PyTorch runs as it would without it.
"""

__version__ = "0.1.0"
