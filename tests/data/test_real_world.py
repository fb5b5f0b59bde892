"""Every file in ../shared/data/real_world loads with what a user would expect from it."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from multiflow.constants import CA_IDX
from multiflow.data.io import read_structure
from multiflow.errors import BadStructureError

# file -> {chain id: length}, plus per-file checks below
EXPECTED = {
    "19hc.pdb.gz": {"A": 292, "B": 292},  # heme/acetate ligands and waters dropped; 6 altloc residues per chain
    "1a28.pdb.gz": {"A": 251, "B": 249},  # steroid ligand STR and waters dropped
    "1h4aX.pdb.gz": {"X": 173},  # no element column: elements guessed, nothing lost
    "1osm.pdb.gz": {"A": 185},  # insertion codes 163A..163J and 181A, numbering skips 26->32
    "2xdgA.pdb.gz": {"A": 89},
    "3q4oA.pdb.gz": {"A": 169},
    "4x8u.pdbx": {"H": 7},  # mmCIF with insertion codes
    "nmr_neopetrosiamide.pdb": {"A": 28},  # 24 models, hydrogens, a methionine sulfoxide (SME)
    "unordered_res.pdb": {"X": 35},  # all heavy atoms first, then every residue's hydrogens again
}


def _ca_records(path: Path) -> dict[str, int]:
    """Independent count of alpha carbons (" CA ", not calcium "CA  ") per chain, first altloc only."""
    opener = gzip.open if path.suffix == ".gz" else open
    counts: dict[str, int] = {}
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith("ENDMDL"):
                break
            if line.startswith(("ATOM", "HETATM")) and line[12:16] == " CA " and line[16] in " A":
                counts[line[21]] = counts.get(line[21], 0) + 1
    return counts


def test_every_real_world_file_is_covered(shared_data):
    assert sorted(p.name for p in (shared_data / "real_world").iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_world_file_loads(shared_data, name):
    path = shared_data / "real_world" / name
    chains = read_structure(path)
    assert {c.chain_id: c.length for c in chains} == EXPECTED[name]
    for chain in chains:
        assert chain.backbone_mask.all(), chain.residue_labels()
        assert chain.chain_breaks().tolist() == []
        assert np.isfinite(chain.atom_positions).all()
        assert "X" not in chain.sequence
    if not name.endswith(".pdbx"):  # waters/ligands/hydrogens never become residues
        assert {c.chain_id: c.length for c in chains} == _ca_records(path)


def test_insertion_codes_and_numbering_skips(shared_data):
    chain = read_structure(shared_data / "real_world" / "1osm.pdb.gz")[0]
    labels = chain.residue_labels()
    assert labels[labels.index("A163"):labels.index("A163") + 12] == ["A163"] + [f"A163{c}" for c in "ABCDEFGHIJ"] + ["A164"]
    assert "A181A" in labels and labels[labels.index("A26") + 1] == "A32"


def test_mmcif_with_insertion_codes(shared_data):
    (chain,) = read_structure(shared_data / "real_world" / "4x8u.pdbx")
    assert chain.sequence == "FDKIKNW"
    assert chain.residue_labels() == ["H59", "H60", "H60A", "H60B", "H60C", "H60D", "H61"]
    assert chain.name == "4x8u"


def test_nmr_models(shared_data):
    path = shared_data / "real_world" / "nmr_neopetrosiamide.pdb"
    first, second = read_structure(path)[0], read_structure(path, model=2)[0]
    assert first.sequence == second.sequence == "FFCPFGCALVDCGPNRPCRDTGFMSCDC"  # SME 24 -> M
    assert np.abs(first.atom_positions[:, CA_IDX] - second.atom_positions[:, CA_IDX]).max() > 0.1
    assert first.atom_mask.sum() == second.atom_mask.sum() and first.atom_mask.sum() < 4368  # no hydrogens
    with pytest.raises(BadStructureError, match="24 model"):
        read_structure(path, model=25)


def test_unordered_residues_keep_file_order_without_duplicates(shared_data):
    (chain,) = read_structure(shared_data / "real_world" / "unordered_res.pdb")
    assert chain.residue_index.tolist() == list(range(42, 77))
    assert set(chain.insertion_code.tolist()) == {"A"}
    # 287 heavy atoms in the file; norleucine's CD and CE (x2) have no slot in its parent LEU
    assert int(chain.atom_mask.sum()) == 283
    assert chain.sequence[23] == chain.sequence[28] == "L"  # NLE -> L; HIP -> H
    assert chain.sequence[26] == "H"


def test_altloc_keeps_highest_occupancy(shared_data):
    chain = read_structure(shared_data / "real_world" / "19hc.pdb.gz", chains=["A"])[0]
    ser58 = chain.residue_labels().index("A58")  # CA altloc A (occupancy 0.66) vs B (0.34)
    np.testing.assert_allclose(chain.atom_positions[ser58, CA_IDX], [3.012, -20.305, -6.187], atol=1e-3)


def _manifest(shared_data: Path) -> dict[str, dict[str, str]]:
    with open(shared_data / "structures" / "manifest.tsv", newline="") as handle:
        return {row["chain_id"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.mark.parametrize("chain_name", ["1A12_C", "1A41_A", "1AIS_D"])
def test_training_chain_matches_manifest(shared_data, chain_name):
    row = _manifest(shared_data)[chain_name]
    (chain,) = read_structure(shared_data / "structures" / "train" / f"{chain_name}.pdb.gz")
    assert chain.sequence == row["sequence"]
    assert chain.length == int(row["length"])
    assert chain.residue_index[0] == int(row["start_resnum"])
    assert chain.backbone_mask.all() and chain.chain_breaks().tolist() == []
