"""Structure and FASTA I/O: messy input, format sniffing, round trips, bad input, atomic writes."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from multiflow.constants import ATOM_ORDER, CB_IDX
from multiflow.data import atom_array
from multiflow.data.chain import ProteinChain
from multiflow.data.io import (
    atom_array_to_chains, chain_to_atom_array, read_fasta, read_structure, write_fasta, write_mmcif, write_pdb,
    write_trajectory_pdb,
)
from multiflow.errors import BadSequenceError, BadStructureError, UnknownChainError

# --- building small PDB texts for fixtures (fixed-column ATOM lines) ------------------------------------
BACKBONE_OFFSETS = {"N": (-1.0, 0.9, 0.0), "CA": (0.0, 0.0, 0.0), "C": (1.1, 0.9, 0.0), "O": (1.1, 2.1, 0.0)}


def atom_line(serial, name, res_name, chain, res_id, xyz, icode="", altloc="", hetero=False, occ=1.0, b=20.0,
              element=None):
    element = element or name[0]
    padded = name if len(name) == 4 else f" {name:<3}"
    record = "HETATM" if hetero else "ATOM"
    return (f"{record:<6}{serial:>5} {padded}{altloc:1}{res_name:>3} {chain:1}{res_id:>4}{icode:1}   "
            f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{occ:6.2f}{b:6.2f}          {element:>2}")


def residue_lines(i, res_name, chain, res_id, names=("N", "CA", "C", "O"), icode="", hetero=False, extra=()):
    """Backbone atoms (subset ``names``) of residue ``i`` on a bonded zigzag, plus extra atom lines."""
    ca = np.array([3.8 * i, 0.0, 0.0])
    lines = [atom_line(0, n, res_name, chain, res_id, ca + BACKBONE_OFFSETS[n], icode=icode, hetero=hetero)
             for n in names]
    for name, offset, kwargs in extra:
        lines.append(atom_line(0, name, res_name, chain, res_id, ca + np.asarray(offset), icode=icode,
                               hetero=kwargs.pop("hetero", hetero), **kwargs))
    return lines


def messy_pdb_text() -> str:
    """One chain with everything real files do, plus a water-only chain W."""
    lines = []
    lines += residue_lines(0, "GLY", "A", 1, extra=[("H", (-1.5, 1.5, 0), {"element": "H"}),
                                                    ("D2", (0.0, -1.0, 0), {"element": "D"})])
    lines += residue_lines(1, "MSE", "A", 2, hetero=True, extra=[("CB", (0, -1.5, 0), {}), ("CG", (0, -3, 0), {}),
                                                                 ("SE", (0, -4.5, 0), {"element": "SE"}),
                                                                 ("CE", (0, -6, 0), {})])
    lines += residue_lines(2, "ALA", "A", 3, extra=[("CB", (0, -1.5, 0.0), {"altloc": "A", "occ": 0.3}),
                                                    ("CB", (0, -1.5, 0.7), {"altloc": "B", "occ": 0.7})])
    lines += residue_lines(3, "SER", "A", 3, icode="A", extra=[("CB", (0, -1.5, 0), {}), ("OG", (0, -3, 0), {})])
    lines += residue_lines(4, "XYZ", "A", 4, extra=[("CB", (0, -1.5, 0), {})])
    lines += residue_lines(5, "LYS", "A", 5, names=("N", "C", "O"), extra=[("CB", (0, -1.5, 0), {})])
    lines += residue_lines(6, "NLE", "A", 6, hetero=True, extra=[("CB", (0, -1.5, 0), {}), ("CG", (0, -3, 0), {}),
                                                                 ("CD", (0, -4.5, 0), {}), ("CE", (0, -6, 0), {})])
    lines.append("TER")
    lines.append(atom_line(0, "O", "HOH", "A", 101, (10, 10, 10), hetero=True))
    lines.append(atom_line(0, "C", "ACT", "A", 102, (12, 10, 10), hetero=True))
    lines.append(atom_line(0, "CA", "CA", "A", 103, (14, 10, 10), hetero=True, element="CA"))
    lines += residue_lines(30, "TYR", "A", 900, hetero=True)  # a free amino acid ligand, far from the chain
    lines.append(atom_line(0, "O", "HOH", "W", 1, (20, 10, 10), hetero=True))
    return "\n".join(lines) + "\nEND\n"


@pytest.fixture
def messy_pdb(tmp_path) -> Path:
    path = tmp_path / "messy.pdb"
    path.write_text(messy_pdb_text())
    return path


# --- what gets kept -------------------------------------------------------------------------------------
def test_messy_file_keeps_exactly_the_protein(messy_pdb, caplog):
    with caplog.at_level(logging.WARNING, logger="multiflow.data.io"):
        chains = read_structure(messy_pdb)
    assert [c.chain_id for c in chains] == ["A"]  # water-only chain W is not a protein chain
    chain = chains[0]
    assert chain.name == "messy"
    assert chain.sequence == "GMASXKL"  # MSE -> M, unknown XYZ -> X, NLE -> L; ligands, water, free TYR dropped
    assert chain.residue_labels() == ["A1", "A2", "A3", "A3A", "A4", "A5", "A6"]
    assert chain.missing_backbone.tolist() == [5] and "A5" in caplog.text  # kept, masked, reported
    assert chain.atom_mask[1, ATOM_ORDER["SD"]]  # selenium sits in MET's SD slot
    assert not chain.atom_mask[6, ATOM_ORDER["CE"]]  # norleucine's CE has no place in LEU
    assert chain.atom_positions[2, CB_IDX, 2] == pytest.approx(0.7)  # altloc B has the higher occupancy
    assert chain.atom_mask[0].sum() == 4  # hydrogen and deuterium dropped
    assert chain.chain_breaks().tolist() == []


def test_chain_selection_and_errors(messy_pdb):
    assert [c.chain_id for c in read_structure(messy_pdb, chains="A")] == ["A"]
    with pytest.raises(UnknownChainError, match=r"chain 'Q' not found .* protein chains present: A"):
        read_structure(messy_pdb, chains=["Q"])
    with pytest.raises(BadStructureError, match="chain 'W' .* 0 amino-acid residues"):
        read_structure(messy_pdb, chains=["W"])


def test_residue_order_is_file_order(tmp_path):
    lines = residue_lines(0, "ALA", "A", 10) + residue_lines(1, "GLY", "A", 11)
    lines += residue_lines(5, "SER", "A", 5) + residue_lines(6, "VAL", "A", 6)  # jumps back and away in space
    (tmp_path / "order.pdb").write_text("\n".join(lines) + "\n")
    chain = read_structure(tmp_path / "order.pdb")[0]
    assert chain.residue_index.tolist() == [10, 11, 5, 6] and chain.sequence == "AGSV"
    assert chain.chain_breaks().tolist() == [1]


def test_multiple_chains_order_follows_request(tmp_path):
    lines = residue_lines(0, "ALA", "A", 1) + residue_lines(5, "GLY", "B", 1)
    (tmp_path / "ab.pdb").write_text("\n".join(lines) + "\n")
    assert [c.chain_id for c in read_structure(tmp_path / "ab.pdb", chains="B,A")] == ["B", "A"]
    with pytest.raises(BadStructureError, match=r"2 protein chains \(A, B\); pass chain="):
        ProteinChain.from_file(tmp_path / "ab.pdb")
    assert ProteinChain.from_file(tmp_path / "ab.pdb", chain="B").sequence == "G"


def test_blank_chain_id_gets_a_free_letter(tmp_path, caplog):
    lines = residue_lines(0, "ALA", "A", 1) + residue_lines(5, "GLY", " ", 1)
    (tmp_path / "blank.pdb").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="multiflow.data.io"):
        assert [c.chain_id for c in read_structure(tmp_path / "blank.pdb")] == ["A", "B"]
    assert "without a chain id are read as chain B" in caplog.text


def test_repeated_residue_keeps_first_copy_and_says_so(tmp_path, caplog):
    first = residue_lines(0, "ALA", "A", 1)
    second = [line[:30] + f"{float(line[30:38]) + 50:8.3f}" + line[38:] for line in first]
    (tmp_path / "twice.pdb").write_text("\n".join(first + ["TER"] + second) + "\n")
    with caplog.at_level(logging.WARNING, logger="multiflow.data.io"):
        (chain,) = read_structure(tmp_path / "twice.pdb")
    assert chain.length == 1 and chain.atom_positions[0, 1, 0] == pytest.approx(0.0)
    assert "listed twice in residue(s) A1" in caplog.text


@pytest.mark.slow
def test_side_chain_table_matches_the_ccd():
    import biotite.structure.info as info

    from multiflow.constants import RESTYPE_1TO3

    for letter, side_chain in atom_array._SIDE_CHAINS.items():
        names = {str(a) for a in info.residue(RESTYPE_1TO3[letter]).atom_name if a in ATOM_ORDER}
        assert names - {"N", "CA", "C", "O", "OXT"} == set(side_chain), letter


# --- format detection ---------------------------------------------------------------------------------
def test_content_wins_over_suffix(tmp_path, messy_pdb):
    text = messy_pdb.read_text()
    (tmp_path / "looks_like.cif").write_text(text)
    (tmp_path / "no_suffix").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "plain.pdb.gz").write_text(text)
    for name in ("looks_like.cif", "no_suffix", "plain.pdb.gz"):
        assert read_structure(tmp_path / name)[0].sequence == "GMASXKL"


# --- bad input --------------------------------------------------------------------------------------------
def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pdb"):
        read_structure(tmp_path / "nope.pdb")
    with pytest.raises(BadStructureError, match="is a directory"):
        read_structure(tmp_path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.pdb", b"", "is empty"),
        ("blank.cif", b"\n  \n", "is empty"),
        ("junk.pdb", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "binary data"),
        ("latin.pdb", bytes(range(128, 256)) * 8, "neither PDB records"),
        ("seq.pdb", b">seq1\nMKTAYIAK\n", "neither PDB records"),
        ("header_only.pdb", b"HEADER    NOTHING HERE\nEND\n", "no atom records"),
        ("waters.pdb", ("\n".join(atom_line(i, "O", "HOH", "A", i, (i, 0, 0), hetero=True) for i in range(1, 4))
                        + "\n").encode(), "no amino-acid residues .only HOH"),
        ("bad_number.pdb", (atom_line(1, "CA", "ALA", "A", 1, (0, 0, 0)).replace("   0.000", "   xx.yy", 1)
                            + "\n").encode(), "cannot parse as PDB"),
    ],
)
def test_bad_files_raise_specific_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadStructureError, match=message):
        read_structure(path)


def test_truncated_gzip(tmp_path, messy_pdb):
    data = gzip.compress(messy_pdb.read_bytes())
    (tmp_path / "cut.pdb.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadStructureError, match="gzip data is truncated or corrupt"):
        read_structure(tmp_path / "cut.pdb.gz")


def test_truncated_mmcif(tmp_path, shared_data):
    text = (shared_data / "real_world" / "4x8u.pdbx").read_text()
    (tmp_path / "cut.cif").write_text(text[: len(text) // 2])
    with pytest.raises(BadStructureError, match="cannot parse as CIF"):
        read_structure(tmp_path / "cut.cif")


def test_nan_coordinates_name_the_residue(tmp_path):
    lines = residue_lines(0, "ALA", "A", 1) + residue_lines(1, "GLY", "A", 2)
    lines[5] = lines[5][:30] + "     nan" + lines[5][38:]
    (tmp_path / "nan.pdb").write_text("\n".join(lines) + "\n")
    with pytest.raises(BadStructureError, match="NaN/inf coordinates in chain A at residue.s. A2"):
        read_structure(tmp_path / "nan.pdb")


def test_model_out_of_range(messy_pdb):
    with pytest.raises(BadStructureError, match="1 model.s.; model 3 was requested"):
        read_structure(messy_pdb, model=3)
    with pytest.raises(BadStructureError, match="positive"):
        read_structure(messy_pdb, model=0)


# --- round trips ----------------------------------------------------------------------------------------
def assert_same_chains(a: list[ProteinChain], b: list[ProteinChain]) -> None:
    assert [c.chain_id for c in a] == [c.chain_id for c in b]
    for x, y in zip(a, b):
        assert x.sequence == y.sequence
        assert x.residue_labels() == y.residue_labels()
        np.testing.assert_array_equal(x.atom_mask, y.atom_mask)
        np.testing.assert_allclose(x.atom_positions, y.atom_positions, atol=1e-3)
        np.testing.assert_allclose(x.b_factors, y.b_factors, atol=1e-2)


@pytest.mark.parametrize("source", ["1osm.pdb.gz", "4x8u.pdbx", "1a28.pdb.gz"])
@pytest.mark.parametrize("writer, suffix", [(write_pdb, ".pdb"), (write_mmcif, ".cif"), (write_pdb, ".pdb.gz"),
                                            (write_mmcif, ".cif.gz")])
def test_read_write_read(tmp_path, shared_data, source, writer, suffix):
    chains = read_structure(shared_data / "real_world" / source)
    out = writer(chains, tmp_path / f"out{suffix}")
    assert_same_chains(chains, read_structure(out))


def test_atom_array_round_trip(messy_pdb):
    chain = read_structure(messy_pdb)[0]
    atoms = chain_to_atom_array(chain)
    assert atoms.array_length() == int(chain.atom_mask.sum())
    assert list(atoms.atom_name[:4]) == ["N", "CA", "C", "O"]
    assert_same_chains([chain], atom_array_to_chains(atoms, name="messy"))


def test_writers_check_format_limits(tmp_path):
    chain = ProteinChain.from_backbone(np.stack([np.array(list(BACKBONE_OFFSETS.values()))] * 1), sequence="A")
    with pytest.raises(BadStructureError, match="1-character chain ids.*mmCIF"):
        write_pdb([chain.with_chain_id("AB")], tmp_path / "x.pdb")
    assert read_structure(write_mmcif([chain.with_chain_id("AB")], tmp_path / "x.cif"))[0].chain_id == "AB"
    with pytest.raises(BadStructureError, match="unique"):
        write_pdb([chain, chain], tmp_path / "x.pdb")
    with pytest.raises(BadStructureError, match="at least one"):
        write_pdb([], tmp_path / "x.pdb")


def test_trajectory(tmp_path, messy_pdb):
    chain = read_structure(messy_pdb)[0]
    moved = ProteinChain(chain.aatype, chain.atom_positions + 1.0, chain.atom_mask, chain.residue_index,
                         chain.insertion_code, chain.b_factors, chain_id="A", name="t")
    path = write_trajectory_pdb([[chain], [moved], chain_to_atom_array(moved), moved], tmp_path / "traj.pdb")
    assert path.read_text().count("ENDMDL") == 4
    np.testing.assert_allclose(read_structure(path, model=2)[0].atom_positions, moved.atom_positions, atol=1e-3)
    with pytest.raises(BadStructureError, match="frame 2 holds different atoms"):
        write_trajectory_pdb([chain, chain.select([0, 1])], tmp_path / "bad.pdb")


def test_writes_are_atomic(tmp_path, messy_pdb, monkeypatch):
    chain = read_structure(messy_pdb)[0]
    target = write_pdb([chain], tmp_path / "keep.pdb")
    before = target.read_text()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)  # every module sees the failing replace
    with pytest.raises(OSError, match="disk full"):
        write_pdb([chain.select([0])], target)
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.pdb", "messy.pdb"]  # no temp file left
    monkeypatch.undo()
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)  # not the private mode of a temp file
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        write_pdb([chain], tmp_path / "no_such_dir" / "x.pdb")


# --- FASTA --------------------------------------------------------------------------------------------------
def test_fasta_round_trip(tmp_path):
    records = [("design_0, id=1, T=0.1, seed=7", "MKTAYIAK/GSHMLE"), ("second", "ACDEFGHIKLMNPQRSTVWYX" * 5)]
    for name, width in (("a.fasta", 0), ("b.fa.gz", 60)):
        assert read_fasta(write_fasta(records, tmp_path / name, line_width=width)) == records


def test_fasta_tolerates_layout(tmp_path):
    (tmp_path / "x.fasta").write_text("\n>one first\nMKT\n\nAYI AK\n;comment\n>two\nGS/HM\n\n")
    assert read_fasta(tmp_path / "x.fasta") == [("one first", "MKTAYIAK"), ("two", "GS/HM")]


def test_fasta_from_chains(tmp_path, messy_pdb):
    chain = read_structure(messy_pdb)[0]
    assert read_fasta(write_fasta([chain], tmp_path / "c.fa")) == [("messy_A", "GMASXKL")]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "no FASTA records"), (b"MKT\n>x\nAA\n", "sequence before the first"), (b">a\n\n>b\nMK\n", "empty sequence"),
     (b"\x00\x01\x02", "binary")],
)
def test_fasta_errors(tmp_path, content, message):
    (tmp_path / "bad.fa").write_bytes(content)
    with pytest.raises(BadSequenceError, match=message):
        read_fasta(tmp_path / "bad.fa")


def test_fasta_truncated_gzip_and_bad_records(tmp_path):
    data = gzip.compress(b">a\n" + b"MKT" * 1000 + b"\n")
    (tmp_path / "cut.fa.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadSequenceError, match="truncated"):
        read_fasta(tmp_path / "cut.fa.gz")
    with pytest.raises(FileNotFoundError):
        read_fasta(tmp_path / "missing.fa")
    with pytest.raises(BadSequenceError, match="one line"):
        write_fasta([("a\nb", "MK")], tmp_path / "x.fa")
    with pytest.raises(BadSequenceError, match="empty sequence"):
        write_fasta([("a", "")], tmp_path / "x.fa")
