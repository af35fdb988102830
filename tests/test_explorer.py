"""The unit explorer's data (mnistlab.explorer) against the chapters' functions and hand-written loops."""

import base64
import json

import numpy as np
import pytest
import torch

from mnistlab import analysis, dictionary, explorer
from mnistlab.hooks import run_with_cache
from mnistlab.models import ModelConfig, build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(12, 6))).eval()


def test_unit_cards_hold_chapter_4_profiles_and_chapter_5_mean_ablation(model, data):
    cards = explorer.unit_cards(model, data, "fc1_post")
    assert len(cards) == 12 and [c.profile.unit for c in cards] == list(range(12))
    _, cache = run_with_cache(model, data.x_test, names=["fc1_post"])
    acts = cache["fc1_post"]
    held_out = run_with_cache(model, data.x_val, names=["fc1_post"])[1]["fc1_post"].mean(0)
    clean = model(data.x_test).argmax(1)
    for unit in (0, 5, 11):
        card, want = cards[unit], analysis.unit_profile(acts, data.y_test, unit, k=explorer.TOP_K)
        torch.testing.assert_close(card.profile.class_means, want.class_means)
        torch.testing.assert_close(card.profile.auc, want.auc)
        assert card.profile.top_inputs.tolist() == want.top_inputs.tolist()
        torch.testing.assert_close(card.pixels, model.fc1.weight.detach()[unit])
        # Mean ablation by hand: the unit's activation replaced by its validation mean.
        h = acts.clone()
        h[:, unit] = held_out[unit]
        edited = model.out(torch.relu(model.fc2(h))).argmax(1)
        for d in range(10):
            is_d = data.y_test == d
            change = (edited[is_d] == d).double().mean() - (clean[is_d] == d).double().mean()
            assert card.ablation[d].item() == pytest.approx(change.item(), abs=1e-12)


def test_second_layer_reads_the_pixels_through_the_first(model, data):
    cards = explorer.unit_cards(model, data, "fc2_post")
    assert len(cards) == 6
    through = model.fc2.weight.detach() @ model.fc1.weight.detach()  # (6, 784): W2 W1
    torch.testing.assert_close(torch.stack([c.pixels for c in cards]), through)
    with pytest.raises(ValueError, match="fc1_post and fc2_post"):
        explorer.unit_cards(model, data, "logits")


def test_feature_cards_profile_the_codes_and_ablate_with_the_error_kept(model, data):
    acts = run_with_cache(model, data.x_train, names=["fc1_post"])[1]["fc1_post"]
    config = dictionary.SAEConfig(width=16, steps=50)
    sae = dictionary.train_sae(acts, config).sae
    cards = explorer.feature_cards(model, sae, data)
    assert len(cards) == 16
    test_acts = run_with_cache(model, data.x_test, names=["fc1_post"])[1]["fc1_post"]
    codes = sae.encode(test_acts).detach()
    want = analysis.unit_profile(codes, data.y_test, 3, k=explorer.TOP_K)
    torch.testing.assert_close(cards[3].profile.class_means, want.class_means)
    torch.testing.assert_close(cards[3].pixels, model.fc1.weight.detach().T @ sae.W_dec.detach()[:, 3])
    dead = [c for c in cards if (codes[:, c.profile.unit] == 0).all()]
    assert all(c.ablation.abs().max() == 0 for c in dead)  # an inactive feature's edit changes nothing


def test_payload_is_json_and_decodes_back_to_the_cards(model, data):
    cards = {"fc1_post": explorer.unit_cards(model, data, "fc1_post")}
    payload = explorer.payload(cards, data.x_test, data.y_test, {"data": "test"})
    text = json.dumps(payload, allow_nan=False)  # NaN (a dead unit) must have become null
    back = json.loads(text)
    assert len(back["colour_maps"]["light"]) == len(back["colour_maps"]["dark"]) == 256
    for card, got in zip(cards["fc1_post"], back["layers"]["fc1_post"]):
        codes = np.frombuffer(base64.b64decode(got["pixels"]["codes"]), dtype=np.uint8)
        centres = ((codes + 0.5) / 256 * 2 - 1) * got["pixels"]["scale"]
        assert np.abs(centres - card.pixels.numpy()).max() <= got["pixels"]["scale"] / 256 + 1e-6
        assert got["class_means"] == [float(v) for v in card.profile.class_means.tolist()]
        assert got["top"]["index"] == card.profile.top_inputs.tolist()
    shown = {i for got in back["layers"]["fc1_post"] for i in got["top"]["index"]}
    assert set(map(int, back["images"])) == shown


def test_html_keeps_the_json_inside_its_script_block():
    block = explorer.html({"about": {"note": "</script><b>"}, "layers": {}})
    assert block.count("</script>") == 1
    data = block.split('id="unit-explorer-data">')[1].removesuffix("</script>")
    assert json.loads(data)["about"]["note"] == "</script><b>"


def test_chosen_sae_says_when_no_dictionary_keeps_enough(model, data, monkeypatch, tmp_cache):
    monkeypatch.setattr(explorer, "L1S", (2.0,))
    monkeypatch.setattr(explorer, "SAE_CONFIG", dictionary.SAEConfig(width=8, steps=20))
    monkeypatch.setattr(explorer, "KEEP", 2.0)  # no SAE keeps 200% of the loss
    with pytest.raises(RuntimeError, match="keeps 200% of the loss"):
        explorer.chosen_sae(model, data)
