"""Token losses: what is counted, the ELBO weight, and the masked and uniform NELBOs against exact likelihoods."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

from multiflow.errors import ConfigError
from multiflow.flows.base import PolynomialScheduler, jump_coefficient
from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.losses import _path_kl_density, masked_nelbo, token_loss, token_nelbo, uniform_nelbo

sys.path.insert(0, str(Path(__file__).parent))
from exact_ctmc import all_sequences, exact_nelbo, terminal_distribution  # noqa: E402
from toy import S, SEQS, exact_posterior, independent_posterior, seq_index, target_probs  # noqa: E402


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


# --- NELBO of the uniform-noise flow ------------------------------------------------------------
# Bound: -log p_theta(x1) <= int E_{x_t} sum_i sum_{y != x_t^i} [û - u + u log(u/û)] dt (path-measure KL
# between the conditional process that ends at x1 and the model CTMC, both from the prior).


def _ones(x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x, dtype=torch.bool)


@pytest.mark.parametrize("noise", ["mask", "uniform"])
@pytest.mark.parametrize("scheduler", [None, PolynomialScheduler(2.0)])
def test_nelbo_integrand_is_the_path_kl_of_the_sampler_rates(noise, scheduler):
    """The closed form equals sum_{y != x_t} [û - u + u log(u/û)] built from ``rate_matrix`` (eta = 0):
    û from the model posterior, u from the one-hot posterior at x1. For masking this is masked_nelbo's
    -log p(x1) at masked positions and 0 at revealed ones."""
    flow = DiscreteFlow(5, noise, scheduler)
    g = torch.Generator().manual_seed(2)
    B, N = 64, 6
    x1 = torch.randint(0, 5, (B, N), generator=g)
    t = torch.rand(B, generator=g, dtype=torch.float64)
    x_t = flow.sample_path(x1, t, generator=g)
    logits = 2 * torch.randn(B, N, 5, generator=g, dtype=torch.float64)
    probs = torch.softmax(logits, -1)
    row = x_t[..., None, None].expand(B, N, 1, flow.num_states)
    model = flow.rate_matrix(probs, t).gather(2, row).squeeze(2)  # [B, N, M] out of x_t
    cond = flow.rate_matrix(torch.nn.functional.one_hot(x1, 5).double(), t).gather(2, row).squeeze(2)
    kl = model - cond + torch.xlogy(cond, cond) - torch.xlogy(cond, model)
    reference = kl.masked_fill(torch.nn.functional.one_hot(x_t, flow.num_states).bool(), 0.0).sum(-1)  # [B, N]
    ours = jump_coefficient(flow.scheduler, t)[:, None] * _path_kl_density(flow, logits.log_softmax(-1), x_t, x1)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)


def _made_up_posterior(x_t: torch.Tensor, t: torch.Tensor, S: int = 3) -> torch.Tensor:
    """An arbitrary smooth 'model' p̂(x1_i | x_t, t) [M, L, S] = t δ(x_t^i) + (1 - t) r(x_t, t).

    The δ part keeps 1 - p̂(x_t^i) = O(1 - t), so the NELBO is finite (see ``uniform_nelbo``).
    """
    y = torch.arange(S, dtype=torch.float64)
    other = x_t.flip(-1).double()[..., None]  # the other position's token (L = 2)
    pos = torch.arange(x_t.shape[-1], dtype=torch.float64)[:, None]
    r_logits = 1.5 * torch.sin(1.3 * y + 0.7 * pos + 2.1 * other + 0.9 * x_t[..., None] * y) \
        + t[:, None, None] * torch.cos(2.0 * y + other)
    tt = t[:, None, None].double()
    return tt * torch.nn.functional.one_hot(x_t, S).double() + (1 - tt) * torch.softmax(r_logits, -1)


@pytest.mark.parametrize("scheduler", [None, PolynomialScheduler(2.0)])
def test_uniform_nelbo_bounds_the_exact_model_likelihood(scheduler):
    """S=3, L=2: the model CTMC's exact p_theta(x1) (Kolmogorov forward equation over the 9 states)
    lies above exp(-NELBO) for every x1, and the Monte-Carlo estimate matches the exact NELBO."""
    flow, X = DiscreteFlow(3, "uniform", scheduler), all_sequences(3, 2)
    p_model = terminal_distribution(flow, X, _made_up_posterior)
    torch.testing.assert_close(p_model.sum(), torch.tensor(1.0, dtype=torch.float64))
    nelbo = exact_nelbo(flow, X, _made_up_posterior)  # [9]
    assert (nelbo >= -p_model.log() + 0.5).all(), (nelbo, -p_model.log())  # gap ~0.8-2 nats here

    n_rep = 8000
    x1 = X.repeat_interleave(n_rep, 0)
    out = uniform_nelbo(flow, lambda x_t, t: _made_up_posterior(x_t, t).log(), x1, _ones(x1), num_t_samples=8,
                        generator=torch.Generator().manual_seed(5))
    per_seq = out["nats"].view(len(X), n_rep)
    # se ~ 0.05-0.1 nats. The estimator is heavy-tailed (c_t log(1/(1 - t)) terms with probability
    # ~(1 - t) near t = 1), so the sample se is a little optimistic: |z| peaked at 4.2 over 216 seeds x x1.
    est, se = per_seq.mean(1), per_seq.std(1) / n_rep**0.5
    assert ((est - nelbo).abs() < 5 * se + 1e-3).all(), (est, nelbo, se)


@functools.lru_cache(maxsize=1)
def _toy_exact_nelbos() -> tuple[torch.Tensor, torch.Tensor]:
    """Exact NELBO(x1) [64] on the toy distribution for its exact and a wrong (independent) posterior."""
    flow, q = DiscreteFlow(S, "uniform"), target_probs()
    return tuple(exact_nelbo(flow, SEQS, lambda x, t, p=post: p(flow, x, t, q), nodes=24)
                 for post in (exact_posterior, independent_posterior))


def test_uniform_nelbo_of_exact_posterior_bounds_entropy():
    """The exact posterior of q makes the model CTMC generate q, so NELBO(x1) >= -log q(x1) and
    E_q[NELBO] >= H(q); unlike masking the bound is not tight (~1.1 nats here). A wrong posterior
    changes the off-diagonal rates and strictly increases E_q[NELBO] (a Bregman divergence)."""
    flow, q = DiscreteFlow(S, "uniform"), target_probs()
    p_model = terminal_distribution(flow, SEQS, lambda x, t: exact_posterior(flow, x, t, q), steps=128)
    torch.testing.assert_close(p_model, q, atol=2e-4, rtol=0)
    exact, wrong = _toy_exact_nelbos()
    entropy = -(q * q.log()).sum()
    assert (exact >= -q.log() + 0.1).all()
    assert (q * exact).sum() > entropy + 0.5
    assert (q * wrong).sum() > (q * exact).sum() + 1.0, ((q * wrong).sum(), (q * exact).sum())


def test_uniform_nelbo_estimates_expected_nelbo_of_both_posteriors():
    """Monte Carlo over all 64 sequences (weighted by q) matches the exact E_q[NELBO] of each posterior,
    and with common random numbers the wrong posterior is worse by many standard errors."""
    flow, q = DiscreteFlow(S, "uniform"), target_probs()
    n_rep = 200
    x1 = SEQS.repeat_interleave(n_rep, 0)
    runs = [uniform_nelbo(flow, lambda x_t, t, p=post: p(flow, x_t, t, q).clamp_min(1e-300).log(), x1, _ones(x1),
                          num_t_samples=4, generator=torch.Generator().manual_seed(3))["nats"].view(64, n_rep)
            for post in (exact_posterior, independent_posterior)]

    def weighted(per_seq):  # E_q estimate and its standard error
        return (q * per_seq.mean(1)).sum(), (q**2 * per_seq.var(1) / n_rep).sum().sqrt()

    for per_seq, exact in zip(runs, _toy_exact_nelbos()):
        est, se = weighted(per_seq)
        assert (est - (q * exact).sum()).abs() < 5 * se, (est, (q * exact).sum(), se)  # |z| <= 3.8 over 12 seeds
    diff, se = weighted(runs[1] - runs[0])  # exact difference 1.84 nats
    assert diff > 5 * se, (diff, se)  # z >= 7.6 over 12 seeds


@pytest.mark.parametrize("noise", ["mask", "uniform"])
def test_nelbo_ignores_padding(noise):
    """Garbage tokens and NaN logits at padded positions change nothing; per-token counts valid only."""
    flow = DiscreteFlow(6, noise)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, 6, (8, 10), generator=g)
    mask = _ones(x1)
    mask[:, 7:] = False
    mask[3, 2:] = False

    def logits_fn(x_t, t):  # position-wise, NaN wherever padded
        logits = torch.sin(x_t[..., None] * torch.arange(6.0) + 10 * t[:, None, None])
        return logits.masked_fill(~mask[..., None], float("nan"))

    outs = []
    for garbage in (0, 999):
        x_pad = x1.masked_fill(~mask, garbage)
        outs.append(token_nelbo(flow, logits_fn, x_pad, mask, num_t_samples=3,
                                generator=torch.Generator().manual_seed(1)))
    for key in ("nats", "nats_per_token", "bits_per_token"):
        torch.testing.assert_close(outs[0][key], outs[1][key], rtol=0, atol=0)
    assert torch.isfinite(outs[0]["nats"]).all() and (outs[0]["nats"] > 0).all()
    torch.testing.assert_close(outs[0]["nats_per_token"], outs[0]["nats"].sum() / mask.sum())


@pytest.mark.parametrize("noise", ["mask", "uniform"])
def test_token_nelbo_dispatches_and_wrong_noise_raises(noise):
    flow = DiscreteFlow(4, noise)
    x = torch.randint(0, 4, (5, 3))

    def fn(x_t, t):
        return torch.cos(x_t[..., None] + torch.arange(4.0))

    direct, other = (masked_nelbo, uniform_nelbo) if noise == "mask" else (uniform_nelbo, masked_nelbo)
    a = token_nelbo(flow, fn, x, _ones(x), num_t_samples=2, generator=torch.Generator().manual_seed(0))
    b = direct(flow, fn, x, _ones(x), num_t_samples=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a["nats"], b["nats"], rtol=0, atol=0)
    with pytest.raises(ConfigError):
        other(flow, fn, x, _ones(x), num_t_samples=2)
    with pytest.raises(ConfigError):
        token_nelbo(flow, fn, x, _ones(x), num_t_samples=0)


@pytest.mark.parametrize("noise", ["mask", "uniform"])
def test_distillation_loss_is_the_teacher_kl_over_the_counted_positions(noise):
    from multiflow.flows.losses import distill_token_loss

    flow = DiscreteFlow(5, noise)
    x1, xt, tt, mask = _batch(flow, B=3, N=6, t=0.4, seed=1)
    g = torch.Generator().manual_seed(2)
    teacher = torch.distributions.Dirichlet(torch.ones(5)).sample((3, 6))
    teacher[0, 0] = 0.0  # a residue without a target
    fixed = torch.zeros(3, 6, dtype=torch.bool)
    fixed[1, 1] = True
    logits = torch.randn(3, 6, 5, generator=g, requires_grad=True)
    got = distill_token_loss(flow, logits, teacher, xt, mask, fixed_mask=fixed)["aa_distill"]
    # by hand: KL(p || softmax) at generated positions with a target (masked positions only for masking noise)
    has = mask & ~fixed & (teacher.sum(-1) > 0)
    counted = has & (xt == flow.mask_token) if noise == "mask" else has
    logq = torch.log_softmax(logits, -1)
    p = teacher / teacher.sum(-1, keepdim=True).clamp_min(1e-12)
    kl = (p * (p.clamp_min(1e-12).log() - logq)).sum(-1)
    assert counted.any()
    assert torch.allclose(got, kl[counted].sum() / has.sum(), atol=1e-6)
    # zero exactly when the model reproduces the teacher, and its minimum: the gradient vanishes there
    perfect = torch.where(teacher.sum(-1, keepdim=True) > 0, p.clamp_min(1e-12).log(), torch.zeros_like(p)).requires_grad_(True)
    zero = distill_token_loss(flow, perfect, teacher, xt, mask, fixed_mask=fixed)["aa_distill"]
    (grad,) = torch.autograd.grad(zero, perfect)
    assert abs(zero.item()) < 1e-5 and grad.abs().max() < 1e-5
    with pytest.raises(ValueError, match="target must be"):
        distill_token_loss(flow, logits, teacher[..., :4], xt, mask)
