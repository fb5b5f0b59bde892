"""EuclideanFlow: exact path boundaries, the vector field integrates to the data, prior moments, OT pairing."""

from __future__ import annotations

import pytest
import torch

from multiflow.constants import TRANS_SCALE
from multiflow.flows.euclidean import EuclideanFlow, centre, from_flow_units, masked_mean, to_flow_units
from multiflow.geometry import so3


def _mask(b: int, n: int, lengths: list[int]) -> torch.Tensor:
    return torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]


def test_units_round_trip_and_scale():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert torch.equal(to_flow_units(x), x / TRANS_SCALE)
    assert torch.allclose(from_flow_units(to_flow_units(x)), x)


def test_path_boundaries_are_exact():
    flow = EuclideanFlow()
    g = torch.Generator().manual_seed(1)
    mask = _mask(3, 7, [7, 5, 3])
    x0, x1 = flow.sample_prior(mask, g), 3 * flow.sample_prior(mask, g)
    assert torch.equal(flow.sample_path(x0, x1, torch.zeros(3)), x0)
    assert torch.equal(flow.sample_path(x0, x1, torch.ones(3)), x1)
    t = torch.tensor([0.0, 0.4, 1.0])
    xt = flow.sample_path(x0, x1, t)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[2], x1[2])
    assert torch.allclose(xt[1], 0.6 * x0[1] + 0.4 * x1[1])


def test_vector_field_is_constant_on_the_path_and_integrates_to_the_data():
    flow = EuclideanFlow()
    g = torch.Generator().manual_seed(2)
    mask = _mask(2, 6, [6, 4])
    x0, x1 = flow.sample_prior(mask, g, torch.float64), 2 * flow.sample_prior(mask, g, torch.float64)
    for tv in (0.0, 0.3, 0.9):
        t = torch.full((2,), tv, dtype=torch.float64)
        u = flow.vector_field(flow.sample_path(x0, x1, t), x1, t)
        assert torch.allclose(u, x1 - x0, atol=1e-10)
    # Euler integration of u_t = (x1 - x_t)/(1 - t) from x0 (100 steps) ends on x1.
    x, steps = x0, 100
    for k in range(steps):
        t = torch.full((2,), k / steps, dtype=torch.float64)
        x = x + flow.vector_field(x, x1, t) / steps if k < steps - 1 else flow.step(x, x1, t, 1 / steps)
    assert torch.allclose(x, x1, atol=1e-10)


def test_step_is_euler_and_lands_exactly_on_the_prediction():
    flow = EuclideanFlow()
    x, x1 = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    t = torch.tensor([0.2, 0.5])
    out = flow.step(x, x1, t, 0.1)
    expected = x + 0.1 * (x1 - x) / (1 - t)[:, None, None]
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(flow.step(x, x1, torch.tensor([0.9, 0.75]), torch.tensor([0.1, 0.25])), x1)


def test_prior_is_centred_with_unit_variance_after_the_centring_correction():
    flow = EuclideanFlow()
    g = torch.Generator().manual_seed(3)
    n_res, lengths = 8, [8, 5]
    mask = _mask(2, n_res, lengths).repeat(4000, 1)  # [8000, 8], alternating lengths 8 and 5
    x = flow.sample_prior(mask, g, torch.float64)
    assert masked_mean(x, mask).abs().max() < 1e-12  # zero centre of mass, every sample
    assert torch.equal(x[~mask], torch.zeros_like(x[~mask]))  # padding stays at the origin
    for i, m in enumerate(lengths):
        rows = x[i::2, :m]  # [4000, m, 3]
        var = rows.pow(2).mean() * m / (m - 1)  # E[x²] = (M - 1)/M for a centred standard normal
        assert abs(float(var) - 1.0) < 0.03  # ~ 4000·m·3 draws: std of the estimate < 0.01
        corr = (rows[:, 0] * rows[:, 1]).mean() * m  # Cov(x_i, x_j) = -1/M after centring
        assert abs(float(corr) + 1.0) < 0.15


def test_centre_uses_the_reference_mask():
    x = torch.tensor([[[1.0, 0, 0], [3.0, 0, 0], [5.0, 0, 0]]])
    mask = torch.tensor([[True, True, True]])
    ref = torch.tensor([[True, False, False]])
    assert torch.equal(centre(x, mask, reference=ref)[0, :, 0], torch.tensor([0.0, 2.0, 4.0]))
    assert torch.equal(centre(x, mask)[0, :, 0], torch.tensor([-2.0, 0.0, 2.0]))


@pytest.mark.parametrize("align", [False, True])
def test_ot_pairing_lowers_cost_and_returns_prior_samples(align):
    flow = EuclideanFlow(ot=True, ot_align=align)
    g = torch.Generator().manual_seed(4)
    b, n = 12, 6
    mask = _mask(b, n, [6] * 8 + [4] * 4)
    x0 = flow.sample_prior(mask, g, torch.float64)
    x1 = flow.sample_prior(mask, g, torch.float64) * 2 + 0.5 * torch.randn(b, 1, 3, generator=g, dtype=torch.float64)
    x1 = centre(x1, mask)
    paired = flow.pair(x0, x1, mask)
    cost = lambda a: ((a - x1) ** 2).sum()  # noqa: E731
    assert cost(paired) <= cost(x0) + 1e-9
    # Every output is one of the inputs of the same length group, possibly rotated: same norms, same Gram matrix.
    used = []
    for j in range(b):
        gram = paired[j] @ paired[j].T
        match = [i for i in range(b) if torch.equal(mask[i], mask[j]) and torch.allclose(x0[i] @ x0[i].T, gram, atol=1e-8)]
        assert len(match) == 1
        used.append(match[0])
    assert sorted(used) == list(range(b))  # a permutation within groups
    assert masked_mean(paired, mask).abs().max() < 1e-10
    assert torch.equal(paired[~mask], torch.zeros_like(paired[~mask]))


def test_ot_respects_eligible_and_is_identity_when_off():
    g = torch.Generator().manual_seed(5)
    mask = torch.ones(6, 5, dtype=torch.bool)
    x0, x1 = torch.randn(6, 5, 3, generator=g), torch.randn(6, 5, 3, generator=g)
    assert EuclideanFlow(ot=False).pair(x0, x1, mask) is x0
    eligible = torch.tensor([True, True, True, False, False, True])
    out = EuclideanFlow(ot=True).pair(x0, x1, mask, eligible=eligible)
    assert torch.equal(out[3:5], x0[3:5])


def test_ot_alignment_finds_the_rotated_partner():
    flow = EuclideanFlow(ot=True, ot_align=True)
    g = torch.Generator().manual_seed(6)
    mask = torch.ones(5, 7, dtype=torch.bool)
    x1 = centre(torch.randn(5, 7, 3, generator=g, dtype=torch.float64), mask)
    rot = so3.uniform((5,), g, dtype=torch.float64)
    perm = torch.tensor([2, 0, 4, 1, 3])
    x0 = (rot[:, None] @ x1[perm][..., None])[..., 0]  # rotated, shuffled copies of the data
    paired = flow.pair(x0, x1, mask)
    assert torch.allclose(paired, x1, atol=1e-8)
