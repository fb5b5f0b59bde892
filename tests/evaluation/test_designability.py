"""Designability protocols with stand-in oracles (fast, no weights)."""

from __future__ import annotations

import numpy as np
import pytest

from multiflow.data.chain import ProteinChain
from multiflow.errors import BadSequenceError
from multiflow.evaluation.designability import codesign_designability, inverse_fold_designability
from multiflow.evaluation.folding import FoldCache, FoldResult
from multiflow.evaluation.inverse_folding import Design
from tests.evaluation.helpers import moved_copy, random_rotation


class TemplateOracle:
    """'Folds' a sequence into the template's backbone, with noise growing with its distance to the template sequence."""

    name = "template"

    def __init__(self, template: ProteinChain) -> None:
        self.template = template
        self.calls = 0

    def fold(self, sequences):
        out = []
        for s in sequences:
            self.calls += 1
            wrong = sum(a != b for a, b in zip(s, self.template.sequence)) / len(s)
            moved = moved_copy(self.template, random_rotation(len(out)), [3.0, 0.0, 0.0], noise=6.0 * wrong, seed=1)
            out.append(FoldResult.from_atom37(s, moved.atom_positions, moved.atom_mask, np.full(len(s), 90 - 50 * wrong),
                                              oracle=self.name))
        return out


class MutatingDesigner:
    """Design k is the native sequence with every (10 // k)-th position made W: 0 %, 10 %, 20 %, 33 % ... mutated."""

    name = "mutator"

    def design(self, chain, num_sequences=8, temperature=0.1, seed=0, designed=None):
        native = chain.sequence
        out = []
        for k in range(num_sequences):
            step = max(1, 10 // k) if k else 0
            seq = "".join(("W" if (step and i % step == 0) else c) for i, c in enumerate(native))
            out.append(Design(seq, float(k)))
        return out


def test_codesign_folds_once_and_uses_the_cache(ts50_chains):
    chain = ts50_chains[0]
    oracle, cache = TemplateOracle(chain), FoldCache()
    result = codesign_designability(chain, oracle, cache=cache)
    assert result.protocol == "codesign-1" and len(result.rows) == 1 and result.designs == []
    assert result.designable and result.best.sc_rmsd < 1e-3 and result.best.sc_tm > 0.99
    codesign_designability(chain, oracle, cache=cache)
    assert oracle.calls == 1
    backbone_only = ProteinChain.from_backbone(chain.backbone()[0])
    with pytest.raises(BadSequenceError, match="unknown residues"):
        codesign_designability(backbone_only, oracle)


def test_inverse_fold_keeps_every_row_and_the_best_counts(ts50_chains):
    chain = ts50_chains[1]
    result = inverse_fold_designability(chain, MutatingDesigner(), TemplateOracle(chain), num_sequences=4)
    assert result.protocol == "inverse-fold-4" and len(result.rows) == len(result.folds) == len(result.designs) == 4
    assert result.best is result.rows[0] and result.designable  # the unmutated sequence folds back exactly
    assert [r.sequence for r in result.rows] == [d.sequence for d in result.designs]
    assert result.rows[-1].sc_rmsd > result.rows[0].sc_rmsd
