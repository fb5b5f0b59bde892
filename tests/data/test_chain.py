"""ProteinChain: validation on construction, derived properties, chain breaks, constructors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from multiflow.constants import CA_IDX, CB_IDX, N_IDX, NUM_ATOMS, O_IDX, UNK_TOKEN
from multiflow.data.chain import ProteinChain
from multiflow.errors import BadSequenceError, BadStructureError


def zigzag_backbone(n: int) -> np.ndarray:
    """[n, 4, 3] N, CA, C, O along x: CA-CA 3.8 Å, C(i)-N(i+1) 1.7 Å (bonded by our thresholds)."""
    ca = np.stack([3.8 * np.arange(n), np.zeros(n), np.zeros(n)], -1)
    offsets = np.array([[-1.0, 0.9, 0.0], [0.0, 0.0, 0.0], [1.1, 0.9, 0.0], [1.1, 2.1, 0.0]])
    return (ca[:, None, :] + offsets[None]).astype(np.float32)


def make_chain(n: int = 5, **kwargs) -> ProteinChain:
    return ProteinChain.from_backbone(zigzag_backbone(n), sequence="ACDEFGHIKL"[:n], **kwargs)


def test_from_backbone_four_and_three_atoms():
    chain = make_chain(5)
    assert chain.sequence == "ACDEF" and chain.length == len(chain) == 5
    assert chain.residue_index.tolist() == [1, 2, 3, 4, 5]
    assert chain.insertion_code.tolist() == [""] * 5
    assert chain.atom_mask[:, [N_IDX, CA_IDX, O_IDX]].all() and not chain.atom_mask[:, CB_IDX].any()
    positions, mask = chain.backbone()
    np.testing.assert_allclose(positions, zigzag_backbone(5))
    assert mask.all() and positions.shape == (5, 4, 3)

    three = ProteinChain.from_backbone(torch.from_numpy(zigzag_backbone(4)[:, :3]), aatype=torch.tensor([0, 1, 2, 3]))
    assert three.sequence == "ARND"
    assert not three.atom_mask[:, O_IDX].any() and three.backbone_mask.all()
    assert ProteinChain.from_backbone(zigzag_backbone(3)).sequence == "XXX"


def test_from_backbone_rejects_inconsistent_input():
    with pytest.raises(BadStructureError, match=r"\[N, 4, 3\]"):
        ProteinChain.from_backbone(np.zeros((5, 5, 3)))
    with pytest.raises(BadStructureError, match="5 residues"):
        ProteinChain.from_backbone(zigzag_backbone(5), sequence="ACD")
    with pytest.raises(ValueError, match="not both"):
        ProteinChain.from_backbone(zigzag_backbone(3), aatype=np.zeros(3, int), sequence="AAA")
    with pytest.raises(BadSequenceError, match="'B'"):
        ProteinChain.from_backbone(zigzag_backbone(3), sequence="ABA")


def test_from_backbone_mask_and_b_factors():
    bb = zigzag_backbone(4)
    bb[2] = np.nan  # a residue whose coordinates are not real is masked, so NaN is allowed there
    chain = ProteinChain.from_backbone(bb, mask=np.array([1, 1, 0, 1], bool), b_factors=[90.0, 80.0, 0.0, 70.0])
    assert chain.backbone_mask.tolist() == [True, True, False, True]
    assert chain.missing_backbone.tolist() == [2]
    assert np.isfinite(chain.atom_positions).all()  # absent atoms are zeroed
    assert chain.b_factors[0, CA_IDX] == pytest.approx(90.0)


def _fields(chain: ProteinChain, **changes) -> dict:
    out = {f.name: getattr(chain, f.name) for f in dataclasses.fields(chain) if f.init}
    out.update(changes)
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: {"aatype": c.aatype[:0], "atom_positions": c.atom_positions[:0], "atom_mask": c.atom_mask[:0],
                    "residue_index": c.residue_index[:0], "insertion_code": c.insertion_code[:0],
                    "b_factors": c.b_factors[:0]}, "N >= 1"),
        (lambda c: {"aatype": np.array([0, 1, 2, 3, 21])}, r"0\.\.20"),
        (lambda c: {"aatype": np.zeros(5)}, "integers"),
        (lambda c: {"atom_mask": c.atom_mask[:4]}, r"atom_mask of shape \[5, 37\]"),
        (lambda c: {"atom_positions": np.zeros((5, 14, 3))}, r"atom_positions of shape \[5, 37, 3\]"),
        (lambda c: {"residue_index": np.arange(6)}, "residue_index"),
        (lambda c: {"chain_id": ""}, "chain_id"),
    ],
)
def test_construction_is_validated(change, message):
    chain = make_chain(5)
    with pytest.raises(BadStructureError, match=message):
        ProteinChain(**_fields(chain, **change(chain)))


def test_nan_in_present_atom_is_named():
    chain = make_chain(5)
    pos = chain.atom_positions.copy()
    pos[3, CA_IDX, 1] = np.inf
    with pytest.raises(BadStructureError, match="position 3 .atom CA."):
        ProteinChain(**_fields(chain, atom_positions=pos))


def test_chain_is_immutable_and_owns_its_arrays():
    aatype = np.array([0, 1, 2])
    chain = ProteinChain.from_backbone(zigzag_backbone(3), aatype=aatype)
    with pytest.raises(dataclasses.FrozenInstanceError):
        chain.chain_id = "B"
    with pytest.raises(ValueError):
        chain.atom_positions[0, 0, 0] = 1.0
    aatype[0] = 5  # the caller's array stays writable and changes do not leak in
    assert chain.sequence == "ARN"
    assert "length=3" in repr(chain) and "ARN" in repr(chain)


def test_residue_labels_and_select():
    chain = make_chain(4, chain_id="B", residue_index=np.array([41, 42, 42, 43]))
    chain = ProteinChain(**_fields(chain, insertion_code=np.array(["", "", "C", ""])))
    assert chain.residue_labels() == ["B41", "B42", "B42C", "B43"]
    sub = chain.select(np.array([False, True, True, False]))
    assert sub.residue_labels() == ["B42", "B42C"] and sub.sequence == "CD"
    assert chain.select([3, 0]).sequence == "EA"
    with pytest.raises(BadStructureError, match="0 residues"):
        chain.select(np.zeros(4, bool))
    with pytest.raises(ValueError, match="shape"):
        chain.select(np.ones(3, bool))
    assert chain.with_chain_id("Z").residue_labels()[0] == "Z41"


def test_no_breaks_in_a_bonded_chain_even_with_numbering_skips():
    # Numbering skips with bonded atoms (antibody schemes, 1OSM 26 -> 32) are not breaks.
    chain = make_chain(5, residue_index=np.array([1, 2, 10, 11, 12]))
    assert chain.chain_breaks().tolist() == []


def test_geometric_breaks():
    bb = zigzag_backbone(6)
    bb[3:] += np.array([5.0, 0.0, 0.0], np.float32)  # pull residues 3.. away from 2
    chain = ProteinChain.from_backbone(bb)
    assert chain.chain_breaks().tolist() == [2]


def test_breaks_fall_back_to_ca_then_numbering():
    chain = make_chain(5, residue_index=np.array([1, 2, 3, 7, 8]))
    mask = chain.atom_mask.copy()
    mask[1, 2] = False  # C of residue 1 missing: CA-CA (3.8 Å) decides, bonded
    mask[2, :] = False  # residue 2 has no atoms: numbering decides (2 -> 3 bonded, 3 -> 7 break)
    chain = ProteinChain(**_fields(chain, atom_mask=mask))
    assert chain.chain_breaks().tolist() == [2]
    assert chain.missing_backbone.tolist() == [1, 2]


def test_insertion_codes_continue_numbering_when_geometry_is_missing():
    chain = make_chain(3, residue_index=np.array([60, 60, 61]))
    chain = ProteinChain(**_fields(chain, insertion_code=np.array(["", "A", ""]),
                                   atom_mask=np.zeros((3, NUM_ATOMS), bool)))
    assert chain.chain_breaks().tolist() == []


def test_single_residue_chain_has_no_breaks():
    assert make_chain(1).chain_breaks().tolist() == []


def test_unknown_residue_token():
    chain = ProteinChain.from_backbone(zigzag_backbone(2), sequence="AX")
    assert chain.aatype.tolist() == [0, UNK_TOKEN]


def test_writers_round_trip(tmp_path):
    chain = make_chain(5, chain_id="C", b_factors=np.linspace(10, 50, 5))
    text = chain.to_pdb_string()
    assert text.startswith("ATOM") and text.rstrip().endswith("END")
    for path in (chain.to_pdb(tmp_path / "c.pdb"), chain.to_mmcif(tmp_path / "c.cif")):
        back = ProteinChain.from_file(path)
        assert back.sequence == chain.sequence and back.chain_id == "C"
        np.testing.assert_allclose(back.atom_positions, chain.atom_positions, atol=1e-3)
        np.testing.assert_array_equal(back.atom_mask, chain.atom_mask)
        np.testing.assert_allclose(back.b_factors, chain.b_factors, atol=1e-2)
