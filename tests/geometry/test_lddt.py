"""lddt_ca: agrees with biotite's lDDT, is 1 for a perfect prediction, ignores rigid motions and padding."""

import numpy as np
import pytest
import torch

from multiflow.flows.losses import confidence_loss
from multiflow.geometry.lddt import lddt_ca
from multiflow.geometry import so3


def _chain(n, seed):
    rng = np.random.default_rng(seed)
    ref = np.cumsum(rng.normal(size=(n, 3)) * 2.2, axis=0)
    return torch.tensor(ref), torch.tensor(ref + rng.normal(size=(n, 3)) * 1.0)


def test_matches_biotite_per_residue():
    struc = pytest.importorskip("biotite.structure")
    ref, pred = _chain(40, 0)
    atoms = struc.AtomArray(40)
    atoms.coord = ref.numpy().astype(np.float32)
    atoms.res_id = np.arange(1, 41)
    atoms.atom_name[:] = "CA"
    atoms.chain_id[:] = "A"
    atoms.element[:] = "C"
    expected = struc.lddt(atoms, pred.numpy().astype(np.float32), aggregation="residue")
    got = lddt_ca(pred[None], ref[None], torch.ones(1, 40, dtype=torch.bool))[0]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    assert 0.3 < float(got.mean()) < 0.95  # a 1 Å perturbation is neither perfect nor hopeless


def test_perfect_prediction_rigid_motion_and_padding():
    ref, pred = _chain(30, 1)
    mask = torch.ones(1, 30, dtype=torch.bool)
    rot = so3.uniform((), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    moved = ref @ rot.T + torch.tensor([5.0, -3.0, 8.0], dtype=torch.float64)
    assert torch.allclose(lddt_ca(moved[None], ref[None], mask), torch.ones(1, 30, dtype=torch.float64))
    base = lddt_ca(pred[None], ref[None], mask)
    assert torch.allclose(lddt_ca((pred @ rot.T)[None], ref[None], mask), base)
    # padding: 5 junk residues far away and masked out change nothing for the real ones
    junk = torch.full((5, 3), 1e3, dtype=torch.float64)
    padded = lddt_ca(torch.cat([pred, junk])[None], torch.cat([ref, junk])[None],
                     torch.cat([mask, torch.zeros(1, 5, dtype=torch.bool)], dim=1))
    assert torch.allclose(padded[:, :30], base) and not padded[:, 30:].any()


def test_lonely_residue_scores_zero_and_shapes_are_checked():
    ref = torch.tensor([[[0.0, 0, 0], [3.8, 0, 0], [100.0, 0, 0]]])
    out = lddt_ca(ref, ref, torch.ones(1, 3, dtype=torch.bool))
    assert out.tolist() == [[1.0, 1.0, 0.0]]  # the third residue has no neighbour within 15 Å
    with pytest.raises(ValueError, match=r"\[B, N, 3\]"):
        lddt_ca(ref[0], ref[0], torch.ones(3, dtype=torch.bool))


def test_confidence_loss_is_smallest_when_the_head_predicts_the_lddt():
    ref, pred = _chain(30, 2)
    ref_nm, pred_nm = (ref / 10.0)[None].float(), (pred / 10.0)[None].float()
    mask = torch.ones(1, 30, dtype=torch.bool)
    target = lddt_ca(pred_nm * 10.0, ref_nm * 10.0, mask)
    conf = target.clone().requires_grad_(True)
    terms = confidence_loss(conf, pred_nm, ref_nm, mask)
    terms["confidence"].backward()
    assert conf.grad.abs().max() < 1e-4  # BCE(p, y) is stationary at p = y
    for shift in (-0.2, 0.2):
        worse = confidence_loss((target + shift).clamp(0.01, 0.99), pred_nm, ref_nm, mask)["confidence"]
        assert float(worse) > float(terms["confidence"])
    assert float(terms["lddt_ca"]) == pytest.approx(float(target.mean()), abs=1e-6)
