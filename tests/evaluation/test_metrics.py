"""Metrics on hand-made cases whose answers are known exactly, and on real ts50 chains."""

from __future__ import annotations

import math

import biotite.structure as struc
import numpy as np
import pytest

from multiflow.constants import CA_IDX
from multiflow.errors import BadSequenceError, BadStructureError
from multiflow.evaluation import metrics as M
from multiflow.evaluation.folding import FoldResult
from multiflow.evaluation.tmscore import TMStructure, tm_d0, tm_score_aligned
from tests.evaluation.helpers import ca_chain, moved_copy, random_rotation


def horn_rmsd(x: np.ndarray, y: np.ndarray) -> float:
    """RMSD after optimal superposition by Horn's quaternion method (independent of Kabsch/SVD)."""
    x, y = x - x.mean(0), y - y.mean(0)
    s = x.T @ y
    sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = s.ravel()
    k = np.array([
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ])
    lam = np.linalg.eigvalsh(k)[-1]
    return math.sqrt(max(0.0, ((x**2).sum() + (y**2).sum() - 2 * lam) / len(x)))


# --- RMSD ------------------------------------------------------------------------------------
def test_rmsd_zero_for_identical_and_rigidly_moved_copies(ts50_chains):
    chain = ts50_chains[0]
    moved = moved_copy(chain, random_rotation(1), [12.0, -4.0, 7.5])
    for atoms in ("backbone", "ca"):
        assert M.sc_rmsd(chain, chain, atoms) < 1e-4
        assert M.sc_rmsd(chain, moved, atoms) < 1e-3  # float32 storage of the moved coordinates


def test_rmsd_of_planar_grid_with_checkerboard_lift_is_the_lift():
    # A centred planar 4x4 grid; every point lifted by ±d along z in a checkerboard. The lifts
    # have zero sum and zero moment against the in-plane coordinates, so no rigid motion
    # reduces them: the RMSD after superposition is exactly d.
    g = np.arange(4) * 3.8 - 1.5 * 3.8
    xy = np.array([(a, b) for a in g for b in g])
    signs = np.array([(-1) ** (i + j) for i in range(4) for j in range(4)], float)
    grid = np.c_[xy, np.zeros(16)]
    d = 0.7
    lifted = grid + np.c_[np.zeros((16, 2)), d * signs]
    rot = random_rotation(5)
    a, b = ca_chain(grid), ca_chain(lifted @ rot.T + 3.0)
    assert M.sc_rmsd(a, b, "ca") == pytest.approx(d, abs=1e-5)


def test_rmsd_matches_horn_quaternion_method_on_noisy_copy(ts50_chains):
    chain = ts50_chains[1]
    noisy = moved_copy(chain, random_rotation(2), [1.0, 2.0, 3.0], noise=0.8, seed=3)
    idx = [0, 1, 2]  # N, CA, C in atom37
    x = chain.atom_positions[:, idx].reshape(-1, 3).astype(float)
    y = noisy.atom_positions[:, idx].reshape(-1, 3).astype(float)
    assert M.sc_rmsd(chain, noisy) == pytest.approx(horn_rmsd(x, y), abs=1e-4)
    assert M.sc_rmsd(chain, noisy) == pytest.approx(0.8 * math.sqrt(3), rel=0.1)  # 0.8 Å per axis
    assert M.is_designable(M.sc_rmsd(chain, noisy)) and not M.is_designable(2.0)


def test_rmsd_uses_residues_present_in_both_and_rejects_length_mismatch(ts50_chains):
    chain = ts50_chains[0]
    mask = chain.atom_mask.copy()
    mask[:5] = False  # first five residues missing in the prediction
    pos = chain.atom_positions.copy()
    pos[:5] += 50.0
    partial = type(chain)(chain.aatype, pos, mask, chain.residue_index, chain.insertion_code, chain.b_factors)
    assert M.sc_rmsd(chain, partial) < 1e-4
    with pytest.raises(BadStructureError, match="equal length"):
        M.sc_rmsd(chain, chain.select(np.arange(10)))


