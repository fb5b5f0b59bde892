"""ESM2 pseudo-perplexity through fair-esm's real loader, on a tiny randomly initialised ESM2.

The tiny model is saved in fair-esm's checkpoint format — ``{"model": state dict with the
"encoder." prefix, "cfg": {"model": argparse.Namespace(...)}}`` plus an optional
``<name>-contact-regression.pt`` — and loaded back with :func:`load_esm2`.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from multiflow.errors import MissingWeightsError
from multiflow.evaluation.perplexity import ESM2Scorer, load_esm2, pseudo_perplexity

esm = pytest.importorskip("esm")
from esm.model.esm2 import ESM2  # noqa: E402

SEQ = "MKTAYIAKQRQISFVKSHFSRQ"


def save_tiny_esm2(folder, name: str = "esm2_t2_tiny.pt", regression: bool = True):
    torch.manual_seed(0)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = ESM2(num_layers=2, embed_dim=32, attention_heads=4, alphabet=alphabet, token_dropout=True)
    state = model.state_dict()
    reg_keys = [k for k in state if k.startswith("contact_head.regression")]
    cfg = argparse.Namespace(encoder_layers=2, encoder_embed_dim=32, encoder_attention_heads=4, token_dropout=True)
    path = folder / name
    torch.save({"model": {"encoder." + k: v for k, v in state.items() if k not in reg_keys}, "cfg": {"model": cfg}}, path)
    if regression:
        torch.save({"model": {k: state[k] for k in reg_keys}}, folder / name.replace(".pt", "-contact-regression.pt"))
    return path, model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_esm2(tmp_path_factory.mktemp("esm2"))


@pytest.mark.parametrize("regression", [True, False])
def test_loader_restores_the_saved_weights(tmp_path, regression):
    path, original = save_tiny_esm2(tmp_path, regression=regression)
    model, alphabet = load_esm2(path)
    loaded = model.state_dict()
    for key, value in original.state_dict().items():
        if regression or not key.startswith("contact_head.regression"):
            assert torch.equal(loaded[key], value), key
    assert alphabet.mask_idx == original.mask_idx and not model.training


def test_pseudo_perplexity_equals_hand_computed_masked_nll(tiny):
    path, _ = tiny
    model, alphabet = load_esm2(path)
    nll = []
    with torch.no_grad():  # one position at a time, the definition
        for i, letter in enumerate(SEQ):
            tokens = torch.tensor([[alphabet.cls_idx] + [alphabet.get_idx(c) for c in SEQ] + [alphabet.eos_idx]])
            tokens[0, i + 1] = alphabet.mask_idx
            logp = torch.log_softmax(model(tokens)["logits"][0, i + 1], dim=-1)
            nll.append(-logp[alphabet.get_idx(letter)].item())
    expected = math.exp(sum(nll) / len(nll))
    small_batches = ESM2Scorer(model, alphabet, device="cpu", max_tokens_per_batch=50)  # 2 masked copies per pass
    one_batch = ESM2Scorer.from_local(path, device="cpu")
    assert small_batches.pseudo_perplexity([SEQ])[0] == pytest.approx(expected, rel=1e-5)
    assert pseudo_perplexity([SEQ, SEQ[:5]], one_batch)[0] == pytest.approx(expected, rel=1e-5)
    assert np.allclose(small_batches.masked_log_likelihoods(SEQ), -np.array(nll), atol=1e-5)


def test_unknown_residues_are_skipped(tiny):
    path, _ = tiny
    scorer = ESM2Scorer.from_local(path, device="cpu")
    ll = scorer.masked_log_likelihoods("MKXAY")
    assert np.isnan(ll[2]) and np.isfinite(np.delete(ll, 2)).all()
    assert math.isnan(scorer.pseudo_perplexity(["XXX"])[0])


def test_missing_or_misnamed_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIFLOW_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        load_esm2()
    assert str(tmp_path / "esm2_t33_650M_UR50D.pt") in str(err.value) and "MULTIFLOW_WEIGHTS" in str(err.value)
    with pytest.raises(MissingWeightsError, match="no esm2_"):
        load_esm2(tmp_path)
    path, _ = save_tiny_esm2(tmp_path, name="tiny_model.pt", regression=False)
    with pytest.raises(MissingWeightsError, match="must start with 'esm2'"):
        load_esm2(path)
    save_tiny_esm2(tmp_path, regression=False)
    model, _ = load_esm2(tmp_path)  # a folder holding one esm2_*.pt file works too
    assert model.num_layers == 2


def test_checkpoints_with_other_python_objects_need_trust(tmp_path):
    import types

    path, original = save_tiny_esm2(tmp_path, regression=False)
    data = torch.load(path, weights_only=False)
    data["cfg"]["model"] = types.SimpleNamespace(**vars(data["cfg"]["model"]))  # not on torch's safe list
    torch.save(data, path)
    with pytest.raises(MissingWeightsError, match="trust_checkpoint=True"):
        load_esm2(path)
    model, _ = load_esm2(path, trust_checkpoint=True)
    assert torch.equal(model.state_dict()["embed_tokens.weight"], original.state_dict()["embed_tokens.weight"])
