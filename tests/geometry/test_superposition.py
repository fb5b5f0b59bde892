"""Kabsch superposition: recovers random rigid motions, honours masks, never reflects."""

from __future__ import annotations

import torch

from multiflow.geometry import aligned_rmsd, kabsch, so3, superimpose


def test_recovers_random_motion_batched(real_chains):
    x = real_chains[0].bb[:, 1].to(torch.float32)  # [N, 3] CA trace
    rot = so3.uniform((5,))
    trans = torch.randn(5, 3) * 20
    moved = (rot[:, None] @ x[None, :, :, None])[..., 0] + trans[:, None]  # [5, N, 3]
    r, t = kabsch(x.expand(5, -1, -1), moved)
    torch.testing.assert_close(r, rot, atol=1e-5, rtol=0)
    torch.testing.assert_close(t, trans, atol=1e-3, rtol=0)
    assert float(aligned_rmsd(moved, x.expand(5, -1, -1)).max()) < 1e-4
    assert float((superimpose(moved, x.expand(5, -1, -1)) - x).norm(dim=-1).max()) < 1e-3


def test_mask_ignores_corrupted_points():
    x = torch.randn(30, 3, dtype=torch.float64) * 8
    rot = so3.uniform((), dtype=torch.float64)
    target = x @ rot.T + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    target[20:] += torch.randn(10, 3, dtype=torch.float64) * 50  # garbage outside the mask
    mask = torch.arange(30) < 20
    r, _ = kabsch(x, target, mask)
    torch.testing.assert_close(r, rot, atol=1e-10, rtol=0)
    assert float(aligned_rmsd(x, target, mask)) < 1e-10
    assert float(aligned_rmsd(x, target)) > 1.0


def test_reflection_is_not_used():
    x = torch.randn(50, 3, dtype=torch.float64)
    mirrored = x * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    r, _ = kabsch(x, mirrored)
    torch.testing.assert_close(torch.linalg.det(r), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(r.T @ r, torch.eye(3, dtype=torch.float64))
    # a mirror image cannot be superimposed: the RMSD stays well above zero
    assert float(aligned_rmsd(x, mirrored)) > 0.1
    # and the best proper rotation does at least as well as identity
    assert float(aligned_rmsd(x, mirrored)) <= float(((x - x.mean(0)) - (mirrored - mirrored.mean(0))).norm(dim=-1).pow(2).mean().sqrt()) + 1e-12


def test_rmsd_matches_direct_formula_after_alignment():
    a = torch.randn(2, 15, 3, dtype=torch.float64)
    b = a + 0.3 * torch.randn(2, 15, 3, dtype=torch.float64)
    rmsd = aligned_rmsd(a, b)
    moved = superimpose(a, b)
    torch.testing.assert_close(rmsd, ((moved - b) ** 2).sum(-1).mean(-1).sqrt())
    # symmetric in its arguments
    torch.testing.assert_close(rmsd, aligned_rmsd(b, a))
    assert (rmsd <= ((a - b) ** 2).sum(-1).mean(-1).sqrt()).all()
