"""Structure loss terms: zero at the data, blind to padding and fixed residues, the clipped 1/(1 - t) scaling."""

from __future__ import annotations

import math

import pytest
import torch

from multiflow.errors import ConfigError
from multiflow.flows.interpolant import Interpolant, InterpolantConfig, PartialConfig, TaskMixture
from multiflow.flows.losses import (backbone_losses, rotation_vf_loss, structure_losses, time_scale, total_loss,
                                    translation_vf_loss)
from multiflow.geometry import so3

from .structure_batch import random_batch

TERMS = ("trans_vf", "rots_vf", "bb_atom", "pair_dist")


def _noisy(mixture=TaskMixture(), seed=0, lengths=(12, 9, 7, 12)):
    batch = random_batch(list(lengths), seed=seed)
    partial = PartialConfig(min_fraction=0.3, max_fraction=0.5, fix_weights=(1.0, 0.0, 0.0))
    return Interpolant(InterpolantConfig(mixture=mixture, partial=partial)).corrupt(batch, torch.Generator().manual_seed(seed))


def test_time_scale_is_clipped_inverse():
    t = torch.tensor([0.0, 0.5, 0.9, 0.99])
    assert torch.allclose(time_scale(t), torch.tensor([1.0, 2.0, 10.0, 10.0]))
    assert torch.allclose(time_scale(t, t_clip=0.5), torch.tensor([1.0, 2.0, 2.0, 2.0]))
    with pytest.raises(ConfigError):
        time_scale(t, t_clip=1.0)


def test_perfect_prediction_gives_zero():
    noisy = _noisy(TaskMixture(1, 1, 1, 1))
    terms = structure_losses(noisy.trans_1, noisy.rots_1, noisy, late_t=None)
    assert set(TERMS) <= set(terms)
    for k in TERMS:
        assert float(terms[k]) < 1e-10, k


def test_translation_term_formula():
    trans_1 = torch.zeros(2, 4, 3)
    pred = trans_1.clone()
    pred[:, 1, 0] = 0.1  # one residue off by 0.1 nm in x
    mask = torch.ones(2, 4, dtype=torch.bool)
    t = torch.tensor([0.5, 0.95])  # scales 2 and (clipped) 10
    out = translation_vf_loss(pred, trans_1, t, mask)["trans_vf"]
    expected = ((0.1 * 2) ** 2 / 12 + (0.1 * 10) ** 2 / 12) / 2
    assert math.isclose(float(out), expected, rel_tol=1e-5)
    # The same number is the squared velocity difference with the clipped denominator.
    x_t = torch.randn(2, 4, 3)
    v = lambda x1: (x1 - x_t) * time_scale(t)[:, None, None]  # noqa: E731
    assert math.isclose(float(((v(pred) - v(trans_1)) ** 2).mean()), expected, rel_tol=1e-4)


def test_rotation_term_formula():
    g = torch.Generator().manual_seed(1)
    rots_1 = so3.uniform((1, 3), g, dtype=torch.float64)
    omega = torch.tensor([0.0, 0.2, 0.0], dtype=torch.float64)
    pred = rots_1.clone()
    pred[0, 2] = rots_1[0, 2] @ so3.exp(omega)
    out = rotation_vf_loss(pred, rots_1, rots_1, torch.tensor([0.5], dtype=torch.float64), torch.ones(1, 3, dtype=torch.bool))
    assert math.isclose(float(out["rots_vf"]), (0.2 * 2) ** 2 / 9, rel_tol=1e-6)


def test_terms_ignore_padding_and_fixed_residues():
    noisy = _noisy(TaskMixture(1, 0, 0, 3), seed=2)
    assert noisy.fixed_structure.any() and (~noisy.res_mask).any()
    g = torch.Generator().manual_seed(2)
    pred_t = noisy.trans_1 + 0.05 * torch.randn(noisy.trans_1.shape, generator=g)
    pred_r = noisy.rots_1 @ so3.exp(0.1 * torch.randn(*noisy.rots_1.shape[:-2], 3, generator=g))
    base = structure_losses(pred_t, pred_r, noisy, late_t=None)
    ignored = ~(noisy.res_mask & ~noisy.fixed_structure)  # padding or fixed
    wild_t = torch.where(ignored[..., None], torch.randn(pred_t.shape, generator=g) * 5, pred_t)
    wild_r = torch.where(ignored[..., None, None], so3.uniform(ignored.shape, g), pred_r)
    changed = structure_losses(wild_t, wild_r, noisy, late_t=None)
    for k in TERMS:
        assert float(base[k]) > 0
        assert torch.allclose(base[k], changed[k], rtol=1e-5, atol=1e-8), k


def test_inverse_folding_samples_carry_no_structure_loss():
    noisy = _noisy(TaskMixture(0, 1, 0, 0), seed=3)
    pred_t = noisy.trans_1 + 1.0
    terms = structure_losses(pred_t, noisy.rots_1, noisy, late_t=None)
    for k in TERMS:
        assert float(terms[k]) == 0.0


