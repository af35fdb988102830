"""Named activation sites, and temporary hooks to read or edit them.

A model marks each activation it wants to expose with a :class:`HookPoint`, an
identity module whose name is its attribute path (``"fc1_post"``). Everything else
goes through two entry points, both of which remove every hook they added in a
``finally`` block, so an exception never leaves a hook behind:

* :func:`hooks` — a context manager that attaches functions to named hook points,
  to read activations or to replace them;
* :func:`run_with_cache` — runs a whole dataset through the model in batches and
  returns the logits and an :class:`ActivationCache` of detached CPU tensors.

>>> from mnistlab.models import ModelConfig, build_model
>>> model = build_model(ModelConfig())
>>> list(hook_points(model))
['input', 'fc1_pre', 'fc1_post', 'fc2_pre', 'fc2_post', 'logits']
>>> logits, cache = run_with_cache(model, torch.rand(5, 784), names=["fc1_post"])
>>> cache["fc1_post"].shape
torch.Size([5, 32])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from mnistlab.checks import check_images, check_positive_int

# A forward hook function receives the activation and the hook point's name and
# returns a replacement activation, or None to leave it unchanged.
HookFn = Callable[[torch.Tensor, str], torch.Tensor | None]


class HookPoint(nn.Module):
    """An identity module that marks a named activation site."""

    def __init__(self):
        super().__init__()
        self.name = "<unnamed>"  # set by name_hook_points() once the model is built

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return repr(self.name)


def name_hook_points(model: nn.Module) -> None:
    """Give every HookPoint in ``model`` its module path as name (call at the end of ``__init__``)."""
    for path, module in model.named_modules():
        if isinstance(module, HookPoint):
            module.name = path


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """All hook points of ``model`` by name, in the order the forward pass meets them."""
    return {path: m for path, m in model.named_modules() if isinstance(m, HookPoint)}


def resolve_names(model: nn.Module, names: str | Sequence[str] | None) -> list[str]:
    """Check hook point names against ``model``; ``None`` means all of them.

    Raises:
        KeyError: a name is not a hook point of this model (the message lists the valid ones).
    """
    valid = hook_points(model)
    if names is None:
        return list(valid)
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise KeyError(f"unknown hook point(s) {unknown}; this {type(model).__name__} has {list(valid)}")
    return list(names)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block, back in the mode it was in afterwards (even after an error)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def hooks(model: nn.Module, fns: Mapping[str, HookFn]) -> Iterator[nn.Module]:
    """Attach forward hooks to named hook points for the duration of a ``with`` block.

    Each function gets ``(activation, name)`` and may return a tensor to replace the
    activation. Every hook is removed on exit, also when the block raises.

    >>> from mnistlab.models import ModelConfig, build_model
    >>> model = build_model(ModelConfig())
    >>> with hooks(model, {"fc2_post": lambda a, name: torch.zeros_like(a)}):
    ...     zeroed = model(torch.rand(3, 784))
    """
    points = hook_points(model)
    resolve_names(model, list(fns))
    handles = []
    try:
        for name, fn in fns.items():
            handles.append(points[name].register_forward_hook(_forward_adapter(fn, name)))
        yield model
    finally:
        for h in handles:
            h.remove()


def _forward_adapter(fn: HookFn, name: str):
    def hook(module, inputs, output):
        return fn(output, name)

    return hook


class ActivationCache(Mapping[str, torch.Tensor]):
    """A read-only mapping from hook point name to a detached CPU tensor; nothing more."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        self._tensors = dict(tensors)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"{name!r} was not recorded; this cache holds {list(self._tensors)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self._tensors.items())
        return f"ActivationCache({shapes})"


@torch.no_grad()
def run_with_cache(
    model: nn.Module,
    x: torch.Tensor,
    names: str | Sequence[str] | None = None,
    batch_size: int = 2048,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, ActivationCache]:
    """Run ``x`` through ``model`` in eval mode and record the named activations.

    Args:
        model: a model with hook points (e.g. from :func:`mnistlab.models.build_model`).
        x: inputs, (N, 784) for the MLP; processed in batches of ``batch_size``.
        names: hook points to record; ``None`` records all of them.
        device: where to run (default: where the model's parameters are).

    Returns:
        ``(logits, cache)``: logits (N, 10) on the CPU, and the recorded activations,
        each (N, ...) detached on the CPU.
    """
    names = resolve_names(model, names)
    check_images(x, "run_with_cache's inputs")
    check_positive_int(batch_size, "batch_size")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    recorded: dict[str, list[torch.Tensor]] = {n: [] for n in names}

    def record(activation: torch.Tensor, name: str) -> None:
        recorded[name].append(activation.detach().to("cpu"))

    with eval_mode(model), hooks(model, {n: record for n in names}):
        logits = torch.cat([model(xb.to(device)).cpu() for xb in x.split(batch_size)])
    return logits, ActivationCache({n: torch.cat(parts) for n, parts in recorded.items()})
