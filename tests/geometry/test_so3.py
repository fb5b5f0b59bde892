"""SO(3) maps and samplers: inverse pairs, edge angles, and distributions against analytic densities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from multiflow.geometry import so3

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 2e-6, torch.float64: 1e-12}


def _axes(n: int, dtype: torch.dtype) -> torch.Tensor:
    v = torch.randn(n, 3, dtype=torch.float64)
    return (v / v.norm(dim=-1, keepdim=True)).to(dtype)


EDGE_ANGLES = [0.0, 1e-9, 1e-7, 1e-6, 1e-4, 1e-3, 0.3, 1.0, math.pi / 2, 2.5, math.pi - 1e-3,
               math.pi - 1e-5, math.pi - 1e-6, math.pi]


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_log_exp_is_identity_over_whole_range(dtype):
    axes = _axes(200, dtype)
    for a in EDGE_ANGLES:
        r = so3.exp(axes * a)
        assert r.dtype == dtype
        torch.testing.assert_close(so3.exp(so3.log(r)), r, atol=5 * TOL[dtype], rtol=0)
        ang = so3.log(r).norm(dim=-1)
        assert float(ang.max()) <= math.pi + 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_inverts_exp_below_pi(dtype):
    axes = _axes(300, dtype)
    angles = torch.rand(300, 1, dtype=dtype) * (math.pi - 1e-3)
    angles[:20] = torch.tensor([1e-8, 1e-6, 1e-4, math.pi - 2e-3] * 5, dtype=dtype)[:, None]
    v = axes * angles
    torch.testing.assert_close(so3.log(so3.exp(v)), v, atol=20 * TOL[dtype], rtol=0)


def test_log_near_pi_double_precision_keeps_sign():
    axes = _axes(100, torch.float64)
    v = axes * (math.pi - 1e-6)
    torch.testing.assert_close(so3.log(so3.exp(v)), v, atol=1e-9, rtol=0)


def test_log_at_exactly_pi_returns_one_of_the_two_equivalent_vectors():
    axes = _axes(50, torch.float64)
    v = axes * math.pi
    out = so3.log(so3.exp(v))
    err = torch.minimum((out - v).norm(dim=-1), (out + v).norm(dim=-1))
    assert float(err.max()) < 1e-7


def test_exp_matches_matrix_exponential_and_is_a_rotation():
    v = torch.randn(100, 3, dtype=torch.float64) * 2
    r = so3.exp(v)
    torch.testing.assert_close(r, torch.linalg.matrix_exp(so3.hat(v)), atol=1e-12, rtol=0)
    torch.testing.assert_close(r.transpose(-1, -2) @ r, torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(100, dtype=torch.float64))


def test_hat_vee_inverse_and_cross_product():
    v, x = torch.randn(2, 7, 5, 3, dtype=torch.float64).unbind(0)
    torch.testing.assert_close(so3.vee(so3.hat(v)), v)
    torch.testing.assert_close((so3.hat(v) @ x[..., None])[..., 0], torch.linalg.cross(v, x, dim=-1))
    k = torch.randn(4, 3, 3, dtype=torch.float64)
    k = k - k.transpose(-1, -2)
    torch.testing.assert_close(so3.hat(so3.vee(k)), k)


def test_gradients_are_finite_at_identity_and_near_pi():
    v = torch.tensor([[0.0, 0.0, 0.0], [1e-5, 0, 0], [0, 0, math.pi - 1e-4]], dtype=torch.float64, requires_grad=True)
    so3.log(so3.exp(v)).sum().backward()
    assert torch.isfinite(v.grad).all()
    torch.testing.assert_close(v.grad, torch.ones_like(v), atol=1e-4, rtol=0)


def test_geodesic_distance_symmetric_and_equals_angle_of_relative_rotation():
    r1, r2 = so3.uniform((2, 500), dtype=torch.float64).unbind(0)
    d12, d21 = so3.geodesic_distance(r1, r2), so3.geodesic_distance(r2, r1)
    torch.testing.assert_close(d12, d21)
    torch.testing.assert_close(d12, so3.log(r1.transpose(-1, -2) @ r2).norm(dim=-1))
    assert float(so3.geodesic_distance(r1, r1).max()) < 1e-7
    axes = _axes(10, torch.float64)
    torch.testing.assert_close(so3.angle(so3.exp(axes * 0.7)), torch.full((10,), 0.7, dtype=torch.float64))


def test_quaternion_conversions_round_trip():
    r = so3.uniform((300,), dtype=torch.float64)
    q = so3.matrix_to_quat(r)
    assert (q[..., 0] >= 0).all()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(300, dtype=torch.float64))
    torch.testing.assert_close(so3.quat_to_matrix(q), r, atol=1e-12, rtol=0)


def test_uniform_angle_distribution_is_haar():
    g = torch.Generator().manual_seed(1)
    r = so3.uniform((20000,), generator=g, dtype=torch.float64)
    assert r.shape == (20000, 3, 3)
    omega = so3.angle(r).numpy()
    # Haar angle density (1 - cos ω)/π has CDF (ω - sin ω)/π.
    assert stats.kstest(omega, lambda w: (w - np.sin(w)) / np.pi).pvalue > 1e-3
    # Axes uniform too: mean of the rotation matrices vanishes.
    assert float(r.mean(0).abs().max()) < 0.03


def test_uniform_respects_generator_and_dtype():
    a = so3.uniform((4,), generator=torch.Generator().manual_seed(3))
    b = so3.uniform((4,), generator=torch.Generator().manual_seed(3))
    assert a.dtype == torch.float32 and torch.equal(a, b)


# --- IGSO3 ---------------------------------------------------------------------------------------

OMEGA = torch.linspace(0, math.pi, 20001, dtype=torch.float64)


@pytest.mark.parametrize("sigma", [0.002, 0.05, 0.3, 0.9, 1.0, 1.5, 3.0])
def test_igso3_density_integrates_to_one(sigma):
    d = so3.igso3_angle_density(OMEGA, sigma)
    assert (d >= -1e-12).all()
    assert abs(float(torch.trapezoid(d, OMEGA)) - 1) < 1e-6


@pytest.mark.parametrize("sigma", [0.15, 0.4, 0.8, 1.2])
def test_igso3_density_small_sigma_form_matches_series(sigma):
    exact = so3.igso3_angle_density(OMEGA, sigma)
    series = so3.igso3_angle_density(OMEGA, sigma, l_max=800)
    torch.testing.assert_close(exact, series, atol=1e-10, rtol=0)
    assert torch.allclose(so3._density_poisson(OMEGA, torch.tensor(sigma, dtype=torch.float64)), series, atol=1e-10)


def test_igso3_density_limits():
    haar = (1 - torch.cos(OMEGA)) / math.pi
    assert float((so3.igso3_angle_density(OMEGA, 4.0) - haar).abs().max()) < 1e-4
    s = 0.01  # small sigma: Maxwell density of |N(0, σ² I₃)|
    maxwell = math.sqrt(2 / math.pi) * OMEGA**2 / s**3 * torch.exp(-(OMEGA**2) / (2 * s**2))
    assert float((so3.igso3_angle_density(OMEGA, s) - maxwell).abs().max()) < 1e-2 * float(maxwell.max())


def _density_cdf(sigma: float):
    d = so3.igso3_angle_density(OMEGA, sigma).numpy()
    w = OMEGA.numpy()
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(w))])
    return lambda x: np.interp(x, w, cdf / cdf[-1])


@pytest.fixture(scope="module")
def igso3() -> so3.IGSO3:
    return so3.IGSO3()


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.5])
def test_igso3_sampled_angles_match_density(igso3, sigma):
    g = torch.Generator().manual_seed(7)
    r = igso3.sample(sigma, (20000,), generator=g, dtype=torch.float64)
    assert r.shape == (20000, 3, 3)
    assert stats.kstest(so3.angle(r).numpy(), _density_cdf(sigma)).pvalue > 1e-3


def test_igso3_matches_brownian_motion_on_so3(igso3):
    """IGSO3(σ) is Brownian motion run for time σ²: a product of many small Gaussian rotations."""
    g = torch.Generator().manual_seed(11)
    sigma, steps, n = 0.6, 40, 4000
    r = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    for _ in range(steps):
        r = r @ so3.exp(torch.randn(n, 3, generator=g, dtype=torch.float64) * sigma / math.sqrt(steps))
    assert stats.kstest(so3.angle(r).numpy(), _density_cdf(sigma)).pvalue > 1e-3


def test_igso3_per_element_sigma_and_bounds(igso3):
    g = torch.Generator().manual_seed(5)
    sig = torch.tensor([0.05, 2.0])[:, None]
    w = igso3.sample_angle(sig, (2, 4000), generator=g)
    assert float(w[0].mean()) < 0.15 < 1.0 < float(w[1].mean())
    assert igso3.sample(0.3, (2, 3)).dtype == torch.float32
    with pytest.raises(ValueError, match="grid"):
        igso3.sample(100.0, (3,))
    with pytest.raises(ValueError):
        so3.IGSO3(sigmas=[0.5, 0.1])
    with pytest.raises(ValueError):
        so3.igso3_angle_density(OMEGA, 0.0)
