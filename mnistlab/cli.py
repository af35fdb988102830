"""The ``mnistlab`` command: train a configuration, inspect the model cache, show the data.

    mnistlab train --hidden 32 16 --epochs 20 --seed 0     # train (or load from the cache)
    mnistlab train --arch cnn --channels 8 16 --hidden 32   # the CNN of chapter 7
    mnistlab cache list                                     # what is cached, and where
    mnistlab cache clear --yes                              # delete every cached model, result and compiled code
    mnistlab data                                           # which data a build would use

Every subcommand has ``--help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from mnistlab import embed
from mnistlab.cache import ENV_CACHE, ModelCache, cache_dir, remove
from mnistlab.data import SOURCES, DataConfig, DataError, DataFallbackWarning, load_data
from mnistlab.models import ARCHS, ModelConfig
from mnistlab.record import StoredSnapshots
from mnistlab.train import TrainConfig, load_or_train


def _train(args: argparse.Namespace) -> int:
    model_config = ModelConfig(
        hidden=tuple(args.hidden),
        input_norm=args.input_norm,
        layernorm=args.layernorm,
        dropout=args.dropout,
        arch=args.arch,
        **({"channels": tuple(args.channels)} if args.channels is not None else {}),
    )
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               device=args.device)
    data = load_data(DataConfig.from_env(**({"source": args.data} if args.data else {})))
    print(data.summary())
    run = load_or_train(model_config, train_config, data)
    n_params = sum(p.numel() for p in run.model.parameters())
    stored = isinstance(run.snapshots, StoredSnapshots)  # kept on disk, read back when asked for
    where = "from the model cache" if run.from_cache else (
        f"trained in {run.train_seconds:.1f} s" + (" and cached" if stored else ", not cached (see the warning above)"))
    print(f"{model_config}\n{train_config}")
    print(f"{n_params:,} parameters, {where}")
    print(f"test accuracy {run.final_test_acc:.2%}, train accuracy {run.history['train_acc'][-1]:.2%}")
    return 0


def _describe(meta: dict) -> str:
    """One line about a verified entry's metadata: network, options, training, data, accuracy."""
    mc, tc = meta["model_config"], meta["train_config"]
    arch = mc.get("arch", "mlp")
    shape = f"cnn {mc['channels']}+{mc['hidden']}" if arch == "cnn" else f"mlp {mc['hidden']}"
    options = [k for k in ("input_norm", "layernorm") if mc.get(k)]
    options += [f"dropout {mc['dropout']}"] if mc.get("dropout") else []
    return (
        f"{shape:<22} {' '.join(options):<28}  epochs {tc['epochs']:>3}  seed {tc['seed']:>2}  lr {tc['lr']:<6}"
        f"  data {meta['data']['source']:<8} test acc {meta['history']['test_acc'][-1]:.2%}"
    )


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 1e6


def _cache_list(args: argparse.Namespace) -> int:
    cache = ModelCache()
    entries = cache.entries()
    print(f"model cache {cache.root} ({len(entries)} entries)")
    for entry in entries:
        try:  # every part checked, as a load would check it (nothing is deleted here)
            _, meta = cache.verify(entry.name)
            line = _describe(meta)
        except (ValueError, KeyError, TypeError, IndexError) as err:
            reason = f"{type(err).__name__}: {err}" if isinstance(err, (KeyError, TypeError, IndexError)) else err
            line = f"DAMAGED ({reason}); it will be deleted and rebuilt when next used"
        print(f"  {entry.name[:12]}  {line}  {_size_mb(entry):.1f} MB")
    results = ModelCache(kind="results")
    listed, damaged = results.entries(), []
    for entry in listed:
        try:
            results.verify(entry.name)
        except ValueError as err:
            damaged.append(f"{entry.name[:12]} ({err})")
    size = sum(_size_mb(entry) for entry in listed)
    print(f"and {len(listed)} analysis results (mnistlab.build.memo), {size:.1f} MB")
    for line in damaged:
        print(f"  DAMAGED result {line}; it will be deleted and rebuilt when next used")
    numba = _numba_files()
    if numba:
        size = sum(f.stat().st_size for f in numba) / 1e6
        print(f"and umap-learn's compiled code (Numba's cache, in {embed.numba_folder()}), {size:.1f} MB")
    return 0


def _numba_files() -> list[Path]:
    """The files of Numba's cache that umap-learn's functions wrote (index and code), nothing else."""
    folder = embed.numba_folder()
    if not folder.is_dir() or folder.is_symlink():
        return []
    return sorted(f for f in folder.rglob("*") if f.suffix in (".nbi", ".nbc") and f.is_file() and not f.is_symlink())


