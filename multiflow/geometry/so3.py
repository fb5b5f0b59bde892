"""Rotations in SO(3): exp/log maps, angles, Haar-uniform and IGSO3 sampling.

Conventions (see docs/DESIGN.md): rotation matrices act on column vectors; a rotation
vector ``v`` [..., 3] is ``axis * angle`` with angle in [0, π]; quaternions are
``(w, x, y, z)`` with the real part first and ``w >= 0`` when produced here. Every
function is batched over leading dimensions and keeps the input dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_TAYLOR_ANGLE = 1e-3  # below this angle (rad) the Taylor series replace sin(θ)/θ-type ratios


def _check_trailing(x: Tensor, trailing: tuple[int, ...], name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[x.dim() - len(trailing):]) != trailing or x.dim() < len(trailing):
        raise ValueError(f"{name}: expected shape [..., {', '.join(map(str, trailing))}], got {list(x.shape)}")


def hat(v: Tensor) -> Tensor:
    """[..., 3] -> [..., 3, 3] skew-symmetric matrix with ``hat(v) @ x == cross(v, x)``."""
    _check_trailing(v, (3,), "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).unflatten(-1, (3, 3))


def vee(m: Tensor) -> Tensor:
    """[..., 3, 3] -> [..., 3]; inverse of :func:`hat` (uses the antisymmetric part of ``m``)."""
    _check_trailing(m, (3, 3), "m")
    return 0.5 * torch.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], dim=-1
    )


def exp(rotvec: Tensor) -> Tensor:
    """Rotation vector [..., 3] -> rotation matrix [..., 3, 3] (Rodrigues' formula).

    ``R = I + a K + b K²`` with ``K = hat(v)``, ``a = sin θ/θ`` and ``b = (1 − cos θ)/θ²``
    written as ``½ (sin(θ/2)/(θ/2))²`` (no cancellation); Taylor series below 1e-3 rad,
    so values and gradients are finite at θ = 0.
    """
    _check_trailing(rotvec, (3,), "rotvec")
    theta2 = (rotvec * rotvec).sum(-1)  # [...]
    small = theta2 < _TAYLOR_ANGLE**2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    half = 0.5 * theta
    a = torch.where(small, 1 - theta2 / 6 + theta2**2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2**2 / 720, 0.5 * (torch.sin(half) / half) ** 2)
    k = hat(rotvec)  # [..., 3, 3]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def _sin_cos_angle(r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(s = sin θ · axis [..., 3], cos θ [...], θ [...]) of rotation matrices [..., 3, 3]."""
    s = vee(r)
    cos_t = ((r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1) / 2).clamp(-1.0, 1.0)
    # atan2 is well conditioned everywhere, unlike acos near 0 and π.
    theta = torch.atan2(torch.linalg.vector_norm(s, dim=-1), cos_t)
    return s, cos_t, theta


def log(r: Tensor) -> Tensor:
    """Rotation matrix [..., 3, 3] -> rotation vector [..., 3] with angle in [0, π].

    For θ < π/2 the vector is ``vee(R) · θ / sin θ`` (Taylor series near 0). For θ ≥ π/2
    the axis comes from the symmetric part, ``(sym(R) − cos θ I)/(1 − cos θ) = a aᵀ``
    (the column with the largest diagonal entry, normalised), and its sign is chosen so
    that it agrees with ``vee(R) = sin θ · a``; at exactly θ = π, where both signs are the
    same rotation, the largest-magnitude component of the axis is positive.
    """
    _check_trailing(r, (3, 3), "R")
    s, cos_t, theta = _sin_cos_angle(r)
    sin_t = torch.linalg.vector_norm(s, dim=-1)
    # Branch 1: small and medium angles.
    small = theta < _TAYLOR_ANGLE
    safe_sin = torch.where(sin_t > 0, sin_t, torch.ones_like(sin_t))
    factor = torch.where(small, 1 + theta**2 / 6 + 7 * theta**4 / 360, theta / safe_sin)
    v_small = s * factor[..., None]
    # Branch 2: large angles, axis from the symmetric part.
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    sym = 0.5 * (r + r.transpose(-1, -2))
    aat = (sym - cos_t[..., None, None] * eye) / (1 - cos_t).clamp_min(0.5)[..., None, None]  # [..., 3, 3]
    diag = torch.diagonal(aat, dim1=-2, dim2=-1)  # [..., 3] = a_i²
    j = diag.argmax(dim=-1, keepdim=True)  # [..., 1]
    col = torch.gather(aat, -1, j[..., None, :].expand(*aat.shape[:-1], 1))[..., 0]  # [..., 3] = a_j a
    axis = col / torch.gather(diag, -1, j).clamp_min(1e-12).sqrt()  # sign(a_j) a
    sign = torch.where((axis * s).sum(-1) < 0, -1.0, 1.0).to(r.dtype)
    v_large = axis * (sign * theta)[..., None]
    return torch.where((cos_t > 0)[..., None], v_small, v_large)


def angle(r: Tensor) -> Tensor:
    """Rotation angle in [0, π] of rotation matrices [..., 3, 3] -> [...]."""
    _check_trailing(r, (3, 3), "R")
    return _sin_cos_angle(r)[2]


def geodesic_distance(r1: Tensor, r2: Tensor) -> Tensor:
    """Geodesic distance on SO(3), the angle of ``R1ᵀ R2``; [..., 3, 3] x2 -> [...] (broadcasts)."""
    _check_trailing(r1, (3, 3), "R1")
    _check_trailing(r2, (3, 3), "R2")
    return angle(r1.transpose(-1, -2) @ r2)


def quat_to_matrix(q: Tensor) -> Tensor:
    """Quaternion (w, x, y, z) [..., 4] -> rotation matrix [..., 3, 3]; ``q`` is normalised first."""
    _check_trailing(q, (4,), "q")
    w, x, y, z = (q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def rotvec_to_quat(rotvec: Tensor) -> Tensor:
    """Rotation vector [..., 3] -> unit quaternion (w, x, y, z) [..., 4], ``w = cos(θ/2) >= 0`` for θ <= π."""
    _check_trailing(rotvec, (3,), "rotvec")
    theta2 = (rotvec * rotvec).sum(-1)
    small = theta2 < _TAYLOR_ANGLE**2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    c = torch.where(small, 0.5 - theta2 / 48, torch.sin(theta / 2) / theta)  # sin(θ/2)/θ
    w = torch.where(small, 1 - theta2 / 8, torch.cos(theta / 2))
    return torch.cat([w[..., None], rotvec * c[..., None]], dim=-1)


def matrix_to_quat(r: Tensor) -> Tensor:
    """Rotation matrix [..., 3, 3] -> unit quaternion (w, x, y, z) [..., 4] with ``w >= 0``."""
    return rotvec_to_quat(log(r))


def _unit_vectors(shape: Sequence[int], generator, dtype, device) -> Tensor:
    v = torch.randn((*shape, 3), generator=generator, dtype=dtype, device=device)
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-12)


def uniform(
    shape: Sequence[int],
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Haar-uniform rotations [*shape, 3, 3] (normalised Gaussian quaternions)."""
    q = torch.randn((*shape, 4), generator=generator, dtype=dtype, device=device)
    return quat_to_matrix(q)


# --- IGSO3 ---------------------------------------------------------------------------------

_POISSON_MAX_SIGMA = 1.0  # below: Poisson-resummed form of the series; above: the l-series itself
_POISSON_TERMS = 3  # images m = -3..3 (neglected terms < exp(-(7π)²/2) relative at σ = 1)
_AUTO_L_MAX = 24  # l-series terms for σ >= 1 (neglected terms < exp(-24·25/2))


def _density_series(omega: Tensor, sigma: Tensor, l_max: int) -> Tensor:
    """MATH.md series, with (1 − cos ω)/sin(ω/2) = 2 sin(ω/2) so nothing is divided."""
    total = torch.zeros(torch.broadcast_shapes(omega.shape, sigma.shape), dtype=omega.dtype, device=omega.device)
    for l in range(l_max + 1):  # the exp and sin factors keep their own (smaller) shapes
        total = total + ((2 * l + 1) * torch.exp(-l * (l + 1) * sigma**2 / 2)) * torch.sin((l + 0.5) * omega)
    return 2 * torch.sin(omega / 2) / math.pi * total


def _density_poisson(omega: Tensor, sigma: Tensor) -> Tensor:
    """Same density after Poisson summation over l + ½ (converges fast for small σ).

    With k = l + ½ and l(l+1) = k² − ¼, the series Σ (2l+1) e^{−l(l+1)σ²/2} sin(kω) equals
    ``−2 e^{σ²/8} d/dω Σ_{k>0} e^{−k²σ²/2} cos(kω)``; Poisson summation turns the inner sum into
    ``½ √(2π)/σ Σ_m (−1)^m exp(−(ω − 2πm)²/(2σ²))``. Differentiating gives the terms below.
    For small σ this is the Maxwell density √(2/π) ω²/σ³ exp(−ω²/(2σ²)).
    """
    total = torch.zeros(torch.broadcast_shapes(omega.shape, sigma.shape), dtype=omega.dtype, device=omega.device)
    for m in range(-_POISSON_TERMS, _POISSON_TERMS + 1):
        d = omega - 2 * math.pi * m
        total = total + (-1) ** m * d * torch.exp(-(d**2) / (2 * sigma**2))
    scale = torch.exp(sigma**2 / 8) * math.sqrt(2 * math.pi) / sigma**3
    return 2 * torch.sin(omega / 2) / math.pi * scale * total


def igso3_angle_density(omega: Tensor | float, sigma: Tensor | float, l_max: int | None = None) -> Tensor:
    """Density of the rotation angle ω ∈ [0, π] under IGSO3(σ), w.r.t. dω (integrates to 1).

    ``f(ω) = (1 − cos ω)/π · Σ_l (2l+1) e^{−l(l+1)σ²/2} sin((l+½)ω)/sin(ω/2)`` (MATH.md).
    ``omega`` and ``sigma`` broadcast. With ``l_max=None`` the evaluation is exact to float64
    precision for every σ > 0 (Poisson-resummed form for σ < 1, the series otherwise);
    an explicit ``l_max`` evaluates the truncated series as written. Computed in float64;
    returned in the floating dtype of ``omega`` (float64 for Python numbers).
    """
    omega_t = torch.as_tensor(omega)
    out_dtype = omega_t.dtype if omega_t.is_floating_point() else torch.float64
    w = omega_t.to(torch.float64)
    s = torch.as_tensor(sigma, dtype=torch.float64, device=w.device)
    if bool((s <= 0).any()) or not bool(torch.isfinite(s).all()):
        raise ValueError(f"sigma must be positive and finite, got min {float(s.min())}")
    if l_max is not None:
        if l_max < 0:
            raise ValueError(f"l_max must be >= 0, got {l_max}")
        return _density_series(w, s, l_max).to(out_dtype)
    small = s < _POISSON_MAX_SIGMA
    poisson = _density_poisson(w, torch.where(small, s, torch.ones_like(s)))
    series = _density_series(w, torch.where(small, torch.ones_like(s), s), _AUTO_L_MAX)
    return torch.where(small, poisson, series).to(out_dtype)


class IGSO3:
    """Sampler of the isotropic Gaussian on SO(3) by inverse CDF of the angle (axis uniform).

    At construction the angle CDF is integrated (trapezoid, float64) on an ω grid dense near 0
    (ω = π x², x uniform) for each σ of ``sigmas``, and inverted into a table of quantiles on a
    uniform probability grid. A sample interpolates bilinearly in (σ, probability); quantiles are
    close to linear in σ (exactly so for small σ, where ω scales with σ).
    """

    def __init__(
        self,
        sigmas: Sequence[float] | Tensor | None = None,
        num_omega: int = 4096,
        num_quantiles: int = 4097,
    ) -> None:
        if sigmas is None:
            sigmas = torch.logspace(math.log10(1e-3), math.log10(5.0), 160, dtype=torch.float64)
        sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
        if sig.numel() < 2 or bool((sig <= 0).any()) or bool((sig[1:] <= sig[:-1]).any()):
            raise ValueError(f"sigmas must be >= 2 positive, strictly increasing values, got {sig.tolist()[:8]}...")
        if num_omega < 16 or num_quantiles < 16:
            raise ValueError(f"num_omega and num_quantiles must be >= 16, got {num_omega}, {num_quantiles}")
        self.sigmas = sig  # [S]
        omega = math.pi * torch.linspace(0, 1, num_omega, dtype=torch.float64) ** 2  # [G]
        dens = igso3_angle_density(omega[None, :], sig[:, None])  # [S, G]
        steps = 0.5 * (dens[:, 1:] + dens[:, :-1]) * (omega[1:] - omega[:-1])  # [S, G-1]
        cdf = torch.cat([torch.zeros_like(sig)[:, None], steps.cumsum(-1)], dim=-1)
        cdf = cdf / cdf[:, -1:]
        p = torch.linspace(0, 1, num_quantiles, dtype=torch.float64).expand(len(sig), -1).contiguous()
        self.quantiles = _interp_rows(p, cdf, omega)  # [S, P] angle at each probability

    def sample_angle(
        self, sigma: float | Tensor, shape: Sequence[int], generator: torch.Generator | None = None
    ) -> Tensor:
        """Angles [*shape] float64 (CPU) distributed as IGSO3(σ); ``sigma`` broadcasts to ``shape``."""
        sig = torch.as_tensor(sigma, dtype=torch.float64).cpu().expand(tuple(shape)).contiguous()
        lo, hi = float(self.sigmas[0]), float(self.sigmas[-1])
        if bool((sig < lo * (1 - 1e-9)).any()) or bool((sig > hi * (1 + 1e-9)).any()):
            raise ValueError(f"sigma must lie in the precomputed grid [{lo:g}, {hi:g}], got {sig.min():g}..{sig.max():g}")
        i = (torch.searchsorted(self.sigmas, sig, right=True) - 1).clamp(0, len(self.sigmas) - 2)
        lam_s = ((sig - self.sigmas[i]) / (self.sigmas[i + 1] - self.sigmas[i])).clamp(0, 1)
        pos = torch.rand(tuple(shape), generator=generator, dtype=torch.float64) * (self.quantiles.shape[1] - 1)
        j = pos.floor().long().clamp(0, self.quantiles.shape[1] - 2)
        lam_p = pos - j
        q = self.quantiles

        def at(ii: Tensor, jj: Tensor) -> Tensor:
            return (1 - lam_p) * q[ii, jj] + lam_p * q[ii, jj + 1]

        return (1 - lam_s) * at(i, j) + lam_s * at(i + 1, j)

    def sample_rotvec(
        self,
        sigma: float | Tensor,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Rotation vectors [*shape, 3]: IGSO3 angle times a uniform axis."""
        omega = self.sample_angle(sigma, shape, generator)
        axis = _unit_vectors(shape, generator, torch.float64, "cpu")
        return (axis * omega[..., None]).to(dtype=dtype, device=device)

    def sample(
        self,
        sigma: float | Tensor,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Rotation matrices [*shape, 3, 3] distributed as IGSO3(σ)."""
        return exp(self.sample_rotvec(sigma, shape, generator, torch.float64)).to(dtype=dtype, device=device)


def _interp_rows(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Row-wise linear interpolation: x [S, P] at nondecreasing xp [S, G] with values fp [G]."""
    idx = torch.searchsorted(xp, x).clamp(1, xp.shape[1] - 1)  # first xp >= x
    x0, x1 = torch.gather(xp, 1, idx - 1), torch.gather(xp, 1, idx)
    lam = torch.where(x1 > x0, (x - x0) / (x1 - x0).clamp_min(1e-300), torch.zeros_like(x))
    return fp[idx - 1] + lam.clamp(0, 1) * (fp[idx] - fp[idx - 1])
