"""Token losses: what is counted, the ELBO weight, and the masked NELBO against an exact likelihood."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from multiflow.errors import ConfigError
from multiflow.flows.base import PolynomialScheduler
from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.losses import masked_nelbo, token_loss

sys.path.insert(0, str(Path(__file__).parent))
from toy import S, SEQS, exact_posterior, seq_index, target_probs  # noqa: E402


def _batch(flow: DiscreteFlow, B: int = 16, N: int = 12, t: float = 0.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randint(0, flow.vocab_size, (B, N), generator=g)
    tt = torch.full((B,), t)
    return x1, flow.sample_path(x1, tt, generator=g), tt, torch.ones(B, N, dtype=torch.bool)


@pytest.mark.parametrize("noise", ["mask", "uniform"])
def test_perfect_predictor_has_zero_loss(noise):
    flow = DiscreteFlow(20, noise)
    x1, x_t, t, mask = _batch(flow)
    logits = 60.0 * torch.nn.functional.one_hot(x1, 20).float()
    out = token_loss(flow, logits, x1, x_t, t, mask, likelihood_weighting=True)
    assert out["loss"] < 1e-12 and out["ce"] < 1e-12


def test_masking_counts_only_masked_positions():
    flow = DiscreteFlow(20, "mask")
    x1, x_t, t, mask = _batch(flow)
    logits = torch.randn(*x1.shape, 20, requires_grad=True)
    out = token_loss(flow, logits, x1, x_t, t, mask)
    out["loss"].backward()
    revealed = x_t != flow.mask_token
    assert (logits.grad[revealed] == 0).all() and (logits.grad[~revealed].abs().sum(-1) > 0).all()
    assert out["num_counted"] == (~revealed).sum()
    ce = -torch.log_softmax(logits.detach(), -1).gather(-1, x1[..., None]).squeeze(-1)
    torch.testing.assert_close(out["loss"], ce[~revealed].sum() / x1.numel())
    torch.testing.assert_close(out["ce"], ce[~revealed].mean())


def test_uniform_counts_all_and_masks_exclude():
    flow = DiscreteFlow(256, "uniform")
    x1, x_t, t, mask = _batch(flow)
    mask[:, -3:] = False  # padding
    x1[:, -3:] = 999  # garbage where padded is fine
    fixed = torch.zeros_like(mask)
    fixed[:, :2] = True
    logits = torch.randn(*x1.shape, 256)
    out = token_loss(flow, logits, x1, x_t, t, mask, fixed_mask=fixed)
    counted = mask & ~fixed
    ce = -torch.log_softmax(logits, -1).gather(-1, x1.clamp_max(255)[..., None]).squeeze(-1)
    torch.testing.assert_close(out["loss"], ce[counted].mean())
    with pytest.raises(ValueError):
        token_loss(flow, logits, x1, x_t, t, torch.ones_like(mask))  # 999 at a counted position


def test_likelihood_weight_formula_and_clip():
    for scheduler, t in [(None, 0.75), (PolynomialScheduler(2.0), 0.5), (None, 0.97)]:
        flow = DiscreteFlow(20, "mask", scheduler)
        x1, x_t, tt, mask = _batch(flow, t=t, seed=1)
        logits = torch.randn(*x1.shape, 20)
        plain = token_loss(flow, logits, x1, x_t, tt, mask)["loss"]
        tt64 = torch.tensor(t, dtype=torch.float64)
        w = float(flow.scheduler.d_kappa(tt64) / (1 - flow.scheduler.kappa(tt64)))  # 4, 2/0.75, 33.3
        weighted = token_loss(flow, logits, x1, x_t, tt, mask, likelihood_weighting=True, max_weight=None)["loss"]
        clipped = token_loss(flow, logits, x1, x_t, tt, mask, likelihood_weighting=True, max_weight=10.0)["loss"]
        torch.testing.assert_close(weighted, w * plain)
        torch.testing.assert_close(clipped, min(w, 10.0) * plain)


@pytest.mark.parametrize("scheduler", [None, PolynomialScheduler(2.0)])
def test_masked_nelbo_of_exact_posterior_is_exact_nll(scheduler):
    """For the exact posterior the masked ELBO is tight (any-order chain rule): E[NELBO(x)] = -log q(x)."""
    flow, q = DiscreteFlow(S, "mask", scheduler), target_probs()
    seqs = SEQS[[0, 21, 6, 1]]  # (0,0,0), (1,1,1), (0,1,2): frequent; (0,0,1): rare (q ~ 4e-4)
    n_rep = 3000
    x1 = seqs.repeat_interleave(n_rep, 0)
    g = torch.Generator().manual_seed(11)
    out = masked_nelbo(flow, lambda x_t, t: exact_posterior(flow, x_t, t, q).clamp_min(1e-300).log(), x1,
                       torch.ones_like(x1, dtype=torch.bool), num_t_samples=4, generator=g)
    per_seq = out["nats"].view(len(seqs), n_rep)
    est, se = per_seq.mean(1), per_seq.std(1) / n_rep**0.5
    nll = -q[seq_index(seqs)].log()
    assert ((est - nll).abs() < 4 * se + 1e-3).all(), (est, nll, se)
    torch.testing.assert_close(out["nats_per_token"], out["nats"].sum() / x1.numel())


def test_masked_nelbo_needs_masking_noise():
    flow = DiscreteFlow(4, "uniform")
    x = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ConfigError):
        masked_nelbo(flow, lambda x_t, t: torch.zeros(2, 3, 4), x, torch.ones_like(x, dtype=torch.bool),
                     num_t_samples=2)
