import numpy as np
import pytest

from multiflow.data.datamodule import ProcessedChainDataset, ProteinDataModule, SplitFilter, TokenBudgetBatchSampler
from multiflow.errors import ConfigError
from tests.helpers import write_processed


def test_token_budget_batches_cover_everything_once():
    lengths = np.array([50, 60, 200, 210, 55, 120, 300, 45])
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=400, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert max(lengths[b]) * len(b) <= 400
    assert len(sampler) == len(batches)


def test_token_budget_ranks_are_disjoint_and_equal():
    lengths = np.arange(40, 140)
    per_rank = [list(TokenBudgetBatchSampler(lengths, 500, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1])
    flat = [i for rank in per_rank for b in rank for i in b]
    assert set(flat) == set(range(len(lengths)))


def test_budget_smaller_than_chain_is_a_clear_error():
    with pytest.raises(ConfigError, match="max_tokens"):
        TokenBudgetBatchSampler(np.array([100, 600]), max_tokens=500)


def test_dataset_crops_and_rotates_rigidly(tmp_path):
    write_processed(tmp_path, [80, 300])
    ds = ProcessedChainDataset(tmp_path, ["train"], crop_length=128, random_rotation=True)
    assert sorted(ds.lengths().tolist()) == [80, 128]
    raw = np.load(tmp_path / "examples/ex0.npz")
    ex = ds[0]
    # a rigid motion keeps all pairwise distances
    d_raw = np.linalg.norm(raw["trans"][:, None] - raw["trans"][None], axis=-1)
    d_new = np.linalg.norm(ex.trans[:, None] - ex.trans[None], axis=-1)
    np.testing.assert_allclose(d_new, d_raw, atol=1e-3)
    assert np.allclose(ex.trans.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(np.linalg.det(ex.rots), 1.0, atol=1e-4)


def test_datamodule_loaders_and_empty_split(tmp_path):
    write_processed(tmp_path, [50, 60, 70, 80])
    dm = ProteinDataModule(str(tmp_path), train_splits=("train",), val_splits=(), max_tokens=200, crop_length=None)
    dm.setup()
    batches = list(dm.train_dataloader())
    assert sum(b.batch_size for b in batches) == 4
    assert all(b.num_res * b.batch_size <= 200 for b in batches)
    with pytest.raises(ConfigError, match="empty"):
        ProcessedChainDataset(tmp_path, ["val"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ProcessedChainDataset(tmp_path / "nope", ["train"])


def test_filter_counts_what_it_drops_and_why(tmp_path, caplog):
    """Each dropped chain is counted under the first test it fails; the datamodule prints the counts."""
    # 30 too short; 600 too long without a crop; the 60-residue chain too coily
    write_processed(tmp_path, [30, 50, 60, 600, 70], coil_frac=[0.3, 0.3, 0.8, 0.3, 0.3])
    filt = SplitFilter(min_length=40, max_length=512, max_coil_fraction=0.5)
    uncropped = ProcessedChainDataset(tmp_path, ["train"], filt)
    assert [r["example_id"] for r in uncropped.rows] == ["ex1", "ex4"]
    assert uncropped.filter_summary() == ("kept 2 of 5 (dropped: 1 coil fraction > 0.5, 1 longer than 512, "
                                          "1 shorter than 40)")
    assert ProcessedChainDataset(tmp_path, ["train"], filt, crop_length=128).filter_summary() == (
        "kept 3 of 5 (dropped: 1 coil fraction > 0.5, 1 shorter than 40)")  # a crop keeps the long chain
    with pytest.raises(ConfigError, match=r"kept 0 of 5 \(dropped: 5 shorter than 1000\)"):
        ProcessedChainDataset(tmp_path, ["train"], SplitFilter(min_length=1000))
    dm = ProteinDataModule(str(tmp_path), train_splits=("train",), val_splits=(), crop_length=None,
                           max_coil_fraction=0.5, max_tokens=1024)
    with caplog.at_level("INFO"):
        dm.setup()
    assert "train chains (train): kept 2 of 5 (dropped: 1 coil" in caplog.text
