"""Timing training and analysis: each figure measured side by side in one run.

* :func:`throughput` — the chapter-2 MLP's SGD steps against the loop a skilled user
  writes (data in memory, ``randperm``, ``torch.optim.SGD``), against the textbook loop
  (torchvision ``MNIST`` + ``ToTensor`` + ``DataLoader``), and against the FLOP floor;
* :func:`grouped` — the same steps for G networks trained together
  (:mod:`mnistlab.group`), per network, for several G;
* :func:`chapter6_networks` — chapter 6's networks (every variant, several seeds, 20
  epochs, recorded as the chapter records them) trained from an empty cache;
* :func:`threads` — one training epoch with 1 and 2 threads, alone and beside another
  CPU-bound process (each in a fresh process);
* :func:`cnn_epoch` — chapter 7's CNN: an epoch of SGD steps against its FLOP floor;
* :func:`step_products` — the matrix products (and the batch gather) of a grouped MLP
  step alone, at the steps' own shapes: a floor no implementation with
  these products can beat, unlike the 2048² matmul rate;
* :func:`recording` — training with and without an activation snapshot every epoch,
  one network alone and a group of five;
* :func:`ablation` — the batched single-unit ablation table against one image at a time.

Runs alternate where two things are compared, and the fastest of several is kept
(``timeit``'s convention): on a shared machine a slow spell only ever adds time.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from mnistlab.build.machine import matmul_gflops, neighbour
from mnistlab.data import MNIST_FILES, Dataset
from mnistlab.group import Job, train_group
from mnistlab.models import ModelConfig, build_model, forward_flops
from mnistlab.record import ActivationRecorder
from mnistlab.train import TrainConfig, load_or_train_all, train


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write unsigned bytes as one IDX file (magic 0x0000080R, big-endian int32 dimensions)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_torchvision_mnist(data: Dataset, root: Path) -> None:
    """The images of ``data`` as the raw IDX files torchvision's ``MNIST(root)`` reads."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    pixels = lambda x: (x * 255).round().to(torch.uint8).reshape(len(x), 28, 28).numpy()  # noqa: E731
    arrays = {"x_train": pixels(data.x_train), "y_train": data.y_train.to(torch.uint8).numpy()}
    arrays |= {"x_test": pixels(data.x_test), "y_test": data.y_test.to(torch.uint8).numpy()}
    for key, (name, _) in MNIST_FILES.items():
        write_idx(raw / name, arrays[key])


# Chapter 7's CNN.
CNN_CONFIG = ModelConfig(arch="cnn", channels=(8, 16), hidden=(32,))


