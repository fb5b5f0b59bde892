"""ca_overlaps / push_apart: which pairs count, how far atoms move, who stays put."""

import pytest
import torch

from multiflow.geometry import so3
from multiflow.geometry.contacts import ca_overlaps, push_apart

# CA positions in Å: 0-1-2 a chain bent so that 0 and 2 sit 2.0 Å apart; 3 far away; 4 padding on top of 0
CA = torch.tensor([[[0.0, 0.0, 0.0], [3.8, 0.0, 0.0], [0.0, 2.0, 0.0], [30.0, 30.0, 30.0], [0.0, 0.0, 0.1]]])
MASK = torch.tensor([[True, True, True, True, False]])


def test_overlaps_count_real_non_adjacent_pairs_with_a_free_member():
    free = MASK.clone()
    got = ca_overlaps(CA, MASK, free, 3.5)
    want = torch.zeros(1, 5, 5)
    want[0, 0, 2] = want[0, 2, 0] = 1.5  # (0, 1) and (1, 2) are neighbours; 4 is padding
    assert torch.allclose(got, want)
    assert ca_overlaps(CA, MASK, torch.zeros_like(MASK), 3.5).abs().sum() == 0  # nothing free: motif pairs are data
    only_0 = torch.tensor([[True, False, False, False, False]])
    assert torch.allclose(ca_overlaps(CA, MASK, only_0, 3.5), want)  # one free member is enough


def test_push_apart_opens_an_isolated_overlap_exactly():
    free = MASK.clone()
    out = push_apart(CA, MASK, free, 3.5)
    assert torch.dist(out[0, 0], out[0, 2]) == pytest.approx(3.5, abs=1e-5)
    assert torch.allclose((out[0, 0] + out[0, 2]) / 2, (CA[0, 0] + CA[0, 2]) / 2)  # both moved half
    assert torch.equal(out[0, [1, 3, 4]], CA[0, [1, 3, 4]])  # no overlap, or padding: unmoved
    half = push_apart(CA, MASK, free, 3.5, strength=0.5)
    assert torch.dist(half[0, 0], half[0, 2]) == pytest.approx(2.75, abs=1e-5)
    assert torch.equal(push_apart(CA, MASK, free, 3.5, strength=0.0), CA)


def test_a_fixed_atom_stays_and_its_free_partner_moves_the_whole_way():
    free = torch.tensor([[True, True, False, True, False]])  # residue 2 is a motif residue
    out = push_apart(CA, MASK, free, 3.5)
    assert torch.equal(out[0, 2], CA[0, 2])
    assert torch.dist(out[0, 0], out[0, 2]) == pytest.approx(3.5, abs=1e-5)


def test_push_apart_is_equivariant_and_rejects_a_bad_strength():
    g = torch.Generator().manual_seed(0)
    ca = torch.randn(2, 30, 3, generator=g) * 4.0  # a crowded cloud: many overlaps
    mask = torch.ones(2, 30, dtype=torch.bool)
    rot, shift = so3.uniform((1,), generator=g)[0], torch.tensor([5.0, -2.0, 1.0])
    moved = push_apart(ca @ rot.T + shift, mask, mask, 3.5)
    assert torch.allclose(moved, push_apart(ca, mask, mask, 3.5) @ rot.T + shift, atol=1e-4)
    before = ca_overlaps(ca, mask, mask, 3.5).sum()
    assert ca_overlaps(push_apart(ca, mask, mask, 3.5), mask, mask, 3.5).sum() < before
    with pytest.raises(ValueError):
        push_apart(ca, mask, mask, 3.5, strength=1.5)


def test_the_ends_of_two_chains_are_not_sequence_neighbours():
    """Residues 2 and 3 are neighbours in array order but the last of chain A and the first of chain
    B: with chain_index their overlap counts and is opened; without it (one chain) they are exempt."""
    ca = torch.tensor([[[0.0, 0.0, 0.0], [3.8, 0.0, 0.0], [7.6, 0.0, 0.0], [7.6, 2.0, 0.0], [7.6, 5.8, 0.0]]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    chains = torch.tensor([[0, 0, 0, 1, 1]])
    assert ca_overlaps(ca, mask, mask, 3.5).abs().sum() == 0
    got = ca_overlaps(ca, mask, mask, 3.5, chain_index=chains)
    want = torch.zeros(1, 5, 5)
    want[0, 2, 3] = want[0, 3, 2] = 1.5
    assert torch.allclose(got, want)
    out = push_apart(ca, mask, mask, 3.5, chain_index=chains)
    assert torch.dist(out[0, 2], out[0, 3]) == pytest.approx(3.5, abs=1e-5)
    assert torch.equal(push_apart(ca, mask, mask, 3.5), ca)
