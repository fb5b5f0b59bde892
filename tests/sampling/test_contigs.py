"""What users type: residue labels (exact, with insertion codes), biases, contigs, lengths, sequences."""

from __future__ import annotations

import numpy as np
import pytest

from multiflow.constants import RESTYPES
from multiflow.data.io import read_structure
from multiflow.errors import BadSequenceError, ConfigError
from multiflow.sampling.contigs import (
    FreeSegment, MotifSegment, check_length, compress_labels, parse_bias, parse_chain_ids, parse_contigs,
    parse_length_range, parse_lengths, parse_partial, resolve_motifs, resolve_residues, safe_name, sample_layout,
    split_chains, unique_names,
)


@pytest.fixture(scope="module")
def chains(toy_pdb):
    return read_structure(toy_pdb)


# --- residue selections ------------------------------------------------------------------------------
def test_labels_match_exactly_with_insertion_codes(chains):
    labels = chains[0].residue_labels()
    refs = resolve_residues("A7 A10A,A72", chains, "--fixed_residues")
    assert [r.label for r in refs] == ["A7", "A10A", "A72"]
    assert [r.position for r in refs] == [labels.index("A7"), labels.index("A10A"), labels.index("A72")]
    assert [r.label for r in resolve_residues("A10", chains, "f")] == ["A10"]  # not A10A / A10B
    assert resolve_residues(None, chains, "f") == [] and resolve_residues("  ", chains, "f") == []
    assert [r.label for r in resolve_residues(["B3", "B3"], chains, "f")] == ["B3"]  # duplicates collapse


@pytest.mark.parametrize("text,expected", [("A7C", "A7C"), ("A13", "A13"), ("A10C", "A10C"), ("A7 A720", "A720")])
def test_unknown_residue_is_named(chains, text, expected):
    with pytest.raises(ConfigError, match=f"--fixed_residues: residue\\(s\\) {expected} not found"):
        resolve_residues(text, chains, "--fixed_residues")


def test_unknown_chain_is_named(chains):
    with pytest.raises(ConfigError, match=r"C5 name\(s\) no chain.*chains present: A, B"):
        resolve_residues("A1 C5", chains, "--fixed_residues")
    with pytest.raises(ConfigError, match=r"a7 name\(s\) no chain"):  # chain ids are case-sensitive
        resolve_residues("a7", chains, "--fixed_residues")
    with pytest.raises(ConfigError, match=r"--chains_to_design: chain\(s\) C not in the structure"):
        parse_chain_ids("A,C", chains, "--chains_to_design")
    assert parse_chain_ids("B, A", chains, "x") == ["B", "A"]


# --- bias / omit ---------------------------------------------------------------------------------------
def test_bias_and_omit():
    bias = parse_bias("A:-1.0,W:0.5", "CX")
    assert bias[RESTYPES.index("A")] == -1.0 and bias[RESTYPES.index("W")] == 0.5
    assert bias[RESTYPES.index("C")] == -np.inf and np.isfinite(np.delete(bias, RESTYPES.index("C"))).all()
    assert parse_bias(None, None) is None and parse_bias("", "X") is None  # X alone omits nothing the model emits
    assert parse_bias({"g": 2.0}, None)[RESTYPES.index("G")] == 2.0


@pytest.mark.parametrize("bias,omit,match", [
    ("Z:1.0", None, "'Z' is not one of the 20"), ("A1.0", None, "LETTER:VALUE"), ("A:x", None, "LETTER:VALUE"),
    ("A:inf", None, "LETTER:VALUE"), (None, "CB1", "not amino acids"), (None, RESTYPES, "omits all 20"),
])
def test_bad_bias(bias, omit, match):
    with pytest.raises(ConfigError, match=match):
        parse_bias(bias, omit)


# --- contigs --------------------------------------------------------------------------------------------
def test_parse_contigs_forms():
    spec = parse_contigs("5-15/A10-25/30-40")
    assert spec.chains == ((FreeSegment(5, 15), MotifSegment("A", "A10", "A25", "A10-25"), FreeSegment(30, 40)),)
    two = parse_contigs("A1-50/0 60-80")
    assert len(two.chains) == 2 and two.chains[1] == (FreeSegment(60, 80),)
    assert len(parse_contigs("[10/A7/0 B3-5/10]").chains) == 2
    assert parse_contigs("10/A7/10").chains[0][1] == MotifSegment("A", "A7", "A7", "A7")
    assert parse_contigs("A10A-12").chains[0][0] == MotifSegment("A", "A10A", "A12", "A10A-12")