def textbook_epoch_seconds(data: Dataset, config: ModelConfig, tc: TrainConfig) -> float:
    """One epoch the straightforward way: torchvision MNIST + ToTensor + DataLoader(batch 64)."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision.datasets import MNIST
    from torchvision.transforms import ToTensor

    with tempfile.TemporaryDirectory() as root:
        write_torchvision_mnist(data, Path(root))
        dataset = MNIST(root, train=True, download=False, transform=ToTensor())
        loader = DataLoader(dataset, batch_size=tc.batch_size, shuffle=True)
        torch.manual_seed(tc.seed)
        model = build_model(config)
        optimizer = torch.optim.SGD(model.parameters(), lr=tc.lr)
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x.view(len(x), -1)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start


def skilled_epoch(data: Dataset, config: ModelConfig, tc: TrainConfig) -> tuple[torch.nn.Module, float]:
    """One epoch as a skilled PyTorch user writes it: tensors in memory, ``randperm``, ``torch.optim.SGD``.

    The same model, initial weights, batch order (a generator of the run's seed), batch
    size, learning rate and threads as :func:`mnistlab.train.train`, so both reach the
    same weights (``tests/test_bench.py``). Returns the model and the seconds of its steps.
    """
    import torch.nn.functional as F

    torch.manual_seed(tc.seed)
    model = build_model(config, data.x_train)
    optimizer = torch.optim.SGD(model.parameters(), lr=tc.lr)
    order = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(tc.seed))
    x, y = data.x_train, data.y_train
    model.train()
    start = time.perf_counter()
    for idx in order.split(tc.batch_size):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), time.perf_counter() - start


def skilled_epoch_seconds(data: Dataset, config: ModelConfig, tc: TrainConfig) -> float:
    """Seconds of :func:`skilled_epoch`'s steps."""
    return skilled_epoch(data, config, tc)[1]


def floor_seconds(config: ModelConfig, n_images: int, gflops: float) -> float:
    """Seconds an epoch's FLOPs need at ``gflops`` (the backward pass costs about twice the forward)."""
    return 3 * forward_flops(config) * n_images / (gflops * 1e9)


def throughput(data: Dataset, repeats: int = 5) -> dict[str, float]:
    """Seconds of one epoch's MLP SGD steps: mnistlab, the skilled loop, the textbook loop, the floor."""
    config, tc = ModelConfig(), TrainConfig(epochs=1)
    train(config, tc, data, progress=False)  # warm-up
    ours, whole, skilled, textbook = [], [], [], []
    for _ in range(repeats):  # alternate, so a slow spell of the machine hits all three
        run = train(config, tc, data, progress=False)
        ours.append(run.step_seconds)
        whole.append(run.train_seconds)
        skilled.append(skilled_epoch_seconds(data, config, tc))
        textbook.append(textbook_epoch_seconds(data, config, tc))
    o, k, t = min(ours), min(skilled), min(textbook)
    gflops = matmul_gflops(torch.get_num_threads())
    floor = floor_seconds(config, data.n_train, gflops)
    return {
        "n_train": data.n_train,
        "ours_s": o,
        "epoch_s": min(whole),
        "skilled_s": k,
        "textbook_s": t,
        "ours_per_s": data.n_train / o,
        "skilled_per_s": data.n_train / k,
        "textbook_per_s": data.n_train / t,
        "vs_skilled": k / o,
        "speedup": t / o,
        "gflops": gflops,
        "floor_s": floor,
        "from_floor": o / floor,
    }


def grouped(data: Dataset, sizes: tuple[int, ...] = (1, 2, 5, 10, 20), repeats: int = 2) -> dict[int, float]:
    """Seconds of one epoch's SGD steps per network when G networks train together, by G.

    Each network has its own seed (0 … G-1), hence its own weights and batch order; the
    fastest of ``repeats`` runs is kept.
    """
    tc = lambda seed: TrainConfig(epochs=1, seed=seed)  # noqa: E731
    train_group([Job(ModelConfig(), tc(0))], data, progress=False)  # warm-up
    out = {}
    for G in sizes:
        jobs = [Job(ModelConfig(), tc(seed)) for seed in range(G)]
        out[G] = min(train_group(jobs, data, progress=False)[0].step_seconds for _ in range(repeats))
    return out


def chapter6_networks(data: Dataset, seeds: int = 5) -> dict[str, float]:
    """Wall seconds to train chapter 6's variants × ``seeds`` (20 epochs, recorded) into an empty cache.

    The chapter's own path: :func:`mnistlab.train.load_or_train_all` trains the missing
    runs as one group, recording every hidden layer on the test split every epoch, and
    stores each network.
    """
    from mnistlab.cache import ModelCache
    from mnistlab.compare import VARIANTS

    runs = [(mc, TrainConfig(seed=seed)) for mc in VARIANTS.values() for seed in range(seeds)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trained = load_or_train_all(runs, data, ModelCache(Path(tmp)), progress=False)
        seconds = time.perf_counter() - start
    assert not any(run.from_cache for run in trained)
    return {"networks": len(runs), "variants": len(VARIANTS), "seeds": seeds, "seconds": seconds}


EPOCH_SCRIPT = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[1]))  # the thread count under test
from mnistlab.data import DataConfig, load_data
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, load_or_train_all, train
data = load_data(DataConfig(source=sys.argv[2], mnist_dir=sys.argv[3] or None, download=False))
runs = [train(ModelConfig(), TrainConfig(epochs=1, seed=s), data, progress=False).step_seconds for s in range(3)]
print(json.dumps(runs))
"""


def threads(source: str, mnist_dir: Path | None) -> dict[tuple[int, bool], float]:
    """Median seconds of one epoch's SGD steps, by (threads, beside a neighbour), each in a fresh process."""
    out = {}
    for beside in (False, True):
        for n in (1, 2):
            with neighbour() if beside else nullcontext():
                proc = subprocess.run(
                    [sys.executable, "-c", EPOCH_SCRIPT, str(n), source, str(mnist_dir or "")],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            out[(n, beside)] = statistics.median(json.loads(proc.stdout))
    return out


def cnn_epoch(data: Dataset) -> dict[str, float]:
    """Chapter 7's CNN: seconds of one epoch's SGD steps (all threads, and one), and its FLOP floor."""
    config, tc = CNN_CONFIG, TrainConfig(epochs=1)
    ours = train(config, tc, data, progress=False).step_seconds
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = train(config, tc, data, progress=False).step_seconds
    finally:
        torch.set_num_threads(before)

    flops = 3 * forward_flops(config) * data.n_train
    n_steps = data.n_train // tc.batch_size
    return {
        "convolutions_s": _best_seconds(cnn_convolutions(tc.batch_size), n_steps, torch.get_num_threads()),
        "n_train": data.n_train,
        "ours_s": ours,
        "mflop_per_image": 3 * forward_flops(config) / 1e6,
        "floor_1_s": flops / (matmul_gflops(1) * 1e9),
        "floor_2_s": flops / (matmul_gflops(2) * 1e9),
        "one_thread_s": one,
    }


def cnn_convolutions(batch: int = 64):
    """One CNN step's convolutions alone, forward and backward, as the step computes them (oneDNN,
    channels-last), as a function of no arguments: what an epoch cannot beat with these convolutions."""
    layers, size, c_in = [], 28, 1
    for c_out in CNN_CONFIG.channels:
        conv = torch.nn.Conv2d(c_in, c_out, 5, padding=2).to(memory_format=torch.channels_last)
        x = torch.rand(batch, c_in, size, size).contiguous(memory_format=torch.channels_last)
        layers.append((conv, x.requires_grad_(c_in > 1)))  # the first layer's input needs no gradient
        c_in, size = c_out, size // 2

    def step() -> None:
        for conv, x in layers:
            out = conv(x)
            out.backward(torch.ones_like(out))

    return step


def _best_seconds(step, n_steps: int, threads: int, repeats: int = 3) -> float:
    """Fastest of ``repeats`` runs of ``n_steps`` calls of ``step`` with ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(20):  # warm-up
            step()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(n_steps):
                step()
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return best


def mlp_products(x_train: torch.Tensor, group: int, batch: int = 64):
    """One grouped MLP step's matrix products and batch gather, as a function of no arguments.

    The batched products of the forward pass and of the backward pass (each weight's
    gradient, and the gradient flowing to every layer but the input), and the gather of
    each network's own batch: no bias, ReLU, loss, autograd or update.
    """
    dims = [784, *ModelConfig().hidden, 10]
    x_train = x_train.reshape(len(x_train), -1)
    rows = torch.randint(0, len(x_train), (group, batch))
    W = [torch.randn(group, a, b) for a, b in zip(dims, dims[1:])]
    acts = [torch.randn(group, batch, d) for d in dims]

    def step() -> None:
        h = x_train[rows]  # (G, B, 784): each network's own images
        for w in W:
            h = torch.bmm(h, w)
        grad = acts[-1]
        for i in reversed(range(len(W))):
            torch.bmm(acts[i].transpose(1, 2), grad)  # the weight's gradient
            if i:
                grad = torch.bmm(grad, W[i].transpose(1, 2))  # the gradient to the layer below

    return step


def step_products(data: Dataset, group: int = 5, batch: int = 64) -> dict[str, float]:
    """Seconds per epoch of a step's matrix products alone, at the shapes the step multiplies.

    A grouped MLP step (per network, in a group of ``group``) cannot take
    less than their products: unlike the 2048² matmul rate, a floor measured at the
    steps' own shapes.
    """
    n_steps = data.n_train // batch
    tc = TrainConfig(epochs=1)
    return {
        "n_train": data.n_train,
        "group": group,
        "skilled_s": min(skilled_epoch_seconds(data, ModelConfig(), tc) for _ in range(3)),
        "mlp_s": _best_seconds(mlp_products(data.x_train, group, batch), n_steps, 1) / group,
    }


def recording(data: Dataset, repeats: int = 5, group: int = 1) -> dict[str, float]:
    """Median seconds to train ``group`` networks together, with and without recording every hidden layer."""
    config = ModelConfig()
    jobs = lambda rec: [  # noqa: E731
        Job(config, TrainConfig(seed=seed), (ActivationRecorder(data.x_test, config.layer_names),) if rec else ())
        for seed in range(group)
    ]
    train(config, TrainConfig(epochs=1), data, progress=False)  # warm-up: allocator, kernels
    plain, recorded = [], []
    for _ in range(repeats):  # alternate, so a slow spell of the machine hits both
        plain.append(sum(r.train_seconds for r in train_group(jobs(False), data, progress=False)))
        recorded.append(sum(r.train_seconds for r in train_group(jobs(True), data, progress=False)))
    p, r = statistics.median(plain), statistics.median(recorded)
    return {"train_s": p, "train_recording_s": r, "overhead": r / p - 1, "n_train": data.n_train, "group": group}


def ablation(data: Dataset, loop_images: int = 100) -> dict[str, float]:
    """Seconds for the batched ablation table and for the one-image-at-a-time loop."""
    from mnistlab import interventions as iv

    torch.manual_seed(0)
    model = train(ModelConfig(), TrainConfig(epochs=1), data, progress=False).model
    x, y = data.x_test, data.y_test
    iv.ablation_table(model, x[::20], y[::20], "fc1_post")  # warm-up on every 20th image (all digits)
    start = time.perf_counter()
    table = iv.ablation_table(model, x, y, "fc1_post")
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for unit in range(32):
        for i in range(loop_images):
            iv.run_edited(model, x[i : i + 1], {"fc1_post": iv.zero_ablation(unit)}).argmax(1)
    loop = (time.perf_counter() - start) * len(x) / loop_images
    assert table.ablated.shape == (32, 10)
    return {"batched_s": batched, "loop_s": loop, "speedup": loop / batched, "n_test": len(x)}
