"""Training many MLPs in one pass: stacked weights and batched matrix products.

The book trains many networks of one shape: chapter 6 trains five variants of the MLP
with several seeds each, and learning-rate sweeps on top. At batch 64, layers this
small cost a training step little arithmetic and many operations, each with a fixed
overhead. Stacking G networks' weights into (G, …) tensors makes one step of all G
networks the same number of operations as a step of one::

    x  (G, B, 784)    each network's own batch, in its own order
    h  = relu(baddbmm(b1, x, W1ᵀ))                  (G, B, 32): G matrix products at once
    ...
    loss = Σ_g mean_b cross_entropy(logits[g, b])   so each network gets its own gradient

Each network keeps everything that makes it itself: its seed (initial weights), its
batch order, its dropout masks, its learning rate, and its history, snapshots and
gradient norms. A network's weights do not depend on which others it was trained
with: :func:`mnistlab.train.train` trains an MLP as a group of one through this same
code, and ``tests/test_group.py`` checks one network alone against the same network in
groups of 5 and 16 (the same to float32 rounding: a group's batched products may add in
another order on some processors).

Networks can share a group when their layers have the same widths and they train for
the same epochs with the same batch size; input standardisation, LayerNorm, dropout
and the learning rate may differ (a network without LayerNorm skips it exactly).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnistlab.checks import check_images
from mnistlab.data import Dataset
from mnistlab.models import ModelConfig, build_model


class TrainingDiverged(ValueError):
    """A network's training loss stopped being finite: training stops, and nothing is cached."""


def check_finite_steps(finite_steps: torch.Tensor, steps: int, epoch: int, jobs: Sequence[Job]) -> None:
    """Raise :class:`TrainingDiverged` if any network had a non-finite loss this epoch.

    ``finite_steps[g]`` counts network ``g``'s steps with a finite loss. A non-finite
    loss makes the weights non-finite, so every later step of the epoch is non-finite
    too: the first bad batch is the one after the last finite step.
    """
    bad = (steps - finite_steps).tolist()
    for g, n_bad in enumerate(bad):
        if n_bad:
            tc = jobs[g].train_config
            raise TrainingDiverged(
                f"training diverged: the loss of the network with seed {tc.seed} and learning rate {tc.lr:g} "
                f"was NaN or infinite from epoch {epoch}, batch {steps - n_bad + 1} of {steps}; "
                "try a smaller learning rate (TrainConfig.lr)"
            )


@dataclass(frozen=True)
class Job:
    """One network of a group: its configs and the training callbacks that watch it."""

    model_config: ModelConfig
    train_config: object  # mnistlab.train.TrainConfig (not imported: train imports this module)
    callbacks: Sequence = ()


def check_groupable(jobs: Sequence[Job]) -> None:
    """Raise ``ValueError`` naming the difference if the jobs cannot train as one group."""
    if not jobs:
        raise ValueError("a group needs at least one network")
    first_m, first_t = jobs[0].model_config, jobs[0].train_config
    for i, job in enumerate(jobs):
        m, t = job.model_config, job.train_config
        if m.arch != "mlp":
            raise ValueError(f"network {i} is a {m.arch!r}; only MLPs train in groups (arch='mlp')")
        for what, a, b in (
            ("hidden widths", m.hidden, first_m.hidden),
            ("epochs", t.epochs, first_t.epochs),
            ("batch size", t.batch_size, first_t.batch_size),
            ("device", t.device, first_t.device),
        ):
            if a != b:
                raise ValueError(f"network {i} has {what} {a!r}, network 0 {b!r}; a group shares them")


def dropout_generator(seed: int) -> torch.Generator:
    """Each network's own stream of dropout masks, apart from its batch order's stream."""
    return torch.Generator().manual_seed((seed * 0x9E3779B1 + 0x7F4A7C15) % 2**63)


