"""Discrete flow matching: path boundaries, rate invariants, the Kolmogorov forward equation, and a
sampler driven by the exact posterior of a known distribution reproducing that distribution."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
from scipy.stats import chisquare

from multiflow.errors import ConfigError
from multiflow.flows.base import LinearScheduler, PolynomialScheduler
from multiflow.flows.discrete import DiscreteFlow, probs_from_logits, sample_categorical

sys.path.insert(0, str(Path(__file__).parent))
from toy import L, S, SEQS, exact_posterior, generate, independent_posterior, seq_index, target_probs  # noqa: E402

NOISES = ("mask", "uniform")
SCHEDULERS = (LinearScheduler(), PolynomialScheduler(2.0))


def _chi2_pvalue(x: torch.Tensor, q: torch.Tensor, min_expected: float = 20.0) -> float:
    """Pearson chi-square of generated sequences x [n, L] against q [64]; rare cells lumped together."""
    n = x.shape[0]
    counts = torch.bincount(seq_index(x), minlength=len(q)).double()
    expected = q * n
    big = expected >= min_expected
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    return float(chisquare(obs.numpy(), exp.numpy()).pvalue)


# --- path -------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", NOISES)
def test_sample_path_boundaries(noise):
    flow = DiscreteFlow(7, noise)
    g = torch.Generator().manual_seed(1)
    x1 = torch.randint(0, 7, (4000, 5), generator=g)
    at0 = flow.sample_path(x1, torch.zeros(4000), generator=g)
    at1 = flow.sample_path(x1, torch.ones(4000), generator=g)
    assert torch.equal(at1, x1)
    if noise == "mask":
        assert (at0 == flow.mask_token).all()
    else:  # uniform and independent of x1: every (x1, x0) pair equally frequent
        pairs = torch.bincount((x1 * 7 + at0).flatten(), minlength=49).double()
        assert chisquare(pairs.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_sample_path_marginal(noise, scheduler):
    flow = DiscreteFlow(5, noise, scheduler)
    g = torch.Generator().manual_seed(2)
    x1 = torch.randint(0, 5, (20000, 4), generator=g)
    t = torch.full((20000,), 0.6)
    kappa = float(scheduler.kappa(torch.tensor(0.6)))
    same = (flow.sample_path(x1, t, generator=g) == x1).double().mean().item()
    expect = kappa if noise == "mask" else kappa + (1 - kappa) / 5
    assert abs(same - expect) < 4 * math.sqrt(expect * (1 - expect) / x1.numel())


def test_prior():
    g = torch.Generator().manual_seed(0)
    assert (DiscreteFlow(256, "mask").sample_prior((3, 9)) == 256).all()
    x = DiscreteFlow(256, "uniform").sample_prior((2000, 64), generator=g)
    assert x.min() >= 0 and x.max() < 256
    assert chisquare(torch.bincount(x.flatten(), minlength=256).numpy()).pvalue > 1e-3


# --- rates ------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("eta", [0.0, 1.0, 5.0])
@pytest.mark.parametrize("vocab", [2, 20, 256])
def test_rates_are_a_generator(noise, eta, vocab):
    flow = DiscreteFlow(vocab, noise)
    g = torch.Generator().manual_seed(3)
    B, N = 6, 5
    probs = torch.distributions.Dirichlet(torch.full((vocab,), 0.3)).sample((B, N))
    t = torch.rand(B, generator=g) * 0.99
    matrix = flow.rate_matrix(probs, t, eta)  # [B, N, M, M]
    M = flow.num_states
    off = matrix.masked_select(~torch.eye(M, dtype=torch.bool).expand_as(matrix))
    assert (off >= 0).all()
    torch.testing.assert_close(matrix.sum(-1), torch.zeros(B, N, M, dtype=torch.float64), atol=1e-9, rtol=0)
    x_t = torch.randint(0, M, (B, N), generator=g)
    rows = flow.rates(x_t, probs, t, eta)
    torch.testing.assert_close(rows, matrix.gather(-2, x_t[..., None, None].expand(B, N, 1, M)).squeeze(-2))


def _joint_states(M: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(M), repeat=L)), dtype=torch.int64)  # [M**L, L]


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("eta", [0.0, 1.0, 5.0])
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_kolmogorov_forward_equation(noise, scheduler, eta, t):
    """With the exact posterior, the per-position rates generate the path: d p_t / dt = p_t Q_t (exactly)."""
    flow, q = DiscreteFlow(S, noise, scheduler), target_probs()
    M = flow.num_states
    states = _joint_states(M)  # [Z, L]
    Z = len(states)
    tt = torch.tensor(t, dtype=torch.float64)
    kappa, dkappa = scheduler.kappa(tt), scheduler.d_kappa(tt)
    noise_vec = torch.zeros(M, dtype=torch.float64)
    if noise == "mask":
        noise_vec[S] = 1.0
    else:
        noise_vec[:] = 1.0 / S
    delta = torch.nn.functional.one_hot(torch.arange(S), M).double()  # [S, M]
    kernel, d_kernel = kappa * delta + (1 - kappa) * noise_vec, dkappa * (delta - noise_vec)  # p_t(a | a1)
    A = [kernel[SEQS[:, i]][:, states[:, i]] for i in range(L)]  # [64, Z] each
    dA = [d_kernel[SEQS[:, i]][:, states[:, i]] for i in range(L)]
    p = q @ (A[0] * A[1] * A[2])
    dp = q @ (dA[0] * A[1] * A[2] + A[0] * dA[1] * A[2] + A[0] * A[1] * dA[2])
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=torch.float64))

    tb = torch.full((Z,), t, dtype=torch.float64)
    rates = flow.rates(states, exact_posterior(flow, states, tb, q), tb, eta)  # [Z, L, M]
    place = torch.tensor([M ** (L - 1 - i) for i in range(L)])
    target = torch.arange(Z)[:, None, None] + (torch.arange(M)[None, None, :] - states[..., None]) * place[:, None]
    Q = torch.zeros(Z, Z, dtype=torch.float64).scatter_add_(1, target.reshape(Z, -1), rates.reshape(Z, -1))
    torch.testing.assert_close(p @ Q, dp, atol=1e-10, rtol=1e-8)


# --- sampler on a known distribution ----------------------------------------------------
@pytest.mark.parametrize(
    ("noise", "eta", "purity"),
    [("mask", 0.0, False), ("mask", 1.0, False), ("mask", 1.0, True), ("uniform", 0.0, False), ("uniform", 0.5, False)],
)
def test_exact_posterior_reproduces_distribution(noise, eta, purity):
    """Euler error is O(1/steps) (measured: TV ~ 10/steps * few %); 400 steps keep it under what 4000 samples see."""
    q = target_probs()
    x = generate(DiscreteFlow(S, noise), exact_posterior, n=4000, steps=400, eta=eta, purity=purity, seed=0)
    assert _chi2_pvalue(x, q) > 1e-3


@pytest.mark.parametrize("noise", NOISES)
def test_wrong_posterior_is_detected(noise):
    """The same test has power: independent per-position marginals give the product distribution."""
    x = generate(DiscreteFlow(S, noise), independent_posterior, n=2000, steps=50, seed=0)
    assert _chi2_pvalue(x, target_probs()) < 1e-12


# --- categorical sampling, temperature, fixed positions ---------------------------------
def test_sample_categorical_peaked_float64():
    probs = torch.tensor([1e-300, 0.0, 1e-3, 1 - 2e-3 - 1e-300, 1e-3, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    draws = sample_categorical(probs.expand(400000, 6), g)
    counts = torch.bincount(draws, minlength=6)
    assert counts[1] == 0 and counts[5] == 0 and counts[0] == 0
    for k in (2, 4):  # 1e-3 mass: 400 expected each
        assert abs(int(counts[k]) - 400) < 5 * 20
    # float32 probabilities around a huge peak are handled in float64 (no mass lost to rounding)
    logits = torch.tensor([0.0, -16.0, -16.0], dtype=torch.float32)
    p = probs_from_logits(logits.expand(1, 1, 3), 3)
    assert p.dtype == torch.float64 and p[0, 0, 1] > 1e-7
    with pytest.raises(ValueError):
        sample_categorical(torch.tensor([[0.5, -0.1]]))
    with pytest.raises(ValueError):
        sample_categorical(torch.zeros(2, 3))


@pytest.mark.parametrize("temperature", [0.0, 1e-4])
def test_low_temperature_is_argmax(temperature):
    flow = DiscreteFlow(20, "mask")
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(8, 30, 20, generator=g)
    x = flow.sample_prior((8, 30))
    t = torch.full((8,), 0.9)
    out = flow.step(x, logits, t, 0.1, temperature=temperature, generator=g)  # h / (1 - t) = 1: all unmask
    assert torch.equal(out, logits.argmax(-1))


def test_mask_column_never_sampled():
    flow = DiscreteFlow(4, "mask")
    logits = torch.zeros(50, 6, 5)
    logits[..., 4] = 100.0  # a model putting all mass on MASK
    out = flow.step(flow.sample_prior((50, 6)), logits, torch.full((50,), 0.5), 0.5, last_step=True)
    assert (out < 4).all()


@pytest.mark.parametrize(("noise", "purity"), [("mask", False), ("mask", True), ("uniform", False)])
def test_fixed_positions_never_change(noise, purity):
    flow = DiscreteFlow(S, noise)
    g = torch.Generator().manual_seed(7)
    n = 300
    x = flow.sample_prior((n, L), generator=g)
    fixed = torch.rand(n, L, generator=g) < 0.4
    x = torch.where(fixed, torch.randint(0, S, (n, L), generator=g), x)
    start = x.clone()
    for k in range(20):
        t = torch.full((n,), k / 20)
        logits = torch.randn(n, L, S, generator=g)
        x = flow.step(x, logits, t, 1 / 20, eta=2.0, purity=purity, last_step=k == 19, fixed_mask=fixed, generator=g)
    assert torch.equal(x[fixed], start[fixed])
    assert (x < S).all()


def test_bad_input_raises():
    with pytest.raises(ConfigError):
        DiscreteFlow(1)
    with pytest.raises(ConfigError):
        DiscreteFlow(4, "gaussian")
    with pytest.raises(ConfigError):
        PolynomialScheduler(0.0)
    flow = DiscreteFlow(4, "uniform")
    x = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ConfigError):
        flow.step(x, torch.zeros(2, 3, 4), torch.zeros(2), 0.1, purity=True)
    with pytest.raises(ValueError):
        flow.sample_path(x + 4, torch.zeros(2))
    with pytest.raises(ValueError):
        flow.sample_path(x, torch.zeros(3))
    with pytest.raises(ValueError):
        flow.step(x, torch.zeros(2, 3, 7), torch.zeros(2), 0.1)


# --- confidence (LLaDA-style) sampler ---------------------------------------------------
@pytest.mark.parametrize("block_size", [None, 1])
def test_reveal_one_token_per_step_is_exact(block_size):
    """One token per step, chosen without looking at the draw: the chain rule makes samples exact
    (block_size=1 is plain left-to-right autoregression)."""
    flow, q = DiscreteFlow(S, "mask"), target_probs()
    g = torch.Generator().manual_seed(8)
    n = 4000
    x = flow.sample_prior((n, L))
    for _ in range(L):
        logits = exact_posterior(flow, x, torch.zeros(n), q).clamp_min(1e-300).log()
        x = flow.reveal_step(x, logits, 1, block_size=block_size, generator=g)
    assert (x < S).all()
    assert _chi2_pvalue(x, q) > 1e-3


def test_reveal_step_blocks_and_counts():
    flow = DiscreteFlow(20, "mask")
    g = torch.Generator().manual_seed(9)
    x = flow.sample_prior((5, 12))
    fixed = torch.zeros(5, 12, dtype=torch.bool)
    fixed[:, 0] = True
    x1 = flow.reveal_step(x, torch.randn(5, 12, 20, generator=g), 3, block_size=4, fixed_mask=fixed,
                          confidence="sampled", generator=g)
    revealed = x1 != flow.mask_token
    assert (revealed.sum(-1) == 3).all() and not revealed[:, 0].any() and not revealed[:, 4:].any()
    assert revealed[:, 1:4].all()
    x2 = flow.reveal_step(x1, torch.randn(5, 12, 20, generator=g), 3, block_size=4, fixed_mask=fixed, generator=g)
    new = (x2 != flow.mask_token) & ~revealed  # block 0 is done (position 0 is fixed): block 1 opens
    assert (new.sum(-1) == 3).all() and new[:, 4:8].sum(-1).eq(3).all()
