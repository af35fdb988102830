"""Timing training and analysis: each figure measured side by side in one run.

* :func:`throughput` — the chapter-2 MLP's SGD steps against the textbook loop
  (torchvision ``MNIST`` + ``ToTensor`` + ``DataLoader``), and the FLOP floor;
* :func:`threads` — one training epoch with 1 and 2 threads, alone and beside another
  CPU-bound process (each in a fresh process);
* :func:`cnn_epoch` — chapter 7's CNN: an epoch of SGD steps with the book's convolution
  (:mod:`mnistlab.conv`) against its FLOP floor, and PyTorch's own convolution beside it;
* :func:`recording` — training with and without an activation snapshot every epoch;
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
from mnistlab.models import ModelConfig, build_model, forward_flops
from mnistlab.record import ActivationRecorder
from mnistlab.train import TrainConfig, train


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


def throughput(data: Dataset, repeats: int = 5) -> dict[str, float]:
    """Samples per second of the MLP's SGD steps against the textbook loop, and the FLOP floor."""
    config, tc = ModelConfig(), TrainConfig(epochs=1)
    train(config, tc, data, progress=False)  # warm-up
    ours, whole, textbook = [], [], []
    for _ in range(repeats):  # alternate, so a slow spell of the machine hits both
        run = train(config, tc, data, progress=False)
        ours.append(run.step_seconds)
        whole.append(run.train_seconds)
        textbook.append(textbook_epoch_seconds(data, config, tc))
    o, t = min(ours), min(textbook)
    gflops = matmul_gflops(torch.get_num_threads())
    floor = 3 * forward_flops(config) * data.n_train / (gflops * 1e9)  # backward costs about twice the forward
    return {
        "n_train": data.n_train,
        "ours_s": o,
        "epoch_s": min(whole),
        "textbook_s": t,
        "ours_per_s": data.n_train / o,
        "textbook_per_s": data.n_train / t,
        "speedup": t / o,
        "gflops": gflops,
        "floor_s": floor,
        "from_floor": o / floor,
    }


EPOCH_SCRIPT = """
import json, sys, torch
from mnistlab import numerics
numerics.pin()
torch.set_num_threads(int(sys.argv[1]))  # the thread count under test, over the pinned one
from mnistlab.data import DataConfig, load_data
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, train
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
    """Chapter 7's CNN: seconds of one epoch's SGD steps, its FLOP floor, and PyTorch's conv2d beside it."""
    import torch.nn.functional as F

    from mnistlab import conv

    config, tc = ModelConfig(arch="cnn", channels=(8, 16), hidden=(32,)), TrainConfig(epochs=1)
    ours = train(config, tc, data, progress=False).step_seconds

    def with_torch_conv(mkldnn: bool, n_threads: int) -> float:
        """The same epoch with PyTorch's convolution (other arithmetic, not the book's)."""
        saved = conv.conv2d, torch.backends.mkldnn.enabled, torch.get_num_threads()
        conv.conv2d = lambda x, w, b: F.conv2d(x, w, b, padding=w.shape[-1] // 2)
        torch.backends.mkldnn.enabled = mkldnn
        torch.set_num_threads(n_threads)
        try:
            return train(config, tc, data, progress=False).step_seconds
        finally:
            conv.conv2d, torch.backends.mkldnn.enabled = saved[0], saved[1]
            torch.set_num_threads(saved[2])

    flops = 3 * forward_flops(config) * data.n_train
    return {
        "n_train": data.n_train,
        "ours_s": ours,
        "mflop_per_image": 3 * forward_flops(config) / 1e6,
        "floor_1_s": flops / (matmul_gflops(1) * 1e9),
        "floor_2_s": flops / (matmul_gflops(2) * 1e9),
        "torch_plain_s": with_torch_conv(False, 1),
        "onednn_2_s": with_torch_conv(True, 2),
    }


def recording(data: Dataset, repeats: int = 5) -> dict[str, float]:
    """Median training time with and without recording every hidden layer every epoch."""
    config, tc = ModelConfig(), TrainConfig()
    train(config, TrainConfig(epochs=1), data, progress=False)  # warm-up: allocator, kernels
    plain, recorded = [], []
    for _ in range(repeats):  # alternate, so a slow spell of the machine hits both
        plain.append(train(config, tc, data, progress=False).train_seconds)
        rec = ActivationRecorder(data.x_test, config.layer_names)
        recorded.append(train(config, tc, data, callbacks=[rec], progress=False).train_seconds)
    p, r = statistics.median(plain), statistics.median(recorded)
    return {"train_s": p, "train_recording_s": r, "overhead": r / p - 1, "n_train": data.n_train}


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
