"""Fuzzing the public functions' inputs: a correct result or the library's own error, never a low-level one.

Hypothesis draws images, labels, activations and numbers of every shape, dtype and
range a user might pass by mistake (pixels in 0-255, float64, integer or boolean
tensors, NaN and infinity, empty batches, wrong widths, out-of-range classes). Each
call must either succeed with a result of the promised shape, or raise ``TypeError``,
``ValueError``, ``IndexError`` or ``KeyError`` from a line of mnistlab itself: an
error that torch or NumPy raises deep inside would mean some input went unchecked.
"""

import traceback
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mnistlab
from mnistlab import analysis, embed, patching
from mnistlab import interventions as iv
from mnistlab.hooks import run_with_cache
from mnistlab.models import ModelConfig, build_model
from mnistlab.train import evaluate

PACKAGE = Path(mnistlab.__file__).parent
OWN_ERRORS = (TypeError, ValueError, IndexError, KeyError)

torch.manual_seed(0)
MODEL = build_model(ModelConfig(hidden=(12, 6))).eval()

DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8, torch.bool]
SPECIALS = [None, None, None, "nan", "inf", "-inf"]


@st.composite
def tensors(draw, shapes, dtypes=DTYPES, scale=(1.0, 255.0, -1.0), specials=SPECIALS):
    """A tensor of one of ``shapes``, one of ``dtypes``, values in [0, 1) times one of ``scale``, maybe one special."""
    shape = draw(st.sampled_from(shapes))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**16))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * draw(st.sampled_from(scale))
    special = draw(st.sampled_from(specials))
    if special is not None and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = float(special)
    if dtype == torch.bool:
        return x > 0.5
    return x.to(dtype) if dtype.is_floating_point else x.nan_to_num(0, 0, 0).round().to(dtype)


N = 20  # inputs in a well-formed batch: every digit twice
GOOD_IMAGES = tensors([(N, 784), (N, 28, 28), (N, 1, 28, 28)], dtypes=[torch.float32], scale=(1.0,), specials=[None])
BAD_IMAGES = tensors([(0, 784), (1, 784), (N, 780), (N, 3, 28, 28), (784,)] + [(N, 784)] * 3, scale=(1.0, 255.0, -1.0))
# Half the draws well-formed, so that the checks of what follows the images are reached too.
images = st.one_of(GOOD_IMAGES, BAD_IMAGES)
GOOD_LABELS = st.just(torch.arange(N) % 10)
BAD_LABELS = tensors(
    [(N,), (N - 1,), (0,), (N, 1)], dtypes=[torch.int64, torch.int32, torch.uint8, torch.float32, torch.bool],
    scale=(9.0, 12.0, -3.0),
)
labels = st.one_of(GOOD_LABELS, BAD_LABELS, GOOD_LABELS.map(lambda y: y.to(torch.uint8)))
activations = st.one_of(
    tensors([(N, 12), (N, 6)], dtypes=[torch.float32], scale=(1.0,), specials=[None]),
    tensors([(N, 12), (N, 6), (0, 12), (N,), (N, 12, 2)], scale=(1.0, 1e3, -1.0)),
)