@pytest.mark.parametrize("text,match", [
    ("", "empty"), ("5-x/A1-3", "cannot read segment '5-x'"), ("10-5/A1-3", "low <= high"),
    ("10/20", "names no motif"), ("AB1-5", "cannot read segment"),
])
def test_bad_contig_syntax(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_contigs(text)


def test_motifs_resolve_against_the_structure(chains):
    motifs = resolve_motifs(parse_contigs("3/A2-5/3/0 B4-6"), chains)
    assert [r.label for r in motifs["A2-5"]] == ["A2", "A3", "A4", "A5"]
    assert [r.label for r in motifs["B4-6"]] == ["B4", "B5", "B6"]
    with_icodes = resolve_motifs(parse_contigs("2/A9-11/2"), chains)["A9-11"]
    assert [r.label for r in with_icodes] == ["A9", "A10", "A10A", "A10B", "A11"]


@pytest.mark.parametrize("contig,match", [
    ("5/A30-40/5", r"A30, A40 not in the structure \(chain A runs A1..A79\)"),
    ("5/A11-71/5", r"absent from the structure: A13 A14 .*split the segment"),  # numbering gap 12 -> 70
    ("5/C1-4/5", "chain C is not in the structure"),
    ("5/A76-78/5", r"A77 lack N, CA or C"),
    ("5/A72-70/5", "comes after"),
])
def test_contig_that_does_not_match_the_pdb(chains, contig, match):
    with pytest.raises(ConfigError, match=match):
        resolve_motifs(parse_contigs(contig), chains)


def test_layout_sampling_is_seeded_and_in_range(chains):
    spec = parse_contigs("5-15/A2-5/30-40")
    motifs = resolve_motifs(spec, chains)
    draw = lambda seed: [sample_layout(spec, motifs, np.random.default_rng(seed)) for _ in range(20)]  # noqa: E731
    a, b = draw(3), draw(3)
    assert [x.describe() for x in a] == [x.describe() for x in b]
    for lay in a:
        first, motif, last = lay.chains[0]
        assert 5 <= first <= 15 and 30 <= last <= 40 and len(motif) == 4
        assert lay.describe() == f"{first}/A2-5/{last}"
    constrained = sample_layout(spec, motifs, np.random.default_rng(0), length=(40, 41))
    assert 40 <= constrained.length <= 41
    with pytest.raises(ConfigError, match="cannot meet the requested length 100-120"):
        sample_layout(spec, motifs, np.random.default_rng(0), length=(100, 120))


# --- lengths and sequences --------------------------------------------------------------------------------
def test_lengths():
    assert parse_lengths("70-150:10") == list(range(70, 151, 10))
    assert parse_lengths("80,100") == [80, 100] and parse_lengths(50) == [50] and parse_lengths([3, 4]) == [3, 4]
    for bad in ("x", "10-5", "10-20:0"):
        with pytest.raises(ConfigError):
            parse_lengths(bad)
    assert parse_length_range("100-120") == (100, 120) and parse_length_range(90) == (90, 90)
    with pytest.raises(ConfigError):
        parse_length_range("120-100")
    check_length(2000, "x", allow_long=False)
    check_length(2001, "x", allow_long=True)
    with pytest.raises(ConfigError, match="exceeds 2000 residues; pass --allow_long"):
        check_length(2001, "x", allow_long=False)
    with pytest.raises(ConfigError, match="length must be >= 1"):
        check_length(0, "x", allow_long=True)


def test_sequences():
    assert split_chains("MKV/GSE") == ["MKV", "GSE"] and split_chains("MKV:GSE") == ["MKV", "GSE"]
    with pytest.raises(BadSequenceError, match="empty chain"):
        split_chains("MKV//GSE")
    lengths, tokens, fixed = parse_partial("MK__/E_")
    assert lengths == [4, 2] and fixed.tolist() == [True, True, False, False, True, False]
    assert tokens[0] == RESTYPES.index("M")
    with pytest.raises(BadSequenceError, match="outside the alphabet"):
        parse_partial("MK_B")
    with pytest.raises(BadSequenceError, match="write '_' for positions to design"):
        parse_partial("MKX_")


def test_names_and_label_compression():
    assert safe_name("sp|P69905|HBA_HUMAN Hemoglobin") == "sp_P69905_HBA_HUMAN"
    assert safe_name("my design, x") == "my" and safe_name("a/b") == "a_b"
    assert unique_names([("a", "1"), ("a", "2"), ("b", "3")]) == [("a", "1"), ("a_2", "2"), ("b", "3")]
    assert compress_labels(["A1", "A2", "A3", "A7", "A10A", "B4", "B5"]) == "A1-A3 A7 A10A B4-B5"
    assert compress_labels([]) == "(none)"