def test_late_time_gate_and_rigid_motion():
    noisy = _noisy(TaskMixture(), seed=4)
    shift = torch.tensor([0.3, -0.2, 0.1])
    pred_t = noisy.trans_1 + shift * noisy.res_mask[..., None]  # a rigid translation of the whole prediction
    t = torch.tensor([0.2, 0.8, 0.5, 0.95])
    out = backbone_losses(pred_t, noisy.rots_1, noisy.trans_1, noisy.rots_1, t, noisy.res_mask)
    assert float(out["pair_dist"]) < 1e-8  # distances do not see a rigid motion
    # Only samples 1 and 3 (t > 0.75) count: per-atom error |shift|² / 3 per coordinate, scaled by s(t)².
    s = time_scale(t)
    expected = float(shift.pow(2).sum() / 3 * (s[1] ** 2 + s[3] ** 2) / 2)
    assert math.isclose(float(out["bb_atom"]), expected, rel_tol=1e-4)
    ungated = backbone_losses(pred_t, noisy.rots_1, noisy.trans_1, noisy.rots_1, t, noisy.res_mask, late_t=None)
    assert math.isclose(float(ungated["bb_atom"]), float(shift.pow(2).sum() / 3 * s.pow(2).mean()), rel_tol=1e-4)
    early = backbone_losses(pred_t, noisy.rots_1, noisy.trans_1, noisy.rots_1, torch.full((4,), 0.5), noisy.res_mask)
    assert float(early["bb_atom"]) == 0.0 and float(early["pair_dist"]) == 0.0


def test_pair_term_sees_only_local_pairs():
    # Two residues 20 Å apart: moving one further away changes no pair closer than 6 Å.
    trans = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])  # nm
    rots = torch.eye(3).expand(1, 2, 3, 3)
    mask = torch.ones(1, 2, dtype=torch.bool)
    pred = trans.clone()
    pred[0, 1, 0] = 2.5
    out = backbone_losses(pred, rots, trans, rots, torch.tensor([0.9]), mask, late_t=None)
    assert float(out["pair_dist"]) == 0.0 and float(out["bb_atom"]) > 0


def test_total_loss_weights_and_errors():
    terms = {"a": torch.tensor(2.0), "b": torch.tensor(3.0), "c": torch.tensor(float("nan"))}
    assert float(total_loss(terms, {"a": 1.0, "b": 0.5, "c": 0.0})) == 3.5
    with pytest.raises(ConfigError):
        total_loss(terms, {"a": 1.0, "typo": 1.0})
    with pytest.raises(ConfigError):
        total_loss(terms, {"a": 0.0})


def test_clash_term_counts_overlapping_non_adjacent_pairs_only():
    from multiflow.flows.losses import clash_loss

    # CA positions in nm: 0-1-2 a chain with 3.8 Å steps bent so that 0 and 2 sit 2.0 Å apart;
    # residue 3 far away; residue 4 is padding placed on top of residue 0
    ca = torch.tensor([[0.0, 0.0, 0.0], [0.38, 0.0, 0.0], [0.0, 0.20, 0.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.01]])
    mask = torch.tensor([[True, True, True, True, False]])
    t = torch.tensor([0.9])
    got = clash_loss(ca[None], mask, None, t, min_distance=3.5)["clash"]
    # pair (0, 2) only: adjacent pairs (0, 1), (1, 2) are exempt, padding never counts; 4 free residues
    assert math.isclose(float(got), (0.35 - 0.20) ** 2 / 4, rel_tol=1e-5)
    assert float(clash_loss(ca[None], mask, None, torch.tensor([0.5]), late_t=0.75)["clash"]) == 0.0  # early t
    both_fixed = torch.tensor([[True, False, True, False, False]])
    assert float(clash_loss(ca[None], mask, both_fixed, t)["clash"]) == 0.0  # a motif's own pairs are data
    one_fixed = torch.tensor([[True, False, False, False, False]])
    assert math.isclose(float(clash_loss(ca[None], mask, one_fixed, t)["clash"]), (0.35 - 0.20) ** 2 / 3, rel_tol=1e-5)
    # residue 2 moved 2 Å from residue 1 (4.3 Å from residue 0): neighbours in one chain, but a counted
    # pair when residue 1 ends chain 0 and residue 2 starts chain 1
    junction = ca.clone()
    junction[2] = torch.tensor([0.38, 0.20, 0.0])
    chains = torch.tensor([[0, 0, 1, 1, 1]])
    assert float(clash_loss(junction[None], mask, None, t)["clash"]) == 0.0  # one chain: 1-2 adjacent, 0-2 apart enough
    assert math.isclose(float(clash_loss(junction[None], mask, None, t, chain_index=chains)["clash"]),
                        (0.35 - 0.20) ** 2 / 4, rel_tol=1e-5)
    # the gradient pushes the two atoms apart
    x = ca[None].clone().requires_grad_(True)
    clash_loss(x, mask, None, t)["clash"].backward()
    assert x.grad[0, 2, 1] < 0 < x.grad[0, 0, 1]  # residue 2 up (+y), residue 0 down
