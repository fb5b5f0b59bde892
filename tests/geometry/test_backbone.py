"""Backbone reconstruction: ideal geometry of the placed atoms, carbonyl O, ideal CB, atom37."""

from __future__ import annotations

import math

import pytest
import torch

from multiflow import constants as C
from multiflow.geometry import Rigid, backbone_to_atom37, frames_to_backbone, ideal_cb, ideal_local_backbone, so3
from multiflow.geometry import backbone as B


def _angle(a, b, c):
    u, v = a - b, c - b
    return torch.arccos((u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1)))


def _dihedral(a, b, c, d):
    b0, b1, b2 = a - b, c - b, d - c
    b1n = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    return torch.atan2((torch.linalg.cross(b1n, v, dim=-1) * w).sum(-1), (v * w).sum(-1))


def test_ideal_local_backbone_geometry():
    n, ca, c = ideal_local_backbone(torch.float64)
    assert float((n - ca).norm()) == pytest.approx(C.BOND_N_CA)
    assert float((c - ca).norm()) == pytest.approx(C.BOND_CA_C)
    assert float(_angle(n, ca, c)) == pytest.approx(C.ANGLE_N_CA_C)
    assert n[1] > 0 and n[2] == 0 and c[1] == 0 and c[0] > 0


def _ideal_chain(n_res: int) -> Rigid:
    """Frames of a chain built residue by residue with ideal peptide geometry (psi=120, phi=-120)."""
    frames = [Rigid.identity((), dtype=torch.float64)]
    local = ideal_local_backbone(torch.float64)
    for _ in range(n_res - 1):
        f = frames[-1]
        n_next = f.apply(torch.tensor(B._local_next_n(math.radians(120)), dtype=torch.float64))
        c_prev = f.apply(local[2])
        # next CA: C-N-CA 121.7°, omega 180°, then C with phi -120° - built via a generic placement
        ca_next = _place(f.apply(local[1]), c_prev, n_next, C.BOND_N_CA, math.radians(121.7), math.pi)
        c_next = _place(c_prev, n_next, ca_next, C.BOND_CA_C, C.ANGLE_N_CA_C, math.radians(-120))
        frames.append(Rigid.from_backbone(n_next, ca_next, c_next))
    return Rigid.stack(frames)


def _place(a, b, c, bond, angle, torsion):
    """Atom d with |cd| = bond, angle(b, c, d) = angle, dihedral(a, b, c, d) = torsion."""
    bc = (c - b) / (c - b).norm()
    nrm = torch.linalg.cross(b - a, bc, dim=-1)
    nrm = nrm / nrm.norm()
    m = torch.stack([bc, torch.linalg.cross(nrm, bc, dim=-1), nrm], dim=-1)
    d_local = torch.tensor([-bond * math.cos(angle), bond * math.sin(angle) * math.cos(torsion),
                            bond * math.sin(angle) * math.sin(torsion)], dtype=torch.float64)
    return c + m @ d_local


def test_oxygen_has_ideal_geometry_in_the_peptide_plane():
    frames = _ideal_chain(6)
    bb = frames_to_backbone(frames)  # [6, 4, 3]
    n, ca, c, o = bb.unbind(-2)
    torch.testing.assert_close((o - c).norm(dim=-1), torch.full((6,), C.BOND_C_O, dtype=torch.float64))
    torch.testing.assert_close(_angle(ca, c, o), torch.full((6,), C.ANGLE_CA_C_O, dtype=torch.float64))
    # O in the plane CA_i, C_i, N_{i+1}, on the side opposite N_{i+1}
    psi = _dihedral(n[:-1], ca[:-1], c[:-1], n[1:])
    torch.testing.assert_close(psi, torch.full((5,), math.radians(120), dtype=torch.float64))
    o_dihedral = _dihedral(n[:-1], ca[:-1], c[:-1], o[:-1])
    torch.testing.assert_close(torch.cos(o_dihedral - psi), torch.full((5,), -1.0, dtype=torch.float64))
    # chain end: O as if psi were TERMINAL_PSI
    assert float(torch.cos(_dihedral(n[-1], ca[-1], c[-1], o[-1]) - B.TERMINAL_PSI)) == pytest.approx(-1.0)


