"""Per-chain features: fields, frames that rebuild N/CA/C, masks, secondary structure, summary numbers."""

from __future__ import annotations

import io
from pathlib import Path

import biotite.structure as struc
import numpy as np
import pytest

from multiflow.constants import C_IDX, CA_IDX, N_IDX
from multiflow.data.batch import ChainExample
from multiflow.data.chain import ProteinChain
from multiflow.data.features import (
    FEATURE_KEYS, SS_COIL, SS_HELIX, SS_STRAND, chain_to_features, missing_residue_count, summarize,
)
from multiflow.data.io import read_structure

FIXTURES = Path(__file__).resolve().parents[1] / "data_pipelines" / "fixtures"


@pytest.fixture(scope="module")
def helix() -> ProteinChain:  # 1JEK chain A: 40 residues, DSSP 95% helix
    return read_structure(FIXTURES / "1JEK_A.pdb.gz")[0]


@pytest.fixture(scope="module")
def strand() -> ProteinChain:  # 4YU8 chain A: 40 residues, DSSP 70% strand
    return read_structure(FIXTURES / "4YU8_A.pdb.gz")[0]


def drop_atoms(chain: ProteinChain, positions: list[int], slots: list[int]) -> ProteinChain:
    mask = chain.atom_mask.copy()
    mask[np.ix_(positions, slots)] = False
    return ProteinChain(chain.aatype, chain.atom_positions, mask, chain.residue_index, chain.insertion_code,
                        chain.b_factors, chain_id=chain.chain_id, name=chain.name)


def test_fields_shapes_and_dtypes(helix):
    f = chain_to_features(helix)
    n = helix.length
    assert tuple(f) == FEATURE_KEYS
    expected = {
        "aatype": ((n,), np.int64), "trans": ((n, 3), np.float32), "rots": ((n, 3, 3), np.float32),
        "res_mask": ((n,), np.bool_), "residue_index": ((n,), np.int64), "chain_index": ((n,), np.int64),
        "backbone": ((n, 4, 3), np.float32), "backbone_mask": ((n, 4), np.bool_), "ss": ((n,), np.uint8),
        "radius_of_gyration": ((), np.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert f[key].shape == shape and f[key].dtype == dtype, key
    np.testing.assert_array_equal(f["aatype"], helix.aatype)
    np.testing.assert_array_equal(f["residue_index"], helix.residue_index)
    assert not f["chain_index"].any() and f["res_mask"].all()


def test_frames_rebuild_backbone(strand):
    f = chain_to_features(strand)
    rots, trans = f["rots"].astype(np.float64), f["trans"].astype(np.float64)
    np.testing.assert_allclose(trans, strand.atom_positions[:, CA_IDX])
    np.testing.assert_allclose(rots.transpose(0, 2, 1) @ rots, np.broadcast_to(np.eye(3), rots.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(rots), 1.0, atol=1e-5)
    local = np.einsum("nji,naj->nai", rots, f["backbone"][:, :3] - trans[:, None])  # R^T (x - t), [N, 3, 3]
    n_local, ca_local, c_local = local[:, 0], local[:, 1], local[:, 2]
    np.testing.assert_allclose(ca_local, 0.0, atol=1e-4)
    np.testing.assert_allclose(c_local[:, 1:], 0.0, atol=1e-4)  # C on +x
    assert (c_local[:, 0] > 1.3).all()
    np.testing.assert_allclose(n_local[:, 2], 0.0, atol=1e-4)  # N in the xy-plane, y > 0
    assert (n_local[:, 1] > 1.0).all()
    rebuilt = np.einsum("nij,naj->nai", rots, local) + trans[:, None]
    np.testing.assert_allclose(rebuilt, strand.atom_positions[:, [N_IDX, CA_IDX, C_IDX]], atol=1e-3)


def test_residues_without_backbone_get_identity_and_mask(helix):
    broken = drop_atoms(helix, [0, 5], [N_IDX])
    f = chain_to_features(broken)
    assert f["res_mask"].tolist() == [i not in (0, 5) for i in range(helix.length)]
    np.testing.assert_array_equal(f["rots"][[0, 5]], np.broadcast_to(np.eye(3), (2, 3, 3)))
    assert not f["backbone_mask"][0, 0] and f["backbone_mask"][0, 1:].all()
    np.testing.assert_allclose(f["rots"][1:5], chain_to_features(helix)["rots"][1:5])
    ca_only = drop_atoms(helix, list(range(helix.length)), [N_IDX, C_IDX])
    f = chain_to_features(ca_only)
    assert not f["res_mask"].any() and (f["rots"] == np.eye(3)).all()
    assert f["ss"].dtype == np.uint8  # P-SEA still runs on the CA trace


def test_secondary_structure_and_summary(helix, strand):
    s_helix = summarize(helix, chain_to_features(helix))
    s_strand = summarize(strand, chain_to_features(strand))
    assert s_helix["helix_frac"] > 0.7 and s_helix["strand_frac"] < 0.1
    assert s_strand["strand_frac"] > 0.3 and s_strand["helix_frac"] < 0.2
    for s in (s_helix, s_strand):
        assert s["helix_frac"] + s["strand_frac"] + s["coil_frac"] == pytest.approx(1.0)
        assert s["length"] == 40 and s["missing_frac"] == 0.0
    codes = chain_to_features(helix)["ss"]
    assert set(codes.tolist()) <= {SS_HELIX, SS_STRAND, SS_COIL}


def test_radius_of_gyration_matches_biotite(strand):
    f = chain_to_features(strand)
    atoms = struc.AtomArray(strand.length)
    atoms.coord = strand.atom_positions[:, CA_IDX]
    atoms.res_name[:], atoms.atom_name[:], atoms.element[:] = "ALA", "CA", "C"  # equal masses: unweighted
    assert float(f["radius_of_gyration"]) == pytest.approx(float(struc.gyration_radius(atoms)), rel=1e-5)


def test_missing_fraction_counts_absent_backbone_and_numbering_gaps(helix):
    # residues 11..15 removed, author numbers kept: the chain breaks there and 5 numbers are absent
    gap = helix.select(np.r_[0:10, 15:40])
    assert missing_residue_count(gap) == (0, 5)
    # the same cut renumbered consecutively: a geometric break without a numbering gap counts nothing
    renumbered = ProteinChain(gap.aatype, gap.atom_positions, gap.atom_mask, np.arange(1, 36), gap.insertion_code,
                              gap.b_factors)
    assert missing_residue_count(renumbered) == (0, 0)
    # a numbering skip across a bonded peptide (antibody-style numbering) is not missing
    skip = ProteinChain(helix.aatype, helix.atom_positions, helix.atom_mask,
                        np.r_[np.arange(1, 11), np.arange(20, 50)], helix.insertion_code, helix.b_factors)
    assert missing_residue_count(skip) == (0, 0)
    lacking = drop_atoms(gap, [3], [C_IDX])
    s = summarize(lacking, chain_to_features(lacking))
    assert s["missing_frac"] == pytest.approx((1 + 5) / (35 + 5))


def test_features_load_as_chain_example(helix):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **chain_to_features(helix))
    buffer.seek(0)
    with np.load(buffer) as data:
        assert set(data.files) == set(FEATURE_KEYS)
        example = ChainExample.from_npz(dict(data), name="1JEK_A_A")
    assert example.length == helix.length and example.res_mask.all()
