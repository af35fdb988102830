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
import json
import shutil
import sys
import warnings

from mnistlab import numerics
from mnistlab.cache import ModelCache
from mnistlab.data import SOURCES, DataConfig, DataFallbackWarning, load_data
from mnistlab.embed import NUMBA_FOLDER
from mnistlab.models import ARCHS, ModelConfig
from mnistlab.train import TrainConfig, load_or_train


def _train(args: argparse.Namespace) -> int:
    model_config = ModelConfig(
        hidden=tuple(args.hidden),
        input_norm=args.input_norm,
        layernorm=args.layernorm,
        dropout=args.dropout,
        arch=args.arch,
        channels=tuple(args.channels),
    )
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               device=args.device)
    data = load_data(DataConfig.from_env(**({"source": args.data} if args.data else {})))
    print(data.summary())
    run = load_or_train(model_config, train_config, data)
    n_params = sum(p.numel() for p in run.model.parameters())
    where = "from the model cache" if run.from_cache else f"trained in {run.train_seconds:.1f} s and cached"
    print(f"{model_config}\n{train_config}")
    print(f"{n_params:,} parameters, {where}")
    print(f"test accuracy {run.final_test_acc:.2%}, train accuracy {run.history['train_acc'][-1]:.2%}")
    return 0


def _cache_list(args: argparse.Namespace) -> int:
    cache = ModelCache()
    entries = cache.entries()
    print(f"model cache {cache.root} ({len(entries)} entries)")
    for entry in entries:
        try:
            meta = json.loads((entry / "meta.json").read_text())
            mc, tc = meta["model_config"], meta["train_config"]
            arch = mc.get("arch", "mlp")
            shape = f"cnn {mc['channels']}+{mc['hidden']}" if arch == "cnn" else f"mlp {mc['hidden']}"
            options = [k for k in ("input_norm", "layernorm") if mc.get(k)]
            options += [f"dropout {mc['dropout']}"] if mc.get("dropout") else []
            size = sum(f.stat().st_size for f in entry.iterdir()) / 1e6
            print(
                f"  {entry.name[:12]}  {shape:<22} {' '.join(options):<28}"
                f"  epochs {tc['epochs']:>3}  seed {tc['seed']:>2}  lr {tc['lr']:<6}"
                f"  data {meta['data']['source']:<8} test acc {meta['history']['test_acc'][-1]:.2%}"
                f"  {size:.1f} MB"
            )
        except (OSError, KeyError, ValueError) as err:
            print(f"  {entry.name[:12]}  damaged ({err}); it will be rebuilt when next used")
    results = ModelCache(kind="results").entries()
    size = sum(f.stat().st_size for entry in results for f in entry.iterdir()) / 1e6
    print(f"and {len(results)} analysis results (mnistlab.build.memo), {size:.1f} MB")
    numba = cache.root / NUMBA_FOLDER
    if numba.is_dir():
        size = sum(f.stat().st_size for f in numba.rglob("*") if f.is_file()) / 1e6
        print(f"and umap-learn's compiled code (Numba's cache), {size:.1f} MB")
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    cache = ModelCache()
    if not args.yes:
        print(f"this deletes every model and result in {cache.root}; run again with --yes to do it", file=sys.stderr)
        return 1
    results = ModelCache(kind="results").clear()
    shutil.rmtree(cache.root / NUMBA_FOLDER, ignore_errors=True)
    models = cache.clear()
    print(f"deleted {models} entries, {results} analysis results and umap-learn's compiled code from {cache.root}")
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
    t.add_argument("--channels", type=int, nargs="+", default=[8, 16], help="CNN channels (default 8 16)")
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


def main(argv: list[str] | None = None) -> int:
    numerics.pin()  # a model trained here is the one a chapter would train (and find in the cache)
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, KeyError) as err:  # bad configuration values: one line, no traceback
        print(f"mnistlab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
