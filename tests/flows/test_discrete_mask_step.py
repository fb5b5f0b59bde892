"""The masking-noise fast path of DiscreteFlow.step against the general Euler step it replaces.

The general path builds the full [B, N, M] transition (``_euler_transition``) and samples it with
``sample_categorical``; the fast path (``_mask_euler_step``) must give the same per-position
transition distribution, including the renormalisation when h * sum(rate) > 1, and, since it reads
the same uniform per position, the same tokens for the same generator state.
"""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from multiflow.flows.base import LinearScheduler, PolynomialScheduler
from multiflow.flows.discrete import DiscreteFlow, probs_from_logits, sample_categorical

SCHEDULERS = (LinearScheduler(), PolynomialScheduler(2.0))


def _inputs(S: int, B: int, N: int, seed: int, t_max: float = 1.0, extra_mask_column: bool = False):
    """Random logits (with a MASK column and a row of mostly -inf if asked), states, times in [0, t_max]."""
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(B, N, S + int(extra_mask_column), generator=g)
    if extra_mask_column:
        logits[..., S] = 40.0  # must never be sampled
    logits[0, 0, 1:S] = -float("inf")  # a row with a single finite data logit
    x = torch.randint(0, S + 1, (B, N), generator=g)
    t = torch.rand(B, generator=g) * t_max
    return logits, x, t, g


def _fast_transition(flow: DiscreteFlow, x: torch.Tensor, probs: torch.Tensor, t, h, eta) -> torch.Tensor:
    """The fast path's transition [B, N, M], written out from its leave probabilities."""
    S = flow.mask_token
    leave = flow._mask_leave_probs(x, t, h, eta)  # [B, N]
    out = torch.zeros(*x.shape, S + 1, dtype=torch.float64)
    masked = x == S
    out[..., :S] = torch.where(masked[..., None], leave[..., None] * probs, 0.0)
    out[..., S] = torch.where(masked, 1.0 - leave, leave)
    return out.scatter_add(-1, x[..., None], torch.where(masked, 0.0, 1.0 - leave)[..., None])


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize(("h", "eta"), [(0.01, 0.0), (0.05, 1.0), (0.3, 5.0), (2.0, 0.0), (2.0, 40.0)])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.0])
def test_transition_probabilities_match_general_path(scheduler, h, eta, temperature):
    """Exact per-position transition probabilities, including h * sum(rate) > 1 (renormalised) and t = 1."""
    flow = DiscreteFlow(17, "mask", scheduler)
    logits, x, t, _ = _inputs(17, 8, 40, seed=1)
    t[0] = 1.0
    probs = probs_from_logits(logits, 17, temperature)
    hh = torch.full((8,), h, dtype=torch.float64)
    general = flow._euler_transition(x, probs, t, hh, eta)
    torch.testing.assert_close(_fast_transition(flow, x, probs, t, hh, eta), general, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("S", "h", "eta", "temperature", "last_step", "argmax", "extra"),
    [(2, 0.05, 0.0, 1.0, False, True, False), (20, 0.2, 1.0, 0.7, False, True, True),
     (257, 0.02, 3.0, 1.0, False, True, False), (20, 3.0, 50.0, 1.0, False, True, False),
     (20, 0.1, 0.0, 0.0, False, True, True), (20, 0.1, 2.0, 1.0, True, True, False),
     (257, 0.1, 2.0, 0.8, True, False, True)],
)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_same_tokens_as_general_path(S, h, eta, temperature, last_step, argmax, extra, scheduler):
    """Same generator state in, same tokens and same generator state out as the general Euler step."""
    flow = DiscreteFlow(S, "mask", scheduler)
    B, N = 32, 64
    logits, x, t, g = _inputs(S, B, N, seed=S, extra_mask_column=extra)
    hh = torch.rand(B, generator=g, dtype=torch.float64) * h
    fixed = torch.rand(B, N, generator=g) < 0.2
    g_fast, g_ref = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    fast = flow.step(x, logits, t, hh, temperature=temperature, eta=eta, last_step=last_step,
                     last_step_argmax=argmax, fixed_mask=fixed, generator=g_fast)

    probs = probs_from_logits(logits, S, temperature)
    ref = sample_categorical(flow._euler_transition(x, probs, t, hh, 0.0 if last_step else eta), g_ref)
    if last_step:
        fill = probs.argmax(-1) if argmax else sample_categorical(probs, g_ref)
        ref = torch.where(ref == S, fill, ref)
    ref = torch.where(fixed, x, ref)
    assert torch.equal(fast, ref)
    assert torch.equal(g_fast.get_state(), g_ref.get_state())
    if last_step:
        assert (fast[~fixed] != S).all()