# --- TM-score --------------------------------------------------------------------------------
def test_tm_score_is_one_for_identical_and_moved_copies(ts50_chains):
    chain = ts50_chains[0]
    moved = moved_copy(chain, random_rotation(4), [-8.0, 3.0, 1.0])
    assert M.sc_tm(chain, chain) == pytest.approx(1.0, abs=1e-9)
    assert M.sc_tm(chain, moved) == pytest.approx(1.0, abs=1e-6)
    assert M.tm_score(chain, moved) == pytest.approx(1.0, abs=1e-6)


def test_d0_matches_biotite():
    from biotite.structure import tm as biotite_tm

    for n in (5, 16, 21, 22, 79, 150, 400):
        assert tm_d0(n) == pytest.approx(biotite_tm._d0(n))


def test_aligned_tm_search_finds_a_rigid_half_that_plain_kabsch_misses(ts50_chains):
    # Second half rotated 90° and moved 20 Å: Kabsch on all residues matches neither half,
    # the fragment-seeded search superimposes one half exactly.
    chain = ts50_chains[3]
    ca = chain.atom_positions[:, CA_IDX].astype(float)
    h = len(ca) // 2
    rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    other = ca.copy()
    other[h:] = other[h:] @ rz.T + 20.0
    fitted, _ = struc.superimpose(ca, other)
    kabsch_tm = np.mean(1 / (1 + (np.linalg.norm(fitted - ca, axis=-1) / tm_d0(len(ca))) ** 2))
    searched = tm_score_aligned(other, ca)
    assert kabsch_tm < 0.3
    assert searched >= max(h, len(ca) - h) / len(ca) - 1e-3  # at least the exactly matching half


def test_tm_score_between_unrelated_folds_is_low(ts50_chains):
    a, b = ts50_chains[0], ts50_chains[3]  # 79 and 134 residues, unrelated folds
    for normalize in ("a", "b", "shorter", "longer", 100):
        assert 0.0 < M.tm_score(a, b, normalize=normalize) < 0.5
    with pytest.raises(ValueError, match="normalize"):
        M.tm_score(a, b, normalize="mean")


def test_tm_score_structural_alignment_for_different_sequences(ts50_chains):
    chain = ts50_chains[2]
    mutated_tokens = (chain.aatype + 1) % 20  # every residue changed: no sequence correspondence to exploit
    mutant = type(chain)(mutated_tokens, chain.atom_positions, chain.atom_mask, chain.residue_index, chain.insertion_code,
                         chain.b_factors, name="mutant")
    assert M.tm_score(chain, moved_copy(mutant, random_rotation(7), [5.0, 5.0, 5.0])) > 0.95



@pytest.mark.timeout(60)
def test_tm_score_ends_when_biotite_refinement_cycles():
    """A co-design sample against PDB 1T6U chain E: biotite's uncapped refinement alternates forever."""
    from pathlib import Path

    from multiflow.data.io import read_structure

    fixtures = Path(__file__).resolve().parent / "fixtures"
    design = read_structure(fixtures / "design_cycling_tm.pdb.gz")[0]
    reference = read_structure(fixtures / "1T6U_E.pdb.gz")[0]
    tm = M.tm_score(design, reference, normalize="a")
    assert 0.1 < tm < 0.3  # unrelated folds (0.154 with 20 to 200 refinement rounds)
    assert M.tm_score(reference, design, normalize="b") == pytest.approx(tm, abs=0.05)

# --- self-consistency ---------------------------------------------------------------------------
def _fold_of(chain, noise, seed, plddt=80.0):
    moved = moved_copy(chain, random_rotation(seed), [0.0, 0.0, 0.0], noise=noise, seed=seed)
    n = chain.length
    return FoldResult.from_atom37(chain.sequence, moved.atom_positions, moved.atom_mask, np.full(n, plddt), oracle="test", ptm=0.7)


