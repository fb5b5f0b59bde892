"""ESMFold oracle through the real loading code, on a tiny randomly initialised model.

No ESMFold weights exist offline; a tiny ``EsmForProteinFolding`` (1 ESM layer, 1 trunk block,
2 structure-module blocks) is built from a small config, saved with ``save_pretrained`` and
loaded back through :meth:`ESMFoldOracle.from_local`, exactly as real weights would be.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiflow.constants import C_IDX, CA_IDX, N_IDX
from multiflow.errors import MissingWeightsError
from multiflow.evaluation.folding import FoldResult, create_folding_oracle
from multiflow.evaluation.weights import MissingDependencyError

transformers = pytest.importorskip("transformers", reason="ESMFold oracle needs the 'esmfold' extra")
from multiflow.evaluation.esmfold import ESMFoldOracle  # noqa: E402

SEQS = ["MKTAYIAKQRQISFVK", "GSHMLEDPA"]


@pytest.fixture(scope="module")
def tiny_esmfold_dir(tmp_path_factory):
    config = transformers.EsmConfig(
        vocab_size=33, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        is_folding_model=True, pad_token_id=1, mask_token_id=32, position_embedding_type="rotary",
        emb_layer_norm_before=False, token_dropout=True, vocab_list=list(transformers.models.esm.configuration_esm.get_default_vocab_list()),
        esmfold_config=dict(
            fp16_esm=True, lddt_head_hid_dim=16,
            trunk=dict(num_blocks=1, sequence_state_dim=32, pairwise_state_dim=16, sequence_head_width=16,
                       pairwise_head_width=8, max_recycles=1, chunk_size=None,
                       structure_module=dict(sequence_dim=32, pairwise_dim=16, ipa_dim=8, resnet_dim=16, num_heads_ipa=2,
                                             num_qk_points=2, num_v_points=2, num_blocks=2)),
        ),
    )
    torch.manual_seed(0)
    model = transformers.EsmForProteinFolding(config)
    path = tmp_path_factory.mktemp("weights") / "esmfold_v1"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def oracle(tiny_esmfold_dir):
    return ESMFoldOracle.from_local(tiny_esmfold_dir, device="cpu")


def test_fold_two_sequences_shapes_and_scales(oracle):
    results = oracle.fold(SEQS)
    assert [r.sequence for r in results] == SEQS
    for res, seq in zip(results, SEQS):
        assert isinstance(res, FoldResult) and res.oracle == "esmfold"
        n = len(seq)
        assert res.chain.atom_positions.shape == (n, 37, 3) and res.chain.sequence == seq
        assert res.chain.backbone_mask.all()  # N, CA, C placed for every standard residue
        assert np.isfinite(res.chain.atom_positions).all()
        x = res.chain.atom_positions  # atoms come from ideal rigid groups, whatever the weights: bond lengths are ideal
        assert np.allclose(np.linalg.norm(x[:, N_IDX] - x[:, CA_IDX], axis=-1), 1.458, atol=0.02)
        assert np.allclose(np.linalg.norm(x[:, C_IDX] - x[:, CA_IDX], axis=-1), 1.525, atol=0.02)
        assert res.plddt.shape == (n,) and 1.0 < res.plddt.min() and res.plddt.max() <= 100.0  # 0-100, not 0-1
        assert res.mean_plddt == pytest.approx(res.plddt.mean(), abs=1e-4)
        assert 0.0 <= res.ptm <= 1.0 and res.pae.shape == (n, n)


def test_batching_sorting_and_chunking_do_not_change_predictions(tiny_esmfold_dir, oracle):
    together = oracle.fold(SEQS)
    alone = oracle.fold(SEQS[1:])[0]
    assert np.allclose(together[1].chain.atom_positions, alone.chain.atom_positions, atol=1e-3)
    assert np.allclose(together[1].plddt, alone.plddt, atol=1e-2)
    chunked = ESMFoldOracle.from_local(tiny_esmfold_dir, chunk_size=4, max_tokens_per_batch=16, device="cpu")
    assert chunked.batches(["AAAA", "A" * 10, "AA"]) == [[1], [0, 2]]  # longest first, <= 16 padded tokens
    again = chunked.fold(SEQS)
    assert np.allclose(again[0].chain.atom_positions, together[0].chain.atom_positions, atol=1e-3)


def test_registry_builds_esmfold_from_a_path(tiny_esmfold_dir):
    oracle = create_folding_oracle("esmfold", path=tiny_esmfold_dir, device="cpu", num_recycles=0)
    assert oracle.name == "esmfold" and "recycles=0" in oracle.cache_key


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIFLOW_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(MissingWeightsError) as err:
        ESMFoldOracle.from_local()
    assert str(tmp_path / "weights" / "esmfold_v1") in str(err.value) and "MULTIFLOW_WEIGHTS" in str(err.value)
    assert "--esmfold-dir" in str(err.value)
    folder = tmp_path / "esm"
    folder.mkdir()
    with pytest.raises(MissingWeightsError, match="config.json is missing"):
        ESMFoldOracle.from_local(folder)
    (folder / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="no weight file"):
        ESMFoldOracle.from_local(folder)


def test_fair_esm_checkpoint_without_openfold_gives_a_clear_message(tmp_path):
    ckpt = tmp_path / "esmfold_3B_v1.pt"
    ckpt.write_bytes(b"not really a checkpoint")
    with pytest.raises(MissingDependencyError, match="openfold"):
        ESMFoldOracle.from_local(ckpt)
