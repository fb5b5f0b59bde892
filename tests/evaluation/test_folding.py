"""FoldResult validation, the oracle registry, and fold caching (with a stand-in oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from multiflow.constants import CA_IDX
from multiflow.errors import (
    BadSequenceError,
    BadStructureError,
    ConfigError,
    MissingWeightsError,
)
from multiflow.evaluation.folding import (
    FOLDING_ORACLES,
    MULTIFLOW_FOLD,
    CachedFoldingOracle,
    FoldCache,
    FoldingOracle,
    FoldResult,
    clean_sequences,
    create_folding_oracle,
    fold,
)


class LineOracle:
    """Folds every sequence into a straight CA line; counts the sequences it was asked for."""

    def __init__(self, name: str = "line") -> None:
        self.name = name
        self.calls: list[str] = []

    def fold(self, sequences: list[str]) -> list[FoldResult]:
        out = []
        for s in sequences:
            self.calls.append(s)
            n = len(s)
            pos = np.zeros((n, 37, 3), np.float32)
            pos[:, CA_IDX, 0] = 3.8 * np.arange(n)
            mask = np.zeros((n, 37), bool)
            mask[:, CA_IDX] = True
            out.append(FoldResult.from_atom37(s, pos, mask, np.linspace(20, 90, n), oracle=self.name, ptm=0.5))
        return out


def test_fold_result_fields_and_validation():
    res = LineOracle().fold(["MKV"])[0]
    assert isinstance(LineOracle(), FoldingOracle)
    assert res.oracle == "line" and res.sequence == "MKV" and res.chain.length == 3
    assert res.mean_plddt == pytest.approx(55.0) and res.ptm == 0.5
    assert np.allclose(res.chain.b_factors[:, CA_IDX], res.plddt)  # pLDDT travels into written PDBs
    pos, mask = res.chain.atom_positions, res.chain.atom_mask
    with pytest.raises(BadStructureError, match="0-100"):
        FoldResult.from_atom37("MKV", pos, mask, np.array([0.2, 0.5, 101.0]), oracle="x")
    with pytest.raises(BadStructureError, match="pTM"):
        FoldResult.from_atom37("MKV", pos, mask, np.full(3, 50.0), oracle="x", ptm=1.5)


def test_clean_sequences():
    assert clean_sequences([" mkv ", "ACX"]) == ["MKV", "ACX"]
    with pytest.raises(BadSequenceError, match="sequence 1"):
        clean_sequences(["MKV", "MK1"])
    with pytest.raises(BadSequenceError):
        clean_sequences("MKV")
    with pytest.raises(BadSequenceError):
        clean_sequences([""])


def test_registry_lists_builtin_and_plugs_in_new_oracles():
    assert {"esmfold", MULTIFLOW_FOLD} <= set(FOLDING_ORACLES.names())
    with pytest.raises(MissingWeightsError, match="no-such.pt"):  # the built-in oracle loads a real checkpoint
        create_folding_oracle(MULTIFLOW_FOLD, checkpoint="no-such.pt")
    with pytest.raises(ConfigError, match="unknown folding oracle"):
        create_folding_oracle("alphafold9")
    with pytest.raises(ConfigError, match="already registered"):
        FOLDING_ORACLES.register("esmfold", LineOracle)
    FOLDING_ORACLES.register("test-line", lambda **kw: LineOracle(**kw), help="test")
    try:
        oracle = create_folding_oracle("test-line", name="multiflow-fold-test")
        assert oracle.fold(["MK"])[0].oracle == "multiflow-fold-test"  # results carry the oracle's label
    finally:
        FOLDING_ORACLES.unregister("test-line")
    assert "test-line" not in FOLDING_ORACLES


def test_cache_folds_each_sequence_once_in_memory():
    oracle = LineOracle()
    cached = CachedFoldingOracle(oracle)
    first = cached.fold(["MKV", "AC", "MKV"])
    second = cached.fold(["ac", "MKV"])
    assert oracle.calls == ["MKV", "AC"]
    assert [r.sequence for r in first] == ["MKV", "AC", "MKV"] and second[0] is first[1]
    assert cached.name == "line"


def test_disk_cache_round_trip_and_keys(tmp_path):
    oracle = LineOracle()
    fold(oracle, ["MKVL"], cache=FoldCache(tmp_path))
    fresh = LineOracle()
    again = fold(fresh, ["MKVL"], cache=FoldCache(tmp_path))[0]  # a new process would see the same files
    assert fresh.calls == [] and again.oracle == "line" and again.ptm == 0.5
    assert np.allclose(again.plddt, np.linspace(20, 90, 4), atol=1e-5)
    assert np.array_equal(again.chain.atom_mask, oracle.fold(["MKVL"])[0].chain.atom_mask)
    other = LineOracle(name="other")
    fold(other, ["MKVL"], cache=FoldCache(tmp_path))
    assert other.calls == ["MKVL"]  # a different oracle never reuses another's predictions
    assert len(list(tmp_path.rglob("*.npz"))) == 2 and not list(tmp_path.rglob("*.tmp*"))