def test_self_consistency_rows_and_best(ts50_chains):
    design = ts50_chains[0]
    folds = [_fold_of(design, 1.5, 1), _fold_of(design, 0.2, 2), _fold_of(design, 3.0, 3)]
    rows = M.self_consistency(design, folds)
    assert [r.designable for r in rows] == [r.sc_rmsd < 2.0 for r in rows]
    best = M.best_self_consistency(rows)
    assert best is rows[1] and best.sc_tm > 0.9 and best.plddt == pytest.approx(80.0) and best.oracle == "test"
    assert set(best.as_dict()) >= {"sc_rmsd", "sc_rmsd_ca", "sc_tm", "plddt", "ptm", "designable", "oracle", "sequence"}


# --- sequences ------------------------------------------------------------------------------
def test_sequence_recovery_counts_designed_positions_only():
    native = "ACDEFGHIKL"
    designed = "ACDEFWWWWW"  # first five equal
    assert M.sequence_recovery(designed, native) == pytest.approx(0.5)
    first_half = np.arange(10) < 5
    assert M.sequence_recovery(designed, native, first_half) == pytest.approx(1.0)
    assert M.sequence_recovery(designed, native, ~first_half) == pytest.approx(0.0)
    assert M.sequence_recovery("ACD", "AXE") == pytest.approx(0.5)  # X in the native is left out
    assert math.isnan(M.sequence_recovery("A", "A", [False]))
    with pytest.raises(BadSequenceError):
        M.sequence_recovery("ACD", "AC")


# --- one structure -----------------------------------------------------------------------------
def test_clashes_on_a_constructed_chain():
    # Straight chain along x at 3.8 Å, then residue 6 placed 2.5 Å from residue 0 and
    # residue 7 2.9 Å from residue 6 (a sequence neighbour: never a clash).
    ca = np.array([[3.8 * i, 0.0, 0.0] for i in range(6)] + [[0.0, 2.5, 0.0], [0.0, 5.4, 0.0]])
    chain = ca_chain(ca)
    out = M.ca_clashes(chain)
    assert out["clashes"] == 1  # (0, 6); (6, 7) is adjacent; (1, 6): sqrt(3.8² + 2.5²) = 4.5 Å
    assert out["clashes_per_100"] == pytest.approx(100 / 8)
    assert M.ca_clashes(ca_chain(ca[:6]))["clashes"] == 0


def test_consecutive_ca_distance_stats_and_breaks():
    steps = [3.8, 3.8, 3.7, 3.9, 6.0]
    ca = np.c_[np.concatenate([[0.0], np.cumsum(steps)]), np.zeros((6, 2))]
    out = M.ca_ca_distances(ca_chain(ca))
    assert out["ca_ca_mean"] == pytest.approx(np.mean(steps))
    assert out["ca_ca_min"] == pytest.approx(3.7) and out["ca_ca_max"] == pytest.approx(6.0)
    assert out["ca_ca_breaks"] == 1
    assert out["ca_ca_deviation"] == pytest.approx(np.mean(np.abs(np.array(steps) - 3.8)))


def test_radius_of_gyration_of_known_points():
    ca = np.array([[2.0, 0, 0], [-2.0, 0, 0], [0, 2.0, 0], [0, -2.0, 0]]) + 7.0
    assert M.radius_of_gyration(ca_chain(ca)) == pytest.approx(2.0)


def ideal_helix_ca(n: int) -> np.ndarray:
    t = np.deg2rad(100.0) * np.arange(n)  # 3.6 residues per turn, 1.5 Å rise, 2.3 Å radius
    return np.c_[2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * np.arange(n)]


def test_secondary_structure_of_an_ideal_helix_and_a_real_chain(ts50_chains):
    ss = M.secondary_structure(ca_chain(ideal_helix_ca(30)))
    assert ss["helix_frac"] > 0.8 and ss["strand_frac"] == 0.0
    real = M.secondary_structure(ts50_chains[1])
    assert sum(real.values()) == pytest.approx(1.0)


def test_structure_metrics_row(ts50_chains):
    row = M.structure_metrics(ts50_chains[0])
    assert row["length"] == 79 and row["clashes"] == 0 and row["ca_ca_breaks"] == 0
    assert 3.7 < row["ca_ca_mean"] < 3.9 and 8.0 < row["radius_of_gyration"] < 20.0
    assert TMStructure.from_chain(ts50_chains[0]).length == 79
