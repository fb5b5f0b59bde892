"""Sampling: templates, infill keeps fixed spans exactly, an oracle denoiser returns the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from multiflow.errors import ConfigError
from multiflow.flows.discrete import DiscreteFlow
from multiflow.text.model import TokenDenoiser
from multiflow.text.sampling import parse_template, sample_texts, sample_tokens
from multiflow.text.tokenizer import ByteTokenizer

S, L = 256, 40


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TokenDenoiser(S, d_model=32, n_layers=1, n_heads=2, max_len=64).eval()


def test_parse_template():
    tok = ByteTokenizer()
    tpl = parse_template("ab<<3>>c<<2>>", tok)
    assert tpl.tokens.tolist() == [97, 98, S, S, S, 99, S, S]
    assert tpl.fixed.tolist() == [True, True, False, False, False, True, False, False]
    with pytest.raises(ConfigError):
        parse_template("", tok)


@pytest.mark.parametrize("kw", [dict(), dict(eta=2.0), dict(purity=True, eta=1.0), dict(sampler="reveal"),
                                dict(temperature=0.0)])
def test_infill_keeps_arbitrary_fixed_positions(model, kw):
    flow = DiscreteFlow(S, noise="mask")
    gen = torch.Generator().manual_seed(1)
    init = torch.randint(0, S, (1, L), generator=gen)
    fixed = torch.rand(1, L, generator=gen) < 0.4  # arbitrary, non-contiguous spans
    res = sample_tokens(model, flow, 5, L, 8, init=init, fixed_mask=fixed, generator=gen, **kw)
    out = res.tokens
    assert out.shape == (5, L) and (out < S).all()  # no MASK left
    assert (out[:, fixed[0]] == init[:, fixed[0]]).all()


def test_infill_with_uniform_noise(model):
    flow = DiscreteFlow(S, noise="uniform")
    init = torch.randint(0, S, (1, L))
    fixed = torch.zeros(1, L, dtype=torch.bool)
    fixed[:, 5:15] = True
    out = sample_tokens(model, flow, 3, L, 6, init=init, fixed_mask=fixed, eta=0.5).tokens
    assert (out[:, 5:15] == init[:, 5:15]).all()


class Oracle(nn.Module):
    """Puts (almost) all posterior mass on a known sequence, whatever the input."""

    time_conditioned = False

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.target = target

    def forward(self, x, t=None):
        return 50.0 * nn.functional.one_hot(self.target, S).float().expand(x.shape[0], -1, -1)


@pytest.mark.parametrize("steps", [1, 4, 32])
def test_oracle_denoiser_returns_the_data(steps):
    target = torch.randint(0, S, (L,))
    flow = DiscreteFlow(S, noise="mask")
    out = sample_tokens(Oracle(target), flow, 4, L, steps, generator=torch.Generator().manual_seed(0)).tokens
    assert (out == target).all()


def test_logit_reuse_changes_nothing_but_cost(model):
    flow = DiscreteFlow(S, noise="mask")
    a = sample_tokens(model, flow, 4, L, 64, reuse_logits=True, generator=torch.Generator().manual_seed(3))
    b = sample_tokens(model, flow, 4, L, 64, reuse_logits=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens)
    assert a.nfe < b.nfe == 64


def test_sample_texts_prefix(model):
    texts, res = sample_texts(model, DiscreteFlow(S), ByteTokenizer(), "import os\n<<20>>", n=3, steps=4)
    assert len(texts) == 3 and all(t.startswith("import os\n") for t in texts)
    assert res.tokens.shape == (3, 30)
    np.testing.assert_array_equal(res.tokens[:, :10].numpy(), np.frombuffer(b"import os\n", np.uint8)[None].repeat(3, 0))
