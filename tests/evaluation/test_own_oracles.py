"""multiflow-fold / multiflow-if adapters on a tiny random-initialised checkpoint (3 sampler steps)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiflow.evaluation import FOLDING_ORACLES, INVERSE_FOLDING_ORACLES, FoldResult
from multiflow.evaluation.folding import CachedFoldingOracle, FoldCache
from multiflow.evaluation.own_oracles import NO_PLDDT_NOTE, MultiflowFoldOracle, MultiflowIFOracle
from tests.sampling.conftest import _checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("own") / "tiny.pt")


@pytest.fixture(scope="module")
def fold_oracle(ckpt):
    return FOLDING_ORACLES.create("multiflow-fold", checkpoint=ckpt, device="cpu", num_steps=3)


def test_registered_and_labelled(fold_oracle, ckpt):
    from multiflow.training.checkpoint import file_sha256

    assert isinstance(fold_oracle, MultiflowFoldOracle)
    assert fold_oracle.label == f"multiflow-fold (built-in, {file_sha256(ckpt)[:12]})"
    inv = INVERSE_FOLDING_ORACLES.create("multiflow-if", checkpoint=ckpt, device="cpu", num_steps=3)
    assert isinstance(inv, MultiflowIFOracle) and inv.label.startswith("multiflow-if (built-in, ")
    assert inv.model is fold_oracle.model  # one loaded model shared by both


def test_fold_without_confidence_head_reports_no_plddt(fold_oracle):
    res = fold_oracle.fold(["MKTAYIAKQR", "GSPEELLKKAEEL"])
    assert [r.sequence for r in res] == ["MKTAYIAKQR", "GSPEELLKKAEEL"]
    assert all(isinstance(r, FoldResult) and r.oracle == "multiflow-fold" for r in res)
    assert res[1].chain.length == 13 and res[1].chain.atom_mask[:, 1].all()
    assert not fold_oracle.reports_plddt and fold_oracle.plddt_note == NO_PLDDT_NOTE
    assert all(math.isnan(r.mean_plddt) for r in res)  # never a made-up number


def test_fold_with_confidence_head(tmp_path):
    ckpt = _checkpoint(tmp_path / "conf.pt", confidence_head=True)
    oracle = MultiflowFoldOracle(checkpoint=ckpt, device="cpu", num_steps=3)
    (res,) = oracle.fold(["MKTAYIAKQR"])
    assert oracle.reports_plddt and 0.0 <= res.mean_plddt <= 100.0


def test_cache_key_separates_settings(fold_oracle, ckpt, tmp_path):
    other = MultiflowFoldOracle(checkpoint=ckpt, device="cpu", num_steps=3, seed=1)
    assert other.cache_key != fold_oracle.cache_key
    cached = CachedFoldingOracle(fold_oracle, FoldCache(tmp_path))
    first = cached.fold(["MKTAYIAKQR"])[0]
    again = CachedFoldingOracle(fold_oracle, FoldCache(tmp_path)).fold(["MKTAYIAKQR"])[0]  # from disk
    np.testing.assert_allclose(first.chain.atom_positions, again.chain.atom_positions)


def test_inverse_fold_designs(ckpt):
    from tests.sampling.conftest import helix_backbone, make_chain

    chain = make_chain(helix_backbone(12), "A" * 12, list(range(1, 13)), [""] * 12, "A", drop_backbone=(5,))
    inv = MultiflowIFOracle(checkpoint=ckpt, device="cpu", num_steps=3)
    designs = inv.design(chain, num_sequences=2, temperature=0.1, seed=3)
    assert len(designs) == 2
    assert all(len(d.sequence) == 12 and "X" not in d.sequence and np.isfinite(d.score) for d in designs)
    assert all(d.sequence[5] == "A" for d in designs)  # no backbone: keeps its letter
    again = inv.design(chain, num_sequences=2, temperature=0.1, seed=3)
    assert [d.sequence for d in again] == [d.sequence for d in designs]
    fixed = np.ones(12, bool)
    fixed[:3] = False
    assert all(d.sequence[:3] == "AAA" for d in inv.design(chain, num_sequences=1, seed=0, designed=fixed))