def _cache_clear(args: argparse.Namespace) -> int:
    cache = ModelCache()
    if not args.yes:
        print(f"this deletes every model and result in {cache.root}; run again with --yes to do it", file=sys.stderr)
        return 1
    models, results = cache.clear(), ModelCache(kind="results").clear()
    failed = models.failed + results.failed
    numba, numba_deleted = embed.numba_folder(), 0
    for f in _numba_files():
        why = remove(f)
        numba_deleted += why is None
        if why is not None:
            failed.append((f, why))
    leftovers = models.leftovers + results.leftovers
    print(
        f"deleted from {cache.root}: {models.entries} models, {results.entries} analysis results, "
        f"{leftovers} leftovers of interrupted saves and unused locks"
        + (f"; {numba_deleted} files of umap-learn's compiled code from {numba}" if numba_deleted else "")
    )
    foreign = models.foreign + results.foreign
    if foreign:
        print(f"left alone {len(foreign)} items that mnistlab did not write:")
        for path in foreign:
            print(f"  {path}")
    for path, why in failed:
        print(f"mnistlab: could not delete {path}: {why}", file=sys.stderr)
    if failed:
        print(f"mnistlab: error: {len(failed)} items remain in {cache.root}; fix the cause above and run again",
              file=sys.stderr)
        return 1
    return 0


def _data(args: argparse.Namespace) -> int:
    config = DataConfig.from_env(**({"source": args.data} if args.data else {}), download=not args.no_download)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataFallbackWarning)
        data = load_data(config)
    print(data.summary())
    print(f"source: {data.source}; fingerprint {data.fingerprint[:16]}…")
    for w in caught:
        print(str(w.message))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnistlab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a configuration (or load it from the model cache)",
                       description="Train one configuration with SGD, or load it from the model cache.")
    t.add_argument("--arch", choices=ARCHS, default="mlp", help="network type (default mlp)")
    t.add_argument("--hidden", type=int, nargs="+", default=[32, 16], help="hidden layer widths (default 32 16)")
    t.add_argument("--channels", type=int, nargs="+", help="CNN channels (default 8 16; CNN only)")
    t.add_argument("--input-norm", action="store_true", help="standardise inputs with training statistics")
    t.add_argument("--layernorm", action="store_true", help="LayerNorm before each hidden ReLU (MLP only)")
    t.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each hidden ReLU (default 0)")
    t.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    t.add_argument("--batch-size", type=int, default=64, help="mini-batch size (default 64)")
    t.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial weights and batch order (default 0)")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    t.add_argument("--data", choices=SOURCES, help="data source (default: $MNISTLAB_DATA, else auto)")
    t.set_defaults(run=_train)

    c = sub.add_parser("cache", help="list or clear the model cache", description="Inspect the model cache.")
    csub = c.add_subparsers(dest="action", required=True)
    cl = csub.add_parser("list", help="list cached models", description="List the cached models.")
    cl.set_defaults(run=_cache_list)
    cc = csub.add_parser(
        "clear",
        help="delete every cached model, result and compiled code",
        description="Delete every cached model and result, and umap-learn's compiled code.",
    )
    cc.add_argument("--yes", action="store_true", help="really delete")
    cc.set_defaults(run=_cache_clear)

    d = sub.add_parser("data", help="show which data a build would use",
                       description="Load the data a build would use and say what it is.")
    d.add_argument("--data", choices=SOURCES, help="data source (default: $MNISTLAB_DATA, else auto)")
    d.add_argument("--no-download", action="store_true", help="do not try to download full MNIST")
    d.set_defaults(run=_data)
    return p


def error_line(err: BaseException) -> str:
    """One line naming the cause of ``err`` and, where the cause suggests one, the fix."""
    text = " ".join(str(err).split())
    if isinstance(err, KeyError):
        return f"missing key {text} (a damaged file or an unknown name)"
    if isinstance(err, MemoryError):
        return "out of memory; try a smaller --batch-size, a smaller network, or close other programs"
    if isinstance(err, OSError) and err.filename is not None:
        where = err.filename
        fix = f"; set {ENV_CACHE} to a folder you can write" if str(where).startswith(str(cache_dir())) else ""
        return f"{where}: {err.strerror or text}{fix}"
    if isinstance(err, (ValueError, TypeError, DataError, RuntimeError, OSError)):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"mnistlab: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _one_line_warning  # restored on leaving catch_warnings
            code = args.run(args)
            sys.stdout.flush()  # here, so a reader that stopped early is met below, not at exit
            return code
    except KeyboardInterrupt:
        print("mnistlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output stopped early (``mnistlab cache list | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is left to flush goes nowhere
        return 0
    except Exception as err:  # any cause: one line on stderr, never a traceback
        print(f"mnistlab: error: {error_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
