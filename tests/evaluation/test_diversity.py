"""Clustering on planted clusters, the Foldseek path with a stand-in binary, and novelty."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from multiflow.errors import ConfigError
from multiflow.evaluation import diversity as D
from multiflow.evaluation.tmscore import TMStructure
from tests.evaluation.helpers import moved_copy, random_rotation


def planted(ts50_chains):
    """Three unrelated folds, three members each: a moved copy, a noisy copy, and (for fold 0) a mutant."""
    parents = ts50_chains[:3]
    members, truth = [], []
    for k, p in enumerate(parents):
        members += [p, moved_copy(p, random_rotation(10 + k), [30.0 * k, 0, 0]),
                    moved_copy(p, random_rotation(20 + k), [0, 0, 0], noise=0.7, seed=k)]
        truth += [k, k, k]
    mutant = type(parents[0])((parents[0].aatype + 3) % 20, parents[0].atom_positions, parents[0].atom_mask,
                              parents[0].residue_index, parents[0].insertion_code, parents[0].b_factors, name="mutant")
    order = [0, 3, 6, 1, 4, 7, 2, 5, 8]  # interleave the folds
    return [members[i] for i in order] + [mutant], [truth[i] for i in order] + [0]


def test_greedy_clustering_recovers_planted_clusters(ts50_chains):
    chains, truth = planted(ts50_chains)
    result = D.cluster_structures(chains, method="greedy")
    assert result.method == "greedy-tm" and result.n_clusters == 3
    assert result.labels.tolist() == truth  # first appearances are 0, 1, 2 in the interleaved order
    assert result.representatives == [0, 1, 2]
    assert result.fraction == pytest.approx(3 / 10)


def test_diversity_counts_only_designable_samples(ts50_chains):
    chains, _ = planted(ts50_chains)
    designable = [True, False, False, True, False, False, True, False, False, True]  # folds 0, 0, 0, 0
    result = D.diversity(chains, designable, method="greedy")
    assert len(result.labels) == 4 and result.n_clusters == 1 and result.fraction == pytest.approx(0.25)
    assert D.diversity(chains, [False] * len(chains)).n_clusters == 0


def _fake_foldseek(folder, table: str, exit_code: int = 0):
    """A stand-in 'foldseek' that writes a fixed <prefix>_cluster.tsv and checks its arguments."""
    exe = folder / "foldseek"
    exe.write_text(
        "#!/bin/sh\n"
        '[ "$1" = easy-cluster ] || exit 3\n'
        'case " $* " in *" --tmscore-threshold 0.5 "*) ;; *) exit 4;; esac\n'
        f"printf '{table}' > \"$3_cluster.tsv\"\n"
        f"exit {exit_code}\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_foldseek_path_with_a_stand_in_binary(ts50_chains, tmp_path, monkeypatch):
    table = "s000000.pdb_A\\ts000000.pdb_A\\ns000000.pdb_A\\ts000002.pdb_A\\ns000001.pdb_A\\ts000001.pdb_A\\n"
    _fake_foldseek(tmp_path, table)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = D.cluster_structures(ts50_chains[:3])  # auto: foldseek is on PATH now
    assert result.method == "foldseek"
    assert result.labels.tolist() == [0, 1, 0] and result.representatives == [0, 1]


def test_foldseek_failures_are_reported(ts50_chains, tmp_path, monkeypatch):
    _fake_foldseek(tmp_path, "s000000\\ts000000\\n")  # misses structure 1
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(RuntimeError, match="misses structures"):
        D.foldseek_clusters(ts50_chains[:2])
    _fake_foldseek(tmp_path, "", exit_code=1)
    with pytest.raises(RuntimeError, match="foldseek failed"):
        D.foldseek_clusters(ts50_chains[:2])
    with pytest.raises(ConfigError, match="not found on PATH"):
        D.foldseek_clusters(ts50_chains[:2], binary="no-such-foldseek")
    with pytest.raises(ConfigError):
        D.cluster_structures(ts50_chains[:2], method="kmeans")


def test_novelty_of_a_copy_is_one_and_pruning_is_exact(ts50_chains):
    refs = [TMStructure.from_chain(c) for c in ts50_chains[1:]]
    copy = moved_copy(ts50_chains[2], random_rotation(3), [9.0, 9.0, 9.0], noise=0.1)
    novel = ts50_chains[0]  # not in the references
    result = D.novelty([copy, novel], refs)
    assert result.max_tm[0] > 0.95 and result.nearest[0] == ts50_chains[2].name
    assert 0.0 < result.max_tm[1] < 0.5 and result.n_references == 4
    brute = max(D.tm_score(novel, r, normalize="a") for r in refs)
    assert result.max_tm[1] == pytest.approx(brute)
    assert result.mean_max_tm == pytest.approx(result.max_tm.mean())


def test_novelty_speed_options(ts50_chains):
    refs = ts50_chains[1:]
    capped = D.novelty([ts50_chains[0]], refs, max_references=2, seed=1)
    assert capped.n_references == 2
    again = D.novelty([ts50_chains[0]], refs, max_references=2, seed=1)
    assert np.array_equal(capped.max_tm, again.max_tm)  # seeded subset
    copy = moved_copy(ts50_chains[3], random_rotation(8), [0, 0, 0])
    top1 = D.novelty([copy], refs, top_k=1)  # the copy's own fold has the closest shape descriptor
    assert top1.max_tm[0] > 0.99 and top1.nearest[0] == ts50_chains[3].name
