"""Denoiser and AR baseline: shapes, time conditioning on/off, positions, causality."""

from __future__ import annotations

import pytest
import torch

from multiflow.errors import ConfigError
from multiflow.text.model import CausalLM, TokenDenoiser

S, B, L = 50, 3, 24


def _tiny(cls, **kw):
    return cls(S, d_model=32, n_layers=2, n_heads=2, max_len=L, **kw)


@pytest.mark.parametrize("time_conditioned", [False, True])
@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_denoiser_shapes(time_conditioned, positions):
    model = _tiny(TokenDenoiser, time_conditioned=time_conditioned, positions=positions)
    x = torch.randint(0, S + 1, (B, L))  # MASK = S is a valid input
    logits = model(x, torch.rand(B))
    assert logits.shape == (B, L, S)  # no MASK column: the model cannot put mass on MASK
    assert torch.isfinite(logits).all()
    logits.sum().backward()


def test_time_free_ignores_t_and_time_conditioned_uses_it():
    x = torch.randint(0, S + 1, (B, L))
    free = _tiny(TokenDenoiser, time_conditioned=False)
    torch.testing.assert_close(free(x, torch.zeros(B)), free(x, torch.ones(B)))
    assert free(x).shape == (B, L, S)  # t may be omitted
    cond = _tiny(TokenDenoiser, time_conditioned=True)
    for p in cond.parameters():  # adaLN starts at zero (time-free); perturb it to see t
        if p.dim() and not p.any():
            torch.nn.init.normal_(p, std=0.1)
    assert not torch.allclose(cond(x, torch.zeros(B)), cond(x, torch.ones(B)))
    with pytest.raises(ValueError):
        cond(x)


def test_denoiser_is_bidirectional_and_ar_is_causal():
    x = torch.randint(0, S, (1, L))
    y = x.clone()
    y[0, L // 2] = (y[0, L // 2] + 1) % S
    den, ar = _tiny(TokenDenoiser), _tiny(CausalLM)
    assert (den(x) - den(y))[0, : L // 2].abs().max() > 0  # earlier positions see the change
    diff = (ar(x) - ar(y)).abs().amax(-1)[0]
    assert diff[: L // 2 + 1].max() == 0  # position i only sees tokens < i
    assert diff[L // 2 + 1 :].max() > 0
    assert ar.nll(x).shape == (1, L)


def test_same_size_and_bad_config():
    assert _tiny(TokenDenoiser).num_parameters() == _tiny(CausalLM).num_parameters()
    with pytest.raises(ConfigError):
        TokenDenoiser(S, d_model=30, n_heads=4)
    with pytest.raises(ConfigError):
        TokenDenoiser(S, positions="alibi")
    with pytest.raises(ConfigError):
        _tiny(TokenDenoiser, positions="learned")(torch.zeros(1, L + 1, dtype=torch.long))