class _Stack:
    """The G networks' parameters stacked into (G, …) leaf tensors, and per-network options."""

    def __init__(self, models, lrs, device):
        self.models = models
        self.widths = [models[0].fc1.in_features, *models[0].config.hidden]
        self.n_layers = len(self.widths) - 1

        def stack(tensors):
            return torch.stack([t.detach() for t in tensors]).to(device).requires_grad_(True)

        layers = range(1, self.n_layers + 1)
        self.W = [stack([getattr(m, f"fc{i}").weight for m in models]) for i in layers]
        self.b = [stack([getattr(m, f"fc{i}").bias for m in models]) for i in layers]
        self.Wo, self.bo = stack([m.out.weight for m in models]), stack([m.out.bias for m in models])
        self.layernorm = any(m.config.layernorm for m in models)
        if self.layernorm:  # networks without LayerNorm carry placeholders that where() never selects
            self.ln_on = torch.tensor([m.config.layernorm for m in models], device=device).view(-1, 1, 1)

            def ln(m, i, part, fill):
                return getattr(m.get_submodule(f"ln{i}"), part) if m.config.layernorm else fill(self.widths[i])

            self.lnw = [stack([ln(m, i, "weight", torch.ones) for m in models]) for i in layers]
            self.lnb = [stack([ln(m, i, "bias", torch.zeros) for m in models]) for i in layers]
        self.mean = torch.stack([m.input_mean for m in models]).to(device).view(-1, 1, 1)
        self.std = torch.stack([m.input_std for m in models]).to(device).view(-1, 1, 1)
        self.p = [m.config.dropout for m in models]
        self.lr = torch.tensor(lrs, device=device)

    def params(self) -> list[torch.Tensor]:
        extra = [*self.lnw, *self.lnb] if self.layernorm else []
        return [*self.W, *self.b, self.Wo, self.bo, *extra]

    def forward(self, x: torch.Tensor, keep: list[torch.Tensor] | None) -> torch.Tensor:
        """Training forward pass: x (G, B, 784) → logits (G, B, 10); ``keep`` are dropout multipliers."""
        h = (x - self.mean) / self.std  # a network without standardisation has mean 0, std 1: exactly x
        for i in range(self.n_layers):
            z = torch.baddbmm(self.b[i].unsqueeze(1), h, self.W[i].transpose(1, 2))  # (G, B, width_i)
            if self.layernorm:
                normed = F.layer_norm(z, z.shape[-1:]) * self.lnw[i].unsqueeze(1) + self.lnb[i].unsqueeze(1)
                z = torch.where(self.ln_on, normed, z)
            h = F.relu(z)
            if keep is not None:
                h = h * keep[i]
        return torch.baddbmm(self.bo.unsqueeze(1), h, self.Wo.transpose(1, 2))  # (G, B, 10)

    def step(self) -> None:
        """SGD, each network with its own learning rate; clears the gradients."""
        with torch.no_grad():
            for p in self.params():
                p.sub_(p.grad * self.lr.view(-1, *[1] * (p.ndim - 1)))
                p.grad = None

    def copy_into_models(self) -> None:
        """Write each network's slice back into its ``nn.Module`` (for evaluation and recording)."""
        with torch.no_grad():
            for g, m in enumerate(self.models):
                for i in range(self.n_layers):
                    getattr(m, f"fc{i + 1}").weight.copy_(self.W[i][g])
                    getattr(m, f"fc{i + 1}").bias.copy_(self.b[i][g])
                    if m.config.layernorm:
                        m.get_submodule(f"ln{i + 1}").weight.copy_(self.lnw[i][g])
                        m.get_submodule(f"ln{i + 1}").bias.copy_(self.lnb[i][g])
                m.out.weight.copy_(self.Wo[g])
                m.out.bias.copy_(self.bo[g])

    def grad_norms(self) -> torch.Tensor:
        """(weights, G) Frobenius norm of each weight matrix's gradient, per network."""
        return torch.stack([w.grad.flatten(1).norm(dim=1) for w in [*self.W, self.Wo]])