def call_or_own_error(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None if it raised one of the library's own errors (else the test fails)."""
    try:
        return fn(*args, **kwargs)
    except OWN_ERRORS as err:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        assert Path(frame.filename).is_relative_to(PACKAGE), (
            f"{type(err).__name__} raised inside {frame.filename}:{frame.lineno}, not by mnistlab: {err}"
        )
        return None


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# What a well-formed input is, judged from its value (a "bad" strategy can draw a good one): such an input must
# be accepted, so a library that refused everything would fail these tests rather than pass them.
def good_images(x):
    return (x.dtype == torch.float32 and tuple(x.shape) in ((N, 784), (N, 28, 28), (N, 1, 28, 28))
            and bool(torch.isfinite(x).all()) and x.min() >= 0 and x.max() <= 1)


def good_labels(y):
    return y.dtype == torch.int64 and torch.equal(y, torch.arange(N) % 10)


def good_activations(a, width=None):
    return (a.dtype == torch.float32 and a.ndim == 2 and len(a) == N and a.shape[1] == (width or a.shape[1])
            and bool(torch.isfinite(a).all()) and a.min() >= 0)


def accepted_if(good, out):
    """A well-formed input gives a result, not an error."""
    assert not good or out is not None, "a well-formed input was refused"


@FUZZ
@given(x=images)
def test_recording(x):
    out = call_or_own_error(run_with_cache, MODEL, x, names=["fc1_post"])
    accepted_if(good_images(x), out)
    if out is not None:
        logits, cache = out
        assert logits.shape == (len(x), 10) and cache["fc1_post"].shape == (len(x), 12)
        assert torch.isfinite(logits).all()


@FUZZ
@given(
    x=images,
    units=st.sampled_from([[0], [11], [12], [-1], [0, 0]]),
    factor=st.sampled_from([0.0, 2.0, float("nan")]),
)
def test_editing(x, units, factor):
    out = call_or_own_error(lambda: iv.run_edited(MODEL, x, {"fc1_post": iv.scaling(units, factor)}))
    accepted_if(good_images(x) and units in ([0], [11]) and factor == factor, out)
    if out is not None:
        assert out.shape == (len(x), 10) and torch.isfinite(out).all()


@FUZZ
@given(x=images, y=labels)
def test_ablation_table(x, y):
    out = call_or_own_error(iv.ablation_table, MODEL, x, y, "fc2_post")
    accepted_if(good_images(x) and good_labels(y), out)
    if out is not None:
        assert out.ablated.shape == (6, 10) and ((out.ablated >= 0) & (out.ablated <= 1)).all()


@FUZZ
@given(x=images, y=labels)
def test_evaluate(x, y):
    out = call_or_own_error(evaluate, MODEL, x, y)
    accepted_if(good_images(x) and good_labels(y), out)
    if out is not None:
        loss, acc = out
        assert loss >= 0 and 0 <= acc <= 1


@FUZZ
@given(source=activations, layer=st.sampled_from(["fc1_post", "fc2_post"]), how=st.sampled_from(["patch", "mean"]))
def test_edits_from_activations(source, layer, how):
    x = torch.rand(N, 784, generator=torch.Generator().manual_seed(1))

    def run():
        edit = iv.patching(None, source) if how == "patch" else iv.mean_ablation([0, 1], source)
        return iv.run_edited(MODEL, x, {layer: edit})

    out = call_or_own_error(run)
    accepted_if(good_activations(source, width={"fc1_post": 12, "fc2_post": 6}[layer]), out)
    if out is not None:
        assert out.shape == (N, 10) and torch.isfinite(out).all()


@FUZZ
@given(acts=activations, y=labels)
def test_class_statistics(acts, y):
    out = call_or_own_error(lambda: analysis.selectivity_index(analysis.class_means(acts, y)))
    accepted_if(good_activations(acts) and good_labels(y), out)
    if out is not None:
        assert out.shape == (acts.shape[1],)


@FUZZ
@given(acts=activations, y=labels)
def test_silhouette(acts, y):
    out = call_or_own_error(embed.silhouette, acts, y)
    accepted_if(good_activations(acts) and good_labels(y), out)
    if out is not None:
        assert -1 <= out <= 1


@pytest.mark.parametrize("a, b", [(0, 1), (-1, 1), (0, 10), (True, 1), (0.5, 1)])
def test_patching_classes(a, b):
    x = torch.rand(10, 784, generator=torch.Generator().manual_seed(2))
    out = call_or_own_error(patching.patching_effects, MODEL, x[:5], x[5:], a, b, "fc1_post")
    assert (out is not None) == ((a, b) == (0, 1))
