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


def test_resume_continues_the_interrupted_epoch():
    lengths = np.arange(40, 100)
    epochs = []
    for epoch in range(3):
        full = TokenBudgetBatchSampler(lengths, 300, seed=5)
        full.set_epoch(epoch)
        epochs.append(list(full))
    sampler = TokenBudgetBatchSampler(lengths, 300, seed=5)
    seen = len(epochs[0]) + 3  # stopped three batches into epoch 1
    assert sampler.resume(1, seen) == 3
    assert len(sampler) == len(epochs[1])  # Lightning counts the done batches itself
    assert list(sampler) == epochs[1][3:]
    sampler.set_epoch(2)  # the skip applies to the resumed epoch only
    assert list(sampler) == epochs[2]
    # a count that does not fit the epoch (epochs cut short by Lightning) starts the epoch over
    assert sampler.resume(1, 10 * len(epochs[0])) == 0
    assert list(sampler) == epochs[1]


def test_resume_counts_this_ranks_batches():
    lengths = np.arange(40, 140)
    ranks = [TokenBudgetBatchSampler(lengths, 500, seed=3, rank=r, world_size=2) for r in (0, 1)]
    full = [list(r) for r in ranks]
    for r, sampler in enumerate(ranks):
        assert sampler.resume(0, 2) == 2
        assert list(sampler) == full[r][2:]


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


@pytest.mark.parametrize("num_workers", [0, 1])
def test_trainer_resumed_mid_epoch_sees_the_uninterrupted_batches(tmp_path, num_workers):
    """A run resumed from a checkpoint written inside its second epoch (as ``last.ckpt`` is, every
    ``val_check_interval`` steps or on SIGTERM) trains on the batches, in the order, of the run that
    went on (chains have distinct lengths, so a batch is known by its lengths)."""
    import lightning as L
    import torch

    write_processed(tmp_path / "data", list(range(40, 80, 2)))

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def training_step(self, batch, batch_idx):
            self.seen.append(tuple(sorted(batch.res_mask.sum(1).tolist())))
            return (self.w ** 2).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(callbacks=(), ckpt=None):
        dm = ProteinDataModule(str(tmp_path / "data"), val_splits=(), max_tokens=200, crop_length=None,
                               num_workers=num_workers, seed=2)
        module = Recorder()
        trainer = L.Trainer(max_steps=25, accelerator="cpu", logger=False, callbacks=list(callbacks),
                            default_root_dir=tmp_path,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
        return trainer, module.seen

    every_12 = L.pytorch.callbacks.ModelCheckpoint(tmp_path / "ckpt", filename="{step}", every_n_train_steps=12,
                                                   save_top_k=-1)
    trainer, whole = fit([every_12])
    assert trainer.num_training_batches == 8  # so step 12 is inside the second epoch
    assert whole[8:16] != whole[:8] and sorted(whole[8:16]) == sorted(whole[:8])  # a new order each epoch
    _, rest = fit(ckpt=str(tmp_path / "ckpt" / "step=12.ckpt"))
    assert rest == whole[12:]