def train_group(jobs: Sequence[Job], data: Dataset, progress: bool | None = None) -> list:
    """Train every job's network together; return one :class:`mnistlab.train.TrainedModel` each.

    Each network is initialised as :func:`mnistlab.train.train` would (``torch.manual_seed``
    of its seed, then :func:`mnistlab.models.build_model`), shuffles with a generator of
    its own seed, and draws dropout masks from :func:`dropout_generator`. Its history,
    callbacks and gradient norms are its own; ``train_seconds`` and ``step_seconds``
    are the group's, divided among its networks.
    """
    from mnistlab.train import HISTORY_KEYS, TrainedModel, evaluate, show_progress, train_eval_rows, usable_device

    check_groupable(jobs)
    for job in jobs:
        for cb in job.callbacks:
            if not callable(cb):
                raise TypeError(f"a training callback must be called as cb(epoch, model), got {type(cb).__name__}")
    check_images(data.x_train, "training images")
    check_images(data.x_test, "test images")
    tc0 = jobs[0].train_config
    device = usable_device(tc0)
    models = []
    for job in jobs:
        torch.manual_seed(job.train_config.seed)  # initial weights, as train() draws them
        models.append(build_model(job.model_config, data.x_train).to(device))
    stack = _Stack(models, [job.train_config.lr for job in jobs], device)
    G, n, batch = len(jobs), data.n_train, tc0.batch_size
    shuffles = [torch.Generator().manual_seed(job.train_config.seed) for job in jobs]
    drops = [dropout_generator(job.train_config.seed) if job.model_config.dropout > 0 else None for job in jobs]
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    scored = train_eval_rows(n)
    x_scored, y_scored = (
        (x_train, y_train) if scored is None else (x_train[scored.to(device)], y_train[scored.to(device)])
    )
    histories = [{k: [] for k in HISTORY_KEYS} for _ in jobs]
    norm_sums = torch.zeros(len(stack.W) + 1, G, device=device)
    norms = [{name: [] for name in job.model_config.weight_names} for job in jobs]

    def end_of_epoch(epoch: int, steps: int) -> None:
        stack.copy_into_models()
        for g, (job, model) in enumerate(zip(jobs, models)):
            for split, (x, y) in {"train": (x_scored, y_scored), "test": (data.x_test, data.y_test)}.items():
                loss, acc = evaluate(model, x, y)
                histories[g][f"{split}_loss"].append(loss)
                histories[g][f"{split}_acc"].append(acc)
            if epoch > 0:
                for name, total in zip(job.model_config.weight_names, norm_sums[:, g].tolist()):
                    norms[g][name].append(total / steps)
            for cb in job.callbacks:
                cb(epoch, model)
        norm_sums.zero_()

    start = time.perf_counter()
    epochs = range(1, tc0.epochs + 1)
    if show_progress(progress):
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=f"training {G} network{'s' * (G > 1)}", unit="epoch", leave=False)
    step_seconds = 0.0
    end_of_epoch(0, 0)
    for epoch in epochs:
        orders = torch.stack([torch.randperm(n, generator=gen) for gen in shuffles]).to(device)  # (G, n)
        steps, started = 0, time.perf_counter()
        finite_steps = torch.zeros(G, dtype=torch.long, device=device)
        for idx in orders.split(batch, dim=1):  # (G, B): row g is network g's batch
            B = idx.shape[1]
            x = x_train.index_select(0, idx.reshape(-1)).view(G, B, -1)
            y = y_train.index_select(0, idx.reshape(-1))
            keep = _dropout_keep(stack, drops, B, device)
            logits = stack.forward(x, keep)
            losses = F.cross_entropy(logits.reshape(G * B, -1), y, reduction="none").view(G, B).mean(1)  # (G,)
            losses.sum().backward()
            finite_steps += losses.detach().isfinite()  # no .item(): no device sync per step
            norm_sums += stack.grad_norms()
            stack.step()
            steps += 1
        step_seconds += time.perf_counter() - started
        check_finite_steps(finite_steps, steps, epoch, jobs)
        end_of_epoch(epoch, steps)
    seconds = time.perf_counter() - start
    for model in models:
        model.eval()
    return [
        TrainedModel(
            model,
            job.model_config,
            job.train_config,
            histories[g],
            seconds / G,
            grad_norms=norms[g],
            step_seconds=step_seconds / G,
        )
        for g, (job, model) in enumerate(zip(jobs, models))
    ]


def _dropout_keep(stack: _Stack, drops, B: int, device) -> list[torch.Tensor] | None:
    """Per layer, (G, B, width) multipliers: 0 for a dropped unit, 1/(1 - p) for a kept one."""
    if all(gen is None for gen in drops):
        return None
    keep = []
    for width in stack.widths[1:]:
        rows = []
        for p, gen in zip(stack.p, drops):
            if gen is None:
                rows.append(torch.ones(B, width))
            else:
                rows.append((torch.rand(B, width, generator=gen) >= p).float() / (1 - p))
        keep.append(torch.stack(rows).to(device))
    return keep