@pytest.mark.parametrize(("h", "eta"), [(0.1, 0.0), (0.25, 2.0), (1.5, 0.8)])
def test_empirical_frequencies_match_general_probabilities(h, eta):
    """Chi-square of fast-path draws against the general path's exact probabilities, per position.

    Independent of the shared-uniform coupling: every one of 20000 rows is a fresh draw of the
    same 6 positions (masked and unmasked, in the plain and in the renormalised regime).
    """
    S, n = 4, 20000
    flow = DiscreteFlow(S, "mask")
    x = torch.tensor([[S, S, S, 0, 2, 3]])
    logits = torch.tensor([[[0.0, 1.0, -1.0, 2.0], [3.0, -2.0, 0.0, 0.0], [-float("inf"), 0.0, 0.0, 1.0],
                            [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.0, 5.0]]])
    t = torch.tensor([0.4])
    hh = torch.tensor([h], dtype=torch.float64)
    expected = flow._euler_transition(x, probs_from_logits(logits, S), t, hh, eta)[0]  # [6, M]
    g = torch.Generator().manual_seed(3)
    draws = flow.step(x.expand(n, -1).contiguous(), logits.expand(n, -1, -1), t.expand(n), h, eta=eta, generator=g)
    for pos in range(x.shape[1]):
        counts = torch.bincount(draws[:, pos], minlength=S + 1).double()
        possible = expected[pos] > 0
        assert counts[~possible].sum() == 0
        if possible.sum() > 1:
            exp = expected[pos][possible] / expected[pos][possible].sum() * n
            assert chisquare(counts[possible].numpy(), exp.numpy()).pvalue > 1e-4, (pos, counts, exp)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_raise_only_where_the_general_path_does(bad):
    flow = DiscreteFlow(5, "mask")
    t = torch.full((2,), 0.5)
    logits = torch.zeros(2, 3, 5)
    logits[0, 0, 2] = bad
    masked = torch.full((2, 3), 5)
    with pytest.raises(ValueError):
        flow.step(masked, logits, t, 0.1)
    unmasked = torch.zeros(2, 3, dtype=torch.int64)
    assert torch.equal(flow.step(unmasked, logits, t, 0.1), unmasked)  # p_theta is not used there
    flow.step(masked, logits, t, 0.1, temperature=0.0)  # one-hot argmax: finite, as in the general path
    with pytest.raises(ValueError):
        flow.step(masked, torch.full((2, 3, 5), -float("inf")), t, 0.1)


def test_all_jump_at_the_end_of_a_schedule():
    """h / (1 - t) >= 1 for every row: all MASK positions are filled from p_theta, others untouched."""
    flow = DiscreteFlow(300, "mask")
    g = torch.Generator().manual_seed(4)
    x = torch.where(torch.rand(6, 50, generator=g) < 0.7, 300, torch.randint(0, 300, (6, 50), generator=g))
    logits = torch.randn(6, 50, 301, generator=g)
    out = flow.step(x, logits, torch.full((6,), 0.75), 0.5, generator=g)
    assert (out < 300).all() and torch.equal(out[x < 300], x[x < 300])
    out = flow.step(x, logits, torch.full((6,), 0.75), 0.5, temperature=0.0, generator=g)
    assert torch.equal(out[x == 300], logits[..., :300].argmax(-1)[x == 300])
