"""AtomArray -> ProteinChain corner cases the vectorised residue grouping must keep, and the io/fasta split."""

from __future__ import annotations

import logging

import pytest

from multiflow.constants import ATOM_ORDER, CB_IDX
from multiflow.data import fasta
from multiflow.data import io as mio
from multiflow.data.io import atom_array_to_chains, read_structure
from multiflow.errors import BadStructureError
from tests.data.test_io import atom_line, residue_lines


def _write(tmp_path, lines, name="x.pdb"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\nEND\n")
    return path


def test_hydrogens_only_file_says_so(tmp_path):
    lines = [atom_line(i, f"H{i}", "ALA", "A", 1, (float(i), 0.0, 0.0), element="H") for i in range(1, 4)]
    with pytest.raises(BadStructureError, match=r"amino-acid residues \(only 3 hydrogen atom\(s\), no heavy atoms\)"):
        read_structure(_write(tmp_path, lines))
    atoms = mio._parse(_write(tmp_path, lines).read_text(), "pdb", 1, tmp_path / "x.pdb")
    with pytest.raises(BadStructureError, match=r"\(no atoms\)"):
        atom_array_to_chains(atoms[:0])
    lines = [atom_line(1, "O", "HOH", "A", 1, (0.0, 0.0, 0.0), hetero=True)]
    with pytest.raises(BadStructureError, match=r"\(only HOH\)"):
        read_structure(_write(tmp_path, lines))


def test_split_residue_is_gathered_under_its_first_appearance(tmp_path):
    first = residue_lines(0, "ALA", "A", 1, extra=[("CB", (0, -1.5, 0), {})])
    lines = first[:2] + residue_lines(1, "GLY", "A", 2) + first[2:]  # C, O and CB of residue 1 come last
    (chain,) = read_structure(_write(tmp_path, lines))
    assert chain.residue_index.tolist() == [1, 2] and chain.sequence == "AG"
    assert chain.atom_mask[0].sum() == 5 and chain.atom_mask[0, CB_IDX]


def test_two_names_under_one_residue_keep_the_first(tmp_path, caplog):
    lines = residue_lines(0, "ALA", "A", 1) + residue_lines(1, "CYS", "A", 2, extra=[("CB", (0, -1.5, 0), {})])
    lines += residue_lines(1, "SER", "A", 2, names=("N",), extra=[("OG", (0, -3, 0), {}), ("CB", (0, -9, 0), {})])
    with caplog.at_level(logging.WARNING, logger="multiflow.data.io"):
        (chain,) = read_structure(_write(tmp_path, lines))
    assert chain.sequence == "AC" and "residue 2 has several names" in caplog.text
    assert not chain.atom_mask[1, ATOM_ORDER["OG"]]  # SER atoms are not CYS atoms
    assert chain.atom_positions[1, CB_IDX, 1] == pytest.approx(-1.5)  # CYS's CB, not SER's


def test_hetero_amino_acids_alone_are_the_chain(tmp_path):
    lines = residue_lines(0, "MSE", "A", 1, hetero=True) + residue_lines(1, "MSE", "A", 2, hetero=True)
    lines += residue_lines(9, "NLE", "A", 3, hetero=True)  # not bonded, but there is no standard residue
    (chain,) = read_structure(_write(tmp_path, lines))
    assert chain.sequence == "MML"


def test_free_and_bonded_hetero_amino_acids(tmp_path, caplog):
    lines = residue_lines(0, "MSE", "A", 1, hetero=True) + residue_lines(1, "ALA", "A", 2)
    lines += residue_lines(2, "MSE", "A", 3, hetero=True) + residue_lines(7, "TYR", "A", 4, hetero=True)
    with caplog.at_level(logging.INFO, logger="multiflow.data.io"):
        (chain,) = read_structure(_write(tmp_path, lines))
    assert chain.sequence == "MAM" and "dropping free hetero amino acid TYR 4" in caplog.text


def test_no_b_factor_annotation_gives_zeros(tmp_path):
    atoms = mio._parse(_write(tmp_path, residue_lines(0, "ALA", "A", 1)).read_text(), "pdb", 1, tmp_path / "x.pdb")
    atoms.del_annotation("b_factor")
    (chain,) = atom_array_to_chains(atoms)
    assert chain.atom_mask[0].sum() == 4 and not chain.b_factors.any()


def test_chains_in_order_of_first_appearance_across_blocks(tmp_path):
    lines = residue_lines(0, "ALA", "B", 1) + residue_lines(1, "GLY", "A", 1) + residue_lines(2, "SER", "B", 2)
    assert [(c.chain_id, c.sequence) for c in read_structure(_write(tmp_path, lines))] == [("B", "AS"), ("A", "G")]


def test_fasta_moved_but_still_importable_from_io(tmp_path):
    assert mio.read_fasta is fasta.read_fasta and mio.write_fasta is fasta.write_fasta
    assert mio._atomic_write is mio.atomic_write
    path = fasta.write_fasta([("one", "MKT"), ("two", "GS")], tmp_path / "r.fa.gz")
    assert mio.read_fasta(path) == [("one", "MKT"), ("two", "GS")]
    assert mio.atomic_write(tmp_path / "t.txt", "hi\n").read_text() == "hi\n"
