"""SO3Flow: geodesic path boundaries, body-frame vector field, schedules, prior angle distributions."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chisquare

from multiflow.errors import ConfigError
from multiflow.flows.so3 import SO3Flow
from multiflow.geometry import so3


def _pair(b: int, n: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return so3.uniform((b, n), g, dtype=dtype), so3.uniform((b, n), g, dtype=dtype)


def test_path_boundaries():
    flow = SO3Flow()
    r0, r1 = _pair(3, 5, 0, torch.float32)
    assert so3.geodesic_distance(flow.sample_path(r0, r1, torch.zeros(3)), r0).max() < 1e-5
    assert torch.equal(flow.sample_path(r0, r1, torch.ones(3)), r1)
    rt = flow.sample_path(r0, r1, torch.tensor([0.0, 0.5, 1.0]))
    assert so3.geodesic_distance(rt[0], r0[0]).max() < 1e-5
    assert torch.equal(rt[2], r1[2])


def test_path_is_the_geodesic():
    flow = SO3Flow()
    r0, r1 = _pair(4, 6, 1)
    total = so3.geodesic_distance(r0, r1)  # [4, 6]
    t = torch.tensor([0.1, 0.25, 0.6, 0.9], dtype=torch.float64)
    rt = flow.sample_path(r0, r1, t)
    assert torch.allclose(so3.geodesic_distance(r0, rt), t[:, None] * total, atol=1e-8)
    assert torch.allclose(so3.geodesic_distance(rt, r1), (1 - t[:, None]) * total, atol=1e-8)


def test_vector_field_is_constant_in_the_body_frame_and_integrates_to_the_data():
    flow = SO3Flow()
    r0, r1 = _pair(2, 5, 2)
    omega = so3.log(r0.transpose(-1, -2) @ r1)  # the constant body-frame velocity of the geodesic
    for tv in (0.0, 0.3, 0.8):
        t = torch.full((2,), tv, dtype=torch.float64)
        v = flow.vector_field(flow.sample_path(r0, r1, t), r1, t)
        assert torch.allclose(v, omega, atol=1e-8)
    r, steps = r0, 50
    for k in range(steps):  # R <- R exp(h v_t): exact along the geodesic
        t = torch.full((2,), k / steps, dtype=torch.float64)
        if k < steps - 1:
            r = r @ so3.exp(flow.vector_field(r, r1, t) / steps)
        else:
            r = flow.step(r, r1, t, 1 / steps)
    assert so3.geodesic_distance(r, r1).max() < 1e-6


def test_linear_step_formula_and_landing():
    flow = SO3Flow(schedule="linear")
    r, r1 = _pair(2, 4, 3)
    t = torch.tensor([0.2, 0.6], dtype=torch.float64)
    out = flow.step(r, r1, t, 0.1)
    expected = r @ so3.exp((0.1 / (1 - t))[:, None, None] * so3.log(r.transpose(-1, -2) @ r1))
    assert torch.allclose(out, expected, atol=1e-10)
    assert torch.equal(flow.step(r, r1, torch.tensor([0.9, 0.95], dtype=torch.float64), torch.tensor([0.1, 0.05])), r1)


def test_exp_schedule_uses_a_constant_rate_and_lands_on_the_last_step():
    flow = SO3Flow(schedule="exp", exp_rate=10.0)
    r, r1 = _pair(2, 4, 4)
    t = torch.tensor([0.2, 0.6], dtype=torch.float64)
    out = flow.step(r, r1, t, 0.01)
    expected = r @ so3.exp(0.1 * so3.log(r.transpose(-1, -2) @ r1))
    assert torch.allclose(out, expected, atol=1e-10)
    assert torch.equal(flow.step(r, r1, torch.tensor([0.99, 0.99], dtype=torch.float64), 0.01), r1)
    assert torch.equal(flow.step_fraction(torch.tensor([0.0]), 0.5), torch.tensor([1.0], dtype=torch.float64))  # clamped
    # Rotations settle earlier than with the linear schedule: after half the time the remaining angle is tiny.
    lin = SO3Flow(schedule="linear")
    r_exp, r_lin, steps = r, r, 100
    for k in range(steps // 2):
        tk = torch.full((2,), k / steps, dtype=torch.float64)
        r_exp, r_lin = flow.step(r_exp, r1, tk, 1 / steps), lin.step(r_lin, r1, tk, 1 / steps)
    assert so3.geodesic_distance(r_exp, r1).max() < 0.9**50 * math.pi + 1e-9
    assert so3.geodesic_distance(r_lin, r1).max() > 0.4 * so3.geodesic_distance(r, r1).min()


def _angle_histogram_pvalue(angles: torch.Tensor, density, bins: int = 24) -> float:
    edges = torch.linspace(0, math.pi, bins + 1, dtype=torch.float64)
    fine = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    pdf = density(fine)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(pdf, fine)])
    cdf = cdf / cdf[-1]
    probs = torch.diff(torch.tensor([float(cdf[(fine <= e).sum() - 1]) for e in edges], dtype=torch.float64))
    counts = torch.histc(angles.double(), bins=bins, min=0, max=math.pi)
    keep = probs * angles.numel() > 5
    expected = probs[keep] * angles.numel()
    observed = counts[keep]
    expected = expected * observed.sum() / expected.sum()
    return float(chisquare(observed.numpy(), expected.numpy()).pvalue)


@pytest.mark.parametrize("sigma", [0.5, 1.5])
def test_igso3_prior_angles_follow_the_igso3_density(sigma):
    flow = SO3Flow(prior="igso3", sigma=sigma)
    mask = torch.ones(100, 200, dtype=torch.bool)
    r = flow.sample_prior(mask, torch.Generator().manual_seed(5), torch.float64)
    p = _angle_histogram_pvalue(so3.angle(r).flatten(), lambda w: so3.igso3_angle_density(w, sigma))
    assert p > 1e-3


def test_uniform_prior_angles_follow_the_haar_density_and_padding_is_identity():
    flow = SO3Flow(prior="uniform")
    mask = torch.ones(100, 200, dtype=torch.bool)
    mask[:, 150:] = False
    r = flow.sample_prior(mask, torch.Generator().manual_seed(6), torch.float64)
    assert torch.equal(r[~mask], torch.eye(3, dtype=torch.float64).expand(int((~mask).sum()), 3, 3))
    p = _angle_histogram_pvalue(so3.angle(r[mask]), lambda w: (1 - torch.cos(w)) / math.pi)
    assert p > 1e-3


def test_bad_options_raise():
    with pytest.raises(ConfigError):
        SO3Flow(prior="gaussian")
    with pytest.raises(ConfigError):
        SO3Flow(schedule="cosine")
    with pytest.raises(ValueError):
        SO3Flow().sample_path(torch.eye(3).expand(2, 3, 3, 3), torch.eye(3).expand(2, 3, 3, 3), torch.zeros(3))
