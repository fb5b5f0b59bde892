"""Design tasks end to end on a tiny random model: what is fixed stays exactly fixed, outputs parse back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiflow.constants import CA_IDX, NUM_AA, RESTYPES
from multiflow.data.io import read_structure
from multiflow.errors import BadSequenceError, ConfigError
from multiflow.geometry.superposition import aligned_rmsd
from multiflow.sampling.solver import FlowState, Prediction, SolverConfig
from multiflow.sampling.tasks import GuidedModel, codesign, fold, inverse_fold, plan_batches, scaffold
from tests.sampling.conftest import CHAIN_A_SEQ, CHAIN_B_SEQ, MISSING_A

FAST = SolverConfig(num_steps=5)
BB = [0, 1, 2, 4]  # atom37 slots of N, CA, C, O


@pytest.fixture(scope="module")
def chains(toy_pdb):
    return read_structure(toy_pdb)


def _letters_only(seq: str) -> bool:
    return set(seq.replace("/", "")) <= set(RESTYPES)


# --- engine pieces ------------------------------------------------------------------------------------
def test_plan_batches_respects_the_token_budget():
    assert plan_batches([10] * 5, max_tokens=30) == [[0, 1, 2], [3, 4]]
    assert plan_batches([10, 50, 10], max_tokens=60) == [[0], [1], [2]]
    assert plan_batches([10] * 5, max_tokens=1000, batch_size=2) == [[0, 1], [2, 3], [4]]
    assert plan_batches([500], max_tokens=100) == [[0]]  # a long one runs alone


def test_guided_model_biases_only_where_asked():
    logits = torch.zeros(1, 3, NUM_AA)

    def model(state, t, **extras):
        return Prediction(state.trans, state.rots, logits)

    bias = torch.zeros(NUM_AA)
    bias[0], bias[1] = 2.0, -float("inf")
    where = torch.tensor([[True, False, True]])
    state = FlowState(torch.zeros(1, 3, 3), torch.eye(3).expand(1, 3, 3, 3), torch.zeros(1, 3, dtype=torch.long))
    out = GuidedModel(model, bias, where)(state, {}, res_mask=where)
    assert out.logits[0, 0, 0] == 2.0 and out.logits[0, 0, 1] == -float("inf")
    assert torch.equal(out.logits[0, 1], logits[0, 1])


# --- co-design ----------------------------------------------------------------------------------------
def test_codesign_lengths_samples_and_seed(loaded):
    res = codesign(loaded, FAST, "8-12:4", 2, seed=5, max_tokens=20)
    assert [d.name for d in res] == ["codesign_8_0", "codesign_8_1", "codesign_12_0", "codesign_12_1"]
    for d in res:
        assert d.length == d.metrics["length"] and _letters_only(d.sequence) and np.isfinite(d.metrics["score"])
        ca = d.chains[0].atom_positions[:, CA_IDX]
        assert np.isfinite(ca).all() and d.chains[0].backbone_mask.all()
    again = codesign(loaded, FAST, "8-12:4", 2, seed=5, max_tokens=20)
    assert [d.sequence for d in res] == [d.sequence for d in again]
    assert np.array_equal(res[0].chains[0].atom_positions, again[0].chains[0].atom_positions)


def test_partial_sequence_keeps_known_residues(loaded):
    res = codesign(loaded, FAST, partial_sequence="MK__EL___/W_", num_samples=3, seed=1)
    for d in res:
        a, b = d.sequence.split("/")
        assert a[:2] == "MK" and a[4:6] == "EL" and b[0] == "W" and _letters_only(d.sequence)
        assert d.designed.tolist() == [c == "_" for c in "MK__EL___W_".replace("W", "W")]
    with pytest.raises(ConfigError, match="disagree"):
        codesign(loaded, FAST, 20, partial_sequence="MK__")


def test_codesign_trajectory(loaded):
    d = codesign(loaded, FAST, 6, seed=0, save_trajectory=True)[0]
    assert len(d.trajectory) == FAST.num_steps + 1
    assert all(frame[0].sequence == d.sequence for frame in d.trajectory)
    assert np.allclose(d.trajectory[-1][0].atom_positions[:, CA_IDX], d.chains[0].atom_positions[:, CA_IDX], atol=1e-4)


# --- inverse folding -------------------------------------------------------------------------------------
def test_inverse_fold_keeps_backbone_context_and_fixed_residues(loaded, chains):
    res = inverse_fold(loaded, FAST, chains, chains_to_design="A", fixed_residues="A7 A10A", number_of_batches=2,
                       batch_size=3, seed=0)
    assert len(res) == 6 and res.native is not None
    labels = chains[0].residue_labels()
    kept = [i for i in range(chains[0].length) if i != MISSING_A]
    assert res.report["dropped_residues"] == [labels[MISSING_A]]
    assert res.report["fixed_residues"] == ["A7", "A10A"] and res.report["fixed_chains"] == ["B"]
    native_a = "".join(CHAIN_A_SEQ[i] for i in kept)
    assert res.native.sequence == f"{native_a}/{CHAIN_B_SEQ}"
    for d in res:
        a, b = d.chains
        assert b.sequence == CHAIN_B_SEQ  # context chain: sequence and all atoms unchanged
        assert np.array_equal(b.atom_positions, chains[1].atom_positions)
        assert np.array_equal(a.atom_positions[:, BB], chains[0].atom_positions[kept][:, BB])  # backbone unchanged
        assert a.residue_labels() == [labels[i] for i in kept] and "X" not in d.sequence
        for lab in ("A7", "A10A"):
            assert a.sequence[a.residue_labels().index(lab)] == CHAIN_A_SEQ[labels.index(lab)]
        designed = d.designed[: a.length]
        same = np.array(list(a.sequence)) == np.array(list(native_a))
        assert d.metrics["seq_rec"] == pytest.approx(same[designed].mean(), abs=1e-4)
        assert d.metrics["designed"] == len(kept) - 2


def test_inverse_fold_omit_and_bias_reach_the_logits(loaded, chains):
    only_g = inverse_fold(loaded, FAST, chains, chains_to_design="A", omit_aa=RESTYPES.replace("G", ""), seed=0)
    seq_a = only_g[0].chains[0].sequence
    assert set(seq_a) == {"G"}
    heavy_w = inverse_fold(loaded, FAST, chains, redesigned_residues="A1 A2 A3", bias_aa="W:50", seed=0)
    a = heavy_w[0].chains[0].sequence
    assert a[:3] == "WWW" and a[3:] == "".join(CHAIN_A_SEQ[i] for i in range(3, 24) if i != MISSING_A)
    assert heavy_w.report["designed_residues"] == ["A1", "A2", "A3"]


@pytest.mark.parametrize("kwargs,match", [
    ({"chains_to_design": "C"}, r"chain\(s\) C not in the structure"),
    ({"fixed_residues": "A7 A73B"}, r"A73B not found"),
    ({"fixed_residues": "A7", "redesigned_residues": "A7 A8"}, "overlap at A7"),
    ({"chains_to_design": "A", "redesigned_residues": "B2"}, "leaves fixed"),
    ({"redesigned_residues": "A77"}, "lack N, CA or C"),
    ({"chains_to_design": "B", "fixed_residues": " ".join(f"B{i}" for i in range(1, 13))}, "nothing to design"),
    ({"bias_aa": "J:1"}, "not one of the 20"),
    ({"batch_size": 0}, "must be >= 1"),
])
def test_inverse_fold_bad_selections(loaded, chains, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        inverse_fold(loaded, FAST, chains, **kwargs)


# --- forward folding --------------------------------------------------------------------------------------
def test_fold_keeps_the_sequence(loaded):
    res = fold(loaded, FAST, [("first one", "MKTAYIAKQR"), ("dimer", "GSPEEL/LKKAEE")], num_samples=2, seed=0)
    assert [d.name for d in res] == ["first_0", "first_1", "dimer_0", "dimer_1"]
    assert [d.sequence for d in res] == ["MKTAYIAKQR"] * 2 + ["GSPEEL/LKKAEE"] * 2
    assert [c.chain_id for c in res[2].chains] == ["A", "B"]
    assert res[0].confidence is None and res[0].metrics["mean_plddt"] is None
    assert (res[0].chains[0].b_factors == 0).all() and "not available" in res.report["confidence"]
    with pytest.raises(BadSequenceError, match="'B' at 3"):
        fold(loaded, FAST, ["MKB"])
    with pytest.raises(BadSequenceError, match="outside the alphabet"):
        fold(loaded, FAST, ["MKX"])  # unknown residues cannot be folded
    with pytest.raises(ConfigError, match="exceeds 2000"):
        fold(loaded, FAST, ["A" * 2001])


def test_fold_writes_confidence_to_b_factors(tiny_confidence_checkpoint):
    from multiflow.training.checkpoint import load_checkpoint

    res = fold(load_checkpoint(tiny_confidence_checkpoint, "cpu"), FAST, ["MKTAYIAKQR"], seed=0)
    d = res[0]
    assert d.confidence is not None and d.confidence.shape == (10,)
    assert (0 <= d.confidence).all() and (d.confidence <= 100).all()
    assert np.allclose(d.chains[0].b_factors[:, CA_IDX], d.confidence, atol=1e-4)
    assert d.metrics["mean_plddt"] == pytest.approx(float(d.confidence.mean()), abs=0.01)


# --- motif scaffolding -------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [False, True])
def test_scaffold_holds_the_motif(loaded, chains, keep):
    res = scaffold(loaded, FAST, chains, "3-6/A2-6/2-4/0 B3-8", num_designs=3, keep_motif_sequence=keep, seed=4)
    labels = chains[0].residue_labels()
    motif_a = chains[0].atom_positions[[labels.index(f"A{i}") for i in range(2, 7)]]
    motif_b = chains[1].atom_positions[2:8]
    for d in res:
        a, b = d.chains
        n0 = int(d.metrics["contig"].split("/")[0])
        assert 3 <= n0 <= 6 and len(b.sequence) == 6 and d.motif.sum() == 11
        out_a = a.atom_positions[n0:n0 + 5]
        assert np.array_equal(out_a[:, BB], motif_a[:, BB]) and np.array_equal(b.atom_positions[:, BB], motif_b[:, BB])
        moved = torch.from_numpy(np.concatenate([out_a[:, BB], b.atom_positions[:, BB]]).reshape(-1, 3)).double()
        target = torch.from_numpy(np.concatenate([motif_a[:, BB], motif_b[:, BB]]).reshape(-1, 3)).double()
        assert float(aligned_rmsd(moved, target)) < 1e-3
        assert d.metrics["motif_ca_rmsd"] < 1e-3 and d.metrics["motif_bb_rmsd"] < 0.1
        motif_seq = a.sequence[n0:n0 + 5] + b.sequence
        if keep:
            assert motif_seq == CHAIN_A_SEQ[1:6] + CHAIN_B_SEQ[2:8]
            assert not d.designed[d.motif].any()
        else:
            assert d.designed.all() and _letters_only(d.sequence)
    assert len({d.metrics["contig"] for d in res}) >= 1


def test_scaffold_errors(loaded, chains):
    with pytest.raises(ConfigError, match="not in the structure"):
        scaffold(loaded, FAST, chains, "5/A100-110/5")
    with pytest.raises(ConfigError, match="both take residue A3"):
        scaffold(loaded, FAST, chains, "5/A2-4/3/A3-5/5")
    with pytest.raises(ConfigError, match="exceeds 2000"):
        scaffold(loaded, FAST, chains, "2500/A2-4/5")


def test_the_model_is_told_what_is_given(loaded, chains, monkeypatch):
    seen = []
    original = loaded.model.denoise

    def spy(*args, **kwargs):
        seen.append((kwargs.get("fixed_structure"), kwargs.get("fixed_sequence")))
        return original(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "denoise", spy)
    scaffold(loaded, FAST, chains, "3/A2-6/3", keep_motif_sequence=True, seed=0)
    fixed_structure, fixed_sequence = seen[0]
    assert fixed_structure[0].tolist() == [False] * 3 + [True] * 5 + [False] * 3
    assert torch.equal(fixed_structure, fixed_sequence)