def test_oxygen_falls_back_to_ideal_psi_before_masked_or_distant_residue():
    frames = _ideal_chain(5)
    mask = torch.tensor([True, True, False, True, True])
    bb = frames_to_backbone(frames, mask)
    psi1 = _dihedral(*[bb[1, k] for k in range(3)], bb[1, 3])
    assert float(torch.cos(psi1 - B.TERMINAL_PSI)) == pytest.approx(-1.0)
    far = Rigid(frames.rots, frames.trans + torch.tensor([[0.0, 0, 0]] * 3 + [[20.0, 0, 0]] * 2, dtype=torch.float64))
    bb_far = frames_to_backbone(far)
    psi2 = _dihedral(*[bb_far[2, k] for k in range(3)], bb_far[2, 3])
    assert float(torch.cos(psi2 - B.TERMINAL_PSI)) == pytest.approx(-1.0)


def test_frames_to_backbone_is_equivariant_and_batched():
    frames = _ideal_chain(7)
    move = Rigid(so3.uniform((), dtype=torch.float64), torch.randn(3, dtype=torch.float64))
    torch.testing.assert_close(frames_to_backbone(move @ frames), move.apply(frames_to_backbone(frames)))
    batch = Rigid.stack([frames, move @ frames])
    out = frames_to_backbone(batch, torch.ones(2, 7, dtype=torch.bool))
    assert out.shape == (2, 7, 4, 3)
    torch.testing.assert_close(out[1], move.apply(out[0]))
    with pytest.raises(ValueError, match="mask"):
        frames_to_backbone(frames, torch.ones(6, dtype=torch.bool))


def test_ideal_cb_geometry_and_real_structures(real_chains):
    n, ca, c = ideal_local_backbone(torch.float64)
    cb = ideal_cb(n, ca, c)
    assert float((cb - ca).norm()) == pytest.approx(B.BOND_CA_CB)
    assert float(_angle(n, ca, cb)) == pytest.approx(B.ANGLE_N_CA_CB)
    assert float(_angle(c, ca, cb)) == pytest.approx(B.ANGLE_C_CA_CB)
    errs = []
    for ch in real_chains:
        bb = ch.bb[ch.has_cb]
        errs.append((ideal_cb(bb[:, 0], bb[:, 1], bb[:, 2]) - ch.cb[ch.has_cb]).norm(dim=-1))
    err = torch.cat(errs)
    assert float(err.mean()) < 0.1 and float(err.quantile(0.99)) < 0.3


def test_backbone_to_atom37_slots_and_cb_mask():
    bb = frames_to_backbone(_ideal_chain(4))
    aatype = torch.tensor([C.RESTYPES.index("G"), C.RESTYPES.index("A"), C.UNK_TOKEN, C.RESTYPES.index("W")])
    atoms, mask = backbone_to_atom37(bb, aatype, mask=torch.tensor([True, True, True, False]))
    assert atoms.shape == (4, 37, 3) and mask.shape == (4, 37) and mask.dtype == torch.bool
    torch.testing.assert_close(atoms[:3, [C.N_IDX, C.CA_IDX, C.C_IDX, C.O_IDX]], bb[:3])
    assert mask[:, C.CB_IDX].tolist() == [False, True, False, False]
    assert mask.sum(-1).tolist() == [4, 5, 4, 0]
    torch.testing.assert_close(atoms[1, C.CB_IDX], ideal_cb(bb[1, 0], bb[1, 1], bb[1, 2]))
    atoms_nocb, mask_nocb = backbone_to_atom37(bb)
    assert mask_nocb.sum().item() == 16
    with pytest.raises(ValueError):
        backbone_to_atom37(bb[..., :3, :])
